// Fan-out exactness with the NDJSON plugin next to the other transports (issue 9): the same test
// as test_ws_fanout.mjs — 10 topics, 4 concurrent publishers, every expected delivery arrives
// exactly once and in per-topic order on every transport — with 100 NDJSON fetch() subscribers
// (/sub + Accept, /ndjson?topic=, /ndjson/{topic}, multi-topic) and 10 NDJSON wildcard
// subscribers added to 200 WebSocket, 100 SSE and 20 long-poll subscribers. And an NDJSON
// subscriber that never reads is ended at limits.max_queue_bytes while the others lose nothing.
import http from 'node:http';
import {
  suite, assert, eq, publishOk, subscribe, poll, waitFor, sleep, request, trunc,
} from './lib.mjs';
import { wsConnect } from '../conformance/wsraw.mjs';
import { startNdjson, waitConnections } from '../plugins/pluginlib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 115000 });
const ALL = { plugins: { load: ['sse', 'longpoll', 'websocket', 'ndjson'] } };

async function openWs(c, port, n, mk, batch = 100) {
  const conns = [];
  c.defer(() => conns.forEach((x) => x.destroy()));
  for (let i = 0; i < n; i += batch) {
    conns.push(...await Promise.all(Array.from({ length: Math.min(batch, n - i) }, async (_, j) => {
      const o = mk(i + j);
      const x = await wsConnect(port, { timeout: 15000, ...o });
      assert(x.status === 101, `WebSocket ${o.path}: HTTP ${x.status} ${x.body.toString().slice(0, 200)}`);
      if (o.extensions) assert(x.deflate, `permessage-deflate not negotiated for ${o.path}`);
      x.opts = o;
      return x;
    })));
  }
  return conns;
}

const metric = async (base, name) => {
  const m = await request(base, 'GET', '/metrics');
  const l = m.text.split('\n').find((x) => x.startsWith(name));
  return l ? Number(l.split(' ').pop()) : NaN;
};

t.test('200 WebSocket + 100 SSE + 110 NDJSON + 20 long-poll subscribers on 10 topics, 4 publishers: exactly once, in order, on every transport', async (c) => {
  const TOPICS = 10; const M = 50; const PUBLISHERS = 4;
  const b = await c.broker({ config: { ...ALL, history: { max_messages: 1000 } } });
  const topic = (k) => `ndfan.t${k}`;
  // 200 WebSocket: per topic 2 rt.v1, 2 raw with deflate, 16 raw
  const wsSubs = await openWs(c, b.port, 200, (i) => {
    const k = i % TOPICS; const kind = Math.floor(i / TOPICS) % 10;
    if (kind === 0) return { path: '/ws', protocols: 'rt.v1', topic: topic(k), v1: true };
    if (kind === 1) return { path: `/sub/${topic(k)}`, extensions: 'permessage-deflate; client_max_window_bits', topic: topic(k) };
    return { path: `/sub/${topic(k)}`, topic: topic(k) };
  });
  for (const x of wsSubs) if (x.opts.v1) x.text(JSON.stringify({ op: 'sub', topic: x.opts.topic, ref: 's' }));
  const v1 = wsSubs.filter((x) => x.opts.v1);
  const j = (x) => x.messages.map((m) => JSON.parse(m.data.toString('utf8')));
  await waitFor(() => v1.every((x) => x.messages.length >= 1), 15000, 'every rt.v1 sub acked');
  for (const x of v1) eq(j(x)[0], { type: 'ok', ref: 's' }, 'rt.v1 sub ack');
  // 100 SSE
  const sse = [];
  c.defer(() => sse.forEach((s) => s.close()));
  for (let i = 0; i < 100; i += 20) {
    sse.push(...await Promise.all(Array.from({ length: 20 }, (_, k) => subscribe(b.base, `/sub/${topic((i + k) % TOPICS)}`, { okTimeout: 15000 })
      .then((s) => { s.topic = topic((i + k) % TOPICS); return s; }))));
  }
  // 100 NDJSON over fetch(), four ways of asking, plus 10 on the wildcard ndfan.*
  const ndPath = (i, tp) => [`/sub/${tp}`, `/ndjson?topic=${tp}`, `/ndjson/${tp}`, `/sub?topic=${tp}&topic=ndfan.none`][Math.floor(i / TOPICS) % 4];
  const nd = Array.from({ length: 100 }, (_, i) => { const s = startNdjson(b.base, ndPath(i, topic(i % TOPICS)), { keepText: false }); s.topic = topic(i % TOPICS); return s; });
  const wild = Array.from({ length: 10 }, () => startNdjson(b.base, '/sub/ndfan.*', { keepText: false }));
  c.defer(() => [...nd, ...wild].forEach((s) => s.close()));
  await waitConnections(b.base, 'ndjson', 110, 20000);
  // a sentinel per topic: once every subscriber has it, every subscription is live
  const sentinel = {};
  for (let k = 0; k < TOPICS; k++) sentinel[topic(k)] = await publishOk(b.base, topic(k), `${topic(k)}#sentinel`);
  const dataOf = (x) => (x.opts.v1 ? j(x).filter((m) => m.type === 'msg').map((m) => m.data) : x.messages.map((m) => m.data.toString('utf8')));
  await waitFor(() => wsSubs.every((x) => dataOf(x).length >= 1) && sse.every((s) => s.messages.length >= 1)
    && nd.every((s) => s.messages.length >= 1) && wild.every((s) => s.messages.length >= TOPICS), 20000, 'the sentinel on every subscriber',
  () => `ws without it: ${wsSubs.filter((x) => dataOf(x).length < 1).length}, sse: ${sse.filter((s) => s.messages.length < 1).length}, ndjson: ${nd.filter((s) => s.messages.length < 1).length} (e.g. ${nd.find((s) => s.messages.length < 1)?.describe()}), wildcard: ${wild.map((s) => s.messages.length)}`);
  for (const x of wsSubs) { eq(dataOf(x), [`${x.opts.topic}#sentinel`], `sentinel on a WebSocket subscriber of ${x.opts.topic}`); x.base = x.messages.length; }
  for (const s of sse) eq(s.messages.map((m) => m.data), [`${s.topic}#sentinel`], 'SSE sentinel');
  for (const s of nd) {
    await s.ok();
    eq(s.messages.map((m) => [m.id, m.data]), [[sentinel[s.topic], `${s.topic}#sentinel`]], `NDJSON sentinel on ${s.path}`);
  }
  for (const s of wild) { await s.ok(); eq(s.messages.map((m) => m.id).sort(), Object.values(sentinel).sort(), 'the sentinels on a wildcard NDJSON subscriber'); }
  // long-pollers start from the sentinel id
  const pollers = Array.from({ length: 20 }, (_, i) => ({ topic: topic(i % TOPICS), cursor: sentinel[topic(i % TOPICS)], got: [], err: null }));
  let stopPolling = false;
  const polling = pollers.map(async (p) => {
    while (!stopPolling && p.got.length < M) {
      const r = await poll(b.base, { topic: p.topic, cursor: p.cursor, timeout: 5 }).catch((e) => ({ status: 0, text: e.message }));
      if (r.status !== 200) { p.err = `${r.status} ${trunc(r.text, 200)}`; return; }
      p.got.push(...r.json.messages);
      p.cursor = r.json.cursor;
    }
  });
  // 4 publishers, each owns topics p, p+4, p+8 and interleaves them
  const published = {};
  for (let k = 0; k < TOPICS; k++) published[topic(k)] = [];
  const tPub = Date.now();
  await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => (async () => {
    const mine = Array.from({ length: TOPICS }, (_, k) => k).filter((k) => k % PUBLISHERS === p);
    for (let i = 0; i < M; i++) for (const k of mine) published[topic(k)].push(await publishOk(b.base, topic(k), `${topic(k)}#${i}`));
  })()));
  const pubMs = Date.now() - tPub;
  const wsCount = () => wsSubs.reduce((n, x) => n + (x.messages.length - x.base), 0);
  await waitFor(() => wsCount() >= 200 * M && sse.every((s) => s.messages.length >= M + 1) && nd.every((s) => s.messages.length >= M + 1)
    && wild.every((s) => s.messages.length >= TOPICS * (M + 1)), 30000, 'every delivery',
  () => `ws ${wsCount()}/${200 * M}, sse ${sse.reduce((n, s) => n + s.messages.length - 1, 0)}/${100 * M}, ndjson ${nd.reduce((n, s) => n + s.messages.length - 1, 0)}/${100 * M}, wildcard ${wild.map((s) => s.messages.length - TOPICS)}; ended ndjson: ${[...nd, ...wild].filter((s) => s.ended).length}`);
  const T = (Date.now() - tPub) / 1000;
  await Promise.race([Promise.all(polling), sleep(15000)]);
  stopPolling = true;
  await sleep(300); // duplicates would show up now
  const want = (tp) => Array.from({ length: M }, (_, i) => `${tp}#${i}`);
  let wsTotal = 0;
  for (const x of wsSubs) {
    assert(!x.ended && !x.closeFrame, `a WebSocket subscriber of ${x.opts.topic} was closed: ${x.describe()}`);
    const got = dataOf(x).slice(1);
    wsTotal += got.length;
    eq(got, want(x.opts.topic), `payloads on a ${x.opts.v1 ? 'rt.v1' : x.deflate ? 'raw+deflate' : 'raw'} WebSocket subscriber of ${x.opts.topic}`);
    if (x.opts.v1) eq(j(x).filter((m) => m.type === 'msg').slice(1).map((m) => m.id), published[x.opts.topic], `ids on an rt.v1 subscriber of ${x.opts.topic}`);
  }
  let sseTotal = 0;
  for (const s of sse) {
    const got = s.messages.slice(1);
    sseTotal += got.length;
    eq(got.map((m) => m.id), published[s.topic], `SSE ids on ${s.topic}`);
    eq(got.map((m) => m.data), want(s.topic), `SSE payloads on ${s.topic}`);
  }
  let ndTotal = 0;
  for (const s of nd) {
    assert(!s.ended && !s.error, `an NDJSON subscriber (${s.path}) ended: ${s.describe()}`);
    eq(s.bad, [], `lines that are not JSON on ${s.path}`);
    eq(s.control, [], `control lines on ${s.path}`);
    const got = s.messages.slice(1);
    ndTotal += got.length;
    eq(got.map((m) => m.id), published[s.topic], `NDJSON ids on ${s.path}`);
    eq(got.map((m) => m.data), want(s.topic), `NDJSON payloads on ${s.path}`);
    assert(got.every((m) => m.topic === s.topic && m.event === null), `NDJSON envelopes on ${s.path} with another topic or an event`);
  }
  let wildTotal = 0;
  for (const s of wild) {
    assert(!s.ended && !s.error, `a wildcard NDJSON subscriber ended: ${s.describe()}`);
    eq(s.control, [], 'control lines on a wildcard NDJSON subscriber');
    for (let k = 0; k < TOPICS; k++) {
      const mine = s.messages.filter((m) => m.topic === topic(k));
      eq(mine.map((m) => m.id), [sentinel[topic(k)], ...published[topic(k)]], `wildcard NDJSON: ${topic(k)} exactly once, in order`);
    }
    wildTotal += s.messages.length - TOPICS;
    const seqs = s.messages.map((m) => BigInt(m.id.split(':')[1]));
    assert(seqs.every((q, i) => i === 0 || q > seqs[i - 1]), 'wildcard NDJSON: ids not increasing across topics (deliveries must be in SEQ order)');
  }
  let lpTotal = 0;
  for (const p of pollers) {
    assert(!p.err, `long-poll on ${p.topic} failed: ${p.err}`);
    lpTotal += p.got.length;
    eq(p.got.map((m) => m.id), published[p.topic], `long-poll ids on ${p.topic}`);
  }
  eq([wsTotal, sseTotal, ndTotal, wildTotal, lpTotal], [200 * M, 100 * M, 100 * M, 10 * TOPICS * M, 20 * M], 'deliveries (ws, sse, ndjson, ndjson wildcard, long-poll)');
  const delivered = await metric(b.base, 'rtbroker_messages_delivered_total{transport="ndjson"}');
  eq(delivered, 100 * (M + 1) + 10 * TOPICS * (M + 1), 'rtbroker_messages_delivered_total{transport="ndjson"}');
  console.log(`INFO ndjson fanout: ${TOPICS * M} publishes (${PUBLISHERS} publishers, ${pubMs} ms) → ${wsTotal} WebSocket + ${sseTotal} SSE + ${ndTotal} NDJSON + ${wildTotal} NDJSON wildcard + ${lpTotal} long-poll deliveries in ${T.toFixed(2)} s`);
}, { timeout: 75000 });

/** A raw node:http NDJSON reader that can stop reading (res.pause()). */
function rawNdjson(base, p) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, agent: false, headers: { Accept: 'application/x-ndjson' } });
    req.on('error', reject);
    req.on('response', (res) => {
      const s = { status: res.statusCode, res, req, chunks: [], ended: false };
      res.on('data', (d) => s.chunks.push(d));
      const fin = () => { s.ended = true; };
      res.on('end', fin); res.on('close', fin); res.on('error', fin);
      s.lines = () => Buffer.concat(s.chunks).toString('utf8').split('\n');
      resolve(s);
    });
    req.end();
  });
}

t.test('slow consumer: an NDJSON reader that stops reading is ended at max_queue_bytes 64KiB; the others lose nothing', async (c) => {
  const b = await c.broker({ config: { ...ALL, limits: { max_queue_bytes: '64KiB', max_message_bytes: 65536 }, history: { max_messages: 1000 } } });
  const T = 'ndslow.t';
  const fast = [startNdjson(b.base, `/sub/${T}`), startNdjson(b.base, `/ndjson?topic=${T}`)];
  c.defer(() => fast.forEach((s) => s.close()));
  await waitConnections(b.base, 'ndjson', 2);
  // the slow one: a first message so the headers come, then it stops reading
  const first = await publishOk(b.base, T, 'first');
  const slowP = rawNdjson(b.base, `/sub/${T}`);
  await waitConnections(b.base, 'ndjson', 3);
  const warm = await publishOk(b.base, T, 'warm');
  const slow = await slowP;
  c.defer(() => slow.req.destroy());
  eq(slow.status, 200, 'slow subscriber status');
  await waitFor(() => slow.lines().length >= 2, 5000, 'the warm-up line on the slow subscriber');
  slow.res.pause();
  const sse = await subscribe(b.base, `/sub/${T}`);
  c.defer(() => sse.close());
  const slow0 = await metric(b.base, 'rtbroker_slow_consumer_closes_total');
  const body = (i) => `${String(i).padStart(5, '0')}:` + 'n'.repeat(32000);
  const ids = [];
  let closedAt = -1;
  const readersHave = (n) => fast.every((s) => s.messages.length >= n + 2) && sse.messages.length >= n;
  for (let i = 0; i < 2000; i++) {
    ids.push(await publishOk(b.base, T, body(i)));
    await waitFor(() => readersHave(i + 1) || fast.some((s) => s.ended), 10000, `message ${i} on every reading subscriber`,
      () => fast.map((s) => s.describe()).join(' | ') + ` sse ${sse.messages.length}`);
    assert(!fast.some((s) => s.ended), `a reading NDJSON subscriber was ended: ${fast.filter((s) => s.ended).map((s) => s.describe()).join(' | ')}`);
    if (i % 10 === 9 && (await metric(b.base, 'rtbroker_slow_consumer_closes_total')) > slow0) { closedAt = i; break; }
  }
  assert(closedAt >= 0, `no slow-consumer close after ${ids.length} × 32 KB to an NDJSON reader that reads nothing (max_queue_bytes 64KiB)`);
  await sleep(200);
  for (const s of fast) {
    eq(s.messages.map((m) => m.id), [first, warm, ...ids], `${s.path}: every message, in order`);
    assert(s.messages.slice(2).every((m, i) => m.data === body(i)), `${s.path}: a payload was corrupted`);
    eq(s.bad, [], `${s.path}: lines that are not JSON`);
  }
  eq(sse.messages.map((m) => m.id), ids, 'SSE subscriber ids');
  // the slow one: what it reads is a prefix of the stream, then the stream ends
  slow.res.resume();
  await waitFor(() => slow.ended, 15000, 'the slow NDJSON stream to end');
  const lines = slow.lines();
  const tail = lines.pop();
  const got = lines.map((l) => JSON.parse(l));
  const msgs = got.filter((m) => !m.type);
  assert(msgs.length < ids.length + 1, `the slow subscriber received all ${ids.length} messages although it was reported closed`);
  eq(msgs.map((m) => m.id), [warm, ...ids].slice(0, msgs.length), 'the slow subscriber: a prefix of the stream (no silent hole)');
  assert(got.every((m, i) => !m.type || (i === 0 && m.type === 'ok')), `control lines on the slow subscriber: ${JSON.stringify(got.filter((m) => m.type))}`);
  c.info(`slow NDJSON subscriber ended after ${ids.length} publishes of 32 KB; it had received ${msgs.length} messages${tail ? ` and ${tail.length} bytes of a cut line` : ''}`);
}, { timeout: 60000 });

await t.run();

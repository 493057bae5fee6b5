// WebSocket fan-out: 1,000 WebSocket subscribers (raw, some with permessage-deflate, some rt.v1)
// on 10 topics next to SSE and long-poll subscribers of the same topics, 4 concurrent publishers:
// every delivery arrives exactly once and in per-topic order on every transport. A WebSocket
// subscriber that never reads is closed (1013) at limits.max_queue_bytes while the others lose
// nothing. And a rough throughput figure: 1,000 subscribers of one topic, with and without deflate.
import {
  suite, assert, eq, publishOk, subscribe, poll, waitFor, sleep, request, trunc,
} from './lib.mjs';
import { wsConnect, OP } from '../conformance/wsraw.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });
const WS = { plugins: { load: ['sse', 'longpoll', 'websocket'] } };

/** Open n WebSocket subscribers, `batch` handshakes at a time. mk(i) → wsConnect options. */
async function openMany(c, port, n, mk, batch = 100) {
  const conns = [];
  c.defer(() => conns.forEach((x) => x.destroy()));
  for (let i = 0; i < n; i += batch) {
    const got = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, async (_, j) => {
      const o = mk(i + j);
      const x = await wsConnect(port, { timeout: 15000, ...o });
      assert(x.status === 101, `WebSocket ${o.path}: HTTP ${x.status} ${x.body.toString().slice(0, 200)}`);
      if (o.extensions) assert(x.deflate, `permessage-deflate not negotiated for ${o.path}`);
      x.opts = o;
      return x;
    }));
    conns.push(...got);
  }
  return conns;
}

const slowMetric = async (base) => {
  const m = await request(base, 'GET', '/metrics');
  const l = m.text.split('\n').find((x) => x.startsWith('rtbroker_slow_consumer_closes_total'));
  return l ? Number(l.split(' ').pop()) : NaN;
};

t.test('1,000 WebSocket + 100 SSE + 20 long-poll subscribers on 10 topics, 4 publishers: exactly once, in order, on every transport', async (c) => {
  const TOPICS = 10; const M = 50; const PUBLISHERS = 4;
  const b = await c.broker({ config: { ...WS, history: { max_messages: 1000 } } });
  const topic = (k) => `wsfan.t${k}`;
  // 1,000 WebSocket subscribers: per topic 80 raw, 10 raw with deflate, 10 rt.v1 (/ws + sub)
  const t0 = Date.now();
  const wsSubs = await openMany(c, b.port, 1000, (i) => {
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
  const openMs = Date.now() - t0;
  // SSE and long-poll subscribers of the same topics
  const sse = [];
  c.defer(() => sse.forEach((s) => s.close()));
  for (let i = 0; i < 100; i += 20) {
    sse.push(...await Promise.all(Array.from({ length: 20 }, (_, k) => subscribe(b.base, `/sub/${topic((i + k) % TOPICS)}`, { okTimeout: 15000 })
      .then((s) => { s.topic = topic((i + k) % TOPICS); return s; }))));
  }
  // a sentinel per topic: once every subscriber has it, every subscription is live
  const sentinel = {};
  for (let k = 0; k < TOPICS; k++) sentinel[topic(k)] = await publishOk(b.base, topic(k), `${topic(k)}#sentinel`);
  const dataOf = (x) => (x.opts.v1 ? j(x).filter((m) => m.type === 'msg').map((m) => m.data) : x.messages.map((m) => m.data.toString('utf8')));
  await waitFor(() => wsSubs.every((x) => dataOf(x).length >= 1) && sse.every((s) => s.messages.length >= 1), 20000, 'the sentinel on every subscriber',
    () => `ws without it: ${wsSubs.filter((x) => dataOf(x).length < 1).length}, sse without it: ${sse.filter((s) => s.messages.length < 1).length}`);
  for (const x of wsSubs) { eq(dataOf(x), [`${x.opts.topic}#sentinel`], `sentinel on a WebSocket subscriber of ${x.opts.topic}`); x.base = x.messages.length; }
  for (const s of sse) { eq(s.messages.map((m) => m.data), [`${s.topic}#sentinel`], 'SSE sentinel'); }
  // long-pollers start from the sentinel id (stateless: nothing is lost between polls)
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
  const wsExpected = 1000 * M;
  const wsCount = () => wsSubs.reduce((n, x) => n + (x.messages.length - x.base), 0);
  await waitFor(() => wsCount() >= wsExpected && sse.every((s) => s.messages.length >= M + 1), 30000, `${wsExpected} WebSocket deliveries and ${100 * M} SSE deliveries`,
    () => `ws ${wsCount()}, sse ${sse.reduce((n, s) => n + s.messages.length - 1, 0)}; closed ws: ${wsSubs.filter((x) => x.ended).length}`);
  const T = (Date.now() - tPub) / 1000;
  await Promise.race([Promise.all(polling), sleep(15000)]);
  stopPolling = true;
  await sleep(300); // duplicates would show up now
  const want = (tp) => Array.from({ length: M }, (_, i) => `${tp}#${i}`);
  let wsTotal = 0;
  for (const x of wsSubs) {
    assert(!x.ended && !x.closeFrame, `a WebSocket subscriber of ${x.opts.topic} was closed: ${x.describe()}`);
    assert(x.violations.length === 0, `server protocol violations: ${x.violations.join('; ')}`);
    const got = dataOf(x).slice(1);
    wsTotal += got.length;
    eq(got, want(x.opts.topic), `payloads on a ${x.opts.v1 ? 'rt.v1' : x.deflate ? 'raw+deflate' : 'raw'} subscriber of ${x.opts.topic} (exactly once, in order)`);
    if (x.opts.v1) eq(j(x).filter((m) => m.type === 'msg').slice(1).map((m) => m.id), published[x.opts.topic], `ids on an rt.v1 subscriber of ${x.opts.topic}`);
  }
  const deflated = wsSubs.filter((x) => x.deflate).length;
  let sseTotal = 0;
  for (const s of sse) {
    const got = s.messages.slice(1);
    sseTotal += got.length;
    eq(got.map((m) => m.id), published[s.topic], `SSE ids on ${s.topic}`);
    eq(got.map((m) => m.data), want(s.topic), `SSE payloads on ${s.topic}`);
  }
  let lpTotal = 0;
  for (const p of pollers) {
    assert(!p.err, `long-poll on ${p.topic} failed: ${p.err}`);
    lpTotal += p.got.length;
    eq(p.got.map((m) => m.id), published[p.topic], `long-poll ids on ${p.topic}`);
    eq(p.got.map((m) => m.data), want(p.topic), `long-poll payloads on ${p.topic}`);
  }
  eq([wsTotal, sseTotal, lpTotal], [wsExpected, 100 * M, 20 * M], 'deliveries (ws, sse, long-poll)');
  console.log(`INFO ws fanout: ${TOPICS * M} publishes (${PUBLISHERS} publishers, ${pubMs} ms) → ${wsTotal} WebSocket (${deflated} subscribers with deflate, 100 rt.v1) + ${sseTotal} SSE + ${lpTotal} long-poll deliveries in ${T.toFixed(2)} s, rough ${Math.round((wsTotal + sseTotal) / T)} msg/s; 1,000 WebSocket handshakes took ${openMs} ms`);
}, { timeout: 75000 });

t.test('slow consumer: a WebSocket that never reads is closed (1013) at max_queue_bytes 64KiB; the other subscribers of its topic lose nothing', async (c) => {
  const b = await c.broker({ config: { ...WS, limits: { max_queue_bytes: '64KiB', max_message_bytes: 65536 }, history: { max_messages: 1000 } } });
  const slow = await wsConnect(b.port, { path: '/sub/wsslow.t' });
  c.defer(() => slow.destroy());
  eq(slow.status, 101, 'slow subscriber handshake');
  slow.pause();
  const fast = [
    await wsConnect(b.port, { path: '/sub/wsslow.t' }),
    await wsConnect(b.port, { path: '/sub/wsslow.t', extensions: 'permessage-deflate' }),
    await wsConnect(b.port, { path: '/ws', protocols: 'rt.v1' }),
  ];
  c.defer(() => fast.forEach((x) => x.destroy()));
  fast[2].text(JSON.stringify({ op: 'sub', topic: 'wsslow.t', ref: 1 }));
  await fast[2].waitFor((x) => x.messages.length >= 1, 5000, 'rt.v1 sub ack');
  fast[2].base = 1;
  const sse = await subscribe(b.base, '/sub/wsslow.t');
  c.defer(() => sse.close());
  const slow0 = await slowMetric(b.base);
  assert(Number.isFinite(slow0), 'no rtbroker_slow_consumer_closes_total in /metrics');
  // 32 KB payloads, published in lockstep with the subscribers that read (each publish waits until
  // they all have it), so a reader never has more than one message queued and only the one that
  // does not read can reach max_queue_bytes, however loaded the machine is
  const body = (i) => `${String(i).padStart(5, '0')}:` + 'w'.repeat(32000);
  const ids = [];
  let closedAt = -1;
  const readersHave = (n) => fast.every((x) => x.messages.length - (x.base || 0) >= n) && sse.messages.length >= n;
  for (let i = 0; i < 2000; i++) {
    ids.push(await publishOk(b.base, 'wsslow.t', body(i)));
    await waitFor(() => readersHave(i + 1) || fast.some((x) => x.ended), 10000, `message ${i} on every reading subscriber`,
      () => fast.map((x) => `${x.messages.length - (x.base || 0)}${x.ended ? '(closed)' : ''}`).join(',') + ` sse ${sse.messages.length}`);
    assert(!fast.some((x) => x.ended), `a subscriber that reads was closed: ${fast.filter((x) => x.ended).map((x) => x.describe()).join(' | ')}`);
    if (i % 10 === 9 && (await slowMetric(b.base)) > slow0) { closedAt = i; break; }
  }
  assert(closedAt >= 0, `no slow-consumer close after ${ids.length} × 32 KB to a WebSocket that reads nothing (max_queue_bytes 64KiB)`);
  const n = ids.length;
  const rawData = (x) => x.messages.map((m) => m.data.toString('utf8'));
  await waitFor(() => fast.every((x) => x.messages.length - (x.base || 0) >= n) && sse.messages.length >= n, 20000, `all ${n} messages on every other subscriber`,
    () => fast.map((x) => `${x.messages.length - (x.base || 0)}${x.ended ? '(closed)' : ''}`).join(',') + ` sse ${sse.messages.length}`);
  await sleep(200);
  const want = ids.map((_, i) => body(i));
  eq(rawData(fast[0]).map((s) => s.slice(0, 6)), want.map((s) => s.slice(0, 6)), 'raw subscriber: every message, in order');
  assert(rawData(fast[0]).every((s, i) => s === want[i]), 'raw subscriber: a payload was corrupted');
  assert(rawData(fast[1]).every((s, i) => s === want[i]) && fast[1].messages.length === n, 'raw+deflate subscriber: messages lost or corrupted');
  assert(fast[1].messages.some((m) => m.compressed), 'raw+deflate subscriber got no compressed message (32 KB payloads, threshold 128)');
  const v1 = fast[2].messages.slice(1).map((m) => JSON.parse(m.data.toString('utf8')));
  eq(v1.map((m) => m.id), ids, 'rt.v1 subscriber ids');
  eq(sse.messages.map((m) => m.id), ids, 'SSE subscriber ids');
  for (const x of fast) assert(!x.ended && !x.closeFrame, `a fast subscriber was closed: ${x.describe()}`);
  // the slow one: what it reads is a prefix of the stream, then close 1013 (or the connection closed)
  slow.resume();
  await slow.waitFor((x) => x.ended || x.closeFrame, 15000, 'the slow subscriber to be closed');
  await slow.waitFor((x) => x.ended, 5000, 'the slow subscriber TCP connection to end').catch(() => {});
  const got = rawData(slow);
  assert(got.length < n, `the slow subscriber received all ${n} messages although it was reported closed`);
  for (let i = 0; i < got.length; i++) assert(got[i] === want[i], `slow subscriber: message ${i} is ${JSON.stringify(got[i].slice(0, 8))}…, expected ${JSON.stringify(want[i].slice(0, 8))}… (a silent hole)`);
  if (slow.closeFrame) eq(slow.closeFrame.code, 1013, 'close code for the slow consumer');
  assert(slow.violations.length === 0, `violations on the slow connection: ${slow.violations.join('; ')}`);
  c.info(`slow consumer closed after ${n} publishes of 32 KB; it had received ${got.length}; ${slow.closeFrame ? `close frame ${slow.closeFrame.code} "${slow.closeFrame.reason}"` : 'no close frame (connection closed)'}`);
}, { timeout: 60000 });

for (const deflate of [false, true]) {
  t.test(`throughput: 1,000 WebSocket subscribers on one topic, publish as fast as possible (deflate: ${deflate ? 'yes' : 'no'})`, async (c) => {
    const N = 300; const PAR = 8;
    const b = await c.broker({ config: { ...WS, history: { max_messages: 1000 } } });
    const subs = await openMany(c, b.port, 1000, () => ({ path: '/sub/wsone.t', ...(deflate ? { extensions: 'permessage-deflate; client_max_window_bits' } : {}) }));
    let compressed = 0;
    const sampled = subs.filter((_, i) => i % 25 === 0); // these inflate and check the order; the rest only count
    for (const x of subs) {
      x.dropMessages = true; x.order = 0; x.got = 0; x.skipInflate = !sampled.includes(x);
      x.onMessage = (m) => {
        if (m.compressed) compressed++;
        if (x.skipInflate) { if (m.data.length > 40) x.got++; return; } // warm-up (7 bytes) is not counted
        const s = m.data.toString('utf8');
        if (s.startsWith('warm')) return;
        // a running hash of the order of payload indices: every subscriber must see the same order
        x.order = (Math.imul(x.order, 31) + Number(s.slice(0, s.indexOf(':'))) + 1) >>> 0;
        x.got++;
      };
    }
    await publishOk(b.base, 'wsone.t', 'warm:up');
    await waitFor(() => subs.every((x) => (x.messageCount || 0) >= 1), 15000, 'warm-up message on every subscriber');
    for (const x of subs) x.base = x.messageCount;
    const payload = (i) => `${i}:` + 'realtime broker fan-out payload; '.repeat(16); // ~530 bytes, compressible
    const t0 = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: PAR }, async () => { while (next < N) { const i = next++; await publishOk(b.base, 'wsone.t', payload(i)); } }));
    const pubMs = Date.now() - t0;
    const count = () => subs.reduce((n, x) => n + x.messageCount - x.base, 0);
    await waitFor(() => count() >= 1000 * N, 40000, `${1000 * N} deliveries`, () => `${count()} so far; closed: ${subs.filter((x) => x.ended).length}`);
    const T = (Date.now() - t0) / 1000;
    await sleep(200);
    eq(count(), 1000 * N, 'deliveries (exactly once)');
    const short = subs.filter((x) => x.got !== N);
    assert(short.length === 0, `${short.length} subscribers did not get exactly ${N} messages (e.g. ${short[0] && short[0].got})`);
    const orders = new Set(sampled.map((x) => x.order));
    assert(orders.size === 1, `${sampled.length} sampled subscribers saw ${orders.size} different message orders on one topic`);
    assert(subs.every((x) => !x.ended && x.violations.length === 0), `closed or misbehaving connections: ${subs.filter((x) => x.ended || x.violations.length).slice(0, 2).map((x) => x.describe()).join(' | ')}`);
    if (deflate) assert(compressed >= 1000 * N, `only ${compressed} of ${1000 * N} deliveries were compressed (530-byte payloads, threshold 128)`);
    else assert(compressed === 0, `${compressed} compressed deliveries without deflate negotiated`);
    console.log(`INFO ws fanout one topic: ${Math.round((1000 * N) / T)} msg/s (deflate: ${deflate ? 'yes' : 'no'}) — ${N} publishes × 1,000 subscribers in ${T.toFixed(2)} s, publishing took ${pubMs} ms`);
  }, { timeout: 60000 });
}

await t.run();

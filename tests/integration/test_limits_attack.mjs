// Limits under attack. Attackers connect from 127.0.0.2, the well-behaved client from 127.0.0.1, and
// every case checks that the well-behaved client is served during and after the attack:
// - limits.max_connections: the next connection is answered 503 too_many_connections (JSON, Retry-After,
//   Connection: close) and closed; open clients keep working; once some leave, new ones get in;
// - slowloris: header bytes or a POST body dribbled in are cut off at limits.request_timeout;
// - oversized headers: 400 and the connection closed;
// - a request flood from one address: 429s for that address only (limits.connections_per_ip,
//   limits.publish_per_subject);
// - subscribers that never read: ended at limits.max_queue_bytes (WebSocket 1013, SSE stream end), their
//   connections released, the broker's resident memory bounded;
// - 10,000 topics on one connection: refused past limits.max_topics with too_many_topics.
import {
  suite, assert, eq, publishOk, subscribe, openSSE, waitFor, sleep, trunc, SLOW,
} from './lib.mjs';
import crypto from 'node:crypto';
import {
  ATTACKER, rawConn, httpOnce, httpStatus, metric, wsOpen, rssKiB, fdCount, SANITIZER_RSS_KIB, sanitizerMemEnv,
} from './limitslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 200000 });

/** Wait until the broker counts at most n TCP connections (besides the /metrics request itself). */
async function settle(b, n, ms = 15000) {
  let last = NaN;
  await waitFor(async () => { last = await metric(b.base, 'rtbroker_tcp_connections'); return last <= n + 1; }, ms,
    `rtbroker_tcp_connections <= ${n + 1}`, () => `last ${last}`);
}

t.test('limits.max_connections: the next connection gets 503 too_many_connections and is closed; open clients keep working; new ones get in once some leave', async (c) => {
  const MAX = 12;
  const b = await c.broker({ config: { limits: { max_connections: MAX, request_timeout: '3s' }, sse: { heartbeat: '500ms' } } });
  await settle(b, 0); // the harness's own /healthz connection is gone
  const topic = 'mc.t';
  const subs = [];
  c.defer(() => subs.forEach((s) => s.close()));
  for (let i = 0; i < MAX - 1; i++) subs.push(await subscribe(b.base, `/sub/${topic}`));
  const pub = await wsOpen(b.base, '/ws', { protocols: ['rt.v1'] });
  c.defer(() => pub.ws.terminate());
  assert(!pub.refused, `the ${MAX}th connection was refused: ${JSON.stringify(pub.refused)}`);
  // full: every kind of newcomer is told so
  const sse = await httpOnce(b.base, 'GET', `/sub/${topic}`, { headers: { accept: 'text/event-stream' } });
  eq(sse.status, 503, `SSE subscribe past the limit: ${trunc(sse.text)}`);
  eq(sse.json && sse.json.error, 'too_many_connections', `error code in ${trunc(sse.text)}`);
  assert(typeof sse.json.message === 'string' && sse.json.message.includes('max_connections'), `message: ${trunc(sse.text)}`);
  eq(sse.headers['retry-after'], '1', 'Retry-After on the 503');
  eq(sse.headers.connection, 'close', 'Connection header on the 503');
  const pubHttp = await httpOnce(b.base, 'POST', `/pub/${topic}`, { body: 'refused-publish' });
  eq([pubHttp.status, pubHttp.json && pubHttp.json.error], [503, 'too_many_connections'], `publish past the limit: ${trunc(pubHttp.text)}`);
  const ws = await wsOpen(b.base, `/sub/${topic}`);
  c.defer(() => ws.ws.terminate());
  assert(ws.refused && ws.refused.status === 503 && /too_many_connections/.test(ws.refused.body),
    `WebSocket past the limit: ${JSON.stringify(ws.refused || 'it was accepted')}`);
  const raw = await rawConn(b.port, { localAddress: ATTACKER });
  raw.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await Promise.race([raw.closed, sleep(3000)]);
  assert(raw.closedAt !== null, `a raw connection past the limit was not closed by the server within 3 s; got ${JSON.stringify(raw.data().slice(0, 200))}`);
  assert(/^HTTP\/1\.1 503 /.test(raw.data()) && raw.data().includes('too_many_connections'),
    `a raw connection past the limit got ${JSON.stringify(raw.data().slice(0, 300))}, not a 503 too_many_connections`);
  // open clients keep working
  const ok1 = await pub.op({ op: 'pub', topic, data: 'while-full' });
  eq(ok1.type, 'ok', `rt.v1 publish while full: ${JSON.stringify(ok1)}`);
  await waitFor(() => subs.every((s) => s.messages.some((m) => m.data === 'while-full')), 5000, 'every open SSE client got the message published while full');
  // some leave; the broker notices (heartbeats) and lets newcomers in
  for (const s of subs.splice(0, 4)) s.close();
  await sleep(1500);
  const m = await httpOnce(b.base, 'GET', '/metrics');
  eq(m.status, 200, `GET /metrics after 4 clients left: ${trunc(m.text)}`);
  const refused = Number(/rtbroker_connections_refused_total (\d+)/.exec(m.text)?.[1]);
  assert(refused >= 4, `rtbroker_connections_refused_total is ${refused}, expected at least 4`);
  const late = await subscribe(b.base, `/sub/${topic}`);
  subs.push(late);
  const id = await (async () => {
    const r = await httpOnce(b.base, 'POST', `/pub/${topic}`, { body: 'after-leave' });
    eq(r.status, 200, `publish after clients left: ${trunc(r.text)}`);
    return r.json.id;
  })();
  await waitFor(() => subs.every((s) => s.messages.some((x) => x.id === id)), 5000, 'every SSE client (old and new) got the message after clients left');
  const hist = await httpOnce(b.base, 'GET', `/history/${topic}`);
  assert(hist.status === 200 && !hist.text.includes('refused-publish'), `the refused publish is in history: ${trunc(hist.text)}`);
  c.info(`limit ${MAX}: SSE, publish, WebSocket and raw newcomers answered 503 too_many_connections; refused total ${refused}; ${subs.length} SSE clients served after 4 left`);
}, { timeout: 40000 });

t.test('slowloris: header bytes and a POST body dribbled in are cut off at limits.request_timeout; others are served meanwhile', async (c) => {
  const b = await c.broker({ config: { limits: { request_timeout: '2s' } } });
  const good = await subscribe(b.base, '/sub/slow.loris');
  c.defer(() => good.close());
  const attackers = [];
  c.defer(() => attackers.forEach((a) => a.destroy()));
  for (let i = 0; i < 30; i++) {
    const a = await rawConn(b.port, { localAddress: ATTACKER });
    a.kind = i % 2 ? 'body' : 'headers';
    a.write(a.kind === 'headers' ? 'GET /sub/slow.loris HTTP/1.1\r\nHost: x\r\n'
      : 'POST /pub/slow.loris HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n');
    attackers.push(a);
  }
  const t0 = Date.now();
  let stop = false;
  const dribble = (async () => {
    for (let k = 0; !stop && k < 100; k++) {
      for (const a of attackers) a.write(a.kind === 'headers' ? `X-H${k}: y\r\n` : 'zz');
      await sleep(150);
    }
  })();
  c.defer(() => { stop = true; });
  // meanwhile a well-behaved client publishes and receives, promptly
  const served = [];
  for (let i = 0; i < 5; i++) {
    const t1 = Date.now();
    const id = await publishOk(b.base, 'slow.loris', `good-${i}`);
    await good.waitFor((s) => s.messages.some((m) => m.id === id), 2000, `message ${i} to the good subscriber`);
    served.push(Date.now() - t1);
    await sleep(200);
  }
  await Promise.race([Promise.all(attackers.map((a) => a.closed)), sleep(6000 * SLOW)]);
  stop = true;
  await dribble;
  const open = attackers.filter((a) => a.closedAt === null);
  assert(open.length === 0, `${open.length}/30 slowloris connections still open ${Date.now() - t0} ms after they started (request_timeout 2s)`);
  const times = attackers.map((a) => a.closedAt).sort((x, y) => x - y);
  assert(times[0] >= 1500, `a slowloris connection was closed after ${times[0]} ms, before request_timeout 2s`);
  assert(times[times.length - 1] <= 4500 * SLOW, `a slowloris connection lasted ${times[times.length - 1]} ms (request_timeout 2s)`);
  const stored = await httpOnce(b.base, 'GET', '/history/slow.loris?limit=100');
  eq(stored.json.messages.map((m) => m.data), served.map((_, i) => `good-${i}`), 'history holds only the good publishes (no dribbled body was published)');
  c.info(`30 slowloris connections (15 headers, 15 bodies) closed after ${times[0]}–${times[times.length - 1]} ms; good publish→delivery ${Math.max(...served)} ms at most`);
}, { timeout: 40000 });

t.test('oversized or too many headers: 400 and the connection closed; the broker keeps serving', async (c) => {
  const b = await c.broker({ config: { limits: { request_timeout: '3s' } } });
  const good = await subscribe(b.base, '/sub/big.hdr');
  c.defer(() => good.close());
  const cases = {
    'one 600 KB header': `GET /sub/big.hdr HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(600 * 1024)}\r\n\r\n`,
    '200 headers': `GET /sub/big.hdr HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 200 }, (_, i) => `X-N${i}: v`).join('\r\n')}\r\n\r\n`,
    '300 KB request line': `GET /sub/big.hdr?${'q'.repeat(300 * 1024)}`,
  };
  for (const [name, req] of Object.entries(cases)) {
    const a = await rawConn(b.port, { localAddress: ATTACKER });
    a.write(req);
    await Promise.race([a.closed, sleep(6000 * SLOW)]);
    const head = a.data().split('\r\n')[0];
    assert(a.closedAt !== null, `${name}: the connection is still open after 6 s (${JSON.stringify(head)})`);
    // a request line that never ends is cut at request_timeout; the others are refused at once
    if (name !== '300 KB request line') assert(/^HTTP\/1\.1 (400|431) /.test(head), `${name}: got ${JSON.stringify(head || a.error)}, expected 400 or 431`);
    else assert(head === '' || /^HTTP\/1\.1 (400|414|431) /.test(head), `${name}: got ${JSON.stringify(head)}`);
    const id = await publishOk(b.base, 'big.hdr', name);
    await good.waitFor((s) => s.messages.some((m) => m.id === id), 3000, `the good subscriber after "${name}"`);
    c.info(`${name}: ${JSON.stringify(head)}, closed after ${a.closedAt} ms`);
  }
}, { timeout: 60000 });

t.test('a request flood from one address is rate limited for that address only; another client is served', async (c) => {
  const b = await c.broker({ config: { limits: { connections_per_ip: 20, publish_per_subject: 50 } } });
  const good = await subscribe(b.base, '/sub/flood.t');
  c.defer(() => good.close());
  const counts = { pub: {}, sub: {} };
  const bump = (k, s) => { counts[k][s] = (counts[k][s] || 0) + 1; };
  let stop = false;
  const retryAfter = new Set();
  const spans = {};
  const flood = async (k, fn) => {
    const t0 = Date.now();
    while (!stop && Date.now() - t0 < 4000) {
      for (const r of await Promise.all(Array.from({ length: 20 }, fn))) {
        bump(k, r.status);
        if (r.status === 429) retryAfter.add(r.headers['retry-after']);
      }
    }
    spans[k] = Date.now() - t0;
  };
  const floods = Promise.all([
    flood('pub', () => httpOnce(b.base, 'POST', '/pub/flood.x', { body: 'spam', localAddress: ATTACKER })),
    flood('sub', () => httpStatus(b.base, '/sub/flood.t', { headers: { accept: 'text/event-stream' }, localAddress: ATTACKER })),
  ]);
  c.defer(() => { stop = true; });
  const ids = [];
  for (let i = 0; i < 20; i++) {
    ids.push(await publishOk(b.base, 'flood.t', `good-${i}`));
    const s = await subscribe(b.base, '/sub/flood.t');
    s.close();
    await sleep(150);
  }
  await floods;
  await good.waitFor((s) => s.messages.length >= ids.length, 5000, 'all good messages');
  eq(good.messages.map((m) => m.id), ids, 'the good subscriber got every good publish, in order');
  assert((counts.pub[429] || 0) > 0 && (counts.sub[429] || 0) > 0, `the flood was not rate limited: ${JSON.stringify(counts)}`);
  // a full bucket (50) plus 50/s for as long as the flood really lasted (its last batch
  // may end well after 4 s on a loaded machine), plus one batch of slack
  const allowed = 50 + Math.ceil(50 * spans.pub / 1000) + 20;
  assert((counts.pub[200] || 0) <= allowed, `more publishes passed than limits.publish_per_subject allows in ${spans.pub} ms (${allowed}): ${JSON.stringify(counts)}`);
  eq([...retryAfter], ['1'], 'Retry-After on the 429s');
  c.info(`flood from ${ATTACKER}: ${JSON.stringify(counts)}; 20 good publishes and 20 good subscribes from 127.0.0.1 all served`);
}, { timeout: 40000 });

t.test('subscribers that never read: WebSocket 1013 and SSE end at limits.max_queue_bytes, connections released, memory bounded', async (c) => {
  const b = await c.broker({ config: { limits: { max_queue_bytes: '1MiB' }, history: { max_messages: 50 } }, env: sanitizerMemEnv() });
  const topic = 'stuck.t';
  const good = await subscribe(b.base, `/sub/${topic}`);
  c.defer(() => good.close());
  const stuckSSE = [];
  const stuckWS = [];
  c.defer(() => { stuckSSE.forEach((s) => s.close()); stuckWS.forEach((w) => w.ws.terminate()); });
  for (let i = 0; i < 4; i++) {
    const s = await openSSE(b.base, `/sub/${topic}`);
    await s.waitOk();
    s.res.pause(); s.res.socket.pause();
    stuckSSE.push(s);
    const w = await wsOpen(b.base, `/sub/${topic}`, { localAddress: ATTACKER });
    w.ws._socket.pause();
    stuckWS.push(w);
  }
  await sleep(300);
  const rss0 = rssKiB(b.pid);
  const fd0 = fdCount(b.pid);
  const tcp0 = await metric(b.base, 'rtbroker_tcp_connections');
  const slow0 = await metric(b.base, 'rtbroker_slow_consumer_closes_total');
  const ids = [];
  let peak = rss0;
  for (let i = 0; i < 1500; i++) {
    // incompressible, so that permessage-deflate (which ws offers) cannot shrink it
    ids.push(await publishOk(b.base, topic, `${i}:${crypto.randomBytes(12000).toString('base64')}`));
    if (i % 100 === 0) peak = Math.max(peak, rssKiB(b.pid));
  }
  // two WebSocket and one SSE client read again at once: they get what was queued, then the close (1013) / the end
  for (const w of stuckWS.slice(0, 2)) w.ws._socket.resume();
  stuckSSE[0].res.socket.resume(); stuckSSE[0].res.resume();
  await good.waitFor((s) => s.messages.length >= ids.length, 20000, `the reading subscriber got all ${ids.length}`);
  eq(good.messages.map((m) => m.id), ids, 'the reading subscriber: every message in order');
  await waitFor(() => stuckWS[0].closed && stuckWS[1].closed && stuckSSE[0].ended, 5000, 'the clients that read again closed');
  eq(stuckWS.slice(0, 2).map((w) => w.closed.code), [1013, 1013], 'close codes of stuck WebSocket clients that read again');
  const slow = await metric(b.base, 'rtbroker_slow_consumer_closes_total');
  eq(slow - slow0, 8, 'slow-consumer closes (4 SSE + 4 WebSocket that never read)');
  // within a few seconds the broker lets go of them (no write timeout in h2o: it shuts them down itself)
  // (one more connection may be the publisher's pooled fetch connection)
  let tcp = NaN;
  await waitFor(async () => (tcp = await metric(b.base, 'rtbroker_tcp_connections')) <= tcp0 - 8 + 1, 12000,
    'the 8 stuck connections released by the broker', () => `rtbroker_tcp_connections ${tcp} (before ${tcp0}); fds ${fdCount(b.pid)} (before ${fd0})`);
  const rss1 = rssKiB(b.pid);
  peak = Math.max(peak, rss1);
  const mib = (k) => (k / 1024).toFixed(1);
  // 8 stuck readers × 24 MB published: unbounded queues would hold ~190 MB
  assert(peak - rss0 < 48 * 1024 + SANITIZER_RSS_KIB, `RSS grew from ${mib(rss0)} to ${mib(peak)} MiB while 8 readers were stuck (queues bounded at 1 MiB each)`);
  // what the others see once they read again: a prefix with no hole, then the end of the connection
  for (const w of stuckWS.slice(2)) w.ws._socket.resume();
  for (const s of stuckSSE.slice(1)) { s.res.socket.resume(); s.res.resume(); }
  await waitFor(() => stuckWS.every((w) => w.closed) && stuckSSE.every((s) => s.ended), 10000, 'stuck clients closed');
  for (const w of stuckWS) {
    const got = w.frames.map((f) => Number(String(f).split(':')[0]));
    assert(got.every((n, i) => n === i), `a stuck WebSocket got a hole: ${trunc(JSON.stringify(got.slice(0, 50)))}`);
    assert(got.length < ids.length, `a stuck WebSocket got all ${ids.length} messages`);
    assert(w.closed.code === 1013 || w.closed.code === 1006, `stuck WebSocket closed with ${JSON.stringify(w.closed)}, expected 1013 (or 1006 once the broker dropped the connection)`);
  }
  for (const s of stuckSSE) {
    const got = s.messages.map((m) => m.id);
    assert(got.every((id, i) => id === ids[i]), 'a stuck SSE client got a hole');
  }
  const codes = stuckWS.map((w) => w.closed.code);
  c.info(`RSS ${mib(rss0)} → peak ${mib(peak)} → ${mib(rss1)} MiB over ${ids.length} × 16 KB with 8 stuck readers; TCP connections ${tcp0} → ${tcp}, fds ${fd0} → ${fdCount(b.pid)}; WebSocket close codes ${JSON.stringify(codes)}`);
}, { timeout: 90000 });

t.test('10,000 topics on one connection: refused past limits.max_topics with too_many_topics; the connection and others are served', async (c) => {
  const b = await c.broker({ config: { limits: { max_topics: 32 } } });
  const v1 = await wsOpen(b.base, '/ws', { protocols: ['rt.v1'], localAddress: ATTACKER });
  c.defer(() => v1.ws.terminate());
  const N = 10000;
  for (let i = 0; i < N; i++) v1.ws.send(JSON.stringify({ op: 'sub', topic: `many.t${i}`, ref: i }));
  await waitFor(() => v1.frames.filter((f) => f && (f.type === 'ok' || f.type === 'error')).length >= N || v1.closed, 30000,
    `${N} answers`, () => `${v1.frames.length} frames`);
  const oks = v1.frames.filter((f) => f.type === 'ok');
  const errs = v1.frames.filter((f) => f.type === 'error');
  eq(oks.length, 32, 'subscriptions accepted (limits.max_topics 32)');
  eq([...new Set(errs.map((e) => e.code))], ['too_many_topics'], 'error codes of the refused subscriptions');
  assert(errs[0].message.includes('max_topics'), `error message: ${errs[0].message}`);
  assert(!v1.closed, `the rt.v1 connection was closed: ${JSON.stringify(v1.closed)}`);
  // HTTP transports: 10,000 topic= parameters in one request
  const qs = Array.from({ length: N }, (_, i) => `topic=many.q${i}`).join('&');
  const sse = await httpOnce(b.base, 'GET', `/sse?${qs}`, { localAddress: ATTACKER });
  eq([sse.status, sse.json && sse.json.error], [400, 'too_many_topics'], `SSE with ${N} topics: ${trunc(sse.text)}`);
  const lp = await httpOnce(b.base, 'GET', `/poll?${qs}&timeout=1`, { localAddress: ATTACKER });
  eq([lp.status, lp.json && lp.json.error], [400, 'too_many_topics'], `long-poll with ${N} topics: ${trunc(lp.text)}`);
  // served: the attacker's first 32 topics, and another client
  const good = await subscribe(b.base, '/sub/many.t9999');
  c.defer(() => good.close());
  const id5 = await publishOk(b.base, 'many.t5', 'five');
  const id9 = await publishOk(b.base, 'many.t9999', 'last');
  await waitFor(() => v1.msgs().some((m) => m.id === id5), 5000, 'the attacker connection still gets its 32 topics');
  await good.waitFor((s) => s.messages.some((m) => m.id === id9), 5000, 'the other client gets its message');
  assert(!v1.msgs().some((m) => m.id === id9), 'a refused topic delivered a message');
  c.info(`${N} sub ops: ${oks.length} ok, ${errs.length} too_many_topics; SSE and long-poll with ${N} topics: 400 too_many_topics`);
}, { timeout: 60000 });

await t.run();

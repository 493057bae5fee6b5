// Bad input on subscribe endpoints, and a burst of malformed traffic that must not crash the server.
import http2 from 'node:http2';
import crypto from 'node:crypto';
import {
  suite, assert, eq, expectError, publishOk, poll, rawRequest, request, openSSE, subscribe,
  rawSocket, sleep, waitFor, trunc, topicPath,
} from './lib.mjs';

const t = suite(import.meta.url);

async function sseStatus(base, p, headers = {}) {
  const s = await openSSE(base, p, { headers });
  if (s.status === 200) { s.close(); return { status: 200, text: '', json: null, headers: s.headers }; }
  await Promise.race([s.done, sleep(3000)]);
  s.close();
  let json = null; try { json = JSON.parse(s.text()); } catch {}
  return { status: s.status, text: s.text(), json, headers: s.headers };
}

t.test('subscribe with invalid topic → 400 invalid_topic (SSE, long-poll, /sse, /poll)', async (c) => {
  const b = await c.broker();
  const bad = ['chat..x', 'chat.', '.chat', 'chat%20x', 'chat$', 'chat.>.x', 'chat.*x', 'ch*at', '>.a', 'a.>>', 'x'.repeat(256), 'ch%C3%A9'];
  for (const tp of bad) {
    expectError(await sseStatus(b.base, `/sub/${tp}`), 400, 'invalid_topic', `SSE /sub/${trunc(tp, 40)}`);
    expectError(await request(b.base, 'GET', `/poll?topic=${tp}&timeout=1`), 400, 'invalid_topic', `/poll?topic=${trunc(tp, 40)}`);
  }
  expectError(await sseStatus(b.base, '/sse?topic=a..b', {}), 400, 'invalid_topic', '/sse?topic=a..b');
  expectError(await sseStatus(b.base, '/sub?topic=good.one&topic=bad..one'), 400, 'invalid_topic', 'one bad topic among good ones');
  expectError(await sseStatus(b.base, '/sub?topic='), 400, 'invalid_topic', '/sub?topic= (empty)');
  const none = await sseStatus(b.base, '/sub');
  assert(none.status === 400, `/sub without topic: expected 400, got ${none.status} ${none.text}`);
});

t.test('too many topics → 400 too_many_topics (default 32, configured 3)', async (c) => {
  const b = await c.broker();
  const q = (n) => Array.from({ length: n }, (_, i) => `topic=many.t${i}`).join('&');
  const ok = await sseStatus(b.base, `/sub?${q(32)}`);
  eq(ok.status, 200, `32 topics: ${ok.text}`);
  expectError(await sseStatus(b.base, `/sub?${q(33)}`), 400, 'too_many_topics', 'SSE 33 topics');
  expectError(await request(b.base, 'GET', `/poll?${q(33)}&timeout=1`), 400, 'too_many_topics', 'long-poll 33 topics');
  const b3 = await c.broker({ config: { limits: { max_topics: 3 } } });
  eq((await sseStatus(b3.base, `/sub?${q(3)}`)).status, 200, '3 topics with max_topics 3');
  expectError(await sseStatus(b3.base, `/sub?${q(4)}`), 400, 'too_many_topics', '4 topics with max_topics 3');
});

t.test('unknown methods on subscribe endpoints → 405 method_not_allowed', async (c) => {
  const b = await c.broker();
  for (const [m, p] of [['DELETE', '/sub/x'], ['PUT', '/sub/x'], ['PATCH', '/sub/x'], ['DELETE', '/poll?topic=x'], ['DELETE', '/sse?topic=x'], ['POST', '/sub/x']]) {
    expectError(await rawRequest(b.base, m, p, { body: m === 'DELETE' ? undefined : 'x' }), 405, 'method_not_allowed', `${m} ${p}`);
  }
});

t.test('bad query values → 400', async (c) => {
  const b = await c.broker();
  expectError(await request(b.base, 'GET', '/poll?topic=x&timeout=abc'), 400, 'invalid_parameter', 'timeout=abc');
  expectError(await request(b.base, 'GET', '/sub/x?timeout=abc'), 400, 'invalid_parameter', '/sub/x?timeout=abc (long-poll)');
  expectError(await request(b.base, 'GET', '/poll?topic=x&since=nope'), 400, 'invalid_id', 'since=nope');
  expectError(await sseStatus(b.base, '/sub/x?lastEventId=nope'), 400, 'invalid_id', 'SSE lastEventId=nope');
  expectError(await sseStatus(b.base, '/sub/x', { 'Last-Event-ID': 'x'.repeat(5000) }), 400, 'invalid_id', 'SSE 5000-char Last-Event-ID');
}, { timeout: 30000 });

t.test('subscribe refused when auth.anonymous.subscribe does not cover it → 401 unauthorized', async (c) => {
  const b = await c.broker({ config: { auth: { anonymous: { subscribe: ['public.>'], publish: ['>'] } } } });
  expectError(await sseStatus(b.base, '/sub/private.x'), 401, 'unauthorized', 'SSE private.x');
  expectError(await request(b.base, 'GET', '/poll?topic=private.x&timeout=1'), 401, 'unauthorized', 'long-poll private.x');
  expectError(await sseStatus(b.base, `/sub/${topicPath('>')}`), 401, 'unauthorized', 'SSE > (covers more than public.>)');
  expectError(await sseStatus(b.base, '/sub?topic=public.a&topic=private.b'), 401, 'unauthorized', 'multi-topic with one forbidden');
  const ok = await sseStatus(b.base, '/sub/public.news');
  eq(ok.status, 200, 'SSE public.news allowed');
  const ok2 = await sseStatus(b.base, '/sub/public.*');
  eq(ok2.status, 200, 'SSE public.* allowed');
  const b2 = await c.broker({ config: { auth: { anonymous: { subscribe: [], publish: ['>'] } } } });
  expectError(await sseStatus(b2.base, '/sub/any'), 401, 'unauthorized', 'SSE with empty anonymous.subscribe');
});

function garbageScenarios(port) {
  const rnd = (n) => crypto.randomBytes(n);
  const S = (s) => Buffer.from(s, 'latin1');
  return [
    ['random bytes', () => rawSocket(port, [rnd(4096)])],
    ['truncated request line', () => rawSocket(port, [S('GET /healthz HT')])],
    ['truncated headers', () => rawSocket(port, [S('GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: ')])],
    ['SSE request then vanish', () => rawSocket(port, [S('GET /sub/burst.t HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n')], { endAfter: 'destroy' })],
    ['huge header', () => rawSocket(port, [S('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(200000) + '\r\n\r\n')])],
    ['many headers', () => rawSocket(port, [S('GET /healthz HTTP/1.1\r\nHost: x\r\n' + Array.from({ length: 500 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n')])],
    ['short body', () => rawSocket(port, [S('POST /pub/burst.t HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort')])],
    ['bad chunk size', () => rawSocket(port, [S('POST /pub/burst.t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n')])],
    ['truncated chunked body', () => rawSocket(port, [S('POST /pub/burst.t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc')])],
    ['huge content-length', () => rawSocket(port, [S('POST /pub/burst.t HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nabc')])],
    ['negative content-length', () => rawSocket(port, [S('POST /pub/burst.t HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabc')])],
    ['CL and TE both', () => rawSocket(port, [S('POST /pub/burst.t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n')])],
    ['invalid method', () => rawSocket(port, [S('FOO!! /pub/x HTTP/1.1\r\nHost: x\r\n\r\n')])],
    ['NUL in request line', () => rawSocket(port, [Buffer.concat([S('GET /sub/a'), Buffer.from([0]), S('b HTTP/1.1\r\nHost: x\r\n\r\n')])])],
    ['non-UTF-8 path', () => rawSocket(port, [Buffer.concat([S('POST /pub/'), Buffer.from([0xff, 0xfe, 0x80]), S(' HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx')])])],
    ['%00 in topic', () => rawSocket(port, [S('POST /pub/a%00b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx')])],
    ['header without colon', () => rawSocket(port, [S('GET /healthz HTTP/1.1\r\nHost x\r\nBroken\r\n\r\n')])],
    ['HTTP/1.0 no host', () => rawSocket(port, [S('GET /sub/burst.t HTTP/1.0\r\n\r\n')])],
    ['HTTP/9.9', () => rawSocket(port, [S('GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n')])],
    ['pipelined mix', () => rawSocket(port, [S('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /pub/burst.t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGARBAGE\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n')])],
    ['h2 preface + garbage', () => rawSocket(port, [S('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), rnd(512)])],
    ['h2 preface + bad frame', () => rawSocket(port, [S('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), Buffer.from([0xff, 0xff, 0xff, 0x01, 0x05, 0, 0, 0, 1]), rnd(64)])],
    ['h2c upgrade garbage', () => rawSocket(port, [S('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: !!!!\r\n\r\n')])],
    ['websocket upgrade garbage', () => rawSocket(port, [S('GET /sub/burst.t HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ???\r\n\r\n'), rnd(200)])],
    ['long-poll then vanish', () => rawSocket(port, [S('GET /poll?topic=burst.t&timeout=20 HTTP/1.1\r\nHost: x\r\n\r\n')], { endAfter: 'destroy', delayMs: 50 })],
    ['slow header bytes', () => rawSocket(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n'.split('').map((ch) => S(ch)), { delayMs: 2, timeout: 3000 })],
    ['very long path', () => rawSocket(port, [S('GET /sub/' + 'a.'.repeat(20000) + 'b HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n')])],
    ['huge query', () => rawSocket(port, [S('GET /sub?' + 'topic=x&'.repeat(5000) + ' HTTP/1.1\r\nHost: x\r\n\r\n')])],
  ];
}

t.test('burst of malformed traffic: server survives, /healthz and pub/sub still work', async (c) => {
  const b = await c.broker();
  // a subscriber from before the burst must keep working
  const before = await subscribe(b.base, '/sub/burst.t');
  c.defer(() => before.close());
  const scen = garbageScenarios(b.port);
  const results = {};
  for (let round = 0; round < 4; round++) {
    await Promise.all(scen.map(async ([name, fn]) => {
      const r = await fn();
      const first = r.data.toString('latin1').split('\r\n')[0];
      results[name] = `${r.why} ${/^HTTP\//.test(first) ? JSON.stringify(first.slice(0, 40)) : r.data.length ? `${r.data.length} bytes (h2 frames?)` : '(nothing)'}`;
    }));
    assert(b.alive(), `broker died during round ${round} of the malformed burst: ${JSON.stringify(b.exited)}`);
  }
  // SSE streams over HTTP/1.1 whose clients vanish, then publishes (writes to dead sockets)
  const ghosts = await Promise.all(Array.from({ length: 20 }, () => subscribe(b.base, '/sub/burst.t')));
  ghosts.forEach((s) => s.res.socket.destroy());
  for (let i = 0; i < 30; i++) await publishOk(b.base, 'burst.t', `after-ghosts-${i}`);
  // h2c: SSE streams cancelled mid-flight, then the session dropped
  const sess = http2.connect(b.base);
  sess.on('error', () => {});
  const streams = [];
  for (let i = 0; i < 5; i++) {
    const st = sess.request({ ':path': '/sub/burst.t', accept: 'text/event-stream' });
    st.on('error', () => {});
    st.on('data', () => {});
    streams.push(st);
  }
  await Promise.all(streams.map((st) => new Promise((r) => { st.once('response', r); setTimeout(r, 3000); })));
  const pubs = Array.from({ length: 20 }, (_, i) => publishOk(b.base, 'burst.t', `h2-${i}`));
  streams.slice(0, 3).forEach((st) => st.close(http2.constants.NGHTTP2_CANCEL));
  await Promise.all(pubs);
  sess.destroy();
  for (let i = 0; i < 20; i++) await publishOk(b.base, 'burst.t', `after-h2-${i}`);
  await sleep(300);
  assert(b.alive(), `broker died: ${JSON.stringify(b.exited)}`);
  // still healthy
  const h = await request(b.base, 'GET', '/healthz');
  eq([h.status, h.text.trim()], [200, 'ok'], '/healthz after the burst');
  const s = await subscribe(b.base, '/sub/after.t');
  c.defer(() => s.close());
  const id = await publishOk(b.base, 'after.t', 'still alive');
  await s.waitMessages(1, 5000);
  eq(s.messages.map((m) => [m.id, m.data]), [[id, 'still alive']], 'pub/sub after the burst');
  const lp = await poll(b.base, { topic: 'after.t', cursor: `${id.split(':')[0]}:0`, timeout: 1 });
  assert(lp.status === 200 && lp.json.messages.some((m) => m.id === id), `long-poll after the burst: ${lp.status} ${trunc(lp.text)}`);
  // the subscriber from before the burst saw every well-formed publish, and nothing from the malformed ones
  // ('hi' comes from the well-formed pipelined POST; 'abc' from the CL+TE request if the server accepts it)
  await before.waitFor((x) => x.messages.filter((m) => m.data.startsWith('after-h2-')).length === 20, 8000, 'pre-burst subscriber keeps receiving');
  const data = before.messages.map((m) => m.data);
  for (let i = 0; i < 30; i++) assert(data.includes(`after-ghosts-${i}`), `pre-burst subscriber missed after-ghosts-${i}`);
  for (let i = 0; i < 20; i++) assert(data.includes(`h2-${i}`), `pre-burst subscriber missed h2-${i}`);
  const strays = data.filter((d) => !/^(after-ghosts|h2|after-h2)-\d+$/.test(d) && d !== 'hi' && d !== 'abc');
  assert(strays.length === 0, `malformed requests published something: ${trunc(JSON.stringify(strays))}`);
  c.info(`burst results: ${Object.entries(results).map(([k, v]) => `${k} → ${v}`).join('; ')}`);
}, { timeout: 50000 });

await t.run();

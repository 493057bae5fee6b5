// The subscribe and publish proxies (proxy.subscribe.*, proxy.publish.*) with a real backend in this process:
// each topic of a subscribe request is asked about before the transport sees it (SSE, long-poll, raw WebSocket),
// an rt.v1 `sub` op waits for its verdict, and a publish (POST /pub or rt.v1 `pub`) is refused or has its payload
// replaced by the backend; with the subscribe proxy on nothing subscribes without the backend's yes.
import WebSocket from 'ws';
import { suite, assert, eq, request, subscribe, openSSE, poll, publish, waitFor, trunc, SLOW } from './lib.mjs';
import { hookBackend } from './hookslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });
const W = 5000 * SLOW;

const backend = (c) => hookBackend(c, (ev, reply) => {
  if (ev.event === 'connect') return reply({ allow: true, user: 'alice', subscribe: ['room.>'], publish: ['room.>'] });
  if (ev.topic.startsWith('room.secret')) return reply({ allow: false, code: 403, reason: `not for ${ev.user}` });
  if (ev.topic === 'room.slow') return setTimeout(() => reply({ allow: true }), 1500);
  if (ev.event === 'publish' && ev.topic === 'room.rewrite') return reply({ allow: true, data: { clean: true, was: ev.data } });
  if (ev.event === 'publish' && ev.topic === 'room.text') return reply({ allow: true, data: 'replaced text' });
  return reply({ allow: true });
});

const cfg = (be) => ({
  auth: { anonymous: { subscribe: [], publish: ['room.>'] } }, // POST /pub: the broker's own checks come first
  proxy: {
    connect: { url: be.url('/connect') },
    subscribe: { url: be.url('/subscribe'), forward_headers: ['Cookie'] },
    publish: { url: be.url('/publish'), forward_headers: ['X-App'] },
    timeout: '500ms',
  },
});

function wsOpen(c, url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    const h = { ws, frames: [], closed: null, ref: 0 };
    c.defer(() => ws.terminate());
    h.send = (op) => {
      const ref = `r${++h.ref}`;
      ws.send(JSON.stringify({ ...op, ref }));
      return waitFor(() => h.frames.find((f) => f.ref === ref), W, `reply to ${JSON.stringify(op)}`);
    };
    ws.on('message', (d) => { try { h.frames.push(JSON.parse(d.toString())); } catch { h.frames.push({ raw: d.toString() }); } });
    ws.on('close', (code) => { h.closed = code; });
    ws.on('open', () => resolve(h));
    ws.on('error', reject);
  });
}

t.test('subscribe requests: every topic is asked about, with the identity connect granted; one refusal refuses the request', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: cfg(be) });
  const ok = await subscribe(b.base, '/sub?topic=room.a&topic=room.b', { headers: { Cookie: 'session=1' } });
  ok.close();
  const subs = be.calls.filter((x) => x.event === 'subscribe');
  eq(subs.map((x) => x.topic).sort(), ['room.a', 'room.b'], 'one subscribe call per topic');
  eq([subs[0].user, subs[0].transport, subs[0].headers.cookie], ['alice', 'sse', 'session=1'], 'user from connect, forwarded cookie');
  const no = await openSSE(b.base, '/sub?topic=room.a&topic=room.secret');
  await no.done;
  eq([no.status, no.json()?.error, no.json()?.message], [403, 'forbidden', 'not for alice'], 'SSE refused by one topic');
  const lp = await poll(b.base, { topic: 'room.secret.x', timeout: 1 });
  eq([lp.status, lp.json?.message], [403, 'not for alice'], 'long-poll refused');
  const lpok = await poll(b.base, { topic: 'room.c', timeout: 1 });
  eq(lpok.status, 200, `long-poll allowed: ${trunc(lpok.text)}`);
  const ws = await wsOpen(c, `${b.base.replace('http', 'ws')}/sub/room.secret`);
  await waitFor(() => ws.closed !== null, W, 'raw ws close');
  eq(ws.closed, 4003, 'raw WebSocket refused after the upgrade');
  const slow = await openSSE(b.base, '/sub/room.slow');
  await slow.done;
  eq(slow.status, 503, 'a subscribe call past proxy.timeout: failure policy deny');
});

t.test('nothing subscribes without the backend: a request naming more topics than are asked about is refused', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: { ...cfg(be), limits: { max_topics: 100, connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 } } });
  const topics = Array.from({ length: 70 }, (_, i) => `topic=room.t${i}`).join('&');
  const s = await openSSE(b.base, `/sub?${topics}`);
  if (s.status === 200) s.close(); else await s.done;
  eq([s.status, be.calls.filter((x) => x.event === 'subscribe').length], [403, 0], '70 topics (over the 63 asked about per request)');
});

t.test('rt.v1: sub waits for the verdict; a refused topic is never subscribed; pub refused or rewritten', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: cfg(be) });
  const v = await wsOpen(c, `${b.base.replace('http', 'ws')}/ws`, ['rt.v1']);
  const okSub = await v.send({ op: 'sub', topic: 'room.rewrite' });
  eq(okSub.type, 'ok', 'allowed sub');
  const bad = await v.send({ op: 'sub', topic: 'room.secret' });
  eq([bad.type, bad.code, bad.message], ['error', 'forbidden', 'not for alice'], 'refused sub carries the reason');
  const last = be.calls.filter((x) => x.event === 'subscribe').at(-1);
  eq([last.topic, last.user, last.transport, last.headers], ['room.secret', 'alice', 'websocket', {}], 'sub call from a live connection');
  await v.send({ op: 'sub', topic: 'room.text' });
  // a refused publish over HTTP; a secret message published by the API is not delivered to the refused sub
  const r = await publish(b.base, 'room.secret', 'x', { headers: { 'X-App': 'a1' } });
  eq([r.status, r.json?.message], [403, 'not for null'], 'POST /pub (anonymous) refused by the backend');
  const pcall = be.calls.filter((x) => x.event === 'publish').at(-1);
  eq([pcall.topic, pcall.data, pcall.transport, pcall.headers, pcall.user], ['room.secret', 'x', 'http', { 'x-app': 'a1' }, null], 'publish call');
  // POST /pub rewritten: JSON payload described as JSON, replaced by the backend's data
  const ok = await publish(b.base, 'room.rewrite', '{"a":1}', { headers: { 'Content-Type': 'application/json' } });
  eq(ok.status, 200, `rewritten publish: ${trunc(ok.text)}`);
  await waitFor(() => v.frames.some((f) => f.type === 'msg' && f.topic === 'room.rewrite'), W, 'rewritten message');
  eq(v.frames.find((f) => f.topic === 'room.rewrite' && f.type === 'msg').data, { clean: true, was: { a: 1 } }, 'the backend replaced the payload');
  // rt.v1 pub: refused, and replaced by a string
  const pr = await v.send({ op: 'pub', topic: 'room.secret', data: 'no' });
  eq([pr.type, pr.code], ['error', 'forbidden'], 'rt.v1 pub refused');
  const pt = await v.send({ op: 'pub', topic: 'room.text', data: 'original' });
  eq(pt.type, 'ok', `rt.v1 pub allowed: ${JSON.stringify(pt)}`);
  await waitFor(() => v.frames.some((f) => f.type === 'msg' && f.topic === 'room.text'), W, 'text message');
  eq(v.frames.find((f) => f.topic === 'room.text' && f.type === 'msg').data, 'replaced text', 'string replacement');
  // binary payloads are described in base64
  await publish(b.base, 'room.bin', Buffer.from([0xff, 0x00, 0xfe]), { headers: { 'Content-Type': 'application/octet-stream' } });
  const bin = be.calls.filter((x) => x.event === 'publish').at(-1);
  eq([bin.data, bin.encoding], ['/wD+', 'base64'], 'binary data in base64');
  const m = (await request(b.base, 'GET', '/metrics')).text;
  for (const e of ['connect', 'subscribe', 'publish'])
    assert(new RegExp(`rtbroker_proxy_calls_total\\{event="${e}",result="allow"\\} [1-9]`).test(m), `${e} calls counted`);
  assert(/rtbroker_proxy_calls_total\{event="publish",result="deny"\} [1-9]/.test(m), 'publish refusals counted');
});

t.test('refresh: at expire_at the backend is asked again; a new expire_at extends the connection, a refusal ends it', async (c) => {
  let nRefresh = 0;
  const be = await hookBackend(c, (ev, reply) => {
    const soon = Date.now() / 1000 + 0.8;
    if (ev.event === 'connect') return reply({ allow: true, user: 'rita', subscribe: ['room.>'], expire_at: soon });
    return reply(++nRefresh === 1 ? { allow: true, expire_at: soon, user: 'ignored' } : { allow: false, code: 403, reason: 'session over' });
  });
  const { calls } = be;
  const url = be.url('');
  const b = await c.broker({ config: { proxy: { connect: { url: `${url}/c` }, refresh: { url: `${url}/r` } } } });
  const t0 = Date.now();
  const s = await subscribe(b.base, '/sub/room.r');
  c.defer(() => s.close());
  await s.waitFor((x) => x.ended, 6000 * SLOW, 'the stream ends after the refused refresh');
  const refreshes = calls.filter((x) => x.event === 'refresh');
  eq(refreshes.length, 2, 'two refresh calls: one extended, one refused');
  eq([refreshes[0].user, refreshes[0].transport], ['rita', 'sse'], 'the refresh call names the connection');
  assert(s.endedAt - t0 >= 1400, `the first refresh extended the connection (ended after ${s.endedAt - t0} ms)`);
  assert(s.events.some((e) => e.event === 'rt.expired'), `ended as expired: ${trunc(s.text())}`);
});

t.run();

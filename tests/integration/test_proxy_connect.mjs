// The connect proxy (proxy.connect.*): a real backend (an HTTP server in this process) decides from the forwarded
// session cookie who connects, on SSE, long-poll, raw WebSocket, rt.v1 and ndjson. Allowed connections carry the
// user, info and rights it granted (presence shows the user); refusals keep the backend's code and reason; a slow,
// failing, garbage-answering, mid-answer-closing or absent backend gets the failure policy (deny → 503; allow);
// proxy.max_in_flight bounds waiting calls; calls are counted in /metrics; backend connections are kept alive.
import crypto from 'node:crypto';
import http from 'node:http';
import { spawn } from 'node:child_process';
import path from 'node:path';
import WebSocket from 'ws';
import { extractBlocks } from './docs_extract.mjs';
import { hookBackend } from './hookslib.mjs';
import { ROOT, runBrokerSync, suite, assert, eq, request, subscribe, openSSE, poll, publishOk, sleep, waitFor, freePort, trunc, SLOW } from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 120000 });
const W = 5000 * SLOW;
const SECRET = 'proxy-test-secret-0123456789abcdef';

/** The application backend: its answer depends on the session cookie. */
async function backend(c) {
  const b = await hookBackend(c, (ev, json, res) => {
    const session = /(?:^|;\s*)session=([^;]*)/.exec(ev?.headers?.cookie || '')?.[1] || '';
    switch (session) {
      case '': return json({ allow: false, code: 401, reason: 'no session cookie' });
      case 'alice': return json({ allow: true, user: 'alice', info: { name: 'Alice' }, subscribe: ['room.>'], extra: 1 });
      case 'expiring': return json({ allow: true, user: 'eve', subscribe: ['room.>'], expire_at: Date.now() / 1000 + 1.5 });
      case 'plain': return json({ allow: true });
      case 'banned': return json({ allow: false, code: 403, reason: 'banned: "spam"' });
      case 'busy': return json({ allow: false, code: 429, reason: 'slow down' });
      case 'teapot': return json({ allow: false, code: 418 });
      case 'slow': return setTimeout(() => json({ allow: true, user: 'late', subscribe: ['room.>'] }), 1500);
      case 'http500': return json({ allow: true }, 500);
      case 'garbage': res.writeHead(200, { 'Content-Type': 'application/json' }); return res.end('{"allow":tru');
      case 'noallow': return json({ user: 'x' });
      case 'cut': res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100' }); res.write('{"allow":true,');
        return setTimeout(() => res.socket.destroy(), 50);
      default: return json({ allow: false, code: 403, reason: `unknown session ${session}` });
    }
  });
  b.connectUrl = b.url('/rt/connect');
  return b;
}

const cfg = (url, proxy = {}) => ({
  auth: { anonymous: { subscribe: [], publish: ['room.>'] }, jwt: { secret: SECRET } },
  proxy: { connect: { url, forward_headers: ['Cookie', 'X-Tenant'] }, timeout: '500ms', ...proxy },
});
const cookie = (s) => ({ Cookie: `theme=dark; session=${s}` });

function jwt(user) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: user, exp: Math.floor(Date.now() / 1000) + 600, rt: { sub: ['room.>'] } })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

function wsOpen(c, url, { protocols, headers } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, { headers });
    const h = { ws, frames: [], closed: null, status: null, body: '' };
    c.defer(() => ws.terminate());
    ws.on('message', (d) => { try { h.frames.push(JSON.parse(d.toString())); } catch { h.frames.push({ raw: d.toString() }); } });
    ws.on('close', (code) => { h.closed = code; });
    ws.on('unexpected-response', (req, res) => {
      h.status = res.statusCode;
      res.on('data', (d) => { h.body += d; });
      res.on('end', () => resolve(h));
    });
    ws.on('open', () => { h.status = 101; resolve(h); });
    ws.on('error', () => resolve(h));
  });
}

/** An ndjson stream's answer status (the stream stays open until the case ends). */
async function ndjson(c, base, p, headers) {
  const s = await openSSE(base, p, { headers, accept: 'application/x-ndjson' });
  c.defer(() => s.close());
  return s;
}

const sseJoins = (s) => s.events.filter((e) => e.event === 'rt.join').map((e) => JSON.parse(e.data));

async function metric(base, name) {
  const text = (await request(base, 'GET', '/metrics')).text;
  const l = text.split('\n').find((x) => x.startsWith(name + ' '));
  return l ? Number(l.split(' ').pop()) : NaN;
}

t.test('SSE: the session cookie becomes the connection identity; the backend gets the documented call', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: cfg(be.connectUrl) });
  const s = await subscribe(b.base, '/sub/room.a?presence=1', { headers: { ...cookie('alice'), 'X-Tenant': 'acme', 'X-Other': 'no' } });
  c.defer(() => s.close());
  await s.waitFor((x) => sseJoins(x).length > 0, W, 'own join');
  const j = sseJoins(s)[0];
  eq([j.user, JSON.stringify(j.info)], ['alice', '{"name":"Alice"}'], 'presence sees the user and info the backend granted');
  eq(be.calls.length, 1, 'one call');
  const { path: target, contentType: ct, at: _at, ...ev } = be.calls[0];
  eq([target, ct], ['/rt/connect', 'application/json'], 'POST target and content type');
  eq(Object.keys(ev).sort(), ['claims', 'client', 'event', 'headers', 'ip', 'transport', 'user'], 'call fields');
  eq([ev.event, ev.transport, ev.ip, ev.user, ev.claims], ['connect', 'sse', '127.0.0.1', null, null], 'call values');
  assert(typeof ev.client === 'string' && ev.client.length > 0, `client id: ${ev.client}`);
  eq(ev.headers, { cookie: 'theme=dark; session=alice', 'x-tenant': 'acme' }, 'only forward_headers are forwarded');
  // the grant gives room.> only: another topic is refused, as a token's claims would do
  const other = await openSSE(b.base, '/sub/lobby', { headers: cookie('alice') });
  other.close();
  eq(other.status, 403, 'a topic outside the granted rights');
});

t.test('every transport: allowed with the cookie, refused with the backend code and reason', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: cfg(be.connectUrl) });
  const ws = b.base.replace('http', 'ws');
  // long-poll
  const p = await poll(b.base, { topic: 'room.lp', timeout: 1 }, { headers: cookie('alice') });
  eq(p.status, 200, `long-poll allowed: ${trunc(p.text)}`);
  const pd = await poll(b.base, { topic: 'room.lp', timeout: 1 }, { headers: cookie('banned') });
  eq([pd.status, pd.json?.error, pd.json?.message], [403, 'forbidden', 'banned: "spam"'], 'long-poll refused');
  // raw WebSocket
  const w1 = await wsOpen(c, `${ws}/sub/room.ws?presence=1`, { headers: cookie('alice') });
  eq(w1.status, 101, 'raw WebSocket allowed');
  await waitFor(() => w1.frames.some((f) => f.type === 'join' && f.user === 'alice'), W, 'raw ws own join as alice', () => JSON.stringify(w1.frames));
  // refusals come after the upgrade, as close codes a browser can read (as for tokens)
  const w2 = await wsOpen(c, `${ws}/sub/room.ws`, {});
  await waitFor(() => w2.closed !== null, W, 'raw ws refused');
  eq([w2.status, w2.closed], [101, 4001], 'raw WebSocket without a cookie: close 4001');
  const w3 = await wsOpen(c, `${ws}/sub/room.ws`, { headers: cookie('banned') });
  await waitFor(() => w3.closed !== null, W, 'raw ws banned');
  eq([w3.status, w3.closed], [101, 4003], 'raw WebSocket refused with 403: close 4003');
  // rt.v1
  const v = await wsOpen(c, `${ws}/ws`, { protocols: ['rt.v1'], headers: cookie('alice') });
  eq(v.status, 101, 'rt.v1 allowed');
  v.ws.send(JSON.stringify({ op: 'sub', topic: 'room.v1', presence: true, ref: 'a' }));
  await waitFor(() => v.frames.some((f) => f.ref === 'a'), W, 'rt.v1 sub answer');
  eq(v.frames.find((f) => f.ref === 'a').type, 'ok', 'rt.v1 sub under the granted rights');
  v.ws.send(JSON.stringify({ op: 'sub', topic: 'lobby', ref: 'b' }));
  await waitFor(() => v.frames.some((f) => f.ref === 'b'), W, 'rt.v1 second sub answer');
  eq(v.frames.find((f) => f.ref === 'b').type, 'error', 'rt.v1 sub outside the granted rights');
  const vr = await wsOpen(c, `${ws}/ws`, { protocols: ['rt.v1'], headers: cookie('busy') });
  await waitFor(() => vr.closed !== null, W, 'rt.v1 refused');
  eq([vr.status, vr.closed], [101, 4029], 'rt.v1 refused with 429: close 4029');
  const vu = await wsOpen(c, `${ws}/ws`, { protocols: ['rt.v1'], headers: cookie('banned') });
  await waitFor(() => vu.closed !== null, W, 'rt.v1 banned');
  eq([vu.status, vu.closed], [101, 4003], 'rt.v1 refused with 403: close 4003 (no later auth op can get around it)');
  // ndjson
  const n = await ndjson(c, b.base, '/sub/room.nd', cookie('alice'));
  eq(n.status, 200, 'ndjson allowed');
  const nd = await ndjson(c, b.base, '/sub/room.nd', cookie('banned'));
  eq(nd.status, 403, 'ndjson refused');
  const transports = new Set(be.calls.map((x) => x.transport));
  eq([...transports].sort(), ['longpoll', 'ndjson', 'sse', 'websocket'].filter((x) => transports.has(x)).sort(), 'transport names');
  assert(transports.has('longpoll') && transports.has('websocket') && transports.has('ndjson'), `transports seen: ${[...transports]}`);
  // allow:true alone keeps the request's own credentials: a token, or anonymous (which opens nothing here)
  const tok = await subscribe(b.base, `/sub/room.t?token=${jwt('tina')}`, { headers: cookie('plain') });
  tok.close();
  const last = be.calls.at(-1);
  eq([last.user, last.claims?.sub], ['tina', 'tina'], 'a valid token is described to the backend');
  const anon = await openSSE(b.base, '/sub/room.t', { headers: cookie('plain') });
  anon.close();
  eq(anon.status, 401, 'allow without a grant and without a token: anonymous rights only');
  // keep-alive: all these calls went over few backend connections
  assert(be.sockets <= 3 && be.calls.length >= 10, `backend connections ${be.sockets} for ${be.calls.length} calls`);
});

t.test('backend failures: deny policy answers 503 quickly; allow policy lets the client in; metrics count them', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: cfg(be.connectUrl) });
  for (const s of ['slow', 'http500', 'garbage', 'noallow', 'cut', 'teapot']) {
    const t0 = Date.now();
    const r = await openSSE(b.base, '/sub/room.f', { headers: cookie(s) });
    r.close();
    eq([s, r.status], [s, 503], `failure ${s} under the deny policy`);
    assert(Date.now() - t0 < 1400 * SLOW, `${s}: answered after ${Date.now() - t0} ms (proxy.timeout 500ms)`);
  }
  await waitFor(async () => (await metric(b.base, 'rtbroker_proxy_calls_total{event="connect",result="error"}')) === 6, W, 'error count');
  const ok = await subscribe(b.base, '/sub/room.f', { headers: cookie('alice') });
  ok.close();
  eq(await metric(b.base, 'rtbroker_proxy_calls_total{event="connect",result="allow"}'), 1, 'allow count');
  eq(await metric(b.base, 'rtbroker_proxy_call_seconds_count{event="connect"}'), 7, 'latency histogram count');
  // the backend is gone: connection refused
  await be.close();
  const down = await openSSE(b.base, '/sub/room.f', { headers: cookie('alice') });
  down.close();
  eq(down.status, 503, 'backend down under the deny policy');
  eq((await request(b.base, 'GET', '/healthz')).status, 200, 'the broker is fine');

  const be2 = await backend(c);
  const open = await c.broker({ config: { ...cfg(be2.connectUrl, { failure_policy: 'allow' }), auth: { anonymous: { subscribe: ['room.>'] } } } });
  const s = await subscribe(open.base, '/sub/room.g', { headers: cookie('garbage') });
  s.close();
  const d = await openSSE(open.base, '/sub/room.g', { headers: cookie('banned') });
  d.close();
  eq(d.status, 403, 'an explicit refusal is not a failure: the allow policy does not apply');
});

t.test('proxy.max_in_flight: past it the policy applies at once; a client leaving mid-call is fine', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ workers: 1, config: cfg(be.connectUrl, { timeout: '3s', max_in_flight: 1 }) });
  const first = openSSE(b.base, '/sub/room.m', { headers: cookie('slow') });
  await waitFor(() => be.calls.length === 1, W, 'the first call reached the backend');
  const t0 = Date.now();
  const second = await openSSE(b.base, '/sub/room.m', { headers: cookie('alice') });
  second.close();
  eq(second.status, 503, 'second connect while one call waits');
  assert(Date.now() - t0 < 500 * SLOW, `refused after ${Date.now() - t0} ms`);
  const f = await first;
  c.defer(() => f.close());
  eq(f.status, 200, 'the slow but allowed connect gets in');
  // a client that leaves while its call waits: the call is dropped, the slot freed
  const gone = http.get({ host: '127.0.0.1', port: new URL(b.base).port, path: '/sub/room.m', headers: cookie('slow') });
  gone.on('error', () => {});
  await waitFor(() => be.calls.length === 2, W, 'the call of the client that leaves');
  gone.destroy();
  await sleep(1700);
  const again = await subscribe(b.base, '/sub/room.m', { headers: cookie('alice') });
  again.close();
});

t.test('expire_at: the connection ends when the backend-given identity expires', async (c) => {
  const be = await backend(c);
  const b = await c.broker({ config: cfg(be.connectUrl) });
  const s = await subscribe(b.base, '/sub/room.e', { headers: cookie('expiring') });
  c.defer(() => s.close());
  await publishOk(b.base, 'room.e', 'before');
  await s.waitFor((x) => x.ended, 6000 * SLOW, 'stream end at expire_at');
  assert(s.events.some((e) => e.event === 'rt.expired'), `rt.expired event: ${trunc(s.text())}`);
});

t.test('bad proxy.* values are refused at start with the key named', async () => {
  const cases = [
    [{ RTB_PROXY_CONNECT_URL: 'https://x/y' }, 'proxy.connect.url (RTB_PROXY_CONNECT_URL): "https://x/y" https is not supported'],
    [{ RTB_PROXY_SUBSCRIBE_URL: 'http://h:99999/' }, 'proxy.subscribe.url (RTB_PROXY_SUBSCRIBE_URL): "http://h:99999/" has a bad port'],
    [{ RTB_PROXY_PUBLISH_URL: 'ftp://h/' }, '"ftp://h/" must start with http://'],
    [{ RTB_PROXY_CONNECT_URL: 'http://h/', RTB_PROXY_CONNECT_FORWARD_HEADERS: 'Cookie,Bad Header' }, '"Bad Header" is not a header name'],
    [{ RTB_PROXY_FAILURE_POLICY: 'maybe' }, '"maybe" is neither deny nor allow'],
  ];
  for (const [env, want] of cases) {
    const r = runBrokerSync(['--check-config'], { env });
    assert(r.code === 2 && r.stderr.includes(want), `${JSON.stringify(env)}: exit ${r.code}, stderr ${trunc(r.stderr)}`);
  }
});

t.test("README's example backend, run as printed: the session cookie connects as alice, no cookie gets 401", async (c) => {
  const block = extractBlocks(path.join(ROOT, 'README.md')).find((b) => b.lang === 'python' && b.text.includes('class Hooks'));
  assert(block, 'the python backend block of README.md');
  const port = await freePort();
  const py = spawn('/usr/bin/python3', ['-c', block.text.replace('("127.0.0.1", 9000)', `("127.0.0.1", ${port})`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  py.stderr.on('data', (d) => { err += d; });
  c.defer(() => py.kill('SIGKILL'));
  const b = await c.broker({ config: cfg(`http://127.0.0.1:${port}/rt/connect`) });
  await waitFor(async () => (await openSSE(b.base, '/sub/chat.x', {}).then((s) => { s.close(); return s.status; })) === 401, W,
    'the backend answers', () => err);
  const s = await subscribe(b.base, '/sub/chat.x?presence=1', { headers: { Cookie: 'session=s3cr3t' } });
  c.defer(() => s.close());
  await s.waitFor((x) => sseJoins(x).length > 0, W, 'own join');
  eq(sseJoins(s)[0].user, 'alice', 'the user the backend named');
  const no = await openSSE(b.base, '/sub/chat.x', { headers: { Cookie: 'session=wrong' } });
  await no.done;
  eq([no.status, no.json()?.message], [401, 'log in first'], 'a wrong session');
});

t.run();

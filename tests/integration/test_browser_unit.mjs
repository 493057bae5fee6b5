// web/realtime.js in Node, no browser and no broker: the pure helpers (backoff, topic matching, ids,
// de-duplication, transport order, token exp), the client's fallback / dedup / backoff / queue logic
// against fake WebSocket, EventSource and fetch, and the classic build being in sync with the module.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { suite, assert, eq, waitFor, ROOT } from './lib.mjs';

const RT = await import(path.join(ROOT, 'web', 'realtime.js'));
const BUILD = await import(path.join(ROOT, 'web', 'build-global.mjs'));
const t = suite(import.meta.url, { hardTimeoutMs: 60000 });

t.test('backoff: full jitter within [0, min(cap, base·2^attempt)), growing, capped', () => {
  const o = { base: 500, cap: 15000 };
  for (let a = 0; a < 12; a++) {
    const ceiling = Math.min(15000, 500 * 2 ** a);
    eq(RT.backoffDelay(a, o, () => 0), 0, `attempt ${a}, rand 0`);
    const hi = RT.backoffDelay(a, o, () => 0.999999);
    assert(hi < ceiling && hi >= ceiling - 1, `attempt ${a}: ${hi} vs ceiling ${ceiling}`);
  }
  eq(RT.backoffDelay(40, o, () => 0.5), 7500, 'capped at 40 attempts');
  let sum = 0;
  for (let k = 0; k < 2000; k++) sum += RT.backoffDelay(3, o);
  const mean = sum / 2000;
  assert(mean > 1600 && mean < 2400, `mean of attempt 3 (ceiling 4000) should be about 2000: ${mean}`);
});

t.test('topics: validity and NATS-style matching', () => {
  for (const ok of ['a', 'chat.room-1', 'a_b.C9', '*', 'a.*', 'a.>', '>', 'a.*.c']) assert(RT.validTopic(ok), `valid pattern ${ok}`);
  for (const bad of ['', 'a..b', '.a', 'a.', 'a.>.b', 'a b', 'a.**', 'a/b', 'x'.repeat(256), null]) assert(!RT.validTopic(bad), `invalid pattern ${bad}`);
  assert(RT.validTopic('a.b', true) && !RT.validTopic('a.*', true) && !RT.validTopic('>', true), 'exact topics for publishing');
  const cases = [
    ['chat.*', 'chat.room1', true], ['chat.*', 'chat', false], ['chat.*', 'chat.a.b', false],
    ['chat.>', 'chat.a', true], ['chat.>', 'chat.a.b', true], ['chat.>', 'chat', false],
    ['>', 'x', true], ['*', 'x', true], ['*', 'x.y', false], ['a.*.c', 'a.b.c', true], ['a.*.c', 'a.b.d', false],
    ['a.b', 'a.b', true], ['a.b', 'a.bc', false], ['*.b', 'a.b', true],
  ];
  for (const [p, topic, want] of cases) eq(RT.matchTopic(p, topic), want, `match(${p}, ${topic})`);
});

t.test('ids: parse, later/earlier within an epoch (numerically), across epochs', () => {
  eq(RT.parseId('k3x9:0042'), { epoch: 'k3x9', seq: '42' }, 'parse');
  eq(RT.parseId('nope'), null, 'not an id');
  eq(RT.laterId('e:9', 'e:10'), 'e:10', '10 after 9');
  eq(RT.laterId('e:10', 'e:9'), 'e:10', 'keeps the higher');
  eq(RT.laterId('old:50', 'new:1'), 'new:1', 'a new epoch wins');
  eq(RT.laterId(null, 'e:1'), 'e:1', 'from nothing');
  eq(RT.earlierId('e:10', 'e:9'), 'e:9', 'earlier');
  eq(RT.earlierId('new:5', 'old:2'), 'new:5', 'across epochs: the cursor');
  assert(RT.atOrBelow('e:9', 'e:10') && RT.atOrBelow('e:10', 'e:10') && !RT.atOrBelow('e:11', 'e:10') && !RT.atOrBelow('x:1', 'e:10'), 'atOrBelow');
  assert(RT.laterId('e:99999999999999999999', 'e:100000000000000000000') === 'e:100000000000000000000', 'beyond 2^53');
});

t.test('dedup set: bounded, forgets the oldest first', () => {
  const s = new RT.SeenIds(3);
  eq([s.add('a'), s.add('b'), s.add('a'), s.add('c'), s.add('d')], [true, true, false, true, true], 'add');
  eq([s.has('a'), s.has('b'), s.has('c'), s.has('d'), s.size], [false, true, true, true, 3], 'after overflow');
  const big = new RT.SeenIds(100);
  for (let k = 0; k < 10000; k++) big.add(`e:${k}`);
  eq([big.size, big.has('e:9999'), big.has('e:9899'), big.has('e:9900')], [100, true, false, true], 'stays bounded');
});

t.test('transport order and token exp', () => {
  eq(RT.transportOrder(['websocket', 'sse', 'longpoll'], null), ['websocket', 'sse', 'longpoll'], 'nothing remembered');
  eq(RT.transportOrder(['websocket', 'sse', 'longpoll'], 'sse'), ['sse', 'websocket', 'longpoll'], 'remembered first');
  eq(RT.transportOrder(['websocket', 'sse'], 'longpoll'), ['websocket', 'sse'], 'remembered but not allowed');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  eq(RT.tokenExp(`${b64({ alg: 'HS256' })}.${b64({ exp: 1234567890, sub: 'x' })}.sig`), 1234567890, 'exp');
  eq(RT.tokenExp('not a jwt'), null, 'garbage');
});

t.test('classic build: web/realtime.global.js is exactly what build-global.mjs makes from realtime.js', () => {
  const src = fs.readFileSync(BUILD.SOURCE, 'utf8');
  const want = BUILD.toGlobal(src);
  const have = fs.readFileSync(BUILD.TARGET, 'utf8');
  assert(have === want, 'web/realtime.global.js is out of date: run `node web/build-global.mjs` (and commit it)');
  const ctx = vm.createContext({ URL, URLSearchParams, setTimeout, clearTimeout, Promise });
  vm.runInContext(have, ctx, { filename: 'realtime.global.js' });
  eq(Object.keys(ctx.Realtime).sort(), Object.keys(RT).sort(), 'window.Realtime vs the module exports');
  eq(ctx.Realtime.matchTopic('a.>', 'a.b.c'), true, 'the classic build works');
  eq(Object.keys(ctx).filter((k) => !['URL', 'URLSearchParams', 'setTimeout', 'clearTimeout', 'Promise', 'Realtime'].includes(k)), [], 'no other globals');
});

// ---------------------------------------------------------------- fakes for the client logic
function fakes({ ws = 'fail', sse = 'ok', poll = 'ok' } = {}) {
  const env = { ws, sse, poll, sockets: [], sources: [], fetches: [], seq: 0 };
  class FakeWS {
    constructor(url, protocols) {
      this.url = url; this.protocols = protocols; this.readyState = 0; this.protocol = ''; this.sent = [];
      env.sockets.push(this);
      setTimeout(() => {
        if (env.ws === 'fail') { this.readyState = 3; this.onclose?.({ code: 1006, reason: '' }); return; }
        this.readyState = 1; this.protocol = 'rt.v1'; this.onopen?.();
        if (env.ws === '4001') setTimeout(() => { this.readyState = 3; this.onclose?.({ code: 4001, reason: 'unauthorized' }); }, 2);
      }, 2);
    }
    send(s) {
      const op = JSON.parse(s);
      this.sent.push(op);
      setTimeout(() => {
        if (this.readyState !== 1) return;
        if (op.op === 'pub') this.emit({ type: 'ok', ref: op.ref, id: `e:${++env.seq}` });
        else if (env.ws !== '4001') this.emit({ type: 'ok', ref: op.ref });
      }, 1);
    }
    emit(o) { this.onmessage?.({ data: JSON.stringify(o) }); }
    close() { this.readyState = 3; }
  }
  class FakeES {
    constructor(url) {
      this.url = url; this.listeners = {}; this.closed = false;
      env.sources.push(this);
      setTimeout(() => { if (this.closed) return; if (env.sse === 'ok') this.onopen?.(); else this.onerror?.(); }, 2);
    }
    addEventListener(name, fn) { (this.listeners[name] ||= []).push(fn); }
    emit(data, event) {
      const e = { data: typeof data === 'string' ? data : JSON.stringify(data) };
      if (event) (this.listeners[event] || []).forEach((f) => f(e)); else this.onmessage?.(e);
    }
    close() { this.closed = true; }
  }
  const json = (status, o) => new Response(JSON.stringify(o), { status, headers: { 'Content-Type': 'application/json' } });
  async function fakeFetch(url, init = {}) {
    const u = new URL(url);
    env.fetches.push(u.pathname + u.search);
    if (u.pathname === '/healthz') return new Response('ok', { status: 200 });
    if (u.pathname === '/sse') return json(404, { error: 'not_found', message: 'no SSE here' });
    if (u.pathname === '/pub/' + u.pathname.slice(5)) return json(200, { id: `e:${++env.seq}`, topic: u.pathname.slice(5) });
    if (u.pathname === '/poll') {
      if (env.poll !== 'ok') return json(404, { error: 'not_found', message: 'x' });
      const timeout = Number(u.searchParams.get('timeout'));
      if (timeout > 0) {
        await new Promise((res, rej) => {
          const tm = setTimeout(res, 30);
          init.signal?.addEventListener('abort', () => { clearTimeout(tm); rej(new DOMException('aborted', 'AbortError')); });
        });
      }
      return json(200, { cursor: u.searchParams.get('cursor') || `e:${env.seq}`, gap: false, messages: [] });
    }
    return json(404, { error: 'not_found' });
  }
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, String(v)), removeItem: (k) => store.delete(k) };
  env.opts = { WebSocket: FakeWS, EventSource: FakeES, fetch: fakeFetch, remember: storage, backoff: { base: 10, cap: 40 }, connectTimeout: 500 };
  env.store = store;
  return env;
}

function watch(rt) {
  const w = { states: [], delays: [], errors: [], gaps: [] };
  rt.on('state', (s) => { w.states.push(`${s.state}:${s.transport}`); if (s.delay !== undefined) w.delays.push(s.delay); });
  rt.on('error', (e) => w.errors.push(e.code));
  rt.on('gap', (g) => w.gaps.push(g));
  return w;
}

t.test('client: WebSocket cannot connect → SSE; remembered; the next client starts with SSE', async () => {
  const env = fakes({ ws: 'fail', sse: 'ok' });
  const rt = RT.connect('http://broker.test', env.opts);
  const w = watch(rt);
  rt.subscribe('a.*', () => {});
  await waitFor(() => rt.state === 'open', 2000, 'open');
  eq(w.states, ['connecting:websocket', 'connecting:sse', 'open:sse'], 'states');
  eq([...env.store.values()], ['sse'], 'remembered');
  assert(/\/sse\?topic=a\.\*&envelope=1&latest=1&since=e%3A0$/.test(env.sources[0].url), `SSE URL: ${env.sources[0].url}`);
  rt.close();
  const rt2 = RT.connect('http://broker.test', env.opts);
  const w2 = watch(rt2);
  rt2.subscribe('a.*', () => {});
  await waitFor(() => rt2.state === 'open', 2000, 'open');
  eq(w2.states, ['connecting:sse', 'open:sse'], 'second client: the remembered transport first');
  eq(env.sockets.length, 1, 'no second WebSocket attempt');
  rt2.close();
  eq(w2.states.at(-1), 'closed:sse', 'closed');
});

t.test('client: WebSocket and SSE cannot connect → long-poll', async () => {
  const env = fakes({ ws: 'fail', sse: 'fail' });
  const rt = RT.connect('http://broker.test', env.opts);
  const w = watch(rt);
  rt.subscribe('a.*', () => {});
  await waitFor(() => rt.state === 'open', 2000, 'open');
  eq(w.states, ['connecting:websocket', 'connecting:sse', 'connecting:longpoll', 'open:longpoll'], 'states');
  rt.close();
});

t.test('client: nothing connects → full-jitter backoff between rounds, capped; reconnects when one comes back', async () => {
  const env = fakes({ ws: 'fail', sse: 'fail', poll: 'fail' });
  const rt = RT.connect('http://broker.test', env.opts);
  const w = watch(rt);
  rt.subscribe('a.*', () => {});
  await waitFor(() => w.delays.length >= 6, 3000, '6 retry rounds');
  const ceilings = [10, 20, 40, 40, 40, 40];
  w.delays.slice(0, 6).forEach((d, k) => assert(d >= 0 && d < ceilings[k], `retry ${k}: delay ${d} not in [0, ${ceilings[k]})`));
  eq(rt.state, 'connecting', 'never opened: still connecting');
  env.poll = 'ok';
  await waitFor(() => rt.state === 'open', 2000, 'open once long-poll answers');
  eq(rt.transport, 'longpoll', 'transport');
  rt.close();
});

t.test('client: every message once (dedup by id), floors for later subscriptions, gap notices passed on', async () => {
  const env = fakes({ ws: 'fail', sse: 'ok' });
  const rt = RT.connect('http://broker.test', env.opts);
  const w = watch(rt);
  const got = [];
  rt.subscribe('a.*', (m) => got.push(['a.*', m.id]));
  rt.subscribe('a.>', (m) => got.push(['a.>', m.id]));
  await waitFor(() => rt.state === 'open', 2000, 'open');
  const es = env.sources.at(-1);
  const env1 = { id: 'e:1', topic: 'a.x', event: null, data: 1 };
  es.emit(env1);
  es.emit(env1);
  es.emit({ id: 'e:2', topic: 'a.x.y', event: null, data: 2 });
  es.emit({ id: 'e:1', topic: 'a.x', event: null, data: 1 });
  es.emit({ from: 'old:9' }, 'rt.gap');
  eq(got, [['a.*', 'e:1'], ['a.>', 'e:1'], ['a.>', 'e:2']], 'handler calls');
  eq(rt.stats.duplicates, 2, 'duplicates dropped');
  eq(rt.cursor, 'e:2', 'cursor');
  eq(w.gaps, [{ topic: null, from: 'old:9', transport: 'sse' }], 'gap');
  // a subscription added later starts at the broker's head (probed): older messages are not given to it
  env.seq = 5;
  rt.subscribe('b.x', (m) => got.push(['b.x', m.id]));
  await waitFor(() => env.sources.length === 2 && !env.sources[1].closed, 1000, 'the stream reopened with b.x');
  assert(/topic=a\.\*&topic=a\.%3E&topic=b\.x&envelope=1&latest=1&since=e%3A2/.test(env.sources[1].url), `reopened from the cursor: ${env.sources[1].url}`);
  assert(env.sources[0].closed, 'the old stream is closed');
  await waitFor(() => rt.state === 'open', 1000, 'open');
  env.sources[1].emit({ id: 'e:4', topic: 'b.x', event: null, data: 'before the subscription' });
  env.sources[1].emit({ id: 'e:6', topic: 'b.x', event: null, data: 'after' });
  eq(got.slice(3), [['b.x', 'e:6']], 'the new subscription gets only what is newer than its floor');
  rt.close();
});

t.test('client: 4001 without getToken → closed, one attempt only; with getToken → asked, reconnected', async () => {
  const env = fakes({ ws: '4001' });
  const rt = RT.connect('http://broker.test', { ...env.opts, token: 'a.b.c' });
  const w = watch(rt);
  await waitFor(() => rt.state === 'closed', 2000, 'closed');
  await new Promise((r) => setTimeout(r, 100));
  eq([env.sockets.length, w.errors], [1, ['unauthorized']], 'one attempt, one error');
  const env2 = fakes({ ws: '4001' });
  const asked = [];
  const rt2 = RT.connect('http://broker.test', { ...env2.opts, token: 'a.b.c', getToken: async (i) => { asked.push(i.reason); env2.ws = 'ok'; return 'new.token.x'; } });
  await waitFor(() => rt2.state === 'open', 2000, 'open with the new token');
  eq(asked, ['unauthorized'], 'getToken');
  eq(env2.sockets.at(-1).sent[0], { op: 'auth', token: 'new.token.x', ref: 'r1' }, 'the new token is sent first');
  rt2.close();
});

t.test('client: publishes queue while disconnected (bounded), flush in order, reject "closed" on close', async () => {
  const env = fakes({ ws: 'fail', sse: 'fail', poll: 'fail' });
  const rt = RT.connect('http://broker.test', { ...env.opts, maxQueue: 2 });
  const results = [];
  const p1 = rt.publish('q.a', 1).then((id) => results.push(id), (e) => results.push(e.code));
  const p2 = rt.publish('q.a', 2).then((id) => results.push(id), (e) => results.push(e.code));
  await rt.publish('q.a', 3).then(() => results.push('?'), (e) => results.push(e.code));
  eq(results, ['queue_full'], 'past the bound');
  env.ws = 'ok';
  await Promise.all([p1, p2]);
  eq(results, ['queue_full', 'e:1', 'e:2'], 'sent in order once connected');
  eq(env.sockets.at(-1).sent.filter((o) => o.op === 'pub').map((o) => o.data), [1, 2], 'over the WebSocket');
  env.ws = 'fail';
  env.sockets.at(-1).readyState = 3;
  env.sockets.at(-1).onclose?.({ code: 1006 });
  await waitFor(() => rt.state !== 'open', 1000, 'disconnected');
  const p4 = rt.publish('q.a', 4).catch((e) => e.code);
  rt.close();
  eq(await p4, 'closed', 'queued publish when the client closes');
});

await t.run();

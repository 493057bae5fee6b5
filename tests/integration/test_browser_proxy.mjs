// The connect proxy in headless Chromium: the page logs in the way a web app does (a session cookie on the
// broker's origin) and web/realtime.js connects over WebSocket, SSE and long-poll without any token; the backend
// (an HTTP server in this process) turns the cookie into a user with rights, and a wrong cookie is refused
// (realtime.js reports it as a forbidden subscription). socket.io-client's browser build does the same on polling, the
// upgrade and WebSocket, a wrong cookie getting a CONNECT_ERROR.
import fs from 'node:fs';
import path from 'node:path';
import { suite, assert, eq, waitFor, mkTemp, trunc, HERE, ROOT } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';
import { hookBackend } from './hookslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });

function webRoot() {
  const dir = mkTemp('rtb-browser-web-');
  for (const f of fs.readdirSync(path.join(ROOT, 'web'))) fs.copyFileSync(path.join(ROOT, 'web', f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, 'browser_client.html'), path.join(dir, 'browser_client.html'));
  fs.copyFileSync(path.join(ROOT, 'tests', 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js'), path.join(dir, 'socket.io.min.js'));
  fs.writeFileSync(path.join(dir, 'sio.html'), '<!doctype html><script src="/socket.io.min.js"></script><p>socket.io page</p>');
  return dir;
}

t.test('session cookie → user on WebSocket, SSE and long-poll (subscribe and publish); a wrong session is refused', async (c) => {
  const be = await hookBackend(c, (ev, reply) => {
    // a live WebSocket's calls carry no headers (the request is gone), but the user connect named
    const ok = /(?:^|;\s*)session=good(?:;|$)/.test(ev.headers.cookie || '') || ev.user === 'carla';
    reply(ok ? (ev.event === 'connect' ? { allow: true, user: 'carla', subscribe: ['app.>'], publish: ['app.>'] } : { allow: true })
      : { allow: false, code: 403, reason: 'unknown session' });
  });
  const { calls } = be;
  const b = await c.broker({
    config: {
      plugins: { load: ['sse', 'longpoll', 'websocket'] },
      web: { root: webRoot() },
      auth: { anonymous: { subscribe: [], publish: [] } },
      // POST /pub (SSE and long-poll publish with it) carries no token: proxy.publish decides from the cookie
      proxy: { connect: { url: be.url('/connect'), forward_headers: ['Cookie'] },
        publish: { url: be.url('/publish'), forward_headers: ['Cookie'] } },
    },
  });
  const br = await launchChromium();
  c.defer(() => br.close());
  const ctx = await br.newContext();
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const r = await p.goto(`${b.base}/browser_client.html`, { timeout: 15000 });
  eq(r && r.status(), 200, 'page');
  await p.evaluate(() => { document.cookie = 'session=good; path=/'; });
  const info = (i) => p.evaluate((a) => T.info(a), i);
  const FAST = { backoff: { base: 100, cap: 600 }, connectTimeout: 4000 };
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const i = await p.evaluate((o) => T.connect(o), { ...FAST, transports: [tr], subscribe: ['app.>'] });
    await waitFor(async () => (await info(i)).state === 'open', 10000, `${tr} open`, async () => trunc(JSON.stringify(await info(i))));
    const pub = await p.evaluate(([a, topic]) => T.pub(a, topic, { hi: 1 }), [i, `app.${tr}`]);
    assert(pub.id, `${tr}: publish from the page with its session: ${JSON.stringify(pub)}`);
    await waitFor(async () => (await info(i)).msgs.some((m) => m.id === pub.id), 5000, `${tr}: own message`);
    const call = calls.filter((x) => x.event === 'connect' && x.transport === tr).at(-1);
    assert(call && call.headers.cookie.includes('session=good') && call.user === null, `${tr}: the call carried the cookie: ${JSON.stringify(call)}`);
    await p.evaluate((a) => T.close(a), i);
  }
  await p.evaluate(() => { document.cookie = 'session=bad; path=/'; });
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const before = calls.length;
    const i = await p.evaluate((o) => T.connect(o), { ...FAST, transports: [tr], subscribe: ['app.>'] });
    await waitFor(() => calls.length > before, 5000, `${tr}: the backend was asked`);
    await new Promise((res) => setTimeout(res, 500));
    const x = await info(i);
    // realtime.js reports the refusal as a forbidden subscription (and does not retry it in a loop)
    assert(x.errors.some((e) => e.code === 'forbidden') && x.msgs.length === 0, `${tr}: refused with a wrong session: ${trunc(JSON.stringify(x))}`);
    await p.evaluate((a) => T.close(a), i);
  }
  const r2 = await fetch(`${b.base}/pub/app.x`, { method: 'POST', body: 'x', headers: { Cookie: 'session=bad' } });
  eq(r2.status, 403, 'POST /pub with a wrong session');
  eq(errors, [], 'page errors');
}, { timeout: 60000 });

t.test('Socket.IO in Chromium: the session cookie of the page is the user of the socket (polling, the upgrade, WebSocket); a wrong one gets CONNECT_ERROR', async (c) => {
  const be = await hookBackend(c, (ev, reply) => {
    if (ev.event !== 'connect') return reply({ allow: true });
    reply(/(?:^|;\s*)session=good(?:;|$)/.test(ev.headers.cookie || '') ? { allow: true, user: 'sio-carla', subscribe: ['app.>'], publish: ['app.>'] }
      : { allow: false, code: 403, reason: 'unknown session' });
  });
  const b = await c.broker({
    config: {
      plugins: { load: ['websocket', 'socketio'] },
      web: { root: webRoot() },
      auth: { anonymous: { subscribe: [], publish: [] } },
      proxy: { connect: { url: be.url('/connect'), forward_headers: ['Cookie'] }, subscribe: { url: be.url('/subscribe') } },
    },
  });
  const br = await launchChromium();
  c.defer(() => br.close());
  const p = await (await br.newContext()).newPage();
  eq((await p.goto(`${b.base}/sio.html`, { timeout: 15000 }))?.status(), 200, 'page');
  // Runs in the page: connect with the page's cookies, subscribe with presence, publish, read it back.
  const run = (transports) => p.evaluate(async (tr) => {
    const s = io(location.origin, { transports: tr, reconnection: false, timeout: 4000 });
    try {
      const err = await new Promise((r) => { s.once('connect', () => r(null)); s.once('connect_error', (e) => r({ message: e.message, data: e.data })); });
      if (err) return { err };
      if (tr.length > 1 && s.io.engine.transport.name !== 'websocket') await new Promise((r) => s.io.engine.once('upgrade', r));
      const sub = await s.timeout(4000).emitWithAck('subscribe', { topic: 'app.sio', presence: true });
      const presence = await s.timeout(4000).emitWithAck('presence', 'app.sio');
      const got = new Promise((r) => s.once('message', (d) => r(d)));
      const pub = await s.timeout(4000).emitWithAck('publish', 'app.sio', { hi: tr.join() });
      return { sub, users: presence.users.map((u) => u.user), pub, got: await got, transport: s.io.engine.transport.name };
    } finally { s.close(); }
  }, transports);
  await p.evaluate(() => { document.cookie = 'session=good; path=/'; });
  for (const [tr, want] of [[['polling', 'websocket'], 'websocket'], [['polling'], 'polling'], [['websocket'], 'websocket']]) {
    const r = await run(tr);
    assert(!r.err && r.sub.ok && r.pub.id, `${tr}: ${JSON.stringify(r)}`);
    eq([r.transport, r.users, r.got], [want, ['sio-carla'], { hi: tr.join() }], `${tr}: the cookie's user, subscribed and published`);
  }
  eq(be.calls.filter((x) => x.event === 'connect').length, 3, 'one connect call per Socket.IO session');
  await p.evaluate(() => { document.cookie = 'session=bad; path=/'; });
  for (const tr of [['polling'], ['websocket']])
    eq((await run(tr)).err?.data, { error: 'forbidden' }, `${tr}: a wrong session is a CONNECT_ERROR`);
}, { timeout: 60000 });

t.run();

// The connect proxy in headless Chromium: the page logs in the way a web app does (a session cookie on the
// broker's origin) and web/realtime.js connects over WebSocket, SSE and long-poll without any token; the backend
// (an HTTP server in this process) turns the cookie into a user with rights, and a wrong cookie is refused
// (realtime.js reports it as a forbidden subscription).
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

t.run();

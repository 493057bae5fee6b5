// web/realtime.js in headless Chromium: transport fallback (WebSocket plugin not loaded → SSE;
// SSE not loaded, blocked, or EventSource missing → long-poll), the same messages on every
// transport, the remembered transport, and the classic-script build (window.Realtime).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { suite, assert, eq, publishOk, waitFor, mkTemp, trunc, sleep, HERE, ROOT } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);
const FAST = { backoff: { base: 100, cap: 600 }, connectTimeout: 4000 };

const t = suite(import.meta.url, { hardTimeoutMs: 110000 });

function webRoot() {
  const dir = mkTemp('rtb-browser-web-');
  for (const f of fs.readdirSync(path.join(ROOT, 'web'))) fs.copyFileSync(path.join(ROOT, 'web', f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, 'browser_client.html'), path.join(dir, 'browser_client.html'));
  return dir;
}
const cfg = (plugins) => ({ plugins: { load: plugins }, web: { root: webRoot() } });

let browserPromise = null;
async function browser() {
  browserPromise ||= launchChromium();
  return browserPromise;
}

/** browser_client.html on the broker; opts.init: a script run before the page's own; opts.block: a URL glob aborted. */
async function clientPage(c, b, { init, block, query = '' } = {}) {
  const br = await browser();
  const ctx = await br.newContext();
  c.defer(() => ctx.close());
  if (init) await ctx.addInitScript(init);
  const blocked = [];
  if (block) await ctx.route(block, (route) => { blocked.push(route.request().url()); route.abort('connectionrefused'); });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const r = await p.goto(`${b.base}/browser_client.html${query}`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET /browser_client.html: ${r && r.status()}`);
  const api = {
    p, errors, blocked,
    connect: (opts = {}) => p.evaluate((o) => T.connect(o), { ...FAST, ...opts }),
    pub: (i, topic, data, opts) => p.evaluate(([a, b2, d, o]) => T.pub(a, b2, d, o), [i, topic, data, opts ?? {}]),
    info: (i) => p.evaluate((a) => T.info(a), i),
    async waitInfo(i, pred, ms, label) {
      let last = null;
      await waitFor(async () => { last = await api.info(i); return pred(last); }, ms, label,
        () => trunc(JSON.stringify({ ...last, msgs: last && last.msgs.slice(-4), n: last && last.msgs.length }), 900));
      return last;
    },
    waitOpen: (i, transport, ms = 10000) => api.waitInfo(i, (x) => x.state === 'open' && (!transport || x.transport === transport), ms, `client ${i} open${transport ? ' on ' + transport : ''}`),
  };
  return api;
}

// the same publishes for every transport: JSON, text, an event name, binary, unicode, an empty body
async function publishSet(base) {
  const ids = [];
  ids.push(await publishOk(base, 'fb.json', '{"text":"hi","n":[1,2]}', { headers: { 'Content-Type': 'application/json' } }));
  ids.push(await publishOk(base, 'fb.text', 'plain text\nwith two lines'));
  ids.push(await publishOk(base, 'fb.text', 'typing', { headers: { 'X-Event': 'typing' } }));
  ids.push(await publishOk(base, 'fb.bin', Buffer.from([0, 1, 2, 0xfe, 0xff])));
  ids.push(await publishOk(base, 'fb.json', 'ünïcødé ✓ 😀'));
  ids.push(await publishOk(base, 'fb.text', ''));
  return ids;
}
const strip = (msgs) => msgs.map((m) => ({ seq: m.id.split(':')[1], topic: m.topic, event: m.event, data: m.data }));

/** One client on the default transports list; returns what it went through and delivered. */
async function fallbackRun(c, plugins, pageOpts, wantTransport) {
  const b = await c.broker({ config: cfg(plugins) });
  const pg = await clientPage(c, b, pageOpts);
  const i = await pg.connect({ subscribe: ['fb.>'] }); // subscribed before it connects: the stream itself is tried
  const opened = await pg.waitOpen(i, null, 15000);
  eq(opened.transport, wantTransport, `transport chosen with plugins [${plugins}]${pageOpts.block ? ' and ' + pageOpts.block + ' blocked' : ''}${pageOpts.init ? ' and no EventSource' : ''} (states ${opened.states.join(' ')})`);
  const ids = await publishSet(b.base);
  const own = await pg.pub(i, 'fb.page', { from: 'the page', over: wantTransport });
  assert(own.id, `publish from the page over ${wantTransport}: ${JSON.stringify(own)}`);
  const info = await pg.waitInfo(i, (x) => x.msgs.length >= 7, 8000, 'the 7 messages');
  eq(info.msgs.map((m) => m.id), [...ids, own.id], 'ids delivered');
  eq(pg.errors, [], 'page errors');
  return { info, pg, b, i };
}

const runs = {};

t.test('all transports loaded: WebSocket is used', async (c) => {
  runs.websocket = await fallbackRun(c, ['sse', 'longpoll', 'websocket'], {}, 'websocket');
  eq(runs.websocket.info.states.slice(0, 2), ['connecting:websocket', 'open:websocket'], 'states');
}, { timeout: 30000 });

t.test('WebSocket plugin not loaded: falls back to SSE, and remembers it (also after a reload)', async (c) => {
  const r = (runs.sse = await fallbackRun(c, ['sse', 'longpoll'], {}, 'sse'));
  eq(r.info.states.slice(0, 3), ['connecting:websocket', 'connecting:sse', 'open:sse'], 'states');
  await r.pg.p.reload();
  const j = await r.pg.connect({ subscribe: ['fb.>'] });
  const again = await r.pg.waitOpen(j, 'sse');
  eq(again.states.slice(0, 2), ['connecting:sse', 'open:sse'], 'after a reload, the remembered transport is tried first');
}, { timeout: 30000 });

t.test('SSE not loaded either: falls back to long-poll', async (c) => {
  const r = (runs.longpoll = await fallbackRun(c, ['longpoll'], {}, 'longpoll'));
  eq(r.info.states.slice(0, 4), ['connecting:websocket', 'connecting:sse', 'connecting:longpoll', 'open:longpoll'], 'states');
}, { timeout: 30000 });

t.test('the delivered messages are identical on WebSocket, SSE and long-poll', async () => {
  assert(runs.websocket && runs.sse && runs.longpoll, 'an earlier case failed');
  const ws = strip(runs.websocket.info.msgs.slice(0, 6));
  eq(strip(runs.sse.info.msgs.slice(0, 6)), ws, 'SSE vs WebSocket');
  eq(strip(runs.longpoll.info.msgs.slice(0, 6)), ws, 'long-poll vs WebSocket');
  eq(ws[3].data, Buffer.from([0, 1, 2, 0xfe, 0xff]).toString('base64'), 'binary payload (base64)');
  eq(ws[2].event, 'typing', 'event name');
  const page = (r) => r.info.msgs[6].data;
  eq([page(runs.websocket), page(runs.sse), page(runs.longpoll)],
    [{ from: 'the page', over: 'websocket' }, { from: 'the page', over: 'sse' }, { from: 'the page', over: 'longpoll' }], 'the page\'s own publishes');
});

t.test('SSE blocked on the way (requests to /sse refused) and no WebSocket: long-poll', async (c) => {
  const r = await fallbackRun(c, ['sse', 'longpoll'], { block: '**/sse*' }, 'longpoll');
  assert(r.pg.blocked.length >= 1, 'no /sse request was made');
  eq(r.info.states.slice(0, 4), ['connecting:websocket', 'connecting:sse', 'connecting:longpoll', 'open:longpoll'], 'states');
}, { timeout: 30000 });

t.test('EventSource missing in the browser and no WebSocket: long-poll, SSE not even tried', async (c) => {
  const r = await fallbackRun(c, ['sse', 'longpoll'], { init: 'delete window.EventSource;' }, 'longpoll');
  eq(r.info.states.slice(0, 3), ['connecting:websocket', 'connecting:longpoll', 'open:longpoll'], 'states');
}, { timeout: 30000 });

t.test('the demo page falls back too: no WebSocket → "open · sse"; no SSE → "open · longpoll"', async (c) => {
  for (const [plugins, want] of [[['sse', 'longpoll'], 'sse'], [['longpoll'], 'longpoll']]) {
    const b = await c.broker({ config: cfg(plugins) });
    const br = await browser();
    const ctx = await br.newContext();
    c.defer(() => ctx.close());
    const p = await ctx.newPage();
    await p.goto(`${b.base}/`);
    await p.waitForFunction((w) => document.getElementById('state').textContent === `open · ${w}`, want, { timeout: 10000, polling: 50 })
      .catch(async () => { throw new Error(`demo with plugins [${plugins}]: state "${await p.textContent('#state')}"`); });
    await p.fill('#text', `over ${want}`);
    await p.click('#send');
    await p.waitForFunction((w) => [...document.querySelectorAll('#chat-log .text')].some((e) => e.textContent === `over ${w}`), want, { timeout: 8000, polling: 50 });
  }
}, { timeout: 30000 });

t.test('classic build: <script src=realtime.global.js> gives window.Realtime with the module\'s API, and it works', async (c) => {
  const b = await c.broker({ config: cfg(['sse', 'longpoll', 'websocket']) });
  const pg = await clientPage(c, b, { query: '?build=global' });
  const names = await pg.p.evaluate(async () => {
    const mod = await import('/realtime.js');
    await T.lib();
    return { global: Object.keys(window.Realtime).sort(), module: Object.keys(mod).sort() };
  });
  eq(names.global, names.module, 'window.Realtime vs the module\'s exports');
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const i = await pg.connect({ transports: [tr], subscribe: ['cl.*'] });
    await pg.waitOpen(i, tr);
    const id = await publishOk(b.base, 'cl.x', `classic ${tr}`);
    const own = await pg.pub(i, 'cl.y', { tr });
    const info = await pg.waitInfo(i, (x) => x.msgs.length >= 2, 8000, `2 messages over ${tr}`);
    eq(info.msgs.map((m) => [m.id, m.data]), [[id, `classic ${tr}`], [own.id, { tr }]], `classic build over ${tr}`);
  }
  eq(await pg.p.evaluate(() => typeof window.connect), 'undefined', 'the classic build leaks no globals but Realtime');
  eq(pg.errors, [], 'page errors');
}, { timeout: 30000 });

t.test('the browser closes cleanly', async () => {
  if (!browserPromise) throw new Error('no browser was started');
  await sleep(0);
  await (await browserPromise).close();
});

await t.run();

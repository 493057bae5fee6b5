// web/realtime.js in headless Chromium against a broker with JWT auth (HS256, tokens made with
// Debian's python3-jwt): publish resolves with the id or rejects with the API code; a forbidden
// subscription is reported without a reconnect loop; 4001/401 → getToken() → reconnect; tokens
// refreshed before expiry (WebSocket: the `expiring` notice; SSE/long-poll: the token's exp), and
// when the app cannot refresh in time, the broker's end of the stream → getToken → resume, no loss.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { suite, assert, eq, publish, publishOk, request, waitFor, mkTemp, trunc, sleep, HERE, ROOT } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);
const FAST = { backoff: { base: 100, cap: 600 }, connectTimeout: 4000 };
const SECRET = 'browser-test-secret-0123456789abcdef';
const RIGHTS = { sub: ['au.>'], pub: ['au.ok', 'au.page'] };

const t = suite(import.meta.url, { hardTimeoutMs: 115000 });

function webRoot() {
  const dir = mkTemp('rtb-browser-web-');
  for (const f of fs.readdirSync(path.join(ROOT, 'web'))) fs.copyFileSync(path.join(ROOT, 'web', f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, 'browser_client.html'), path.join(dir, 'browser_client.html'));
  return dir;
}
const cfg = () => ({
  plugins: { load: ['sse', 'longpoll', 'websocket'] },
  web: { root: webRoot() },
  auth: { anonymous: { subscribe: [], publish: [] }, jwt: { secret: SECRET, leeway: '0s' } },
});

/** An HS256 token from python3-jwt. ttl in seconds (negative: already expired). */
function mint(ttl, rt = RIGHTS, sub = 'alice', secret = SECRET) {
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttl, rt };
  const r = spawnSync('/usr/bin/python3', ['-c', 'import jwt,json,sys; print(jwt.encode(json.loads(sys.argv[1]), sys.argv[2], algorithm="HS256"))',
    JSON.stringify(claims), secret], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`python3-jwt (apt-get install python3-jwt): ${r.stderr || r.error}`);
  return r.stdout.trim();
}
const PUBLISHER = () => ({ Authorization: `Bearer ${mint(600, { sub: ['>'], pub: ['>'] }, 'publisher')}` });

let browserPromise = null;
async function browser() {
  browserPromise ||= launchChromium();
  return browserPromise;
}

/**
 * browser_client.html; window.mintToken(reason) is the app's token source: `tokens.next(reason)`
 * decides what it returns (default: a fresh one-hour token).
 */
async function clientPage(c, b) {
  const br = await browser();
  const ctx = await br.newContext();
  c.defer(() => ctx.close());
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const tokens = { calls: [], next: () => mint(3600) };
  await p.exposeFunction('mintToken', (reason) => { tokens.calls.push(reason); return tokens.next(reason); });
  const r = await p.goto(`${b.base}/browser_client.html`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET /browser_client.html: ${r && r.status()}`);
  const api = {
    p, errors, tokens,
    connect: (opts = {}) => p.evaluate((o) => T.connect(o), { ...FAST, ...opts }),
    sub: (i, pattern) => p.evaluate(([a, b2]) => T.sub(a, b2), [i, pattern]),
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

const metric = async (b, name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec((await request(b.base, 'GET', '/metrics')).text)?.[1]);

t.test('publish resolves with the id and rejects with the API code (forbidden, unauthorized, invalid_topic) on each transport', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await clientPage(c, b);
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const i = await pg.connect({ transports: [tr], token: mint(600), subscribe: ['au.>'] });
    await pg.waitOpen(i, tr);
    const ok = await pg.pub(i, 'au.ok', { over: tr });
    assert(ok.id && /^[A-Za-z0-9_-]+:\d+$/.test(ok.id), `${tr}: publish allowed by the token: ${JSON.stringify(ok)}`);
    const no = await pg.pub(i, 'au.no', { over: tr });
    eq(no.code, 'forbidden', `${tr}: publish to a topic the token does not allow (${JSON.stringify(no)})`);
    const wild = await pg.pub(i, 'au.*', 1);
    eq(wild.code, 'invalid_topic', `${tr}: publish to a wildcard`);
    const info = await pg.waitInfo(i, (x) => x.msgs.length >= 1, 5000, 'own message');
    eq(info.msgs.map((m) => [m.id, m.data]), [[ok.id, { over: tr }]], `${tr}: delivered`);
    eq(info.state, 'open', `${tr}: still open after the refusals`);
  }
  // no token at all: the broker's 401 comes back as code "unauthorized"
  for (const tr of ['websocket', 'sse']) {
    const i = await pg.connect({ transports: [tr] });
    await pg.waitOpen(i, tr);
    const r = await pg.pub(i, 'au.ok', 'x');
    eq(r.code, 'unauthorized', `${tr}: publish without a token (${JSON.stringify(r)})`);
  }
  eq(pg.errors, [], 'page errors');
}, { timeout: 30000 });

t.test('a forbidden subscription: an error naming the topic, the other subscriptions keep working, no reconnect loop', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await clientPage(c, b);
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    for (const early of [true, false]) { // subscribed before connecting, or once open
      const opts = { transports: [tr], token: mint(600) };
      if (early) opts.subscribe = ['au.x', 'secret.x'];
      const i = await pg.connect(opts);
      if (!early) { await pg.waitOpen(i, tr); await pg.sub(i, 'au.x'); await pg.sub(i, 'secret.x'); }
      const info = await pg.waitInfo(i, (x) => x.errors.length >= 1 && x.state === 'open', 8000, `${tr}: the forbidden error`);
      eq(info.errors.map((e) => [e.code, e.topic]), [['forbidden', 'secret.x']], `${tr}${early ? ' (early)' : ''}: errors`);
      await sleep(300); // let the client settle: open, no further attempts
      const id = await publishOk(b.base, 'au.x', `to ${tr}`, { headers: PUBLISHER() });
      const got = await pg.waitInfo(i, (x) => x.msgs.length >= 1, 5000, `${tr}: a message on the allowed subscription`);
      eq(got.msgs.map((m) => m.id), [id], `${tr}: delivered`);
      eq(got.states.filter((s) => s.startsWith('open')).length, 1, `${tr}${early ? ' (early)' : ''}: opened once (states ${got.states.join(' ')})`);
    }
  }
}, { timeout: 40000 });

t.test('4001/401 for a refused token: getToken() is asked, the client reconnects with the new token (each transport)', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await clientPage(c, b);
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const forged = mint(600, RIGHTS, 'mallory', 'not-the-secret');
    const i = await pg.connect({ transports: [tr], token: forged, getTokenVia: 'mintToken', subscribe: ['au.>'] });
    const info = await pg.waitOpen(i, tr, 10000);
    eq(info.tokenCalls, ['unauthorized'], `${tr}: getToken calls`);
    eq(info.states, [`connecting:${tr}`, `open:${tr}`], `${tr}: states`);
    eq(info.errors, [], `${tr}: errors`);
    const id = await publishOk(b.base, 'au.ok', `after refresh ${tr}`, { headers: PUBLISHER() });
    const got = await pg.waitInfo(i, (x) => x.msgs.length >= 1, 5000, `${tr}: a message`);
    eq(got.msgs.map((m) => m.id), [id], `${tr}: delivered with the new token`);
    const own = await pg.pub(i, 'au.page', 'mine');
    assert(own.id, `${tr}: publish with the new token: ${JSON.stringify(own)}`);
  }
}, { timeout: 30000 });

t.test('a token already expired at start: getToken() is asked before connecting, no refused attempt', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await clientPage(c, b);
  const failures0 = await metric(b, 'rtbroker_auth_failures_total');
  const i = await pg.connect({ token: mint(-60), getTokenVia: 'mintToken', subscribe: ['au.>'] });
  const info = await pg.waitOpen(i, 'websocket');
  eq(info.tokenCalls, ['expired'], 'getToken calls');
  eq((await metric(b, 'rtbroker_auth_failures_total')) - failures0, 0, 'auth failures counted by the broker');
}, { timeout: 20000 });

t.test('without getToken, 4001 closes the client with an "unauthorized" error: no reconnect loop, no other transport tried', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await clientPage(c, b);
  const failures0 = await metric(b, 'rtbroker_auth_failures_total');
  const i = await pg.connect({ token: mint(-60), subscribe: ['au.>'] });
  const info = await pg.waitInfo(i, (x) => x.state === 'closed', 8000, 'closed');
  await sleep(1500);
  const fin = await pg.info(i);
  eq(fin.states, ['connecting:websocket', 'closed:websocket'], 'states');
  eq(fin.errors.map((e) => e.code), ['unauthorized'], 'errors');
  const failures = (await metric(b, 'rtbroker_auth_failures_total')) - failures0;
  assert(failures >= 1 && failures <= 3, `auth failures counted by the broker: ${failures} (a loop would keep counting)`);
  const r = await pg.pub(i, 'au.ok', 'x');
  eq(r.code, 'closed', 'publish on a closed client');
  void info;
}, { timeout: 20000 });

// A publisher sends one message every 100 ms for `ms`; the client must get all of them, once, in order.
async function stream(b, topic, ms) {
  const ids = [];
  const end = Date.now() + ms;
  const h = PUBLISHER();
  let k = 0;
  while (Date.now() < end) {
    const r = await publish(b.base, topic, `m${k++}`, { headers: h });
    assert(r.status === 200, `publish: ${r.status} ${r.text}`);
    ids.push(r.json.id);
    await sleep(100);
  }
  return ids;
}

for (const tr of ['websocket', 'sse', 'longpoll']) {
  t.test(`${tr}: a 4 s token is refreshed before it expires (${tr === 'websocket' ? 'on the "expiring" notice' : 'from its exp'}), no reconnect, nothing lost`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const pg = await clientPage(c, b);
    const i = await pg.connect({ transports: [tr], token: mint(4), getTokenVia: 'mintToken', subscribe: ['au.>'] });
    await pg.waitOpen(i, tr);
    const ids = await stream(b, 'au.live', 6000);
    const info = await pg.waitInfo(i, (x) => x.msgs.length >= ids.length, 5000, 'every message');
    eq(info.msgs.map((m) => m.id), ids, 'ids (once, in order)');
    assert(info.tokenCalls.length >= 1 && !info.tokenCalls.includes('unauthorized'), `getToken calls: ${JSON.stringify(info.tokenCalls)}`);
    if (tr === 'websocket') assert(info.tokenCalls[0] === 'expiring', `the first refresh should follow the broker's "expiring" notice: ${JSON.stringify(info.tokenCalls)}`);
    eq(info.states, [`connecting:${tr}`, `open:${tr}`], 'states (never left open)');
    eq(info.errors, [], 'errors');
  }, { timeout: 25000 });
}

for (const tr of ['websocket', 'sse', 'longpoll']) {
  t.test(`${tr}: the app cannot refresh before expiry → the broker ends the stream (${tr === 'websocket' ? '4001' : tr === 'sse' ? 'rt.expired' : '401'}) → getToken → resumed, nothing lost`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const pg = await clientPage(c, b);
    const first = mint(3);
    pg.tokens.next = (reason) => (reason === 'unauthorized' ? mint(3600) : first); // nothing newer until refused
    const i = await pg.connect({ transports: [tr], token: first, getTokenVia: 'mintToken', subscribe: ['au.>'] });
    await pg.waitOpen(i, tr);
    const ids = await stream(b, 'au.live', 5000);
    const info = await pg.waitInfo(i, (x) => x.msgs.length >= ids.length, 6000, 'every message');
    eq(info.msgs.map((m) => m.id), ids, 'ids (once, in order)');
    assert(info.tokenCalls.includes('unauthorized'), `getToken was not asked after the refusal: ${JSON.stringify(info.tokenCalls)}`);
    assert(info.states.includes(`open:${tr}`) && info.state === 'open', `states: ${info.states.join(' ')}`);
    eq(info.errors, [], 'errors');
    eq(info.gaps, [], 'gaps');
  }, { timeout: 25000 });
}

t.test('the browser closes cleanly', async () => {
  if (!browserPromise) throw new Error('no browser was started');
  await (await browserPromise).close();
});

await t.run();

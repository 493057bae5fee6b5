// The server API seen by web/realtime.js in headless Chromium: a disconnect with "reconnect": false leaves the client
// closed (no reconnect, a 'disconnect' event) on WebSocket, SSE and long-poll; a server-side subscribe reaches a
// WebSocket and an SSE client ('subscribed' event, then the topic's messages as 'message' events).
import { suite, eq, waitFor, trunc, sleep, assert, toYaml } from './lib.mjs';
import { launchChromium, clientWebRoot } from './browserlib.mjs';
import { api, apiConfig, jwt, API_KEY, SECRET } from './apilib.mjs';
import { startNats, natsBroker } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 110000 });
const FAST = { backoff: { base: 100, cap: 400 }, connectTimeout: 4000 };

let browserPromise = null;
async function page(c, b) {
  browserPromise ||= launchChromium();
  const ctx = await (await browserPromise).newContext();
  c.defer(() => ctx.close());
  const p = await ctx.newPage();
  const r = await p.goto(`${b.base}/browser_client.html`, { timeout: 15000 });
  assert(r && r.status() === 200, 'test page');
  const info = (i) => p.evaluate((a) => T.info(a), i);
  return {
    p,
    info,
    connect: (opts) => p.evaluate((o) => T.connect(o), { ...FAST, ...opts }),
    wait: async (i, pred, label) => {
      let last = null;
      await waitFor(async () => { last = await info(i); return pred(last); }, 8000, label, () => trunc(JSON.stringify(last), 600));
      return last;
    },
  };
}

for (const transport of ['websocket', 'sse', 'longpoll']) {
  t.test(`${transport}: disconnect with reconnect:false leaves realtime.js closed, with a 'disconnect' event`, async (c) => {
    const b = await c.broker({ config: { ...apiConfig(), web: { root: clientWebRoot() } } });
    const pg = await page(c, b);
    const i = await pg.connect({ token: jwt('alice'), transports: [transport], subscribe: ['room.1'] });
    await pg.wait(i, (x) => x.state === 'open', `open on ${transport}`);
    if (transport === 'longpoll') await sleep(300); // a poll is held
    const r = await api(b.base, 'POST', '/api/disconnect', { user: 'alice', reason: 'banned', reconnect: false });
    assert(r.json.disconnected >= 1, r.text);
    const x = await pg.wait(i, (y) => y.state === 'closed', 'closed');
    eq(x.disconnects.map((d) => [d.reason, d.reconnect]), [['banned', false]]);
    await sleep(1500);
    const y = await pg.info(i);
    eq([y.state, y.stats.reconnects], ['closed', 0], 'still closed, never reconnected');
    const conns = (await api(b.base, 'GET', '/api/info')).json.nodes[0].connections;
    eq(conns[transport], 0, `no ${transport} connection came back: ${JSON.stringify(conns)}`);
  });
}

for (const transport of ['websocket', 'sse']) {
  t.test(`${transport}: a server-side subscribe reaches realtime.js ('subscribed', then 'message')`, async (c) => {
    const b = await c.broker({ config: { ...apiConfig(), web: { root: clientWebRoot() } } });
    const pg = await page(c, b);
    const i = await pg.connect({ token: jwt('bea'), transports: [transport], subscribe: ['room.1'] });
    await pg.wait(i, (x) => x.state === 'open', 'open');
    const r = await api(b.base, 'POST', '/api/subscribe', { user: 'bea', topic: 'alerts.bea' });
    eq(r.json.connections, 1, r.text);
    await pg.wait(i, (x) => x.serverSubs.includes('+alerts.bea'), "'subscribed' event");
    await api(b.base, 'POST', '/api/publish', { topics: ['alerts.bea'], data: { level: 2 } });
    const x = await pg.wait(i, (y) => y.all.some((m) => m.topic === 'alerts.bea'), 'the message');
    eq(x.all.find((m) => m.topic === 'alerts.bea').data, { level: 2 });
    await api(b.base, 'POST', '/api/unsubscribe', { user: 'bea', topic: 'alerts.bea' });
    await pg.wait(i, (y) => y.serverSubs.includes('-alerts.bea'), "'unsubscribed' event");
  });
}

for (const transport of ['websocket', 'sse', 'longpoll']) {
  t.test(`${transport}: recover: latest gives realtime.js the latest message first ("latest": true), then live ones`, async (c) => {
    const cfg = {
      workers: 2, shutdown: { drain: '3s' }, web: { root: clientWebRoot() }, api: { keys: API_KEY },
      limits: { connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 },
      auth: { jwt: { secret: SECRET }, anonymous: { subscribe: '>', publish: '>' } },
    };
    const b = await c.broker({ configText: toYaml(cfg) + 'topics:\n  - pattern: "ticker.*"\n    recover: latest\n' });
    for (const p of [100, 101, 102]) await api(b.base, 'POST', '/api/publish', { topics: ['ticker.btc', 'other.x'], data: p });
    const pg = await page(c, b);
    const i = await pg.connect({ transports: [transport], subscribe: ['ticker.btc', 'other.x'] });
    const x = await pg.wait(i, (y) => y.state === 'open' && y.msgs.length >= 1, 'the latest');
    eq(x.msgs.map((m) => [m.topic, m.data, !!m.latest]), [['ticker.btc', 102, true]], 'only the latest of ticker.btc, marked');
    await api(b.base, 'POST', '/api/publish', { topics: ['ticker.btc', 'other.x'], data: 103 });
    const y = await pg.wait(i, (z) => z.msgs.length >= 3, 'live ones');
    eq(y.msgs.slice(1).map((m) => [m.topic, m.data, !!m.latest]).sort(), [['other.x', 103, false], ['ticker.btc', 103, false]]);
  });
}

t.test('status page: given an API key, lists the nodes of a two-node NATS cluster from /api/info', async (c) => {
  const nats = await startNats(c);
  const cfg = { ...apiConfig(), web: { root: clientWebRoot() } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const ids = [(await api(A.base, 'GET', '/api/info')).json.nodes[0].id, (await api(B.base, 'GET', '/api/info')).json.nodes[0].id];
  browserPromise ||= launchChromium();
  const ctx = await (await browserPromise).newContext();
  c.defer(() => ctx.close());
  const S = await ctx.newPage();
  const errors = [];
  S.on('pageerror', (e) => errors.push(e.message));
  await S.goto(`${A.base}/status.html`);
  await S.fill('#api-key', 'wrong-key-0123456789abcdef');
  await S.click('#key-form button');
  await S.waitForFunction(() => /401/.test(document.getElementById('cluster-note').textContent), null, { timeout: 5000 });
  await S.fill('#api-key', API_KEY);
  await S.click('#key-form button');
  await S.waitForFunction(() => document.querySelectorAll('#node-table tbody tr').length === 2, null, { timeout: 8000, polling: 100 })
    .catch(async () => { throw new Error(`node table: ${await S.textContent('#cluster')}`); });
  const shown = await S.$$eval('#node-table tbody tr', (rows) => rows.map((r) => r.dataset.node).sort());
  eq(shown, ids.sort(), 'both nodes listed');
  eq(errors, [], 'page errors');
});

t.test('after all: close the browser', async () => {
  if (browserPromise) await (await browserPromise).close();
});

await t.run();

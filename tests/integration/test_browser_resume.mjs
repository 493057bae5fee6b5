// web/realtime.js in headless Chromium: resuming after the network drops (a TCP proxy between the
// page and the broker cuts every connection and refuses new ones while messages are published),
// across transports (WebSocket refused by the "proxy" → SSE), after a broker restart (new epoch →
// gap), de-duplication by id, and the bounded publish queue.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { suite, assert, eq, publishOk, waitFor, mkTemp, trunc, sleep, HERE, ROOT } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);
const FAST = { backoff: { base: 100, cap: 600 }, pingInterval: 2000, pingTimeout: 2000, connectTimeout: 4000 };

const t = suite(import.meta.url, { hardTimeoutMs: 115000 });

function webRoot() {
  const dir = mkTemp('rtb-browser-web-');
  for (const f of fs.readdirSync(path.join(ROOT, 'web'))) fs.copyFileSync(path.join(ROOT, 'web', f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, 'browser_client.html'), path.join(dir, 'browser_client.html'));
  return dir;
}
const cfg = (extra = {}) => ({ plugins: { load: ['sse', 'longpoll', 'websocket'] }, web: { root: webRoot() }, sse: { heartbeat: '1s' }, ...extra });

let browserPromise = null;
async function browser() {
  browserPromise ||= launchChromium();
  return browserPromise;
}

/**
 * A TCP proxy standing for the network between the page and the broker: cut() drops every
 * connection, `blocked` refuses new ones, `refuseUpgrades` answers WebSocket upgrades with 403
 * (a proxy that does not pass WebSockets), `refuse` (a RegExp on the request line) answers
 * matching requests with 502. `target` may be changed (a restarted broker).
 */
async function proxy(c, targetPort) {
  const px = { target: targetPort, blocked: false, refuseUpgrades: false, refuse: null, socks: new Set(), refused: 0 };
  const server = net.createServer((client) => {
    px.socks.add(client);
    client.on('error', () => {});
    client.on('close', () => px.socks.delete(client));
    if (px.blocked) { px.refused++; client.destroy(); return; }
    client.once('data', (first) => {
      const head = first.toString('latin1');
      if (px.refuseUpgrades && /\r\nupgrade:\s*websocket/i.test(head)) {
        px.refused++;
        client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      // not 403: a 403 on a stream's own request reads as "not allowed" to the client, which then
      // (rightly) stops asking; a path the proxy cannot serve is a gateway error
      if (px.refuse && px.refuse.test(head.split('\r\n')[0])) {
        px.refused++;
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      const up = net.connect(px.target, '127.0.0.1');
      px.socks.add(up);
      up.on('error', () => client.destroy());
      up.on('close', () => { px.socks.delete(up); client.destroy(); });
      client.on('close', () => up.destroy());
      up.write(first);
      client.pipe(up);
      up.pipe(client);
    });
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  px.port = server.address().port;
  px.base = `http://127.0.0.1:${px.port}`;
  px.cut = () => { for (const s of px.socks) s.destroy(); };
  c.defer(() => new Promise((res) => { px.cut(); server.close(() => res()); }));
  return px;
}

/** browser_client.html (module build) on `base`, driven through window.T. */
async function clientPage(c, base) {
  const br = await browser();
  const ctx = await br.newContext();
  c.defer(() => ctx.close());
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const r = await p.goto(`${base}/browser_client.html`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET /browser_client.html: ${r && r.status()}`);
  const api = {
    p, errors,
    connect: (opts) => p.evaluate((o) => T.connect(o), { ...FAST, ...opts }),
    pub: (i, topic, data, opts) => p.evaluate(([a, b, d, o]) => T.pub(a, b, d, o), [i, topic, data, opts ?? {}]),
    pubNoWait: (i, topic, data) => p.evaluate(([a, b, d]) => T.pubNoWait(a, b, d), [i, topic, data]),
    pubs: (i) => p.evaluate((a) => T.pubs(a), i),
    info: (i) => p.evaluate((a) => T.info(a), i),
    rewind: (i, id) => p.evaluate(([a, b]) => T.rewind(a, b), [i, id]),
    async waitInfo(i, pred, ms, label) {
      let last = null;
      await waitFor(async () => { last = await api.info(i); return pred(last); }, ms, label,
        () => trunc(JSON.stringify({ ...last, msgs: last && last.msgs.slice(-6), n: last && last.msgs.length }), 900));
      return last;
    },
    waitOpen: (i, transport, ms = 10000) => api.waitInfo(i, (x) => x.state === 'open' && (!transport || x.transport === transport), ms, `client ${i} open${transport ? ' on ' + transport : ''}`),
  };
  return api;
}

async function publishN(base, n, prefix, topics = ['rs.a', 'rs.b']) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    ids.push(await publishOk(base, topics[i % topics.length], JSON.stringify({ n: `${prefix}${i}` }), { headers: { 'Content-Type': 'application/json' } }));
  }
  return ids;
}

function checkOnceInOrder(info, ids, what) {
  const got = info.msgs.map((m) => m.id);
  const dups = got.filter((id, i) => got.indexOf(id) !== i);
  assert(!dups.length, `${what}: delivered twice: ${dups.join(' ')}`);
  eq(got, ids, `${what}: ids delivered (all once, in publish order)`);
}

for (const tr of ['websocket', 'sse', 'longpoll']) {
  t.test(`${tr}: the network drops, 20 messages are published meanwhile, all arrive once and in order on reconnect`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const px = await proxy(c, b.port);
    const pg = await clientPage(c, px.base);
    const i = await pg.connect({ transports: [tr], subscribe: ['rs.>'] });
    await pg.waitOpen(i, tr);
    const before = await publishN(b.base, 5, 'before');
    await pg.waitInfo(i, (x) => x.msgs.length >= 5, 8000, '5 messages before the drop');
    px.blocked = true;
    px.cut();
    await pg.waitInfo(i, (x) => x.state !== 'open', 8000, 'the client to notice the drop');
    const during = await publishN(b.base, 20, 'offline');
    await sleep(400); // a few refused reconnects
    px.blocked = false;
    const info = await pg.waitInfo(i, (x) => x.msgs.length >= 25 && x.state === 'open', 12000, 'all 25 messages after the reconnect');
    await sleep(300);
    const fin = await pg.info(i);
    checkOnceInOrder(fin, [...before, ...during], tr);
    eq(fin.msgs.slice(5).map((m) => m.data.n), during.map((_, k) => `offline${k}`), 'payloads');
    eq(fin.gaps, [], 'gap notices (none: the history was there)');
    eq(fin.transport, tr, 'transport');
    assert(info.states.includes(`reconnecting:${tr}`), `states: ${info.states.join(' ')}`);
    assert(px.refused > 0, 'the proxy refused no connection: the client did not try to reconnect while blocked');
    eq(pg.errors, [], 'page errors');
  }, { timeout: 30000 });
}

t.test('across transports: WebSocket refused after the drop → falls back to SSE, resumes from the last id, remembers SSE', async (c) => {
  const b = await c.broker({ config: cfg() });
  const px = await proxy(c, b.port);
  const pg = await clientPage(c, px.base);
  const i = await pg.connect({ subscribe: ['rs.>'] });
  await pg.waitOpen(i, 'websocket');
  const before = await publishN(b.base, 5, 'ws');
  await pg.waitInfo(i, (x) => x.msgs.length >= 5, 8000, '5 messages over WebSocket');
  px.blocked = true;
  px.cut();
  await pg.waitInfo(i, (x) => x.state !== 'open', 8000, 'the client to notice the drop');
  const during = await publishN(b.base, 10, 'gone');
  px.refuseUpgrades = true;
  px.refuse = /^GET \/poll/; // long-poll is not an option either: SSE it must be
  px.blocked = false;
  await pg.waitInfo(i, (x) => x.state === 'open', 12000, 'open again');
  const after = await publishN(b.base, 5, 'sse');
  const info = await pg.waitInfo(i, (x) => x.msgs.length >= 20, 8000, 'all 20 messages');
  await sleep(300);
  checkOnceInOrder(await pg.info(i), [...before, ...during, ...after], 'WebSocket then SSE');
  eq(info.transport, 'sse', 'transport after the fallback');
  eq(info.gaps, [], 'gap notices');
  const stored = await pg.p.evaluate(() => T.remembered());
  assert(Object.values(stored).includes('sse'), `sessionStorage does not remember sse: ${JSON.stringify(stored)}`);
  // a new client in the same tab starts with what worked
  const j = await pg.connect({ subscribe: ['rs.>'] });
  const second = await pg.waitOpen(j, 'sse');
  eq(second.states[0], 'connecting:sse', 'the remembered transport is tried first');
}, { timeout: 40000 });

t.test('broker restarted (memory bus, new epoch): every client reports a gap and gets what the new broker has, once', async (c) => {
  const b1 = await c.broker({ config: cfg() });
  const px = await proxy(c, b1.port);
  const pg = await clientPage(c, px.base);
  const clients = {};
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    clients[tr] = await pg.connect({ transports: [tr], subscribe: ['rg.>'] });
  }
  for (const tr of Object.keys(clients)) await pg.waitOpen(clients[tr], tr);
  const old = await publishN(b1.base, 3, 'old', ['rg.x']);
  for (const tr of Object.keys(clients)) await pg.waitInfo(clients[tr], (x) => x.msgs.length >= 3, 8000, `3 messages on ${tr}`);
  px.blocked = true;
  const stopped = await b1.stop({ timeout: 10000 });
  eq([stopped.code, stopped.killed], [0, false], 'first broker exit');
  const b2 = await c.broker({ config: cfg() });
  px.target = b2.port;
  const early = await publishN(b2.base, 5, 'new', ['rg.x', 'rg.y']);
  px.blocked = false;
  for (const tr of Object.keys(clients)) await pg.waitOpen(clients[tr], tr, 12000);
  const late = await publishN(b2.base, 5, 'later', ['rg.x', 'rg.y']);
  for (const [tr, i] of Object.entries(clients)) {
    await pg.waitInfo(i, (x) => x.msgs.length >= 13, 10000, `13 messages on ${tr}`);
    await sleep(200);
    const info = await pg.info(i);
    checkOnceInOrder(info, [...old, ...early, ...late], tr);
    eq(info.gaps.length, 1, `${tr}: gap notices ${JSON.stringify(info.gaps)}`);
    eq(info.gaps[0].from, old[2], `${tr}: the gap names the last id seen`);
    assert(info.states.includes(`reconnecting:${tr}`), `${tr}: states ${info.states.join(' ')}`);
  }
  eq(pg.errors, [], 'page errors');
}, { timeout: 40000 });

t.test('de-duplication: a resume from an older id replays what was delivered; the app gets each message once', async (c) => {
  const b = await c.broker({ config: cfg() });
  const px = await proxy(c, b.port);
  const pg = await clientPage(c, px.base);
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    // a second pattern covering the same topics: both handlers get each message once
    const i = await pg.connect({ transports: [tr], subscribe: [`dd.${tr}.*`, `dd.${tr}.>`] });
    await pg.waitOpen(i, tr);
    const ids = await publishN(b.base, 10, 'd', [`dd.${tr}.a`, `dd.${tr}.b`]);
    await pg.waitInfo(i, (x) => x.msgs.length >= 20, 8000, `10 messages × 2 subscriptions on ${tr}`);
    await pg.rewind(i, ids[2]);
    px.blocked = true;
    px.cut();
    await pg.waitInfo(i, (x) => x.state !== 'open', 8000, 'the client to notice the drop');
    px.blocked = false;
    await pg.waitInfo(i, (x) => x.stats.duplicates >= 7 && x.state === 'open', 10000, `7 replayed duplicates dropped on ${tr}`);
    const more = await publishN(b.base, 1, 'e', [`dd.${tr}.a`]);
    const info = await pg.waitInfo(i, (x) => x.msgs.length >= 22, 8000, 'the next message');
    await sleep(200);
    const fin = await pg.info(i);
    for (const tag of [`dd.${tr}.*`, `dd.${tr}.>`]) {
      eq(fin.msgs.filter((m) => m.sub === tag).map((m) => m.id), [...ids, ...more], `${tr}: messages for subscription ${tag}`);
    }
    eq(fin.msgs.length, 22, `${tr}: handler calls`);
    void info;
  }
}, { timeout: 40000 });

t.test('publish queue while disconnected: held up to maxQueue, past it rejects queue_full; sent in order on connect', async (c) => {
  const b = await c.broker({ config: cfg() });
  const px = await proxy(c, b.port);
  const pg = await clientPage(c, px.base);
  const watcher = await pg.connect({ transports: ['sse'], url: b.base, subscribe: ['rq.>'] }); // straight to the broker
  await pg.waitOpen(watcher, 'sse');
  let expect = [];
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    px.blocked = true;
    px.cut();
    const i = await pg.connect({ transports: [tr], maxQueue: 3, subscribe: ['rq.none'] });
    const k = [];
    for (let n = 0; n < 3; n++) k.push(await pg.pubNoWait(i, `rq.${tr}`, { n }));
    await pg.pubNoWait(i, `rq.${tr}`, { n: 3 });
    await sleep(300);
    const held = await pg.pubs(i);
    eq(held[3], { done: true, id: null, code: 'queue_full' }, `${tr}: the 4th publish while disconnected`);
    assert(held.slice(0, 3).every((x) => !x.done), `${tr}: publishes settled while disconnected: ${JSON.stringify(held)}`);
    assert((await pg.info(i)).state !== 'open', `${tr}: open while blocked?`);
    px.blocked = false;
    await pg.waitOpen(i, tr, 12000);
    const done = (await waitFor(async () => { const x = await pg.pubs(i); return x.every((y) => y.done) && x; }, 8000, `${tr}: queued publishes answered`)).slice(0, 3);
    assert(done.every((x) => x.id), `${tr}: queued publishes: ${JSON.stringify(done)}`);
    const seqs = done.map((x) => BigInt(x.id.split(':')[1]));
    assert(seqs[0] < seqs[1] && seqs[1] < seqs[2], `${tr}: queued publishes out of order: ${done.map((x) => x.id)}`);
    expect = expect.concat(done.map((x, n) => [x.id, `rq.${tr}`, n]));
    await pg.waitInfo(watcher, (x) => x.msgs.length >= expect.length, 8000, `the watcher sees the ${tr} publishes`);
    void k;
  }
  eq((await pg.info(watcher)).msgs.map((m) => [m.id, m.topic, m.data.n]), expect, 'what a subscriber received');
}, { timeout: 45000 });

t.test('the browser closes cleanly', async () => {
  if (!browserPromise) throw new Error('no browser was started');
  await (await browserPromise).close();
});

await t.run();

// The demo (web/index.html) and the status page (web/status.html) in headless Chromium, served by
// the broker's static handler from the repository's own web/ (the default web.root), on each transport.
// Screenshots of both pages are written to $RTB_ARTIFACTS (default /tmp/rtbroker-artifacts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { suite, assert, eq, publishOk, curl, request, sleep, ROOT } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);
const ARTIFACTS = process.env.RTB_ARTIFACTS || path.join(os.tmpdir(), 'rtbroker-artifacts');

const t = suite(import.meta.url, { hardTimeoutMs: 190000 });
const cfg = (extra = {}) => ({ plugins: { load: ['sse', 'longpoll', 'websocket'] }, web: { root: path.join(ROOT, 'web') }, ...extra });

let browserPromise = null;
async function browser() {
  browserPromise ||= launchChromium();
  return browserPromise;
}

/** The demo in a fresh browser context (its own storage), with page errors collected. */
async function demo(c, b, query = '') {
  const br = await browser();
  const ctx = await br.newContext({ viewport: { width: 1100, height: 720 } });
  c.defer(() => ctx.close());
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const r = await p.goto(`${b.base}/${query}`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET / (the demo from web.root): ${r && r.status()}`);
  const api = {
    p, errors,
    async waitOpen(transport, ms = 10000) {
      try {
        await p.waitForFunction((tr) => {
          const s = document.getElementById('state');
          return s.dataset.state === 'open' && (!tr || s.dataset.transport === tr);
        }, transport, { timeout: ms, polling: 50 });
      } catch (e) {
        throw new Error(`demo ${query || '/'} not open${transport ? ' on ' + transport : ''} within ${ms} ms: state "${await p.textContent('#state')}", events ${JSON.stringify(await api.events())}, page errors ${JSON.stringify(errors)}`);
      }
    },
    chat: () => p.$$eval('#chat-log li[data-id]', (l) => l.map((li) => ({ id: li.dataset.id, who: li.querySelector('.who').textContent, text: li.querySelector('.text').textContent }))),
    events: () => p.$$eval('#events li', (l) => l.map((li) => li.textContent)),
    counter: async () => Number(await p.textContent('#counter')),
    async send(name, text) {
      await p.fill('#name', name);
      await p.fill('#text', text);
      await p.click('#send');
    },
    async waitChat(pred, ms, label) {
      const deadline = Date.now() + ms;
      let last = [];
      for (;;) {
        last = await api.chat();
        if (pred(last)) return last;
        if (Date.now() > deadline) throw new Error(`demo ${query || '/'}: timed out after ${ms} ms waiting for ${label}; chat ${JSON.stringify(last.slice(-12))}`);
        await sleep(50);
      }
    },
  };
  return api;
}

const texts = (chat) => chat.map((m) => m.text);
const once = (chat, text) => chat.filter((m) => m.text === text).length === 1;

t.test('demo on each transport: a chat message from one page appears on a page using another transport; curl too; the counter', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pairs = [['websocket', 'sse'], ['sse', 'longpoll'], ['longpoll', 'websocket']];
  let expectCounter = 0;
  for (const [ta, tb] of pairs) {
    const A = await demo(c, b, `?transport=${ta}`);
    const B = await demo(c, b, `?transport=${tb}`);
    await A.waitOpen(ta);
    await B.waitOpen(tb);
    const text = `hello from ${ta} to ${tb}`;
    await A.send(`alice-${ta}`, text);
    await B.waitChat((l) => l.some((m) => m.text === text), 8000, `"${text}" on the ${tb} page`);
    const fromCurl = `curl says hi to ${ta} and ${tb}`;
    const r = await curl(['-s', '-H', 'Content-Type: application/json', '-d', JSON.stringify({ name: 'curl', text: fromCurl }), `${b.base}/pub/demo.chat`]);
    assert(r.code === 0 && /"id"/.test(r.stdout), `curl publish: ${r.code} ${r.stdout} ${r.stderr}`);
    for (const [P, tr] of [[A, ta], [B, tb]]) {
      const l = await P.waitChat((x) => x.some((m) => m.text === fromCurl) && x.some((m) => m.text === text), 8000, `both messages on the ${tr} page`);
      assert(once(l, text) && once(l, fromCurl), `${tr} page shows a message twice: ${JSON.stringify(texts(l))}`);
      const mine = l.find((m) => m.text === text);
      eq(mine.who, `alice-${ta}`, 'sender name');
    }
    // the counter: B clicks, A sees the new value
    expectCounter++;
    await B.p.click('#counter-inc');
    for (const [P, tr] of [[A, ta], [B, tb]]) {
      await P.p.waitForFunction((v) => Number(document.getElementById('counter').textContent) === v, expectCounter, { timeout: 8000, polling: 50 })
        .catch(async () => { throw new Error(`counter on the ${tr} page: expected ${expectCounter}, shows ${await P.counter()}`); });
    }
    eq([A.errors, B.errors], [[], []], 'page errors');
  }
  // a newcomer sees the room and the counter as they are (from the retained history)
  const N = await demo(c, b, '');
  await N.waitOpen('websocket');
  const l = await N.waitChat((x) => x.length >= 6, 5000, 'the retained chat');
  eq(l.length, 6, `retained chat messages shown to a newcomer: ${JSON.stringify(texts(l))}`);
  eq(await N.counter(), expectCounter, 'counter shown to a newcomer');
}, { timeout: 60000 });

t.test('demo transport switcher: WebSocket → SSE → long-poll → WebSocket, nothing lost or repeated while publishing', async (c) => {
  const b = await c.broker({ config: cfg() });
  const P = await demo(c, b, '');
  await P.waitOpen('websocket');
  const sent = [];
  let n = 0;
  const burst = async (k) => {
    for (let i = 0; i < k; i++) {
      const text = `switch message ${++n}`;
      sent.push(text);
      await publishOk(b.base, 'demo.chat', JSON.stringify({ name: 'pub', text }), { headers: { 'Content-Type': 'application/json' } });
    }
  };
  await burst(3);
  for (const [label, tr] of [['SSE', 'sse'], ['Long-poll', 'longpoll'], ['WebSocket', 'websocket']]) {
    await P.p.click(`#transports label:has-text("${label}")`);
    await burst(4); // while the switch happens
    await P.waitOpen(tr);
    await burst(3);
    assert(new URL(P.p.url()).searchParams.get('transport') === tr, `the URL names the transport: ${P.p.url()}`);
  }
  const l = await P.waitChat((x) => x.length >= sent.length, 10000, `all ${sent.length} messages`);
  await sleep(300);
  eq(texts(await P.chat()), sent, 'chat after three switches (all once, in order)');
  const ev = await P.events();
  assert(!ev.some((e) => /gap/.test(e)), `a gap was reported: ${JSON.stringify(ev)}`);
  eq(P.errors, [], 'page errors');
  void l;
}, { timeout: 60000 });

t.test('status page: connections by transport, message rates, bus and readiness from /metrics and /readyz; screenshots', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pages = [];
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const P = await demo(c, b, `?transport=${tr}`);
    await P.waitOpen(tr);
    pages.push(P);
  }
  await pages[0].send('ada', 'first!');
  await pages[1].send('grace', 'hello everyone');
  await publishOk(b.base, 'demo.chat', JSON.stringify({ name: 'curl', text: 'hi from a terminal' }), { headers: { 'Content-Type': 'application/json' } });
  await pages[2].p.click('#counter-inc');
  await pages[0].waitChat((l) => l.length >= 3, 8000, '3 chat messages');
  await pages[0].p.waitForFunction(() => document.getElementById('counter').textContent === '1', null, { timeout: 8000, polling: 50 });

  const br = await browser();
  const ctx = await br.newContext({ viewport: { width: 1100, height: 560 } });
  c.defer(() => ctx.close());
  const S = await ctx.newPage();
  const errors = [];
  S.on('pageerror', (e) => errors.push(e.message));
  const r = await S.goto(`${b.base}/status.html`);
  assert(r && r.status() === 200, `GET /status.html: ${r && r.status()}`);
  const num = async (id) => {
    const txt = await S.textContent(`#${id}`);
    return txt === '–' ? null : Number(txt.replace(/,/g, ''));
  };
  // publish at a steady pace while the page samples, so that it shows a rate
  const stop = { v: false };
  const pumping = (async () => { let k = 0; while (!stop.v) { await publishOk(b.base, 'status.load', `m${k++}`); await sleep(50); } })();
  try {
    await S.waitForFunction(() => Number(document.body.dataset.samples || 0) >= 3, null, { timeout: 10000, polling: 100 });
    await S.waitForFunction(() => Number(document.getElementById('rate-in').textContent) > 0, null, { timeout: 8000, polling: 100 })
      .catch(async () => { throw new Error(`status page shows no publish rate: in/s "${await S.textContent('#rate-in')}"`); });
  } finally {
    stop.v = true;
    await pumping;
  }
  for (const tr of ['websocket', 'sse', 'longpoll']) {
    const v = await num(`conn-${tr}`);
    assert(v !== null && v >= 1, `status page: connections over ${tr} = ${v} (a demo page is connected over it)`);
  }
  assert((await num('conn-total')) >= 3, `status page: total connections ${await num('conn-total')}`);
  assert(/up/.test(await S.textContent('#bus')), `bus state: "${await S.textContent('#bus')}"`);
  eq(await S.textContent('#ready'), 'ready', 'readiness');
  const metrics = (await request(b.base, 'GET', '/metrics')).text;
  const published = Number(/^rtbroker_messages_published_total (\d+)/m.exec(metrics)[1]);
  await sleep(1300); // one more sample after the load stopped
  eq(await num('published'), published, 'messages published (status page vs /metrics)');
  assert((await num('delivered')) > 0, 'messages delivered shown');
  const polylines = await S.$$eval('#chart-conn polyline, #chart-rates polyline', (l) => l.length);
  assert(polylines >= 4, `charts drawn: ${polylines} lines`);
  eq(errors, [], 'status page errors');

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const demoPng = path.join(ARTIFACTS, 'demo.png');
  const statusPng = path.join(ARTIFACTS, 'status.png');
  await pages[0].p.screenshot({ path: demoPng });
  await S.screenshot({ path: statusPng });
  assert(fs.statSync(demoPng).size > 5000 && fs.statSync(statusPng).size > 5000, 'screenshots written');
  c.info(`screenshots: ${demoPng} ${statusPng}`);
}, { timeout: 45000 });

t.test('demo presence and typing: two pages see each other online and "… is typing" (ephemeral), on each transport', async (c) => {
  const b = await c.broker({ config: cfg({ presence: { poll_grace: '1s' } }) });
  const online = (P) => P.p.evaluate(() => Number(document.getElementById('online').dataset.count || -1));
  for (const [ta, tb] of [['websocket', 'sse'], ['sse', 'longpoll'], ['longpoll', 'websocket']]) {
    const A = await demo(c, b, `?transport=${ta}`);
    const B = await demo(c, b, `?transport=${tb}`);
    await A.waitOpen(ta);
    await B.waitOpen(tb);
    for (const [P, tr] of [[A, ta], [B, tb]]) {
      await P.p.waitForFunction(() => document.getElementById('online').dataset.count === '2', null, { timeout: 8000, polling: 50 })
        .catch(async () => { throw new Error(`${tr} page: expected "2 online", shows "${await P.p.textContent('#online')}"`); });
    }
    const snap = JSON.parse((await request(b.base, 'GET', '/presence/demo.chat')).text);
    eq([snap.count, snap.anonymous], [2, 2], 'GET /presence/demo.chat while both pages are open');
    await A.p.fill('#name', `alice-${ta}`);
    await A.p.type('#text', 'hel');
    await B.p.waitForFunction((w) => document.getElementById('typing').textContent.includes(`${w} is typing`), `alice-${ta}`, { timeout: 8000, polling: 50 })
      .catch(async () => { throw new Error(`${tb} page: no typing indicator for alice-${ta}: "${await B.p.textContent('#typing')}"`); });
    eq(await A.p.textContent('#typing'), '', 'the typist does not see its own indicator');
    await A.p.click('#send');
    await B.waitChat((l) => l.some((m) => m.text === 'hel'), 8000, 'the message after typing');
    await B.p.waitForFunction(() => document.getElementById('typing').textContent === '', null, { timeout: 5000, polling: 50 });
    const hist = JSON.parse((await request(b.base, 'GET', '/history/demo.chat?limit=100')).text);
    assert(!hist.messages.some((m) => m.event === 'typing'), `typing signals must not be stored: ${JSON.stringify(hist.messages)}`);
    await B.p.close();
    await A.p.waitForFunction(() => document.getElementById('online').dataset.count === '1', null, { timeout: 8000, polling: 50 })
      .catch(async () => { throw new Error(`${ta} page: expected "1 online" after the ${tb} page closed, shows "${await A.p.textContent('#online')}"`); });
    await A.p.close();
    eq([A.errors, B.errors], [[], []], 'page errors');
    await sleep(1500); // the long-poll page's grace ends before the next pair counts
  }
}, { timeout: 75000 });

t.test('the browser closes cleanly', async () => {
  if (!browserPromise) throw new Error('no browser was started');
  await (await browserPromise).close();
});

await t.run();

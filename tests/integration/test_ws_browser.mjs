// Headless Chromium (playwright-core, /usr/bin/chromium) opening `new WebSocket(...)` from a page
// served by the broker's web.root: raw mode and rt.v1 (subscribe, receive, publish with ack), the
// permessage-deflate a browser negotiates, and the close codes a page sees (4001, 1001).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  suite, assert, eq, publishOk, poll, waitFor, mkTemp, trunc, HERE, ROOT,
} from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);

const t = suite(import.meta.url, { hardTimeoutMs: 100000 });

function webRoot() {
  const dir = mkTemp('rtb-ws-web-');
  fs.copyFileSync(path.join(HERE, 'ws_browser.html'), path.join(dir, 'ws_browser.html'));
  return dir;
}
const cfg = (extra = {}) => ({ plugins: { load: ['sse', 'longpoll', 'websocket'] }, web: { root: webRoot() }, ...extra });

let browserPromise = null;
async function browser() {
  browserPromise ||= launchChromium();
  return browserPromise;
}

/** A fresh page on the broker's origin with the test page loaded. */
async function page(c, b) {
  const br = await browser();
  const ctx = await br.newContext();
  c.defer(() => ctx.close());
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const r = await p.goto(`${b.base}/ws_browser.html`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET /ws_browser.html from web.root: ${r && r.status()}`);
  const api = {
    p, errors,
    open: (pathname, protocols) => p.evaluate(([a, pr]) => window.wsOpen(a, pr === null ? undefined : pr), [pathname, protocols ?? null]),
    send: (i, s) => p.evaluate(([k, v]) => window.wsSend(k, v), [i, s]),
    state: (i) => p.evaluate((k) => window.wsState(k), i),
    async waitState(i, pred, ms, label) {
      let last = null;
      await waitFor(async () => { last = await api.state(i); return pred(last); }, ms, label, () => trunc(JSON.stringify(last), 600));
      return last;
    },
  };
  return api;
}

t.test('raw mode from a page: permessage-deflate negotiated, text as string, binary as ArrayBuffer, 20 KB text', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await page(c, b);
  const i = await pg.open('/sub/br.raw');
  let s = await pg.state(i);
  assert(s.opened && !s.close, `raw WebSocket did not open: ${JSON.stringify(s)}`);
  eq(s.protocol, '', 'protocol');
  assert(/permessage-deflate/.test(s.extensions), `Chromium offers permessage-deflate, the broker did not accept it: extensions "${s.extensions}"`);
  const big = 'browser deflate payload '.repeat(850);
  await publishOk(b.base, 'br.raw', 'hello from rtbroker ✓');
  await publishOk(b.base, 'br.raw', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0xff]));
  await publishOk(b.base, 'br.raw', big);
  s = await pg.waitState(i, (x) => x.msgs.length >= 3, 8000, '3 messages in the page');
  eq(s.msgs[0], { kind: 'text', text: 'hello from rtbroker ✓' }, 'text message');
  eq(s.msgs[1], { kind: 'binary', hex: 'deadbeefff' }, 'binary message');
  assert(s.msgs[2].kind === 'text' && s.msgs[2].text === big, `20 KB text: got ${s.msgs[2].kind} of ${(s.msgs[2].text || s.msgs[2].hex).length} chars`);
  eq(pg.errors, [], 'page errors');
}, { timeout: 45000 });

t.test('rt.v1 from a page: subprotocol, sub ack, msg, pub with ack id (seen by long-poll), ping', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await page(c, b);
  const i = await pg.open('/ws', ['rt.v1']);
  let s = await pg.state(i);
  assert(s.opened, `rt.v1 WebSocket did not open: ${JSON.stringify(s)}`);
  eq(s.protocol, 'rt.v1', 'selected subprotocol');
  const json = (st) => st.msgs.map((m) => JSON.parse(m.text));
  await pg.send(i, JSON.stringify({ op: 'sub', topic: 'br.chat.*', ref: 'b1' }));
  s = await pg.waitState(i, (x) => x.msgs.length >= 1, 5000, 'sub ack');
  eq(json(s)[0], { type: 'ok', ref: 'b1' }, 'sub ack');
  const id = await publishOk(b.base, 'br.chat.room1', '{"hello":"browser"}', { headers: { 'Content-Type': 'application/json' } });
  s = await pg.waitState(i, (x) => x.msgs.length >= 2, 5000, 'msg');
  const m = json(s)[1];
  eq([m.type, m.id, m.topic, m.data], ['msg', id, 'br.chat.room1', { hello: 'browser' }], 'msg envelope');
  await pg.send(i, JSON.stringify({ op: 'pub', topic: 'br.chat.room2', data: { from: 'page' }, ref: 'b2' }));
  s = await pg.waitState(i, (x) => json(x).some((j) => j.type === 'ok' && j.ref === 'b2') && json(x).filter((j) => j.type === 'msg').length >= 2, 5000, 'pub ack and own msg');
  const ack = json(s).find((j) => j.ref === 'b2');
  assert(typeof ack.id === 'string' && ack.id !== id, `pub ack without a new id: ${JSON.stringify(ack)}`);
  const own = json(s).filter((j) => j.type === 'msg')[1];
  eq([own.id, own.topic, own.data], [ack.id, 'br.chat.room2', { from: 'page' }], 'own publish delivered to the page');
  const lp = await poll(b.base, { topic: 'br.chat.room2', cursor: id, timeout: 1 });
  eq(lp.json && lp.json.messages.map((x) => [x.id, x.data]), [[ack.id, { from: 'page' }]], 'long-poll sees the page\'s publish');
  await pg.send(i, JSON.stringify({ op: 'ping', ref: 'b3' }));
  s = await pg.waitState(i, (x) => json(x).some((j) => j.ref === 'b3'), 5000, 'ping ack');
  eq(json(s).find((j) => j.ref === 'b3'), { type: 'ok', ref: 'b3' }, 'ping ack');
  assert(!s.close, `closed: ${JSON.stringify(s.close)}`);
  eq(pg.errors, [], 'page errors');
}, { timeout: 45000 });

t.test('close 4001 seen by a page when anonymous subscribe is not allowed (raw and rt.v1)', async (c) => {
  const b = await c.broker({ config: cfg({ auth: { anonymous: { subscribe: [], publish: ['>'] } } }) });
  const pg = await page(c, b);
  for (const protocols of [null, ['rt.v1']]) {
    const i = await pg.open('/sub/br.private', protocols);
    const s = await pg.waitState(i, (x) => x.close, 8000, 'the close');
    assert(s.opened, `the page's WebSocket never opened (the refusal must come after the upgrade, so the page can tell it from a network error): ${JSON.stringify(s)}`);
    eq(s.close.code, 4001, `close code seen by the page (${protocols ? 'rt.v1' : 'raw'})`);
    assert(s.close.reason, 'close 4001 without a reason');
  }
}, { timeout: 45000 });

t.test('close 1001 seen by pages (raw and rt.v1) when the broker gets SIGTERM', async (c) => {
  const b = await c.broker({ config: cfg() });
  const pg = await page(c, b);
  const raw = await pg.open('/sub/br.sd');
  const v1 = await pg.open('/ws', ['rt.v1']);
  await pg.send(v1, JSON.stringify({ op: 'sub', topic: 'br.sd', ref: 1 }));
  await pg.waitState(v1, (x) => x.msgs.length >= 1, 5000, 'sub ack');
  const res = await b.stop({ timeout: 10000 });
  const s1 = await pg.waitState(raw, (x) => x.close, 8000, 'raw close');
  const s2 = await pg.waitState(v1, (x) => x.close, 8000, 'rt.v1 close');
  eq([s1.close.code, s2.close.code], [1001, 1001], 'close codes seen by the page');
  eq([res.code, res.signal], [0, null], 'broker exit');
}, { timeout: 45000 });

t.test('the browser closes cleanly', async () => {
  if (!browserPromise) throw new Error('no browser was started');
  const br = await browserPromise;
  await br.close();
});

await t.run();

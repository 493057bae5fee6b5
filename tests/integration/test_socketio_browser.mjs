// socket.io-client's browser build (dist/socket.io.min.js) in headless Chromium, on a page from another origin:
// polling then the upgrade to WebSocket, polling only (cross-origin XHR under http.allowed_origins), subscribe,
// publish with ack, recovery after the transport drops; a page from an origin that is not allowed cannot connect.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { suite, assert, eq, freePort, hs256Token, publishOk, ROOT } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });
const SECRET = 'sio-browser-secret-0123456789abcdef';
const token = () => hs256Token(SECRET, { sub: 'web', rt: { sub: ['chat.>'], pub: ['chat.>'] } });
const CLIENT = path.join(ROOT, 'tests', 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');

async function pageServer(c) {
  const port = await freePort();
  const srv = http.createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(fs.readFileSync(CLIENT));
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><script src="/socket.io.min.js"></script><p>socket.io page</p>');
    }
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  c.defer(() => srv.close());
  return `http://127.0.0.1:${port}`;
}

async function browserPage(c, origin) {
  const browser = await launchChromium();
  c.defer(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${origin}/`, { timeout: 15000 });
  return page;
}

// Runs in the page: connect, wait for the transport wanted, subscribe, publish, read it back, drop the transport,
// get the message published while away.
async function inPage({ base, token, transports, wantUpgrade }) {
  const s = io(base, { auth: { token }, transports, reconnectionDelay: 100, reconnectionDelayMax: 300, timeout: 4000 });
  const out = {};
  const upgraded = new Promise((r) => s.io.once('open', () => { out.first = s.io.engine.transport.name; s.io.engine.once('upgrade', r); }));
  try {
    await new Promise((r, j) => { s.once('connect', r); s.once('connect_error', (e) => j(new Error(`connect_error: ${e.message}`))); });
    if (wantUpgrade) await upgraded;
    out.transport = s.io.engine.transport.name;
    out.sub = await s.timeout(4000).emitWithAck('subscribe', 'chat.web');
    const got = new Promise((r) => s.once('message', (d, m) => r([d, m])));
    out.pub = await s.timeout(4000).emitWithAck('publish', 'chat.web', { from: 'page' });
    out.got = await got;
    const back = new Promise((r) => s.once('connect', r));
    const missed = new Promise((r) => s.once('message', (d, m) => r([d, m])));
    s.io.engine.close();
    await fetch(`${base}/pub/chat.web`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: 'while away' });
    await back;
    out.recovered = s.recovered;
    out.missed = await missed;
    return out;
  } finally { s.close(); }
}

t.test('Chromium, page on another origin: default client (polling, upgrade) and polling only', async (c) => {
  const origin = await pageServer(c);
  const b = await c.broker({ config: {
    plugins: { load: ['websocket', 'socketio'] }, http: { allowed_origins: [origin] },
    auth: { anonymous: { subscribe: [], publish: [] }, jwt: { secret: SECRET } },
  } });
  const page = await browserPage(c, origin);
  for (const [transports, wantUpgrade, want] of [[['polling', 'websocket'], true, 'websocket'], [['polling'], false, 'polling']]) {
    const r = await page.evaluate(inPage, { base: b.base, token: token(), transports, wantUpgrade });
    eq([r.first, r.transport], ['polling', want], `${transports}: transports`);
    assert(r.sub.ok && /:\d+$/.test(r.pub.id), `${transports}: acks ${JSON.stringify([r.sub, r.pub])}`);
    eq(r.got, [{ from: 'page' }, { id: r.pub.id, topic: 'chat.web' }], `${transports}: message`);
    eq([r.recovered, r.missed[0]], [true, 'while away'], `${transports}: recovery`);
  }
  // the broker answered the page's origin, not '*'
  const h = await fetch(`${b.base}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
  eq(h.headers.get('access-control-allow-origin'), origin, 'CORS header for the allowed origin');
  void publishOk;
});

t.test('Chromium: a page whose origin is not allowed cannot connect', async (c) => {
  const origin = await pageServer(c);
  const b = await c.broker({ config: {
    plugins: { load: ['websocket', 'socketio'] }, http: { allowed_origins: ['https://elsewhere.example'] },
    auth: { anonymous: { subscribe: [], publish: [] }, jwt: { secret: SECRET } },
  } });
  const page = await browserPage(c, origin);
  const err = await page.evaluate(({ base, token }) => new Promise((r) => {
    const s = io(base, { auth: { token }, reconnection: false, timeout: 3000 });
    s.once('connect', () => { s.close(); r('connected'); });
    s.once('connect_error', (e) => { s.close(); r(e.message); });
  }), { base: b.base, token: token() });
  assert(err !== 'connected' && /poll|error/i.test(err), `refused origin: ${err}`);
});

t.run();

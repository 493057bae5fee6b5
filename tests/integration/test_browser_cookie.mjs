// Cookie tokens in a real browser (headless Chromium): a page of the broker's own origin that holds the
// rt_token cookie subscribes over WebSocket, EventSource and long-poll fetch and publishes with a POST,
// as before; a page of another origin on the same host (another port: cookies ignore ports, so Chromium
// sends the cookie, SameSite=Lax included) is refused: WebSocket close 4001, its no-cors POST not
// published, nothing of the victim's topic received. What Chromium sends (Origin, Sec-Fetch-Site) is
// what the broker decides on.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { suite, assert, eq, publishOk, mkTemp } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });
const SECRET = 'browser-cookie-secret-0123456789abcdef';
const TOPIC = 'private.victim.inbox';

function jwt(sub, rt) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, iat: now, exp: now + 3600, rt })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}
const VICTIM = jwt('victim', { sub: ['private.victim.>'], pub: ['private.victim.>'] });
const PUBLISHER = { Authorization: `Bearer ${jwt('publisher', { sub: ['>'], pub: ['>'] })}` };

function webRoot() {
  const dir = mkTemp('rtb-browser-cookie-');
  fs.writeFileSync(path.join(dir, 'page.html'), '<!doctype html><meta charset="utf-8"><title>cookie</title>\n');
  return dir;
}

/** In the page: WebSocket, EventSource and a long-poll to `target` (a base URL), with the cookie; a POST. */
async function tryAll(p, target) {
  return p.evaluate(async (base) => {
    const out = { ws: null, wsMsgs: [], es: null, esMsgs: [], poll: null, pub: null };
    const ws = new WebSocket(`${base.replace('http', 'ws')}/sub/private.victim.inbox`);
    ws.onmessage = (e) => out.wsMsgs.push(String(e.data));
    ws.onclose = (e) => { out.ws = `close ${e.code}`; };
    ws.onopen = () => { out.ws = 'open'; };
    const es = new EventSource(`${base}/sub/private.victim.inbox`, { withCredentials: true });
    es.onopen = () => { out.es = 'open'; };
    es.onerror = () => { if (out.es !== 'open') out.es = 'error'; es.close(); };
    es.onmessage = (e) => out.esMsgs.push(e.data);
    try {
      const r = await fetch(`${base}/poll?topic=private.victim.inbox&timeout=0`, { credentials: 'include' });
      out.poll = r.status;
    } catch (e) { out.poll = `fetch failed: ${e.message}`; }
    try {
      const r = await fetch(`${base}/pub/private.victim.inbox`, { method: 'POST', credentials: 'include', mode: 'no-cors', body: 'from-page', headers: { 'Content-Type': 'text/plain' } });
      out.pub = r.type === 'opaque' ? 'opaque' : r.status;
    } catch (e) { out.pub = `fetch failed: ${e.message}`; }
    await new Promise((r) => setTimeout(r, 700));
    window.__rt = { ws, es, out };
    return out;
  }, target);
}
const collect = (p) => p.evaluate(() => { const { ws, es, out } = window.__rt; ws.close(); es.close(); return out; });

// no anonymous access (the test harness opens everything by default): only the cookie can grant the topic
const CONFIG = () => ({ auth: { jwt: { secret: SECRET }, anonymous: { subscribe: [], publish: [] } },
  plugins: { load: ['sse', 'longpoll', 'websocket'] }, web: { root: webRoot() } });

let browserPromise = null;
async function page(c, b, origin) {
  browserPromise ||= launchChromium();
  const ctx = await (await browserPromise).newContext();
  c.defer(() => ctx.close());
  // the victim's session cookie for the broker's host; any port of 127.0.0.1 is the same site
  await ctx.addCookies([{ name: 'rt_token', value: VICTIM, domain: '127.0.0.1', path: '/', sameSite: 'Lax' }]);
  const p = await ctx.newPage();
  const r = await p.goto(`${origin}/page.html`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET ${origin}/page.html: ${r && r.status()}`);
  return p;
}

async function history(b) {
  const r = await fetch(`${b.base}/history/${TOPIC}?limit=100`, { headers: PUBLISHER });
  return (await r.json()).messages.map((m) => m.data);
}

t.test('same-origin page with the cookie: WebSocket, EventSource, long-poll and POST work', async (c) => {
  const b = await c.broker({ config: CONFIG() });
  const p = await page(c, b, b.base);
  const first = await tryAll(p, b.base);
  await publishOk(b.base, TOPIC, 'for-the-victim', { headers: PUBLISHER });
  await new Promise((r) => setTimeout(r, 500));
  const out = await collect(p);
  eq([first.ws, first.es, first.poll, first.pub], ['open', 'open', 200, 200], 'WebSocket, EventSource, long-poll, POST');
  assert(out.wsMsgs.includes('for-the-victim') && out.esMsgs.includes('for-the-victim'), `messages: ws ${out.wsMsgs}, sse ${out.esMsgs}`);
  assert((await history(b)).includes('from-page'), 'the same-origin POST was published');
});

t.test('another origin (another port of the host) with the same cookie: WebSocket close 4001, EventSource error, long-poll refused, POST not published', async (c) => {
  const b = await c.broker({ config: CONFIG() });
  const other = await c.broker({ config: CONFIG() }); // serves the foreign page
  const p = await page(c, b, other.base);
  await tryAll(p, b.base);
  await publishOk(b.base, TOPIC, 'for-the-victim', { headers: PUBLISHER });
  await new Promise((r) => setTimeout(r, 500));
  const out = await collect(p);
  eq([out.ws, out.es], ['close 4001', 'error'], `WebSocket and EventSource refused (${JSON.stringify(out)})`);
  eq([out.wsMsgs, out.esMsgs], [[], []], "nothing of the victim's topic reached the page");
  assert(out.poll === 401 || /fetch failed/.test(String(out.poll)), `long-poll: ${out.poll}`);
  assert(!(await history(b)).includes('from-page'), 'the cross-origin POST must not be published');
});

t.test('the browser closes cleanly', async () => {
  if (browserPromise) await (await browserPromise).close();
});

await t.run();

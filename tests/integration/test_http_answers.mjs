// What the HTTP layer answers outside the API's handlers: a path nothing serves is a JSON 404 like every other
// refusal, status lines carry their real reason phrases (406 Not Acceptable, not "Status"), and the demo and
// status pages load without a single 404 (their icon is web/favicon.svg, linked, so no /favicon.ico is asked).
import net from 'node:net';
import path from 'node:path';
import { suite, assert, eq, expectError, request, ROOT, trunc } from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });

/** The status line of a raw HTTP/1.1 GET. */
function statusLine(port, p, headers = '') {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`GET ${p} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`));
    let buf = '';
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no answer to GET ${p}`)); });
    s.on('data', (d) => { buf += d; });
    s.on('end', () => resolve(buf.split('\r\n')[0]));
    s.on('error', reject);
  });
}

t.test('a path nothing serves is a JSON 404 not_found, with a web root and without one', async (c) => {
  for (const root of [path.join(ROOT, 'web'), '']) {
    const b = await c.broker({ config: { web: { root } } });
    for (const p of ['/definitely-not-here.html', '/favicon.ico', '/api/v1/x']) {
      const r = await request(b.base, 'GET', p);
      expectError(r, 404, 'not_found', `GET ${p} (web.root "${root}")`);
      assert(/^application\/json/.test(r.headers.get('content-type')), `GET ${p}: content-type ${r.headers.get('content-type')}`);
      assert(/web\.root/.test(r.json.message), `the message says where static files come from: ${trunc(r.text)}`);
    }
    eq(await statusLine(b.port, '/nothing'), 'HTTP/1.1 404 Not Found', 'status line');
    await b.stop();
  }
});

t.test('status lines carry the real reason phrase: 406 Not Acceptable, 413 Content Too Large', async (c) => {
  const b = await c.broker({ config: { plugins: { load: ['sse'] } } });
  eq(await statusLine(b.port, '/sub/chat.room1'), 'HTTP/1.1 406 Not Acceptable', 'a subscribe no loaded transport takes');
  const r = await request(b.base, 'GET', '/sub/chat.room1');
  expectError(r, 406, 'not_acceptable', 'GET /sub without a transport');
  const big = await new Promise((resolve, reject) => {
    const body = 'x'.repeat(70000);
    const s = net.connect(b.port, '127.0.0.1', () => s.write(`POST /pub/chat.room1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`));
    let buf = '';
    s.on('data', (d) => { buf += d; });
    s.on('end', () => resolve(buf.split('\r\n')[0]));
    s.on('error', reject);
  });
  eq(big, 'HTTP/1.1 413 Content Too Large', 'a body over limits.max_message_bytes');
});

t.test('the demo and the status page load without any 404; the icon is served', async (c) => {
  const b = await c.broker({ config: { web: { root: path.join(ROOT, 'web') } } });
  const icon = await request(b.base, 'GET', '/favicon.svg');
  eq(icon.status, 200, 'GET /favicon.svg');
  assert(/^image\/svg\+xml/.test(icon.headers.get('content-type')), `content-type ${icon.headers.get('content-type')}`);
  const br = await launchChromium();
  c.defer(() => br.close());
  for (const page of ['/', '/status.html']) {
    const ctx = await br.newContext();
    const p = await ctx.newPage();
    const bad = [];
    p.on('response', (res) => { if (res.status() >= 400) bad.push(`${res.status()} ${res.url()}`); });
    const r = await p.goto(b.base + page, { timeout: 15000, waitUntil: 'load' });
    eq(r.status(), 200, `GET ${page}`);
    await p.waitForTimeout(800); // the icon is fetched after load
    const asked = await p.evaluate(() => document.querySelector('link[rel=icon]')?.href);
    assert(asked && asked.endsWith('/favicon.svg'), `${page} links its icon: ${asked}`);
    assert(bad.length === 0, `${page} made requests that failed: ${bad.join(', ')}`);
    await ctx.close();
  }
}, { timeout: 40000 });

await t.run();

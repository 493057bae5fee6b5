// Headless Chromium (playwright-core, /usr/bin/chromium) on a page served over a TLS listener: the page
// arrives over HTTP/2; ten EventSources and a long-poll fetch on the page's origin all stay open at once
// (over HTTP/1.1 a browser holds at most six connections per host, so the seventh would wait) and share the
// h2 connection; a wss:// WebSocket from the same page (HTTP/1.1, its own connection) receives too.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  suite, assert, eq, mkTemp, freePort, waitFor, curl, trunc, ROOT,
} from './lib.mjs';
import { launchChromium } from './browserlib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);

const t = suite(import.meta.url, { hardTimeoutMs: 100000 });

function certificate() {
  const dir = mkTemp('rtb-tls-br-');
  const cert = path.join(dir, 'cert.pem'); const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>rtbroker over TLS</title><p>ok</p>\n');
  return { dir, cert, key };
}

t.test('a page over HTTP/2: 10 EventSources + a long-poll at once on one origin, and a wss WebSocket', async (c) => {
  const files = certificate();
  let tlsPort;
  const b = await c.broker({
    config: { web: { root: files.dir } },
    listen: async (port) => {
      tlsPort = await freePort();
      return [`127.0.0.1:${port}`, { address: `127.0.0.1:${tlsPort}`, tls: { cert: files.cert, key: files.key } }];
    },
  });
  const origin = `https://localhost:${tlsPort}`;
  const browser = await launchChromium();
  c.defer(() => browser.close());
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true }); // the self-signed test certificate
  const page = await ctx.newPage();
  const r = await page.goto(`${origin}/index.html`, { timeout: 15000 });
  eq(r.status(), 200, 'the page');
  const sec = await r.securityDetails();
  assert(sec && /^TLS 1\.[23]$/.test(sec.protocol), `page TLS: ${JSON.stringify(sec)}`);
  eq(await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h2', 'the page over HTTP/2');

  await page.evaluate(() => {
    window.got = { es: [], open: 0, ws: [], poll: null, errors: [] };
    window.es = [];
    for (let i = 0; i < 10; i++) {
      const es = new EventSource('/sub/br.a');
      es.onopen = () => { window.got.open++; };
      es.onmessage = (e) => window.got.es.push([i, e.data]);
      es.onerror = () => window.got.errors.push(`es${i} ${es.readyState}`);
      window.es.push(es);
    }
    const ws = new WebSocket(`wss://${location.host}/sub/br.a`);
    ws.onopen = () => { window.got.wsOpen = true; };
    ws.onmessage = (e) => window.got.ws.push(e.data);
    ws.onerror = () => window.got.errors.push('ws error');
    window.ws = ws;
  });
  const state = () => page.evaluate(() => window.got);
  let last = null;
  await waitFor(async () => { last = await state(); return last.open === 10 && last.wsOpen; }, 10000,
    'all 10 EventSources and the WebSocket open', () => trunc(JSON.stringify(last)));
  // a long-poll on the same origin while the ten streams are open: over HTTP/1.1 it would queue behind them
  await page.evaluate(() => {
    fetch('/poll?topic=br.a&timeout=20').then((x) => x.json()).then((j) => { window.got.poll = j; },
      (e) => window.got.errors.push(`poll ${e}`));
  });
  await waitFor(async () => {
    const m = await curl(['-s', `${b.base}/metrics`]);
    return /rtbroker_connections\{transport="longpoll"\} 1/.test(m.stdout);
  }, 8000, 'the long-poll reaches the broker while the streams are open');
  const p = await curl(['-s', '-d', 'to the browser', `${b.base}/pub/br.a`]);
  assert(p.code === 0 && p.stdout.includes('"topic":"br.a"'), `publish: ${p.stdout}`);
  await waitFor(async () => { last = await state(); return last.es.length === 10 && last.ws.length === 1 && last.poll; }, 10000,
    'every EventSource, the long-poll and the WebSocket got the message', () => trunc(JSON.stringify(last)));
  eq([...new Set(last.es.map((x) => x[1]))], ['to the browser'], 'EventSource data');
  eq(last.es.map((x) => x[0]).sort((a, z) => a - z), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each EventSource once');
  eq(last.ws, ['to the browser'], 'WebSocket data');
  eq(last.poll.messages.map((m) => m.data), ['to the browser'], 'long-poll answer');
  eq(last.errors, [], 'no errors on the page');
  const protocols = await page.evaluate(() => [...new Set(performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/poll') || e.name.includes('/sub/')).map((e) => e.nextHopProtocol))]);
  assert(protocols.length > 0 && protocols.every((x) => x === 'h2'), `resources not over h2: ${protocols}`);
  await page.evaluate(() => { window.es.forEach((e) => e.close()); window.ws.close(); });
});

await t.run();

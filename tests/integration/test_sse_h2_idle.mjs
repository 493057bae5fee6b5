// Idle SSE streams over HTTP/2 (TLS, as browsers open them): what they cost and that they still work.
// 1,000 streams, 100 on each connection: every one gets its head and first bytes, costs at most
// MAX_PER_STREAM of the broker's RSS (h2o 2.2.5 alone keeps about 5.4 KB per stream: its stream object with
// the request and the request's 4 KB pool chunk, tests/bench/h2floor.c; the broker's own part is under 1 KB),
// then a message reaches every stream, a heartbeat follows, and a drain ends each with rt.shutdown.
// 300 connections with one stream each (a browser tab's) cost at most MAX_PER_CONN each: OpenSSL's read and
// write buffers are released between records (about 40 KB per connection before, 26 KB after).
// The memory bounds are skipped under sanitizers (their redzones and quarantine change every figure).
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { suite, assert, eq, mkTemp, freePort, publishOk, sleep, waitFor, SLOW } from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });
const SANITIZED = Boolean(process.env.RTB_SANITIZED);
const MAX_PER_STREAM = 7000; // bytes of RSS per idle stream, 100 per connection (5.9 KB measured; 6.2 KB before)
const MAX_PER_CONN = 34000; // bytes of RSS per connection with one idle stream (26 KB measured; 40 KB before)

const PKI = mkTemp('rtb-h2idle-');
const CERT = path.join(PKI, 'cert.pem'); const KEY = path.join(PKI, 'key.pem');
const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', KEY,
  '-out', CERT, '-days', '2', '-subj', '/CN=localhost'], { encoding: 'utf8' });
if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);

const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

async function tlsBroker(c, config = {}) {
  let tlsPort;
  const b = await c.broker({
    workers: 1,
    config: { sse: { heartbeat: '2s' }, ...config },
    listen: async (port) => {
      tlsPort = await freePort();
      return [`127.0.0.1:${port}`, { address: `127.0.0.1:${tlsPort}`, tls: { cert: CERT, key: KEY } }];
    },
  });
  b.tls = `https://127.0.0.1:${tlsPort}`;
  return b;
}

/** n SSE streams on one HTTP/2 session; resolves once each has its first bytes. Each: {status, text, ended}. */
function openStreams(c, b, p, n) {
  const s = http2.connect(b.tls, { rejectUnauthorized: false, servername: 'localhost' });
  s.on('error', () => {});
  c.defer(() => s.destroy());
  return new Promise((resolve, reject) => {
    s.on('connect', () => {
      const all = []; let left = n;
      for (let i = 0; i < n; i++) {
        const st = s.request({ ':path': p, accept: 'text/event-stream' });
        const x = { status: 0, type: '', text: '', ended: false };
        all.push(x);
        let first = true;
        st.on('response', (h) => { x.status = h[':status']; x.type = h['content-type']; });
        st.on('data', (d) => { x.text += d; if (first) { first = false; if (--left === 0) resolve(all); } });
        const end = () => { x.ended = true; if (first) reject(new Error(`stream ${i} of ${p} ended before any bytes (status ${x.status})`)); };
        st.on('end', end); st.on('close', end); st.on('error', end);
        st.end();
      }
    });
    s.on('close', () => reject(new Error('HTTP/2 session closed while opening')));
  });
}

t.test('1,000 idle SSE streams over HTTP/2 (100 per connection): cheap, and a message, a heartbeat and rt.shutdown reach each', async (c) => {
  const b = await tlsBroker(c);
  await sleep(300);
  const before = rss(b.pid);
  const sessions = [];
  for (let k = 0; k < 10; k += 5) sessions.push(...await Promise.all([0, 1, 2, 3, 4].map(() => openStreams(c, b, '/sub/h2idle.a', 100))));
  const streams = sessions.flat();
  eq(streams.length, 1000, 'streams opened');
  assert(streams.every((x) => x.status === 200 && x.type === 'text/event-stream' && x.text.includes(': ok')),
    `every stream: 200 text/event-stream with ": ok" (first: ${JSON.stringify(streams.find((x) => x.status !== 200 || !x.text.includes(': ok')))})`);
  await sleep(500);
  const per = (rss(b.pid) - before) / streams.length;
  c.info(`RSS per idle SSE stream over HTTP/2 (100 per connection): ${per.toFixed(0)} B`);
  if (!SANITIZED) assert(per <= MAX_PER_STREAM, `an idle HTTP/2 SSE stream costs at most ${MAX_PER_STREAM} B of RSS: ${per.toFixed(0)} B`);

  await publishOk(b.base, 'h2idle.a', 'after the idle');
  await waitFor(() => streams.every((x) => x.text.includes('data: after the idle')), 10000 * SLOW, 'the message on every stream',
    () => `${streams.filter((x) => !x.text.includes('data: after the idle')).length} streams without it`);
  await waitFor(() => streams.every((x) => x.text.split('data: after the idle')[1].includes(': ping')), 6000 * SLOW,
    'a heartbeat after the message on every stream');
  const stopped = b.stop();
  await waitFor(() => streams.every((x) => x.text.includes('event: rt.shutdown')), 8000 * SLOW, 'rt.shutdown on every stream',
    () => `${streams.filter((x) => !x.text.includes('event: rt.shutdown')).length} streams without it`);
  await waitFor(() => streams.every((x) => x.ended), 8000 * SLOW, 'every stream ended after rt.shutdown');
  eq((await stopped).code, 0, 'exit status after the drain');
}, { timeout: 90000 });

t.test('300 HTTP/2 connections with one idle SSE stream each: OpenSSL buffers are not kept per connection', async (c) => {
  const b = await tlsBroker(c);
  await sleep(300);
  const before = rss(b.pid);
  const streams = [];
  for (let k = 0; k < 300; k += 30) streams.push(...(await Promise.all(Array.from({ length: 30 }, () => openStreams(c, b, '/sub/h2idle.b', 1)))).flat());
  assert(streams.every((x) => x.status === 200 && x.text.includes(': ok')), 'every stream: 200 with ": ok"');
  await sleep(500);
  const per = (rss(b.pid) - before) / streams.length;
  c.info(`RSS per HTTP/2 connection with one idle SSE stream: ${per.toFixed(0)} B`);
  if (!SANITIZED) assert(per <= MAX_PER_CONN, `an HTTP/2 connection with one idle stream costs at most ${MAX_PER_CONN} B of RSS: ${per.toFixed(0)} B`);
  await publishOk(b.base, 'h2idle.b', 'still there');
  await waitFor(() => streams.every((x) => x.text.includes('data: still there')), 10000 * SLOW, 'the message on every connection');
}, { timeout: 60000 });

t.run();

// TLS listeners: HTTPS and WSS next to a plain listener, TLS 1.2 at least with AEAD ciphers, ALPN h2
// (SSE, long-poll and publishes multiplexed over one HTTP/2 connection, request bodies over the limit
// reset), certificate reload on SIGHUP without dropping connections (a broken new certificate keeps the
// old one), and startup errors for bad cert/key files that name the key. Certificates are made here with
// the openssl command: a test CA and server certificates for localhost / 127.0.0.1 signed by it.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import {
  suite, assert, eq, mkTemp, freePort, curl, openSSEh2, waitFor, sleep, runBrokerSync, toYaml, trunc, request,
} from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 180000 });

// ---------------------------------------------------------------- certificates
function openssl(args, what) {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${what}: ${r.stderr || r.error}`);
  return r.stdout;
}

const PKI = mkTemp('rtb-tls-');
const CA = { cert: path.join(PKI, 'ca.pem'), key: path.join(PKI, 'ca.key') };
openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', CA.key,
  '-out', CA.cert, '-days', '2', '-subj', '/CN=rtbroker test CA'], 'CA');
const CA_PEM = fs.readFileSync(CA.cert);
fs.writeFileSync(path.join(PKI, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
  + 'keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
let issued = 0;

/** A server certificate signed by the CA; {cert, key, serial (hex, upper case), fingerprint}. kind: 'ec' or 'rsa'. */
function issue(name = `srv${++issued}`, kind = 'ec') {
  const key = path.join(PKI, `${name}.key`); const csr = path.join(PKI, `${name}.csr`); const cert = path.join(PKI, `${name}.pem`);
  const alg = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl(['req', ...alg, '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=localhost ${name}`], 'server key');
  const serial = crypto.randomBytes(8).toString('hex').toUpperCase().replace(/^0+/, '') || '1';
  openssl(['x509', '-req', '-in', csr, '-CA', CA.cert, '-CAkey', CA.key, '-set_serial', `0x${serial}`, '-out', cert,
    '-days', '2', '-extfile', path.join(PKI, 'ext.cnf')], 'sign');
  const x = new crypto.X509Certificate(fs.readFileSync(cert));
  return { cert, key, serial: x.serialNumber.toUpperCase(), fingerprint: x.fingerprint256 };
}

/** Copies a certificate's files to where a broker's config points (atomically, as a deploy tool would). */
function install(src, dst) {
  for (const k of ['cert', 'key']) {
    fs.copyFileSync(src[k], `${dst[k]}.tmp`);
    fs.renameSync(`${dst[k]}.tmp`, dst[k]);
  }
}

// ---------------------------------------------------------------- brokers and clients
/** A broker with a plain listener (b.base) and a TLS one (b.tls = https://localhost:PORT) using files (a fresh
 * copy of a new certificate unless given). */
async function tlsBroker(c, { files, config = {}, workers } = {}) {
  const dir = mkTemp('rtb-tls-b-');
  const cur = issue();
  files ||= { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
  if (!fs.existsSync(files.cert)) install(cur, files);
  let tlsPort;
  const b = await c.broker({
    workers,
    config,
    listen: async (port) => {
      tlsPort = await freePort();
      return [`127.0.0.1:${port}`, { address: `127.0.0.1:${tlsPort}`, tls: { cert: files.cert, key: files.key } }];
    },
  });
  b.tlsPort = tlsPort;
  b.tls = `https://localhost:${tlsPort}`;
  b.files = files;
  b.cert = cur;
  return b;
}

/** A bare TLS handshake; {protocol, alpn, cipher, serial, fingerprint} or {error}. */
function handshake(port, opts = {}) {
  return new Promise((resolve) => {
    const s = tls.connect({ ...(port ? { host: '127.0.0.1', port } : {}), servername: 'localhost', ca: CA_PEM, ...opts });
    const to = setTimeout(() => { s.destroy(); resolve({ error: 'timeout' }); }, 5000);
    s.once('secureConnect', () => {
      clearTimeout(to);
      const pc = s.getPeerCertificate();
      resolve({ protocol: s.getProtocol(), alpn: s.alpnProtocol, cipher: s.getCipher().name, serial: String(pc.serialNumber).toUpperCase(),
        fingerprint: pc.fingerprint256 });
      s.end();
    });
    s.once('error', (e) => { clearTimeout(to); resolve({ error: `${e.code || ''} ${e.message}` }); });
  });
}

function h2connect(c, b) {
  const s = http2.connect(b.tls, { ca: CA_PEM });
  s.on('error', () => {});
  c.defer(() => s.destroy());
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One request on an h2 session; {status, headers, text, json, rstCode}. */
function h2req(session, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const st = session.request({ ':method': method, ':path': p, ...headers });
    const chunks = []; let status = 0; let hdrs = {};
    st.on('response', (h) => { status = h[':status']; hdrs = h; });
    st.on('data', (d) => chunks.push(d));
    st.on('error', () => {});
    st.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json = null; try { json = JSON.parse(text); } catch {}
      resolve({ status, headers: hdrs, text, json, rstCode: st.rstCode });
    });
    st.setTimeout(20000, () => { st.close(); reject(new Error(`h2 ${method} ${p}: timed out`)); });
    if (body !== undefined) st.end(body); else st.end();
  });
}

function wss(c, b, p, protocols, opts = {}) {
  const ws = new WebSocket(`wss://localhost:${b.tlsPort}${p}`, protocols, { ca: CA_PEM, ...opts });
  c.defer(() => ws.terminate());
  const msgs = [];
  ws.on('message', (d) => msgs.push(String(d)));
  ws.on('error', () => {});
  ws.msgs = msgs;
  ws.closed = new Promise((r) => ws.on('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const logHas = (b, re) => re.test(fs.readFileSync(b.logPath, 'utf8'));
const countIn = (b, re) => (fs.readFileSync(b.logPath, 'utf8').match(new RegExp(re.source, 'g')) || []).length;
async function sighup(b, re, label) {
  const before = countIn(b, re);
  process.kill(b.pid, 'SIGHUP');
  await waitFor(() => countIn(b, re) > before, 5000, label, () => b.log().split('\n').slice(-5).join(' | '));
}

async function connections(b, transport) {
  const m = await request(b.base, 'GET', '/metrics');
  const l = m.text.split('\n').find((x) => x.startsWith(`rtbroker_connections{transport="${transport}"}`));
  return l ? Number(l.split(' ').pop()) : NaN;
}

// ---------------------------------------------------------------- cases
t.test('HTTPS publish with curl --cacert; the plain listener serves at the same time', async (c) => {
  const b = await tlsBroker(c);
  const r = await curl(['-sS', '--cacert', CA.cert, '-d', 'over tls', `${b.tls}/pub/tls.a`]);
  assert(r.code === 0, `curl https: exit ${r.code} ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  eq(j.topic, 'tls.a', 'publish answer over https');
  const p = await curl(['-sS', '-d', 'plain', `${b.base}/pub/tls.a`]);
  assert(p.code === 0 && JSON.parse(p.stdout).topic === 'tls.a', `plain publish: ${p.stdout} ${p.stderr}`);
  const h = await request(b.base, 'GET', `/history/tls.a`);
  eq(h.json.messages.map((m) => m.data), ['over tls', 'plain'], 'both publishes in history');
  // really TLS: without the CA curl refuses the certificate, and plain HTTP on the TLS port is no answer
  const v = await curl(['-sS', `${b.tls}/healthz`]);
  assert(v.code === 60, `curl without --cacert: expected exit 60 (certificate not trusted), got ${v.code} ${v.stderr}`);
  const plain = await curl(['-sS', '--max-time', '3', `http://127.0.0.1:${b.tlsPort}/healthz`]);
  assert(plain.code !== 0 || !plain.stdout.includes('ok'), `plain HTTP on the TLS port answered: ${plain.stdout}`);
  assert(logHas(b, new RegExp(`listening on http://127\\.0\\.0\\.1:${b.port}, https://127\\.0\\.0\\.1:${b.tlsPort}`)),
    'the start line lists both listeners with their schemes');
  assert(logHas(b, new RegExp(`TLS on 127\\.0\\.0\\.1:${b.tlsPort}: certificate .*serial ${b.cert.serial}`)),
    'the start log names the certificate and its serial');
});

t.test('TLS 1.0 and 1.1 are refused, 1.2 (ECDHE + AEAD only) and 1.3 accepted', async (c) => {
  const b = await tlsBroker(c);
  // the client may offer old versions (SECLEVEL=0), so a refusal comes from the server. (h2o 2.2.5 closes a failed
  // handshake without sending OpenSSL's alert: the client sees the connection end, not "protocol version".)
  for (const v of ['TLSv1', 'TLSv1.1']) {
    const r = await handshake(b.tlsPort, { minVersion: 'TLSv1', maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0' });
    assert(r.error, `${v}: the handshake succeeded (${JSON.stringify(r)})`);
    assert(!/certificate|self.signed|timeout/i.test(r.error), `${v}: refused for another reason: ${r.error}`);
  }
  const v11 = await curl(['-sS', '--cacert', CA.cert, '--tls-max', '1.1', `${b.tls}/healthz`]);
  assert(v11.code !== 0, `curl --tls-max 1.1 succeeded: ${v11.stdout}`);
  const r12 = await handshake(b.tlsPort, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
  eq(r12.protocol, 'TLSv1.2', `TLS 1.2 handshake (${r12.error || ''})`);
  assert(/^ECDHE-.*(GCM|CHACHA20)/.test(r12.cipher), `TLS 1.2 cipher ${r12.cipher} is not ECDHE with AEAD`);
  const cbc = await handshake(b.tlsPort, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA' });
  assert(cbc.error, `a CBC-only TLS 1.2 client was accepted with ${cbc.cipher}`);
  const r13 = await handshake(b.tlsPort, { minVersion: 'TLSv1.3' });
  eq(r13.protocol, 'TLSv1.3', `TLS 1.3 handshake (${r13.error || ''})`);
  for (const max of ['1.2', '1.3']) {
    const r = await curl(['-sS', '--cacert', CA.cert, `--tlsv${max}`, '--tls-max', max, `${b.tls}/healthz`]);
    assert(r.code === 0 && r.stdout.trim() === 'ok', `curl TLS ${max}: exit ${r.code} ${r.stdout} ${r.stderr}`);
  }
});

t.test('ALPN: h2 for clients that offer it, http/1.1 otherwise', async (c) => {
  const b = await tlsBroker(c);
  const h2 = await curl(['-sS', '--cacert', CA.cert, '--http2', '-o', '/dev/null', '-w', '%{http_version}', `${b.tls}/healthz`]);
  eq(h2.stdout, '2', `curl --http2 (${h2.stderr})`);
  const h1 = await curl(['-sS', '--cacert', CA.cert, '--http1.1', '-o', '/dev/null', '-w', '%{http_version}', `${b.tls}/healthz`]);
  eq(h1.stdout, '1.1', `curl --http1.1 (${h1.stderr})`);
  eq((await handshake(b.tlsPort, { ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'h2', 'ALPN with h2 offered');
  eq((await handshake(b.tlsPort, { ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1', 'ALPN with http/1.1 only');
  eq((await handshake(b.tlsPort, {})).alpn, false, 'no ALPN offered: none chosen');
  // the plain listener still speaks HTTP/1.1 by default
  const p = await curl(['-sS', '-o', '/dev/null', '-w', '%{http_version}', `${b.base}/healthz`]);
  eq(p.stdout, '1.1', 'plain listener');
});

t.test('SSE streams, a long-poll and publishes multiplexed over ONE HTTP/2 connection', async (c) => {
  const b = await tlsBroker(c, { config: { history: { max_messages: 1000 } } });
  const s = await h2connect(c, b);
  eq(s.alpnProtocol, 'h2', 'negotiated protocol');
  const sockets = new Set([s.socket]);
  const a = await openSSEh2(s, '/sub/mux.a');
  const w = await openSSEh2(s, '/sse?topic=mux.*&envelope=1');
  eq([a.status, w.status], [200, 200], 'SSE status over h2');
  await a.waitOk(); await w.waitOk();
  const lp = h2req(s, 'GET', '/poll?topic=mux.b&timeout=20');
  await waitFor(async () => (await connections(b, 'longpoll')) === 1, 5000, 'the long-poll is held');
  eq(await connections(b, 'sse'), 2, 'two SSE subscribers');
  // publish over the same connection
  const p1 = await h2req(s, 'POST', '/pub/mux.a', 'one', { 'content-type': 'text/plain' });
  eq(p1.status, 200, `publish over h2: ${p1.text}`);
  const p2 = await h2req(s, 'POST', '/pub/mux.b', 'two');
  eq(p2.status, 200, `publish over h2: ${p2.text}`);
  const answer = await lp;
  eq(answer.status, 200, 'long-poll over h2');
  eq(answer.json.messages.map((m) => m.data), ['two'], 'long-poll answer');
  await a.waitMessages(1, 5000);
  eq(a.messages.map((m) => m.data), ['one'], 'SSE mux.a');
  await w.waitMessages(2, 5000);
  eq(w.messages.map((m) => JSON.parse(m.data).data), ['one', 'two'], 'SSE mux.* (envelopes)');
  // a burst: every event arrives, in order, on both streams (one h2o_send in flight per stream)
  const N = 300;
  for (let i = 0; i < N; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, k) => h2req(s, 'POST', '/pub/mux.a', `m${i + k}`)));
  }
  await a.waitMessages(1 + N, 15000);
  await w.waitMessages(2 + N, 15000);
  const seqs = a.messages.map((m) => BigInt(m.id.split(':')[1]));
  assert(seqs.every((x, i) => i === 0 || x > seqs[i - 1]), 'ids increase on the stream');
  eq(new Set(a.messages.slice(1).map((m) => m.data)).size, N, 'every burst message once');
  // cancelling one stream (RST_STREAM) ends that subscriber only; the other streams on the connection go on
  a.close();
  await waitFor(async () => (await connections(b, 'sse')) === 1, 5000, 'the cancelled SSE subscriber is gone');
  const before = w.messages.length;
  eq((await h2req(s, 'POST', '/pub/mux.c', 'after cancel')).status, 200, 'publish after cancel');
  await w.waitMessages(before + 1, 5000);
  eq(JSON.parse(w.messages.at(-1).data).data, 'after cancel', 'the remaining stream got it');
  sockets.add(s.socket);
  eq(sockets.size, 1, 'one TCP connection throughout');
  // shutdown over h2: the stream ends with rt.shutdown
  const stopped = b.stop();
  await w.waitFor((x) => x.events.some((e) => e.event === 'rt.shutdown'), 8000, 'rt.shutdown over h2');
  const r = await stopped;
  eq(r.code, 0, 'exit status after SIGTERM');
});

t.test('HTTP/2 request bodies: over the message limit 413, far over it RST_STREAM, the connection lives on', async (c) => {
  const b = await tlsBroker(c, { config: { limits: { max_message_bytes: 1024 } } });
  const s = await h2connect(c, b);
  const big = await h2req(s, 'POST', '/pub/body.a', 'x'.repeat(2048));
  eq(big.status, 413, `a 2 KiB body with a 1 KiB limit: ${big.text}`);
  eq(big.json && big.json.error, 'too_large', 'error code');
  const huge = await h2req(s, 'POST', '/pub/body.a', Buffer.alloc(3 << 20, 0x61));
  c.info(`3 MiB body over h2: status ${huge.status}, RST_STREAM code ${huge.rstCode}`);
  assert(huge.status !== 200, `a 3 MiB body was accepted: ${huge.status}`);
  assert(huge.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || huge.status === 413,
    `a 3 MiB body: expected RST_STREAM REFUSED_STREAM (7) or 413, got status ${huge.status} rst ${huge.rstCode}`);
  const ok = await h2req(s, 'POST', '/pub/body.a', 'small');
  eq(ok.status, 200, `the same connection after the reset: ${ok.text}`);
  assert(!s.destroyed && !s.closed, 'the session is still open');
});

t.test('WSS with the ws package: raw and rt.v1 (with permessage-deflate) receive and publish', async (c) => {
  const b = await tlsBroker(c, { config: { websocket: { deflate_threshold: 16 } } });
  const raw = await wss(c, b, '/sub/wss.a', undefined, { ALPNProtocols: ['http/1.1'] });
  const v1 = await wss(c, b, '/ws', ['rt.v1'], { perMessageDeflate: true });
  eq(raw._socket.getProtocol && raw._socket.getProtocol().startsWith('TLS'), true, 'the raw WebSocket runs over TLS');
  assert(String(v1.extensions).includes('permessage-deflate'), `permessage-deflate not negotiated: ${v1.extensions}`);
  v1.send(JSON.stringify({ op: 'sub', topic: 'wss.*', ref: 1 }));
  await waitFor(() => v1.msgs.length >= 1, 5000, 'sub ack');
  eq(JSON.parse(v1.msgs[0]), { type: 'ok', ref: 1 }, 'sub ack');
  const body = 'hello over wss '.repeat(20);
  const r = await curl(['-sS', '--cacert', CA.cert, '-d', body, `${b.tls}/pub/wss.a`]);
  assert(r.code === 0, `curl: ${r.stderr}`);
  await waitFor(() => raw.msgs.length >= 1 && v1.msgs.length >= 2, 5000, 'delivery over wss');
  eq(raw.msgs[0], body, 'raw frame');
  eq(JSON.parse(v1.msgs[1]).data, body, 'rt.v1 message');
  v1.send(JSON.stringify({ op: 'pub', topic: 'wss.a', data: 'from the socket', ref: 2 }));
  await waitFor(() => raw.msgs.length >= 2, 5000, 'a publish over wss reaches the raw subscriber');
  eq(raw.msgs[1], 'from the socket', 'published over wss');
  assert(v1.msgs.some((m) => { const j = JSON.parse(m); return j.type === 'ok' && j.ref === 2 && typeof j.id === 'string'; }),
    `no pub ack: ${trunc(v1.msgs.join(' | '))}`);
  // a 60 KiB message (many TLS records) and a burst of 200 (batched socket writes) arrive intact and in order
  const large = crypto.randomBytes(30 * 1024).toString('hex');
  eq((await h2req(await h2connect(c, b), 'POST', '/pub/wss.a', large)).status, 200, 'publish 60 KiB');
  const s = await h2connect(c, b);
  for (let i = 0; i < 200; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => h2req(s, 'POST', '/pub/wss.b', `b${i + k}`)));
  await waitFor(() => raw.msgs.length >= 3 && v1.msgs.filter((m) => JSON.parse(m).topic === 'wss.b').length >= 200, 10000,
    'the large message and the burst over wss');
  assert(raw.msgs[2] === large, `the 60 KiB message arrived changed (${raw.msgs[2].length} chars)`);
  const burst = v1.msgs.map((m) => JSON.parse(m)).filter((m) => m.topic === 'wss.b');
  const seqs = burst.map((m) => BigInt(m.id.split(':')[1]));
  assert(seqs.every((x, i) => i === 0 || x > seqs[i - 1]), 'burst ids increase');
  eq(new Set(burst.map((m) => m.data)).size, 200, 'every burst message once');
  raw.close(1000); v1.close(1000);
  eq(await raw.closed, 1000, 'close code');
});

t.test('SIGHUP reloads the certificate: open SSE (h2) and WSS connections stay, new handshakes get the new one', async (c) => {
  const b = await tlsBroker(c);
  const first = await handshake(b.tlsPort);
  eq(first.serial, b.cert.serial, 'the first certificate is served');
  const s = await h2connect(c, b);
  const sse = await openSSEh2(s, '/sub/reload.a');
  await sse.waitOk();
  const ws = await wss(c, b, '/sub/reload.a');
  const next = issue();
  assert(next.fingerprint !== first.fingerprint, 'a different certificate');
  install(next, b.files);
  await sighup(b, /SIGHUP: TLS on .*certificate reloaded/, 'the reload log line');
  assert(logHas(b, new RegExp(`certificate reloaded, .*serial ${next.serial}`)), 'the reload log names the new serial');
  await waitFor(async () => (await handshake(b.tlsPort)).serial === next.serial, 5000, 'new handshakes get the new certificate');
  const h = await handshake(b.tlsPort, { ALPNProtocols: ['h2'] });
  eq([h.fingerprint, h.alpn], [next.fingerprint, 'h2'], 'new certificate, ALPN still h2');
  // the connections opened before are still there and keep receiving
  const r = await curl(['-sS', '--cacert', CA.cert, '-d', 'after reload', `${b.tls}/pub/reload.a`]);
  assert(r.code === 0, `publish over a new TLS connection: ${r.stderr}`);
  await sse.waitMessages(1, 5000);
  eq(sse.messages[0].data, 'after reload', 'the SSE stream on the old connection');
  await waitFor(() => ws.msgs.length >= 1, 5000, 'the WSS connection');
  eq(ws.msgs[0], 'after reload', 'WSS message');
  eq(s.socket.getPeerCertificate().fingerprint256, first.fingerprint, 'the old connection still has the old certificate');
  const again = await h2req(s, 'POST', '/pub/reload.a', 'new stream, old connection');
  eq(again.status, 200, 'a new stream on the old connection');
  await sse.waitMessages(2, 5000);
  // a second reload in a row (the first old context is released later, after the handshake timeout)
  const third = issue();
  install(third, b.files);
  await sighup(b, /SIGHUP: TLS on .*certificate reloaded/, 'the second reload');
  await waitFor(async () => (await handshake(b.tlsPort)).serial === third.serial, 5000, 'the third certificate');
});

t.test('a connection accepted before a reload but silent until after it completes its handshake (old certificate)', async (c) => {
  const b = await tlsBroker(c, { workers: 1 });
  // h2o binds a connection to the context at accept and creates its SSL at the first bytes: the old context must
  // still be alive then (make asan turns a premature free into a report)
  const raw = net.connect(b.tlsPort, '127.0.0.1');
  c.defer(() => raw.destroy());
  await new Promise((r, j) => { raw.once('connect', r); raw.once('error', j); });
  await sleep(100);
  const next = issue();
  install(next, b.files);
  await sighup(b, /SIGHUP: TLS on .*certificate reloaded/, 'the reload');
  await waitFor(async () => (await handshake(b.tlsPort)).serial === next.serial, 5000, 'the worker switched');
  const h = await handshake(undefined, { socket: raw });
  eq(h.serial, b.cert.serial, `the early connection's handshake (${h.error || ''})`);
  eq((await handshake(b.tlsPort)).serial, next.serial, 'a new connection');
});

t.test('SIGHUP with a broken certificate or a key that does not match keeps the old one and logs why', async (c) => {
  const b = await tlsBroker(c);
  const s = await h2connect(c, b);
  const sse = await openSSEh2(s, '/sub/broken.a');
  await sse.waitOk();
  fs.writeFileSync(b.files.cert, 'not a certificate\n');
  await sighup(b, /SIGHUP: TLS on .*keeping the certificate in use/, 'the error line');
  assert(logHas(b, /error: SIGHUP: TLS on .*listen\[1\]\.tls\.cert: .*not a PEM certificate.*keeping the certificate in use/),
    `the error names listen[1].tls.cert: ${b.log().split('\n').slice(-3).join(' | ')}`);
  eq((await handshake(b.tlsPort)).serial, b.cert.serial, 'still the old certificate');
  const other = issue();
  fs.copyFileSync(b.cert.cert, b.files.cert);
  fs.copyFileSync(other.key, b.files.key);
  await sighup(b, /does not match the certificate/, 'the mismatch error');
  assert(logHas(b, /listen\[1\]\.tls\.key: .*does not match the certificate/), 'the error names listen[1].tls.key');
  eq((await handshake(b.tlsPort)).serial, b.cert.serial, 'still the old certificate after the mismatch');
  fs.rmSync(b.files.key);
  await sighup(b, /listen\[1\]\.tls\.key: cannot read .*No such file/, 'the missing key error');
  eq((await handshake(b.tlsPort)).serial, b.cert.serial, 'still the old certificate with the key gone');
  // the stream opened before every failed reload still works, and a good pair loads again
  eq((await h2req(s, 'POST', '/pub/broken.a', 'still here')).status, 200, 'publish');
  await sse.waitMessages(1, 5000);
  install(other, b.files);
  await sighup(b, /certificate reloaded/, 'the reload once the files are right');
  // the workers switch when they run the posted swap, just after the log line
  await waitFor(async () => (await handshake(b.tlsPort)).serial === other.serial, 5000, 'the new certificate after the fix');
});

t.test('TLS listeners from RTB_LISTEN (a YAML flow list), with an RSA certificate', async (c) => {
  const cert = issue(undefined, 'rsa');
  const env = {};
  let tlsPort;
  const b = await c.broker({
    env,
    listen: async (port) => {
      tlsPort = await freePort();
      env.RTB_LISTEN = `[127.0.0.1:${port}, {address: "127.0.0.1:${tlsPort}", tls: {cert: "${cert.cert}", key: "${cert.key}"}}]`;
      return `127.0.0.1:${port}`;
    },
  });
  const h = await handshake(tlsPort, { ALPNProtocols: ['h2', 'http/1.1'] });
  eq([h.serial, h.alpn], [cert.serial, 'h2'], `handshake (${h.error || ''})`);
  assert(/^ECDHE-RSA-|^TLS_/.test(h.cipher), `cipher ${h.cipher}`);
  const r = await curl(['-sS', '--cacert', CA.cert, '-d', 'rsa', `https://localhost:${tlsPort}/pub/env.a`]);
  assert(r.code === 0 && JSON.parse(r.stdout).topic === 'env.a', `publish: ${r.stdout} ${r.stderr}`);
  void b;
});

t.test('bad cert/key files: the broker and --check-config exit 2 naming the key and the line', async () => {
  const good = issue();
  const other = issue();
  const dir = mkTemp('rtb-tls-cfg-');
  const enc = path.join(dir, 'enc.key');
  openssl(['pkey', '-in', good.key, '-aes256', '-passout', 'pass:secret', '-out', enc], 'encrypt a key');
  const port = await freePort(); const tport = await freePort();
  // cert on line 5, key on line 6
  const cfg = (cert, key) => `listen:\n  - 127.0.0.1:${port}\n  - address: 127.0.0.1:${tport}\n    tls:\n      cert: ${cert}\n`
    + `      key: ${key}\n${toYaml({ workers: 1, auth: { anonymous: { subscribe: ['>'] } } })}`;
  const file = path.join(dir, 'rtbroker.yaml');
  const cases = [
    [path.join(dir, 'missing.pem'), good.key, /config: listen\[1\]\.tls\.cert: cannot read .*missing\.pem: No such file or directory \(.*rtbroker\.yaml line 5\)/],
    [good.cert, path.join(dir, 'missing.key'), /config: listen\[1\]\.tls\.key: cannot read .*missing\.key: No such file .*line 6\)/],
    [good.cert, other.key, /config: listen\[1\]\.tls\.key: .*does not match the certificate in .*line 6\)/],
    [good.key, good.key, /config: listen\[1\]\.tls\.cert: .*not a PEM certificate.*line 5\)/],
    [good.cert, good.cert, /config: listen\[1\]\.tls\.key: .*not a PEM private key.*line 6\)/],
    [good.cert, enc, /config: listen\[1\]\.tls\.key: .*encrypted/],
  ];
  for (const [cert, key, want] of cases) {
    fs.writeFileSync(file, cfg(cert, key));
    for (const extra of [[], ['--check-config']]) {
      const r = runBrokerSync(['-c', file, ...extra], { timeout: 10000 });
      assert(r.code === 2, `${path.basename(cert)} + ${path.basename(key)} ${extra.join(' ')}: exit ${r.code} (${r.signal}), stderr ${trunc(r.stderr)}`);
      assert(want.test(r.stderr), `${path.basename(cert)} + ${path.basename(key)}: stderr lacks ${want}: ${trunc(r.stderr, 600)}`);
    }
  }
  fs.writeFileSync(file, cfg(good.cert, good.key));
  const ok = runBrokerSync(['-c', file, '--check-config']);
  eq(ok.code, 0, `--check-config with good files: ${ok.stderr}`);
  assert(/configuration OK/.test(ok.stdout), ok.stdout);
  const env = runBrokerSync(['--check-config'], {
    env: { RTB_LISTEN: `[{address: 127.0.0.1:${tport}, tls: {cert: ${path.join(dir, 'nope.pem')}, key: ${good.key}}}]` },
  });
  assert(env.code === 2 && /listen\[0\]\.tls\.cert \(RTB_LISTEN\): cannot read .*nope\.pem/.test(env.stderr),
    `RTB_LISTEN with a missing cert: exit ${env.code} ${trunc(env.stderr)}`);
});

await t.run();

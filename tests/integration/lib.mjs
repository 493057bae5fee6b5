// Integration test harness for rtbroker.
//
// - startBroker(): free port, temp YAML config, spawn build/rtbroker, wait for /healthz.
// - suite(): tiny runner printing `PASS <file>: <case>` / `FAIL <file>: <case>: <reason>`,
//   a closing `N passed, N failed` line, exit code 1 on any failure, hard timeouts.
// - clients: fetch-based HTTP helpers, a raw SSE client (node:http, keeps the exact bytes),
//   curl wrappers.
//
// Every broker and child process started here is killed when the case ends (finally),
// and again, with SIGKILL, from a process 'exit' handler.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
// RTB_BIN (what `make test` / `make asan` pass) or RTBROKER_BIN select another binary.
export const BIN = path.resolve(ROOT, process.env.RTB_BIN || process.env.RTBROKER_BIN || path.join('build', 'rtbroker'));
// sanitizer builds (make asan sets RTB_SANITIZED=1) start and run slower
export const SLOW = process.env.RTB_SANITIZED ? 3 : 1;

// ---------------------------------------------------------------- cleanup registry
const liveBrokers = new Set();
const liveChildren = new Set();
const tempDirs = new Set();

process.on('exit', () => {
  for (const b of liveBrokers) { try { process.kill(b.pid, 'SIGKILL'); } catch {} }
  for (const c of liveChildren) { try { c.kill('SIGKILL'); } catch {} }
  for (const d of tempDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch {} }
});
// a promise abandoned by a timed-out case must not kill the remaining cases
process.on('unhandledRejection', (e) => {
  console.log(`INFO harness: unhandled rejection (from an abandoned operation): ${e && e.message ? e.message : e}`);
});
process.on('uncaughtException', (e) => {
  console.log(`FAIL harness: uncaught exception: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { console.log(`FAIL harness: interrupted by ${sig}`); process.exit(130); });
}

export function mkTemp(prefix = 'rtb-it-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export function trackChild(child) {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

// ---------------------------------------------------------------- small utils
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Poll `cond` every 10 ms until it returns truthy; throws with `label` (and detail()) on timeout. */
export async function waitFor(cond, timeoutMs, label, detail) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) {
      let extra = '';
      if (detail) { try { extra = ' — ' + detail(); } catch {} }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${extra}`);
    }
    await sleep(10);
  }
}

// Ports for test servers come from below the kernel's ephemeral range (32768-60999 here): a port the
// kernel hands out for listen(0) is one that any outgoing connection may take as its source port before
// the server binds it (seen: a nats-server cluster port "address already in use").
const PORT_LO = 20000, PORT_HI = 32767;
const handedOut = new Set();

function tryListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = PORT_LO + Math.floor(Math.random() * (PORT_HI - PORT_LO + 1));
    if (handedOut.has(port)) continue;
    if (await tryListen(port)) { handedOut.add(port); return port; }
  }
  throw new Error(`no free port in ${PORT_LO}-${PORT_HI}`);
}

// ---------------------------------------------------------------- YAML writer
function yamlScalar(v) {
  if (Array.isArray(v)) return '[' + v.map(yamlScalar).join(', ') + ']';
  if (v && typeof v === 'object') return '{' + Object.entries(v).map(([k, x]) => `${k}: ${yamlScalar(x)}`).join(', ') + '}';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return '~';
  const s = String(v);
  if (/^[A-Za-z0-9_./-][A-Za-z0-9_./:-]*$/.test(s) && !/^(true|false|yes|no|on|off|null|~)$/i.test(s)) return s;
  return JSON.stringify(s);
}

export function toYaml(obj, indent = '') {
  let out = '';
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      if (Object.keys(v).length === 0) out += `${indent}${k}: {}\n`;
      else out += `${indent}${k}:\n` + toYaml(v, indent + '  ');
    } else {
      out += `${indent}${k}: ${yamlScalar(v)}\n`;
    }
  }
  return out;
}

function deepMerge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' && !Array.isArray(out[k])) {
      out[k] = deepMerge(out[k], v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------- broker process
function tailFile(file, lines = 60) {
  try {
    const txt = fs.readFileSync(file, 'utf8');
    const all = txt.split('\n');
    return all.slice(-lines).join('\n');
  } catch (e) { return `(no log: ${e.message})`; }
}

export function brokerEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTB_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Start a broker.
 * opts.config: object deep-merged over the defaults (anonymous pub/sub on ">", drain 3s)
 * opts.configText: raw YAML instead (the `listen` key is still forced by --listen)
 * opts.env: extra env (RTB_* from the test's own environment are removed)
 * opts.args: extra CLI args; opts.workers (default 2)
 * opts.listen: async (port) => the config's `listen` (e.g. with TLS entries); it must hold 127.0.0.1:port, where
 *   /healthz is asked. Without it, --listen 127.0.0.1:port is forced.
 */
export async function startBroker(opts = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`broker binary not found: ${BIN} (run make build)`);
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      lastErr = e;
      if (!e.portInUse) throw e;
    }
  }
  throw lastErr;
}

async function startOnce(opts) {
  const dir = mkTemp('rtb-broker-');
  const port = await freePort();
  const workers = opts.workers ?? 2;
  const cfg = deepMerge({
    listen: opts.listen ? await opts.listen(port) : `127.0.0.1:${port}`,
    workers,
    shutdown: { drain: '3s' },
    // tests open hundreds of connections from one address in a burst; tests of the limits set them
    limits: { connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 },
    auth: { anonymous: { subscribe: ['>'], publish: ['>'] } },
  }, opts.config || {});
  const configPath = path.join(dir, 'rtbroker.yaml');
  fs.writeFileSync(configPath, opts.configText ?? toYaml(cfg));
  const logPath = path.join(dir, 'broker.log');
  const logFd = fs.openSync(logPath, 'a');
  const args = ['-c', configPath, ...(opts.listen ? [] : ['--listen', `127.0.0.1:${port}`]), '--workers', String(workers), ...(opts.args || [])];
  const child = spawn(BIN, args, {
    cwd: ROOT,
    env: brokerEnv(opts.env),
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  const base = `http://127.0.0.1:${port}`;
  const broker = {
    base, port, pid: child.pid, child, dir, configPath, logPath, args,
    exited: null, stopping: false,
    log: () => tailFile(logPath, 80),
    alive: () => broker.exited === null,
    stop: (o) => stopBroker(broker, o),
    kill: (sig = 'SIGKILL') => { try { process.kill(child.pid, sig); } catch {} },
  };
  broker.exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      broker.exited = { code, signal, at: Date.now() };
      liveBrokers.delete(broker);
      resolve(broker.exited);
    });
  });
  child.once('error', (e) => { broker.spawnError = e; });
  liveBrokers.add(broker);

  const deadline = Date.now() + 10000 * SLOW;
  for (;;) {
    if (broker.spawnError) throw new Error(`spawn ${BIN}: ${broker.spawnError.message}`);
    if (broker.exited) {
      const log = broker.log();
      const err = new Error(`broker exited before /healthz answered (code ${broker.exited.code}, signal ${broker.exited.signal})\n${indent(log)}`);
      err.portInUse = /in use|EADDRINUSE/i.test(log);
      throw err;
    }
    try {
      const r = await fetch(base + '/healthz', { signal: AbortSignal.timeout(1000) });
      const t = await r.text();
      if (r.status === 200) { broker.readyAt = Date.now(); break; }
      void t;
    } catch {}
    if (Date.now() > deadline) {
      const log = broker.log();
      await stopBroker(broker, { timeout: 2000 });
      throw new Error(`broker did not answer /healthz 200 within ${10 * SLOW} s\n${indent(log)}`);
    }
    await sleep(50);
  }
  return broker;
}

async function stopBroker(broker, { signal = 'SIGTERM', timeout = 15000 } = {}) {
  broker.stopping = true;
  if (broker.exited) return { ...broker.exited, ms: 0 };
  const t0 = Date.now();
  try { process.kill(broker.pid, signal); } catch {}
  let res = await Promise.race([broker.exitPromise, sleep(timeout).then(() => null)]);
  let killed = false;
  if (!res) {
    killed = true;
    try { process.kill(broker.pid, 'SIGKILL'); } catch {}
    res = await Promise.race([broker.exitPromise, sleep(5000).then(() => null)]);
  }
  return { ...(res || { code: null, signal: null }), ms: Date.now() - t0, killed };
}

export function sanitizerReport(logPath) {
  let txt = '';
  try { txt = fs.readFileSync(logPath, 'utf8'); } catch { return null; }
  const i = txt.search(/ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|WARNING: ThreadSanitizer/);
  if (i < 0) return null;
  return txt.slice(Math.max(0, txt.lastIndexOf('\n', i - 200)), i + 3000);
}

export function indent(s, p = '  | ') {
  return String(s).split('\n').map((l) => p + l).join('\n');
}

// ---------------------------------------------------------------- runner
export function suite(metaUrl, { hardTimeoutMs = 110000 } = {}) {
  const file = path.basename(fileURLToPath(metaUrl));
  const cases = [];
  const api = {
    file,
    test(name, fn, o = {}) { cases.push({ name, fn, timeout: o.timeout ?? 30000 }); },
    async run() {
      let passed = 0; let failed = 0;
      const hard = setTimeout(() => {
        console.log(`FAIL ${file}: hard timeout: file did not finish within ${hardTimeoutMs} ms`);
        console.log(`${file}: ${passed} passed, ${failed + 1} failed`);
        process.exit(1);
      }, hardTimeoutMs);
      for (const c of cases) {
        const ctx = makeCtx(file, c.name);
        let err = null;
        try {
          await withTimeout(Promise.resolve().then(() => c.fn(ctx)), c.timeout, `case "${c.name}"`);
        } catch (e) { err = e; }
        // any broker that died on its own during the case is a failure
        for (const b of ctx.brokers) {
          if (!err && b.exited && !b.stopping) {
            err = new Error(`broker exited unexpectedly (code ${b.exited.code}, signal ${b.exited.signal})`);
          }
        }
        const cleanupErr = await ctx.cleanup();
        if (!err && cleanupErr) err = cleanupErr;
        if (err) {
          failed++;
          const reason = (err && err.message ? err.message : String(err)).replace(/\s+$/, '');
          const [first, ...rest] = reason.split('\n');
          console.log(`FAIL ${file}: ${c.name}: ${first}`);
          if (rest.length) console.log(rest.join('\n'));
          for (const b of ctx.brokers) {
            console.log(`  broker log (${b.logPath}, pid ${b.pid}, exit ${JSON.stringify(b.exited)}):`);
            console.log(indent(b.log()));
          }
        } else {
          passed++;
          console.log(`PASS ${file}: ${c.name}`);
        }
      }
      clearTimeout(hard);
      console.log(`${file}: ${passed} passed, ${failed} failed`);
      process.exit(failed ? 1 : 0);
    },
  };
  return api;
}

function makeCtx(file, name) {
  const deferred = [];
  const ctx = {
    brokers: [],
    info(msg) { console.log(`INFO ${file}: ${msg}`); },
    defer(fn) { deferred.push(fn); },
    async broker(opts) {
      const b = await startBroker(opts);
      ctx.brokers.push(b);
      return b;
    },
    async cleanup() {
      let firstErr = null;
      for (const fn of deferred.reverse()) {
        try { await withTimeout(Promise.resolve().then(fn), 5000, 'cleanup'); } catch (e) { firstErr ||= e; }
      }
      for (const b of ctx.brokers) {
        if (!b.exited) {
          const r = await stopBroker(b, { timeout: 8000 * SLOW });
          if (r.killed) firstErr ||= new Error(`broker pid ${b.pid} ignored SIGTERM for ${8 * SLOW} s at cleanup and was SIGKILLed`);
        }
        // sanitizer builds (make asan): any report in the broker's log fails the case
        const report = sanitizerReport(b.logPath);
        if (report) firstErr ||= new Error(`sanitizer report in the broker log:\n${indent(report)}`);
      }
      return firstErr;
    },
  };
  return ctx;
}

// ---------------------------------------------------------------- assertions
export class AssertionError extends Error {}
export function assert(cond, msg) { if (!cond) throw new AssertionError(msg || 'assertion failed'); }
export function eq(got, want, msg) {
  const g = JSON.stringify(got); const w = JSON.stringify(want);
  if (g !== w) throw new AssertionError(`${msg ? msg + ': ' : ''}expected ${trunc(w)}, got ${trunc(g)}`);
}
export function trunc(s, n = 400) { s = String(s); return s.length > n ? s.slice(0, n) + `…(${s.length} chars)` : s; }

/** Assert an HTTP error response: status, JSON body {"error":code,"message":string}. */
export function expectError(res, status, code, what = '') {
  const pre = what ? `${what}: ` : '';
  const desc = `${res.status} ${trunc(res.text, 300)}`;
  assert(res.status === status, `${pre}expected HTTP ${status} ${code}, got ${desc}`);
  assert(res.json && typeof res.json === 'object', `${pre}expected a JSON error body, got ${desc} (content-type ${res.headers.get?.('content-type') ?? res.headers['content-type']})`);
  assert(res.json.error === code, `${pre}expected error "${code}", got ${desc}`);
  assert(typeof res.json.message === 'string' && res.json.message.length > 0, `${pre}error JSON lacks a "message" string: ${desc}`);
}

/** An HS256 JWT with these claims (iat and a 1 h exp added unless given). */
export function hs256Token(secret, claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ iat: now, exp: now + 3600, ...claims })}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}

// ---------------------------------------------------------------- ids
export const ID_RE = /^([A-Za-z0-9_-]+):(\d+)$/;
export function parseId(id) {
  const m = ID_RE.exec(String(id));
  if (!m) throw new AssertionError(`not an EPOCH:SEQ id: ${JSON.stringify(id)}`);
  return { epoch: m[1], seq: BigInt(m[2]) };
}
export const seqOf = (id) => parseId(id).seq;
export const epochOf = (id) => parseId(id).epoch;

// ---------------------------------------------------------------- HTTP (fetch)
async function wrapResponse(r) {
  const buf = Buffer.from(await r.arrayBuffer());
  const text = buf.toString('utf8');
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, headers: r.headers, buf, text, json };
}

export async function request(base, method, p, { headers = {}, body, timeout = 15000 } = {}) {
  const r = await fetch(base + p, { method, headers, body, signal: AbortSignal.timeout(timeout) });
  return wrapResponse(r);
}

export function topicPath(topic) {
  // encode only what fetch would choke on; keep '.', '*' literal. '>' becomes %3E as in browsers.
  return String(topic).split('').map((ch) => (/[A-Za-z0-9._*-]/.test(ch) ? ch : encodeURIComponent(ch))).join('');
}

/**
 * A publish's 200 must name what was stored: {"id":"EPOCH:SEQ"} with SEQ >= 1, or {"id":null} for an ephemeral
 * message. Throws an AssertionError otherwise (a bus that answered 200 for what it did not store gives ":0").
 */
export function checkPublished(status, json, text, what, ephemeral = false) {
  if (status !== 200) return;
  const id = json && json.id;
  if (ephemeral && id === null) return;
  const m = /^([A-Za-z0-9_-]+):([1-9][0-9]*)$/.exec(typeof id === 'string' ? id : '');
  if (!m) throw new AssertionError(`${what}: a 200 without a stored message's id (EPOCH:SEQ, SEQ >= 1): ${trunc(text, 300)}`);
}

const ephemeralAsked = (headers, query) => /^(1|true)$/.test(Object.entries(headers).find(([k]) => k.toLowerCase() === 'x-ephemeral')?.[1] ?? '')
  || /(^|&)ephemeral=(1|true)(&|$)/.test(query);

/** POST /pub/{topic}. Returns the wrapped response; a 200 is checked with checkPublished. */
export async function publish(base, topic, body = '', { headers = {}, query = '', timeout = 15000, rawTopic = false } = {}) {
  const p = `/pub/${rawTopic ? topic : topicPath(topic)}${query ? '?' + query : ''}`;
  const r = await request(base, 'POST', p, { headers, body, timeout });
  checkPublished(r.status, r.json, r.text, `POST ${p}`, ephemeralAsked(headers, query));
  return r;
}

/** publish and assert 200 {"id","topic"}; returns the id. */
export async function publishOk(base, topic, body = '', opts = {}) {
  const r = await publish(base, topic, body, opts);
  assert(r.status === 200, `publish to ${topic}: expected 200, got ${r.status} ${trunc(r.text)}`);
  assert(r.json && typeof r.json.id === 'string', `publish to ${topic}: no id in ${trunc(r.text)}`);
  parseId(r.json.id);
  return r.json.id;
}

/** Long-poll GET; returns wrapped response plus elapsed ms. */
export async function poll(base, params, { path: p = '/poll', headers = {}, timeout = 40000 } = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else if (v !== undefined && v !== null) qs.append(k, String(v));
  }
  const t0 = Date.now();
  const r = await request(base, 'GET', `${p}?${qs}`, { headers, timeout });
  r.ms = Date.now() - t0;
  return r;
}

// ---------------------------------------------------------------- raw HTTP
/** A node:http request with a literal path (no URL normalisation); collects the body. */
export function rawRequest(base, method, p, { headers = {}, body, timeout = 15000 } = {}) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json = null; try { json = JSON.parse(text); } catch {}
        const h = new Map(Object.entries(res.headers));
        resolve({ status: res.statusCode, headers: { get: (k) => h.get(k.toLowerCase()) ?? null, raw: res.headers }, buf, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${p}: timed out after ${timeout} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * HTTP/1.1 pipelining: every POST /pub of `pubs` ([{topic, body, headers}]) in ONE TCP write, so that the
 * broker handles them in one loop turn. Resolves with the parsed answers ({status, json}) in order.
 */
export function pipelinedPublish(port, pubs, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const answers = [];
    const t = setTimeout(() => { sock.destroy(); reject(new Error(`pipelined publishes: ${answers.length} of ${pubs.length} answers after ${timeout} ms`)); }, timeout);
    sock.on('connect', () => sock.write(pubs.map(({ topic, body = '', headers = {} }) => {
      const hs = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      return `POST /pub/${topicPath(topic)} HTTP/1.1\r\nHost: 127.0.0.1\r\n${hs}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    }).join('')));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) { // status line and headers, then a Content-Length or chunked body
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const head = buf.subarray(0, end).toString('latin1');
        let body = null; let rest = end + 4;
        const len = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (len) {
          if (buf.length >= rest + Number(len[1])) body = buf.subarray(rest, rest + Number(len[1])), rest += Number(len[1]);
        } else {
          const parts = [];
          for (;;) {
            const eol = buf.indexOf('\r\n', rest);
            if (eol < 0) break;
            const size = parseInt(buf.subarray(rest, eol).toString('latin1'), 16);
            if (buf.length < eol + 2 + size + 2) break;
            parts.push(buf.subarray(eol + 2, eol + 2 + size));
            rest = eol + 2 + size + 2;
            if (size === 0) { body = Buffer.concat(parts); break; }
          }
        }
        if (body === null) break;
        const text = body.toString('utf8');
        let json = null; try { json = JSON.parse(text); } catch {}
        answers.push({ status: Number(head.split(' ')[1]), json, text });
        buf = buf.subarray(rest);
      }
      if (answers.length === pubs.length) { clearTimeout(t); sock.destroy(); resolve(answers); }
    });
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

/** Send raw bytes on a TCP socket; resolves with whatever came back before close/timeout. */
export function rawSocket(port, chunks, { timeout = 3000, endAfter = true, delayMs = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const got = [];
    let done = false;
    const finish = (why) => { if (done) return; done = true; clearTimeout(t); sock.destroy(); resolve({ why, data: Buffer.concat(got) }); };
    const t = setTimeout(() => finish('timeout'), timeout);
    sock.on('data', (d) => got.push(d));
    sock.on('error', (e) => finish('error:' + e.code));
    sock.on('close', () => finish('close'));
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (done) return;
        sock.write(c);
        if (delayMs) await sleep(delayMs);
      }
      if (endAfter === 'destroy') finish('destroyed');
      else if (endAfter) sock.end();
    });
  });
}

// ---------------------------------------------------------------- SSE (raw node:http)
/**
 * Incremental SSE parser per the WHATWG rules, recording the exact raw bytes as well.
 * items: [{type:'event', id, hasId, event, data, dataLines} | {type:'comment', text} | {type:'retry', value}]
 */
export class SSEParser {
  constructor() {
    this.items = [];
    this.pendingText = '';
    this.decoder = new TextDecoder('utf-8');
    this.reset();
    this.lastEventId = '';
  }
  reset() { this.cur = { dataLines: [], event: null, id: undefined }; }
  push(buf) {
    this.pendingText += this.decoder.decode(buf, { stream: true });
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.pendingText);
      if (!m) break;
      // a lone CR at the very end might be the first half of CRLF: wait for more
      if (m[0] === '\r' && m.index === this.pendingText.length - 1) break;
      const line = this.pendingText.slice(0, m.index);
      this.pendingText = this.pendingText.slice(m.index + m[0].length);
      this.line(line);
    }
  }
  line(line) {
    if (line === '') {
      const c = this.cur;
      if (c.dataLines.length || c.event !== null || c.id !== undefined) {
        if (c.id !== undefined) this.lastEventId = c.id;
        this.items.push({
          type: 'event', id: c.id, hasId: c.id !== undefined, event: c.event,
          data: c.dataLines.join('\n'), dataLines: c.dataLines, hasData: c.dataLines.length > 0,
        });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) { this.items.push({ type: 'comment', text: line.slice(1).replace(/^ /, '') }); return; }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.cur.dataLines.push(value);
    else if (field === 'event') this.cur.event = value;
    else if (field === 'id') this.cur.id = value;
    else if (field === 'retry') this.items.push({ type: 'retry', value });
  }
}

/**
 * Open an SSE stream with node:http. Resolves once response headers arrive.
 * Returns { status, headers, raw(), text(), events (getter), comments, waitFor, waitEvents, close, done }
 */
export function openSSE(base, p, { headers = {}, accept = 'text/event-stream', timeout = 10000 } = {}) {
  const u = new URL(base);
  const parser = new SSEParser();
  const chunks = [];
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, method: 'GET', path: p, agent: false,
      headers: { ...(accept ? { Accept: accept } : {}), ...headers },
    });
    let settled = false;
    const to = setTimeout(() => { if (!settled) { settled = true; req.destroy(); reject(new Error(`SSE ${p}: no response headers within ${timeout} ms`)); } }, timeout);
    req.on('error', (e) => { if (!settled) { settled = true; clearTimeout(to); reject(new Error(`SSE ${p}: ${e.message}`)); } else if (s) { s.error = e; } });
    let s = null;
    req.on('response', (res) => {
      settled = true; clearTimeout(to);
      let endResolve; const done = new Promise((r) => { endResolve = r; });
      s = {
        path: p, status: res.statusCode, headers: res.headers, res, req, parser, ended: false, error: null,
        raw: () => Buffer.concat(chunks),
        text: () => Buffer.concat(chunks).toString('utf8'),
        json: () => { try { return JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { return null; } },
        get items() { return parser.items; },
        get events() { return parser.items.filter((x) => x.type === 'event'); },
        get messages() { return parser.items.filter((x) => x.type === 'event' && (x.event === null || !x.event.startsWith('rt.'))); },
        get comments() { return parser.items.filter((x) => x.type === 'comment'); },
        done,
        close: () => { try { req.destroy(); } catch {} },
        waitFor: (pred, ms, label) => waitFor(() => pred(s), ms, label || `condition on SSE ${p}`,
          () => `status ${s.status}, ended ${s.ended}, ${s.events.length} events, raw tail ${JSON.stringify(s.text().slice(-300))}`),
        waitMessages: (n, ms, label) => s.waitFor((x) => x.messages.length >= n, ms, label || `${n} messages on ${p}`),
        waitOk: (ms = 5000) => s.waitFor((x) => x.comments.some((c) => c.text === 'ok'), ms, `": ok" on ${p}`),
      };
      res.on('data', (d) => { chunks.push(d); parser.push(d); });
      const fin = () => { if (!s.ended) { s.ended = true; s.endedAt = Date.now(); endResolve(); } };
      res.on('end', fin);
      res.on('close', fin);
      res.on('error', (e) => { s.error = e; fin(); });
      resolve(s);
    });
    req.end();
  });
}

/** Open an SSE stream and require 200 + ": ok". */
export async function subscribe(base, p, opts = {}) {
  const s = await openSSE(base, p, opts);
  if (s.status !== 200) {
    await withTimeout(s.done, 5000, 'error body').catch(() => {});
    throw new AssertionError(`GET ${p} (SSE): expected 200, got ${s.status} ${trunc(s.text())}`);
  }
  await s.waitOk(opts.okTimeout ?? 8000);
  return s;
}

// ---------------------------------------------------------------- curl
export function curl(args, { timeout = 15000 } = {}) {
  return new Promise((resolve) => {
    const c = trackChild(spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const out = []; const err = [];
    c.stdout.on('data', (d) => out.push(d));
    c.stderr.on('data', (d) => err.push(d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeout);
    c.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Start a long-running curl (e.g. an SSE stream); returns {stdout(), waitFor, kill, exit}. */
export function curlStream(args) {
  const c = trackChild(spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const out = []; const err = [];
  c.stdout.on('data', (d) => out.push(d));
  c.stderr.on('data', (d) => err.push(d));
  const exit = new Promise((r) => c.on('exit', (code, signal) => r({ code, signal })));
  const h = {
    child: c, exit,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => Buffer.concat(err).toString('utf8'),
    waitFor: (pred, ms, label) => waitFor(() => pred(h.stdout()), ms, label,
      () => `curl stdout tail ${JSON.stringify(h.stdout().slice(-400))} stderr ${JSON.stringify(h.stderr().slice(-300))}`),
    kill: async () => { try { c.kill('SIGTERM'); } catch {} await Promise.race([exit, sleep(2000)]); try { c.kill('SIGKILL'); } catch {} },
  };
  return h;
}

/** Run the broker binary synchronously (e.g. --check-config). */
export function runBrokerSync(args, { env = {}, timeout = 15000 } = {}) {
  const r = spawnSync(BIN, args, { cwd: ROOT, env: brokerEnv(env), timeout, encoding: 'utf8' });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

/** Sequence of increasing SEQs? returns first offending index or -1. */
export function firstNonIncreasing(ids) {
  for (let i = 1; i < ids.length; i++) if (seqOf(ids[i]) <= seqOf(ids[i - 1])) return i;
  return -1;
}

// ---------------------------------------------------------------- SSE over h2c (node:http2, prior knowledge)
import http2 from 'node:http2';

/** Open an h2c session (prior knowledge). Caller closes it (session.destroy()). */
export function h2session(base) {
  const s = http2.connect(base);
  s.on('error', () => {});
  return s;
}

/** One SSE stream on an h2 session. Resolves on response headers. */
export function openSSEh2(session, p, { headers = {}, timeout = 10000 } = {}) {
  const parser = new SSEParser();
  const chunks = [];
  return new Promise((resolve, reject) => {
    const st = session.request({ ':path': p, accept: 'text/event-stream', ...headers });
    const to = setTimeout(() => { st.close(); reject(new Error(`h2 SSE ${p}: no response headers within ${timeout} ms`)); }, timeout);
    st.on('error', (e) => { clearTimeout(to); reject(new Error(`h2 SSE ${p}: ${e.message}`)); });
    st.on('response', (h) => {
      clearTimeout(to);
      let endResolve; const done = new Promise((r) => { endResolve = r; });
      const s = {
        path: p, status: h[':status'], headers: h, stream: st, ended: false,
        text: () => Buffer.concat(chunks).toString('utf8'),
        get events() { return parser.items.filter((x) => x.type === 'event'); },
        get messages() { return parser.items.filter((x) => x.type === 'event' && (x.event === null || !x.event.startsWith('rt.'))); },
        get comments() { return parser.items.filter((x) => x.type === 'comment'); },
        done,
        close: () => { try { st.close(http2.constants.NGHTTP2_CANCEL); } catch {} },
        waitFor: (pred, ms, label) => waitFor(() => pred(s), ms, label || `condition on h2 SSE ${p}`,
          () => `status ${s.status}, ended ${s.ended}, ${s.events.length} events, raw tail ${JSON.stringify(s.text().slice(-300))}`),
        waitMessages: (n, ms, label) => s.waitFor((x) => x.messages.length >= n, ms, label || `${n} messages on h2 ${p}`),
        waitOk: (ms = 5000) => s.waitFor((x) => x.comments.some((c) => c.text === 'ok'), ms, `": ok" on h2 ${p}`),
      };
      st.on('data', (d) => { chunks.push(d); parser.push(d); });
      const fin = () => { if (!s.ended) { s.ended = true; endResolve(); } };
      st.on('end', fin); st.on('close', fin);
      st.removeAllListeners('error'); st.on('error', fin);
      resolve(s);
    });
    st.end();
  });
}

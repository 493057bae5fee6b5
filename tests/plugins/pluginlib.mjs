// Helpers shared by tests/integration/test_plugins_*.mjs (not a test itself: the runner only
// runs tests/integration/test_*): a fetch() NDJSON client, building a test plugin with cc,
// and starting a broker from another binary (an installed one) the way the harness does.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ROOT, SLOW, mkTemp, freePort, toYaml, brokerEnv, sleep, waitFor, withTimeout, trunc, indent,
} from '../integration/lib.mjs';

export const PLUGIN_SRC = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- NDJSON over fetch()
/**
 * GET an NDJSON stream with fetch() (Accept: application/x-ndjson unless `accept` says otherwise)
 * and return at once, without waiting for the response headers: `ready` resolves when they
 * arrive (status, headers, headersAt), `done` when the body ends. Every line must be one JSON
 * value; `lines` are the parsed lines with their arrival time (`at`), `bad` those that did not
 * parse. messages: lines without "type" (envelopes); control: lines with a "type".
 */
export function startNdjson(base, p, { headers = {}, accept = 'application/x-ndjson', keepText = true } = {}) {
  const ac = new AbortController();
  const s = {
    path: p, status: null, headers: null, headersAt: 0, openedAt: Date.now(),
    lines: [], bad: [], text: '', tail: '', ended: false, endedAt: 0, error: null, closed: false,
    get messages() { return s.lines.filter((l) => l.v && typeof l.v === 'object' && !('type' in l.v)).map((l) => l.v); },
    // the stream opens with {"type":"ok"} (checked by the headers case); the rest are the control lines that matter
    get opened() { return s.lines.length > 0 && s.lines[0].v && s.lines[0].v.type === 'ok'; },
    get control() { return s.lines.filter((l, i) => l.v && typeof l.v === 'object' && 'type' in l.v && !(i === 0 && l.v.type === 'ok')).map((l) => l.v); },
    get pings() { return s.lines.filter((l) => l.v && l.v.type === 'ping'); },
    get json() { try { return JSON.parse(s.text); } catch { return null; } },
    close() { s.closed = true; try { ac.abort(); } catch {} },
    describe() {
      return `status ${s.status}${s.status === null ? ' (no response headers yet)' : ''}, ended ${s.ended}${s.error ? ` (${s.error.message})` : ''}, ${s.messages.length} messages, control ${trunc(JSON.stringify(s.control.slice(-5)), 300)}, text tail ${JSON.stringify(s.text.slice(-300))}`;
    },
    waitFor(pred, ms, label) {
      return waitFor(() => {
        if (s.error) throw new Error(`NDJSON ${p}: ${s.error.message} while waiting for ${label || 'a condition'}`);
        if (s.status !== null && s.status !== 200) throw new Error(`NDJSON ${p}: HTTP ${s.status} ${trunc(s.text)} while waiting for ${label || 'a condition'}`);
        return pred(s);
      }, ms, label || `condition on NDJSON ${p}`, () => s.describe());
    },
    waitMessages(n, ms, label) { return s.waitFor((x) => x.messages.length >= n, ms, label || `${n} messages on NDJSON ${p}`); },
    /** wait for the headers (at most ms) and require 200 application/x-ndjson */
    async ok(ms = 10000) {
      await withTimeout(s.ready, ms, `NDJSON ${p}: response headers`);
      if (s.error) throw new Error(`NDJSON ${p}: ${s.error.message}`);
      if (s.status !== 200) { await Promise.race([s.done, sleep(3000)]); throw new Error(`GET ${p} (NDJSON): expected 200, got ${s.status} ${trunc(s.text)}`); }
      const ct = s.headers.get('content-type') || '';
      if (!/^application\/x-ndjson\b/.test(ct)) throw new Error(`GET ${p} (NDJSON): Content-Type ${JSON.stringify(ct)}, expected application/x-ndjson`);
      return s;
    },
  };
  const onLine = (line) => {
    let v;
    try { v = JSON.parse(line); } catch { s.bad.push(line); return; }
    s.lines.push({ v, at: Date.now() });
  };
  let res = null;
  s.ready = fetch(base + p, { headers: { ...(accept ? { Accept: accept } : {}), ...headers }, signal: ac.signal }).then((r) => {
    res = r; s.status = r.status; s.headers = r.headers; s.headersAt = Date.now();
  }, (e) => { if (!s.closed) s.error = e; });
  s.done = s.ready.then(async () => {
    if (!res) return;
    const reader = res.body.getReader();
    const dec = new TextDecoder('utf-8');
    let pending = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const t = dec.decode(value, { stream: true });
        if (keepText || s.status !== 200) s.text += t;
        pending += t;
        let i;
        while ((i = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, i);
          pending = pending.slice(i + 1);
          onLine(line);
        }
      }
    } catch (e) {
      if (!s.closed) s.error = e;
    }
    s.tail = pending;
  }).finally(() => { s.ended = true; s.endedAt = Date.now(); });
  return s;
}

/** startNdjson and wait for the response headers (at most `timeout` ms). */
export async function openNdjson(base, p, opts = {}) {
  const s = startNdjson(base, p, opts);
  try {
    await withTimeout(s.ready, opts.timeout ?? 10000, `NDJSON ${p}: response headers`);
  } catch (e) { s.close(); throw e; }
  if (s.error) throw new Error(`NDJSON ${p}: ${s.error.message}`);
  return s;
}

/** An error answer (not a stream): wait for the whole body; {status, json, text, headers} for expectError. */
export async function ndjsonError(base, p, opts = {}) {
  const s = await openNdjson(base, p, opts);
  await withTimeout(s.done, 5000, `NDJSON ${p}: the error body`).catch(() => s.close());
  return { status: s.status, json: s.json, text: s.text, headers: s.headers };
}

/** The broker's rtbroker_connections gauge for a transport. */
export async function connections(base, transport) {
  const r = await fetch(base + '/metrics', { signal: AbortSignal.timeout(5000) });
  const t = await r.text();
  const l = t.split('\n').find((x) => x.startsWith(`rtbroker_connections{transport="${transport}"}`));
  return l ? Number(l.split(' ').pop()) : NaN;
}

/**
 * Wait until the broker counts at least n open subscribers of `transport`: they are subscribed
 * (the ndjson plugin opens and subscribes in one callback), whether or not headers came yet.
 * (A subscriber whose client went away is counted until a write to it fails.)
 */
export async function waitConnections(base, transport, n, ms = 10000) {
  let last;
  await waitFor(async () => (last = await connections(base, transport)) >= n, ms, `${n} open ${transport} subscribers (rtbroker_connections)`, () => `the gauge says ${last}`);
  await sleep(50);
}

// ---------------------------------------------------------------- building plugins
/** Compile one C file to a shared object; throws with the compiler output. Returns {cmd, out}. */
export function ccShared(src, out, { cflags = [], cwd } = {}) {
  const args = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', ...cflags, '-o', out, src];
  const r = spawnSync('cc', args, { cwd, encoding: 'utf8', timeout: 60000 });
  const cmd = `cc ${args.join(' ')}`;
  if (r.status !== 0) throw new Error(`${cmd} (in ${cwd || process.cwd()}) failed (${r.status ?? r.signal ?? r.error}):\n${indent(r.stderr || '')}`);
  return { cmd, out };
}

/** Build tests/plugins/NAME.c against the source tree's include/ into dir/NAME.so. */
export function buildTestPlugin(name, dir) {
  const out = path.join(dir, `${name}.so`);
  ccShared(path.join(PLUGIN_SRC, `${name}.c`), out, { cflags: ['-I', path.join(ROOT, 'include')] });
  return out;
}

// ---------------------------------------------------------------- a broker from another binary
const started = new Set();
process.on('exit', () => { for (const b of started) { try { process.kill(b.pid, 'SIGKILL'); } catch {} } });

const DEFAULTS = (port) => ({
  listen: `127.0.0.1:${port}`,
  workers: 2,
  shutdown: { drain: '3s' },
  limits: { connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 },
  auth: { anonymous: { subscribe: ['>'], publish: ['>'] } },
});

function merge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' && !Array.isArray(out[k])) out[k] = merge(out[k], v);
    else out[k] = v;
  }
  return out;
}

/**
 * Start `bin` like the harness starts build/rtbroker (free port, the harness's defaults with
 * opts.config merged over them, wait for /healthz), with cwd opts.cwd (default: a temp dir, so
 * nothing is found in the source tree by accident). The broker is pushed onto ctx.brokers, so
 * the case's cleanup stops it and a failure prints its log.
 */
export async function startBinary(ctx, bin, opts = {}) {
  const dir = mkTemp('rtb-inst-');
  const port = await freePort();
  const cfg = merge(DEFAULTS(port), opts.config || {});
  const configPath = path.join(dir, 'rtbroker.yaml');
  fs.writeFileSync(configPath, toYaml(cfg));
  const logPath = path.join(dir, 'broker.log');
  const logFd = fs.openSync(logPath, 'a');
  const args = ['-c', configPath, '--listen', `127.0.0.1:${port}`, '--workers', '2'];
  const child = spawn(bin, args, { cwd: opts.cwd || dir, env: brokerEnv(opts.env), stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const base = `http://127.0.0.1:${port}`;
  const b = {
    base, port, pid: child.pid, child, dir, configPath, logPath, args, exited: null, stopping: false,
    log: () => { try { return fs.readFileSync(logPath, 'utf8').split('\n').slice(-80).join('\n'); } catch (e) { return `(no log: ${e.message})`; } },
    fullLog: () => { try { return fs.readFileSync(logPath, 'utf8'); } catch { return ''; } },
    alive: () => b.exited === null,
    kill: (sig = 'SIGKILL') => { try { process.kill(child.pid, sig); } catch {} },
    async stop({ signal = 'SIGTERM', timeout = 15000 } = {}) {
      b.stopping = true;
      if (b.exited) return { ...b.exited, ms: 0 };
      const t0 = Date.now();
      try { process.kill(b.pid, signal); } catch {}
      let res = await Promise.race([b.exitPromise, sleep(timeout).then(() => null)]);
      let killed = false;
      if (!res) { killed = true; try { process.kill(b.pid, 'SIGKILL'); } catch {} res = await Promise.race([b.exitPromise, sleep(5000).then(() => null)]); }
      return { ...(res || { code: null, signal: null }), ms: Date.now() - t0, killed };
    },
  };
  b.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => { b.exited = { code, signal, at: Date.now() }; started.delete(b); resolve(b.exited); }));
  child.once('error', (e) => { b.spawnError = e; });
  started.add(b);
  ctx.brokers.push(b);
  const deadline = Date.now() + 10000 * SLOW;
  for (;;) {
    if (b.spawnError) throw new Error(`spawn ${bin}: ${b.spawnError.message}`);
    if (b.exited) throw new Error(`${bin} exited before /healthz answered (${JSON.stringify(b.exited)})\n${indent(b.log())}`);
    try {
      const r = await fetch(base + '/healthz', { signal: AbortSignal.timeout(1000) });
      await r.text();
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${bin} did not answer /healthz within ${10 * SLOW} s\n${indent(b.log())}`);
    await sleep(50);
  }
  return b;
}

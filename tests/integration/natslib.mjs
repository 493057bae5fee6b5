// Shared helpers for the NATS JetStream bus tests (test_nats_*.mjs), on top of lib.mjs.
//
// - startNats(ctx, …): a nats-server with JetStream on 127.0.0.1, a free port, disk storage in a
//   temp dir (restartable with the same dir), optionally a cluster member. Killed (by PID) when
//   the case ends and, with SIGKILL, from lib.mjs's process 'exit' handler.
// - natsBroker(ctx, urls, config): a broker with `bus: nats`, waited until /readyz is 200.
// - nats_client (tests/tools/nats_client.c, built into build/tools/nats_client by make build).
// - WebSocket subscribers (npm ws, raw and rt.v1), long-poll loops, metrics, percentiles.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  ROOT, SLOW, mkTemp, trackChild, freePort, sleep, waitFor, request, publish, poll, subscribe, trunc, indent, assert,
  AssertionError,
} from './lib.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
export const WebSocket = require('ws');

export const NATS_SERVER = process.env.NATS_SERVER
  || ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => fs.existsSync(p))
  || 'nats-server';
// NATS_CLIENT overrides the tool (e.g. a copy built by hand before the Makefile rule existed)
export const NATS_CLIENT = process.env.NATS_CLIENT || path.join(ROOT, 'build', 'tools', 'nats_client');

// ---------------------------------------------------------------- nats-server
const liveNats = new Set();
process.on('exit', () => { for (const n of liveNats) { try { process.kill(n.pid, 'SIGKILL'); } catch {} } });

function tail(file, lines = 40) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch (e) { return `(no log: ${e.message})`; }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(500, () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('INFO ')));
    s.once('error', () => done(false));
  });
}

/**
 * Start a nats-server (JetStream, disk storage). opts: port, dir (storage, reused on restart),
 * name (server_name), cluster: {port, routes: [ports], name}, monitor (true: an HTTP monitoring port).
 * Returns a handle: {port, url, dir, pid, logPath, stop(sig), kill(), restart(), alive(), monitor}.
 */
export async function startNats(ctx, opts = {}) {
  const port = opts.port ?? await freePort();
  const dir = opts.dir ?? mkTemp('rtb-nats-');
  const monitorPort = opts.monitor ? (opts.monitorPort ?? await freePort()) : null;
  const h = {
    port, url: `nats://127.0.0.1:${port}`, dir, name: opts.name || null, monitorPort, opts,
    child: null, pid: null, exited: null, logPath: null, starts: 0,
  };
  h.alive = () => h.child !== null && h.exited === null;
  h.log = () => tail(h.logPath);
  h.start = async () => {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir];
    if (opts.name) args.push('--server_name', opts.name);
    if (monitorPort) args.push('-m', String(monitorPort));
    if (opts.cluster) {
      args.push('--cluster', `nats://127.0.0.1:${opts.cluster.port}`, '--cluster_name', opts.cluster.name || 'rt');
      const routes = opts.cluster.routes.filter((p) => p !== opts.cluster.port);
      if (routes.length) args.push('--routes', routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
    }
    h.starts++;
    h.logPath = path.join(dir, `nats-server-${h.starts}.log`);
    const fd = fs.openSync(h.logPath, 'a');
    const child = spawn(NATS_SERVER, args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    h.child = child; h.pid = child.pid; h.exited = null;
    trackChild(child);
    liveNats.add(h);
    h.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => {
      h.exited = { code, signal }; liveNats.delete(h); resolve(h.exited);
    }));
    child.once('error', (e) => { h.spawnError = e; });
    const deadline = Date.now() + 10000 * SLOW;
    for (;;) {
      if (h.spawnError) throw new Error(`spawn ${NATS_SERVER}: ${h.spawnError.message}`);
      if (h.exited) throw new Error(`nats-server on port ${port} exited at start (${JSON.stringify(h.exited)})\n${indent(h.log())}`);
      if (/Server is ready/.test(tail(h.logPath, 400)) && await portOpen(port)) break;
      if (Date.now() > deadline) throw new Error(`nats-server on port ${port} not ready within 10 s\n${indent(h.log())}`);
      await sleep(50);
    }
    return h;
  };
  /** Stop with a signal (default SIGTERM); waits for the exit (SIGKILL after 10 s). */
  h.stop = async (sig = 'SIGTERM') => {
    if (!h.alive()) return h.exited;
    try { process.kill(h.pid, sig); } catch {}
    const r = await Promise.race([h.exitPromise, sleep(10000).then(() => null)]);
    if (r) return r;
    try { process.kill(h.pid, 'SIGKILL'); } catch {}
    return Promise.race([h.exitPromise, sleep(3000).then(() => null)]);
  };
  h.kill = () => h.stop('SIGKILL');
  h.restart = async () => { await h.stop(); return h.start(); };
  /** GET a monitoring endpoint (needs opts.monitor). */
  h.monitor = async (p) => {
    const r = await fetch(`http://127.0.0.1:${monitorPort}${p}`, { signal: AbortSignal.timeout(2000) });
    return r.json();
  };
  // one cleanup for all of a case's nats-servers, registered with the first one: it runs after the
  // brokers' (deferred later, run earlier), so brokers never shut down against a dead nats-server
  if (!ctx.natsServers) {
    ctx.natsServers = [];
    ctx.defer(() => Promise.all(ctx.natsServers.map((n) => n.stop('SIGKILL'))));
  }
  ctx.natsServers.push(h);
  if (opts.start !== false) await h.start();
  return h;
}

/**
 * A 3-server JetStream cluster (or n). Waits until every server reports the same meta leader.
 */
export async function startNatsCluster(ctx, n = 3) {
  const cports = [];
  for (let i = 0; i < n; i++) cports.push(await freePort());
  const servers = [];
  for (let i = 0; i < n; i++) {
    servers.push(await startNats(ctx, {
      name: `n${i + 1}`, monitor: true, cluster: { port: cports[i], routes: cports, name: 'rt' }, start: false,
    }));
  }
  await Promise.all(servers.map((s) => s.start()));
  const t0 = Date.now();
  await waitFor(async () => {
    try {
      const js = await Promise.all(servers.map((s) => s.monitor('/jsz')));
      const leaders = js.map((j) => j.meta_cluster && j.meta_cluster.leader);
      return leaders.every((l) => l && l === leaders[0]) && js.every((j) => (j.meta_cluster.cluster_size || n) >= n);
    } catch { return false; }
  }, 30000 * SLOW, 'a JetStream meta leader on every cluster member', () => servers.map((s) => s.log()).join('\n----\n').slice(-3000));
  servers.metaMs = Date.now() - t0;
  return servers;
}

// ---------------------------------------------------------------- brokers on the NATS bus
export function natsConfig(urls, extra = {}) {
  const list = Array.isArray(urls) ? urls : [urls];
  const cfg = {
    bus: 'nats',
    plugins: { load: ['sse', 'longpoll', 'websocket'] },
    ...extra,
    nats: { url: list, ...(extra.nats || {}) },
  };
  return cfg;
}

/** GET /readyz until 200. Returns the ms waited. */
export async function waitReady(b, ms = 15000, label = 'readyz 200') {
  const t0 = Date.now();
  let last = '';
  await waitFor(async () => {
    try {
      const r = await request(b.base, 'GET', '/readyz', { timeout: 2000 });
      last = `${r.status} ${trunc(r.text, 100)}`;
      return r.status === 200;
    } catch (e) { last = e.message; return false; }
  }, ms * SLOW, `${label} on ${b.base}`, () => `last answer: ${last}; broker log:\n${indent(b.log())}`);
  return Date.now() - t0;
}

/** Start a broker on the NATS bus (lib's ctx.broker), wait until /readyz says 200 (unless ready: false). */
export async function natsBroker(ctx, urls, config = {}, { ready = true, env } = {}) {
  const b = await ctx.broker({ config: natsConfig(urls, config), env });
  // stop brokers before the nats-servers (registered earlier, so deferred later) go away
  ctx.defer(() => b.stop({ timeout: 4000 }));
  if (ready) await waitReady(b);
  return b;
}

/** Kill a broker with SIGKILL without the harness reporting it as an unexpected exit. */
export async function killBroker(b, sig = 'SIGKILL') {
  b.stopping = true;
  b.kill(sig);
  await Promise.race([b.exitPromise, sleep(5000)]);
}

/** Which of `servers` (startNats handles) the process `pid` has an established TCP connection to (ss -tnp). */
export function connectedServers(pid, servers) {
  const r = spawnSync('ss', ['-Htnp', 'state', 'established'], { encoding: 'utf8' });
  const out = [];
  for (const line of (r.stdout || '').split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const cols = line.trim().split(/\s+/);
    const peer = cols[3] || '';
    const port = Number(peer.split(':').pop());
    const srv = servers.find((x) => x.port === port);
    if (srv && !out.includes(srv)) out.push(srv);
  }
  return out;
}

// ---------------------------------------------------------------- metrics
export async function metrics(base) {
  const r = await request(base, 'GET', '/metrics', { timeout: 5000 });
  return r.text;
}
/** Value of the first sample whose line starts with `prefix` (name plus optional labels). NaN if absent. */
export function metricValue(text, prefix) {
  const l = text.split('\n').find((x) => x.startsWith(prefix + ' ') || (!prefix.includes('{') && x.startsWith(prefix + '{')));
  return l ? Number(l.trim().split(/\s+/).pop()) : NaN;
}

// ---------------------------------------------------------------- nats_client
export function haveNatsClient() { return fs.existsSync(NATS_CLIENT); }
export function requireNatsClient() {
  assert(haveNatsClient(), `${NATS_CLIENT} not found: make build should build tests/tools/nats_client.c into build/tools/ (or set NATS_CLIENT)`);
}

/** Run nats_client to completion. */
export function natsClient(args, { timeout = 15000 } = {}) {
  requireNatsClient();
  return new Promise((resolve) => {
    const c = trackChild(spawn(NATS_CLIENT, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
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

/** Start `nats_client sub`; resolves once it printed READY. .lines() parses DATA\tEVENT\tCTYPE. */
export async function natsSub(ctx, url, subject, n, timeoutMs) {
  requireNatsClient();
  const c = trackChild(spawn(NATS_CLIENT, ['sub', url, subject, String(n), String(timeoutMs)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  ctx.defer(() => { try { c.kill('SIGKILL'); } catch {} });
  const out = []; const err = [];
  c.stdout.on('data', (d) => out.push(d));
  c.stderr.on('data', (d) => err.push(d));
  const exit = new Promise((r) => c.on('exit', (code, signal) => r({ code, signal })));
  const h = {
    exit,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => Buffer.concat(err).toString('utf8'),
    lines: () => h.stdout().split('\n').filter((l) => l.length).map((l) => {
      const [data, event, ctype] = l.split('\t');
      return { data, event: event === '-' ? null : event, ctype: ctype === '-' ? null : ctype };
    }),
  };
  await waitFor(() => /READY/.test(h.stderr()) || c.exitCode !== null, 10000, 'nats_client sub READY', () => h.stderr());
  assert(/READY/.test(h.stderr()), `nats_client sub failed: ${h.stderr()}`);
  return h;
}

// ---------------------------------------------------------------- WebSocket subscribers (npm ws)
const wsBase = (base) => base.replace(/^http/, 'ws');

/** Raw-mode WebSocket on /sub/{topic}: one frame per message, payload verbatim. */
export function wsRaw(ctx, base, topic, { since } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsBase(base)}/sub/${topic}${since ? `?since=${encodeURIComponent(since)}` : ''}`);
    const h = { ws, data: [], closed: null };
    ctx.defer(() => ws.terminate());
    ws.on('message', (d, isBinary) => h.data.push(isBinary ? d : d.toString('utf8')));
    ws.on('close', (code, reason) => { h.closed = { code, reason: reason.toString() }; });
    ws.on('open', () => resolve(h));
    ws.on('error', (e) => { if (!h.open) reject(new Error(`raw WebSocket ${topic}: ${e.message}`)); });
    ws.on('open', () => { h.open = true; });
  });
}

/** rt.v1 WebSocket on /ws, subscribed to topic (with since); resolves after the sub's ok. */
export function wsV1(ctx, base, topic, { since, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsBase(base)}/ws`, ['rt.v1']);
    const h = { ws, frames: [], closed: null, ref: 0, pending: new Map() };
    ctx.defer(() => ws.terminate());
    h.msgs = () => h.frames.filter((f) => f.type === 'msg');
    h.gaps = () => h.frames.filter((f) => f.type === 'gap');
    h.send = (op) => new Promise((res) => {
      const ref = `r${++h.ref}`;
      h.pending.set(ref, res);
      ws.send(JSON.stringify({ ...op, ref }));
    });
    const to = setTimeout(() => reject(new Error(`rt.v1 WebSocket ${topic}: no sub ok within ${timeout} ms; frames ${trunc(JSON.stringify(h.frames))}`)), timeout);
    ws.on('message', (d) => {
      let f; try { f = JSON.parse(d.toString('utf8')); } catch { f = { type: 'unparsable', raw: d.toString('utf8') }; }
      f.at = Date.now();
      h.frames.push(f);
      if ((f.type === 'ok' || f.type === 'error') && h.pending.has(f.ref)) { h.pending.get(f.ref)(f); h.pending.delete(f.ref); }
    });
    ws.on('close', (code, reason) => { h.closed = { code, reason: reason.toString() }; });
    ws.on('error', (e) => { clearTimeout(to); reject(new Error(`rt.v1 WebSocket: ${e.message}`)); });
    ws.on('open', async () => {
      const ok = await h.send({ op: 'sub', topic, ...(since ? { since } : {}) });
      clearTimeout(to);
      if (ok.type !== 'ok') reject(new Error(`rt.v1 sub ${topic}: ${JSON.stringify(ok)}`));
      else resolve(h);
    });
  });
}

// ---------------------------------------------------------------- long-poll loop
/**
 * Poll `topic` from `cursor` until stopped; bases: one or more broker bases used in turn
 * (or a function (i) → base). Collects messages (and gap flags) in .got.
 */
export function longPoller(bases, topic, cursor, { timeout = 5, onError, path: pollPath = '/poll' } = {}) {
  const pick = typeof bases === 'function' ? bases : (i) => bases[i % bases.length];
  const p = { got: [], gaps: 0, polls: 0, cursor, stopped: false, errors: [], byNode: {} };
  p.done = (async () => {
    while (!p.stopped) {
      const base = pick(p.polls);
      const params = { topic, timeout };
      if (p.cursor) params.cursor = p.cursor;
      const r = await poll(base, params, { path: pollPath, timeout: (timeout + 10) * 1000 }).catch((e) => ({ status: 0, text: e.message }));
      p.polls++;
      if (r.status !== 200) {
        p.errors.push(`${base}: ${r.status} ${trunc(r.text, 200)}`);
        if (onError) { const again = await onError(r, p); if (again) continue; }
        if (p.errors.length > 20) return;
        await sleep(200);
        continue;
      }
      if (r.json.gap) p.gaps++;
      for (const m of r.json.messages) { m.via = base; m.at = Date.now(); p.got.push(m); }
      p.byNode[base] = (p.byNode[base] || 0) + 1;
      p.cursor = r.json.cursor;
    }
  })();
  p.stop = async () => { p.stopped = true; await Promise.race([p.done, sleep((timeout + 11) * 1000)]); };
  return p;
}

// ---------------------------------------------------------------- publishing
/** POST /pub; returns {status, id, retryAfter, text}. Never throws (network errors are status 0). */
export async function tryPublish(base, topic, body, opts = {}) {
  try {
    const r = await publish(base, topic, body, opts);
    return { status: r.status, id: r.json && r.json.id, retryAfter: r.headers.get('retry-after'), text: r.text, json: r.json };
  } catch (e) {
    if (e instanceof AssertionError) throw e; // a malformed 200 is a failure, not a network error
    return { status: 0, id: null, retryAfter: null, text: e.message };
  }
}

/** n publishes to topic that must each get a 200; their ids in order. */
export async function publishN(base, topic, n, body = (i) => `m${i}`) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await tryPublish(base, topic, body(i));
    assert(r.status === 200, `publish ${topic}: ${r.status} ${trunc(r.text, 200)}`);
    ids.push(r.id);
  }
  return ids;
}

// ---------------------------------------------------------------- checks and figures
/** Check that `got` (ids) is exactly `want` (ids), reporting the first difference readably. */
export function sameIds(got, want, what) {
  if (got.length === want.length && got.every((x, i) => x === want[i])) return;
  const seen = new Map();
  const dups = [];
  for (const x of got) { seen.set(x, (seen.get(x) || 0) + 1); if (seen.get(x) === 2) dups.push(x); }
  const wantSet = new Set(want);
  const missing = want.filter((x) => !seen.has(x));
  const extra = got.filter((x) => !wantSet.has(x));
  let firstDiff = 0;
  while (firstDiff < got.length && got[firstDiff] === want[firstDiff]) firstDiff++;
  throw new Error(`${what}: got ${got.length} ids, want ${want.length}; ${missing.length} missing ${trunc(JSON.stringify(missing.slice(0, 10)), 300)}, ` +
    `${dups.length} duplicated ${trunc(JSON.stringify(dups.slice(0, 10)), 300)}, ${extra.length} unexpected ${trunc(JSON.stringify(extra.slice(0, 10)), 300)}; ` +
    `first difference at index ${firstDiff}: got ${got[firstDiff]}, want ${want[firstDiff]}`);
}

/** An SSE resume from `from` on base: exactly the ids `want` replayed (nothing after them), with no gap notice. */
export async function sseResume(base, topic, from, want, what) {
  const sse = await subscribe(base, `/sub/${topic}`, { headers: { 'Last-Event-ID': from } });
  try {
    await sse.waitFor((x) => x.messages.length >= want.length, 5000, what).catch(() => {});
    await sleep(50); // nothing more (no double)
    assert(!sse.events.some((e) => e.event === 'rt.gap'), `${what}: a gap notice`);
    sameIds(sse.messages.map((m) => m.id), want, what);
  } finally { sse.close(); }
}

/** lib's subscribe() plus arrival times: s.arrivals[i] = performance.now() when s.messages[i] came. */
export async function timedSubscribe(base, p, opts = {}) {
  const s = await subscribe(base, p, opts);
  s.arrivals = [];
  const mark = () => { const now = performance.now(); while (s.arrivals.length < s.messages.length) s.arrivals.push(now); };
  mark();
  s.res.on('data', mark);
  return s;
}

export function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** SEQ as a Number (the tests stay far below 2^53). */
export const seqNum = (id) => Number(String(id).split(':').pop());

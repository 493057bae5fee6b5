// Helpers for the hardening tests (test_limits_*.mjs, tests/soak/): clients bound to another loopback
// address (Linux routes all of 127/8 to lo, so 127.0.0.2 is a second client IP), raw sockets that
// record when the server closed them, HTTP without connection reuse, and the broker's resident
// memory and open descriptors from /proc.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, sleep, waitFor } from './lib.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
export const WebSocket = require('ws');

export const ATTACKER = '127.0.0.2';

// ASan keeps freed memory in a quarantine (256 MiB by default) that reads as growth: memory tests run a sanitized
// broker with a small one (brokerEnv) and allow that much (plus per-thread caches) on top of their limits.
export const SANITIZER_RSS_KIB = process.env.RTB_SANITIZED ? 8 * 1024 : 0;
export function sanitizerMemEnv() {
  if (!process.env.RTB_SANITIZED) return {};
  return { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? process.env.ASAN_OPTIONS + ':' : ''}quarantine_size_mb=4` };
}

/** VmRSS of a process in KiB (NaN when it is gone). */
export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}

/** Open file descriptors of a process. */
export function fdCount(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return NaN; }
}

/**
 * A raw TCP connection: .data() what came back, .closedAt (ms since connect) once the server closed
 * it, .write(), .destroy(). opts.localAddress binds the client side.
 */
export function rawConn(port, { localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    const got = [];
    const t0 = Date.now();
    const h = {
      sock, closedAt: null, error: null,
      data: () => Buffer.concat(got).toString('latin1'),
      write: (d) => { if (!sock.destroyed) sock.write(d); },
      destroy: () => sock.destroy(),
      closed: null,
    };
    h.closed = new Promise((r) => sock.on('close', () => { h.closedAt = Date.now() - t0; r(); }));
    sock.on('data', (d) => got.push(d));
    sock.on('error', (e) => { h.error = e.code || e.message; });
    sock.once('connect', () => resolve(h));
    sock.once('error', (e) => reject(e));
  });
}

/** One HTTP request on a connection of its own (no pooling), optionally from another local address. */
export function httpOnce(base, method, p, { headers = {}, body, timeout = 10000, localAddress } = {}) {
  const u = new URL(base);
  return new Promise((resolve) => {
    const req = http.request({
      host: u.hostname, port: u.port, method, path: p, agent: false,
      headers: { connection: 'close', ...headers }, ...(localAddress ? { localAddress } : {}),
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null; try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', (e) => resolve({ status: 0, text: e.message, headers: {}, json: null }));
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`timed out after ${timeout} ms`)));
    req.on('error', (e) => resolve({ status: 0, text: `${e.code || ''} ${e.message}`, headers: {}, json: null }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A request whose answer's status line and headers are all we want (streams are cut there). */
export function httpStatus(base, p, { headers = {}, timeout = 5000, localAddress } = {}) {
  const u = new URL(base);
  return new Promise((resolve) => {
    const req = http.request({
      host: u.hostname, port: u.port, method: 'GET', path: p, agent: false, headers,
      ...(localAddress ? { localAddress } : {}),
    }, (res) => { resolve({ status: res.statusCode, headers: res.headers }); req.destroy(); });
    req.setTimeout(timeout, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, error: e.message }));
    req.end();
  });
}

/** A Prometheus value from /metrics (fetched on a connection of its own). */
export async function metric(base, name) {
  const r = await httpOnce(base, 'GET', '/metrics');
  if (r.status !== 200) return NaN;
  const line = r.text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

/**
 * A WebSocket that settles once open (resolve) or refused (resolve with .refused = {status, body}).
 * .frames: text frames (rt.v1 parsed as JSON), .closed: {code, reason} once closed.
 */
export function wsOpen(base, p, { protocols, localAddress, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + p, protocols, { ...(localAddress ? { localAddress } : {}) });
    const h = { ws, frames: [], closed: null, refused: null, ref: 0, waiting: new Map() };
    const to = setTimeout(() => { ws.terminate(); reject(new Error(`WebSocket ${p}: not open within ${timeout} ms`)); }, timeout);
    ws.on('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        clearTimeout(to);
        h.refused = { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
        resolve(h);
      });
    });
    ws.on('message', (d, isBinary) => {
      let f = isBinary ? d : d.toString('utf8');
      if (protocols && !isBinary) { try { f = JSON.parse(f); } catch {} }
      h.frames.push(f);
      if (f && f.ref !== undefined && h.waiting.has(f.ref)) { h.waiting.get(f.ref)(f); h.waiting.delete(f.ref); }
    });
    ws.on('close', (code, reason) => { h.closed = { code, reason: reason.toString() }; });
    ws.on('error', (e) => { if (!h.open && !h.refused) { clearTimeout(to); reject(new Error(`WebSocket ${p}: ${e.message}`)); } });
    ws.on('open', () => { h.open = true; clearTimeout(to); resolve(h); });
    h.op = (op, ms = 10000) => new Promise((res, rej) => {
      const ref = `r${++h.ref}`;
      const t = setTimeout(() => { h.waiting.delete(ref); rej(new Error(`rt.v1 ${op.op}: no answer within ${ms} ms`)); }, ms);
      h.waiting.set(ref, (f) => { clearTimeout(t); res(f); });
      ws.send(JSON.stringify({ ...op, ref }));
    });
    h.msgs = () => h.frames.filter((f) => f && f.type === 'msg');
    h.waitClosed = (ms) => waitFor(() => h.closed, ms, `WebSocket ${p} closed`);
  });
}

export { sleep };

// A TCP fault proxy for tests: sits between a broker node and nats-server (or between clients and
// brokers) and, on command, cuts every connection, refuses new ones, freezes traffic (bytes held,
// nothing closed: a black hole that heals) or delays it, then restores.
//
// In-process:   const p = await startFaultProxy({ target: 4222 }); p.cut(); p.restore(); p.close();
// Standalone:   node faultproxy.mjs LISTEN_PORT TARGET_PORT [CONTROL_PORT]
//               then lines on stdin (or GET http://127.0.0.1:CONTROL_PORT/<cmd>[?ms=N]):
//               cut | refuse | freeze | delay MS | restore | stats
import net from 'node:net';
import http from 'node:http';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * opts: target (port, or {host, port}), port (listen; 0 = any), host (default 127.0.0.1).
 * Modes: 'pass', 'cut' (connections destroyed at once, new ones refused), 'refuse' (new ones refused,
 * established ones kept), 'freeze' (nothing forwarded either way; held bytes flow on restore), 'delay'.
 */
export async function startFaultProxy(opts) {
  const target = typeof opts.target === 'object' ? opts.target : { host: '127.0.0.1', port: opts.target };
  const conns = new Set();
  const p = { mode: 'pass', delayMs: 0, stats: { accepted: 0, refused: 0, cut: 0 }, target };

  // one direction of a pair: forwards chunks in order, honouring freeze and delay
  function pipe(from, to, pair) {
    const q = [];
    let busy = false;
    const flush = () => {
      if (busy || p.mode === 'freeze' || pair.dead) return;
      const item = q[0];
      if (!item) return;
      const wait = item.due - Date.now();
      if (wait > 0) { busy = true; setTimeout(() => { busy = false; flush(); }, wait); return; }
      q.shift();
      if (!to.destroyed) to.write(item.buf);
      flush();
    };
    from.on('data', (buf) => { q.push({ buf, due: Date.now() + (p.mode === 'delay' ? p.delayMs : 0) }); flush(); });
    return flush;
  }

  const server = net.createServer((client) => {
    if (p.mode === 'cut' || p.mode === 'refuse') { p.stats.refused++; client.destroy(); return; }
    p.stats.accepted++;
    client.pause();
    const upstream = net.connect(target.port, target.host || '127.0.0.1');
    const pair = { client, upstream, dead: false };
    pair.kill = () => {
      if (pair.dead) return;
      pair.dead = true;
      conns.delete(pair);
      client.destroy(); upstream.destroy();
    };
    conns.add(pair);
    pair.flushes = [pipe(client, upstream, pair), pipe(upstream, client, pair)];
    upstream.once('connect', () => client.resume());
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      s.on('error', () => pair.kill());
      s.on('close', () => pair.kill());
    }
  });
  await new Promise((res, rej) => { server.once('error', rej); server.listen(opts.port || 0, opts.host || '127.0.0.1', res); });
  p.port = server.address().port;
  p.url = `nats://127.0.0.1:${p.port}`;
  p.connections = () => conns.size;

  p.cut = () => {
    p.mode = 'cut';
    for (const c of [...conns]) { p.stats.cut++; c.kill(); }
  };
  p.refuse = () => { p.mode = 'refuse'; };
  p.freeze = () => { p.mode = 'freeze'; };
  p.delay = (ms) => { p.mode = 'delay'; p.delayMs = ms; };
  p.restore = () => {
    p.mode = 'pass';
    for (const c of conns) c.flushes.forEach((f) => f());
  };
  /** Apply a command line ("cut", "delay 200", …); returns a short answer. */
  p.command = (line) => {
    const [cmd, arg] = String(line).trim().split(/\s+/);
    if (cmd === 'cut') p.cut();
    else if (cmd === 'refuse') p.refuse();
    else if (cmd === 'freeze') p.freeze();
    else if (cmd === 'delay') p.delay(Number(arg) || 100);
    else if (cmd === 'restore') p.restore();
    else if (cmd !== 'stats') return `unknown command ${JSON.stringify(cmd)} (cut|refuse|freeze|delay MS|restore|stats)`;
    return JSON.stringify({ mode: p.mode, delayMs: p.delayMs, connections: conns.size, ...p.stats });
  };
  p.close = () => new Promise((res) => {
    for (const c of [...conns]) c.kill();
    server.close(() => res());
  });
  return p;
}

async function main() {
  const [listen, target, control] = process.argv.slice(2).map(Number);
  if (!listen || !target) {
    console.error('usage: node faultproxy.mjs LISTEN_PORT TARGET_PORT [CONTROL_PORT]');
    process.exit(2);
  }
  const p = await startFaultProxy({ port: listen, target });
  console.log(`faultproxy 127.0.0.1:${p.port} -> 127.0.0.1:${target}`);
  readline.createInterface({ input: process.stdin }).on('line', (l) => { if (l.trim()) console.log(p.command(l)); });
  if (control) {
    http.createServer((req, res) => {
      const u = new URL(req.url, 'http://x');
      const cmd = u.pathname.slice(1) + (u.searchParams.get('ms') ? ` ${u.searchParams.get('ms')}` : '');
      res.end(p.command(cmd) + '\n');
    }).listen(control, '127.0.0.1');
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();

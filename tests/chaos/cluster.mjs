// The system under test for the chaos checker: nats-servers (1, or a 3-server JetStream cluster),
// broker nodes on the NATS bus each reaching every nats-server through its own fault proxy, and
// the faults (seeded): broker SIGKILL + restart, SIGSTOP/SIGCONT, nats-server restart (the meta
// leader with 3), link cut / freeze / delay, client connections dropped.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, ROOT, mkTemp, trackChild, freePort, sleep, toYaml, brokerEnv } from '../integration/lib.mjs';
import { startNats, startNatsCluster } from '../integration/natslib.mjs';
import { startFaultProxy } from './faultproxy.mjs';

/** A deterministic PRNG (mulberry32): the fault schedule replays from the seed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  next.pick = (xs) => xs[Math.floor(next() * xs.length)];
  return next;
}

// the deferred-cleanup context natslib expects
export function makeCtx() {
  const deferred = [];
  return {
    defer: (fn) => deferred.push(fn),
    cleanup: async () => { for (const fn of deferred.reverse()) { try { await fn(); } catch {} } },
  };
}

async function healthy(base, p = '/healthz') {
  try {
    const r = await fetch(base + p, { signal: AbortSignal.timeout(1000) });
    await r.text();
    return r.status === 200;
  } catch { return false; }
}

/** A broker node with a fixed port (clients come back to the same address after a restart). */
async function makeNode(i, natsUrls, extraCfg) {
  const port = await freePort();
  const dir = mkTemp('rtb-chaos-');
  const node = { i, name: `node${i + 1}`, port, base: `http://127.0.0.1:${port}`, dir, child: null, starts: 0, stopped: false };
  const cfg = {
    listen: `127.0.0.1:${port}`, workers: 1, bus: 'nats',
    plugins: { load: ['sse', 'longpoll', 'websocket', 'ndjson'] },
    shutdown: { drain: '1s' },
    limits: { connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 },
    auth: { anonymous: { subscribe: ['>'], publish: ['>'] } },
    history: { max_messages: 100000, max_age: '2h' },
    publish: { dedup_window: '10m' },
    sse: { heartbeat: '1s' }, ndjson: { heartbeat: '1s' }, websocket: { ping_interval: '1s' },
    ...extraCfg,
    nats: { url: natsUrls, publish_timeout: '2s', ...(extraCfg.nats || {}) },
  };
  node.configPath = path.join(dir, 'rtbroker.yaml');
  fs.writeFileSync(node.configPath, toYaml(cfg));
  node.logPath = path.join(dir, 'broker.log');
  node.alive = () => node.child !== null && node.child.exitCode === null && node.child.signalCode === null;
  node.start = async () => {
    const fd = fs.openSync(node.logPath, 'a');
    node.child = trackChild(spawn(BIN, ['-c', node.configPath], { cwd: ROOT, env: brokerEnv(), stdio: ['ignore', fd, fd] }));
    fs.closeSync(fd);
    node.starts++;
    node.stopped = false;
    const deadline = Date.now() + 15000;
    while (!(await healthy(node.base))) {
      if (!node.alive()) throw new Error(`${node.name} exited at start: ${tail(node.logPath)}`);
      if (Date.now() > deadline) throw new Error(`${node.name}: no /healthz within 15 s`);
      await sleep(50);
    }
  };
  node.signal = (sig) => { try { process.kill(node.child.pid, sig); } catch {} };
  node.kill = async () => {
    if (!node.alive()) return;
    const exited = new Promise((r) => node.child.once('exit', r));
    node.signal('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  };
  node.ready = () => healthy(node.base, '/readyz');
  return node;
}

export function tail(file, n = 30) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n'); } catch { return '(no log)'; }
}

/**
 * Start the system: opts.nats (1 or 3 servers), opts.nodes (broker nodes), opts.config (extra broker config).
 * Returns {nats: [handles], nodes: [...], proxies: node.proxies, ctx}.
 */
export async function startSystem(opts) {
  const ctx = makeCtx();
  const nats = opts.nats === 3 ? await startNatsCluster(ctx, 3) : [await startNats(ctx, { monitor: true })];
  const nodes = [];
  for (let i = 0; i < opts.nodes; i++) {
    const proxies = [];
    for (const n of nats) proxies.push(await startFaultProxy({ target: n.port }));
    const extra = { ...(opts.config || {}) };
    if (nats.length === 3) extra.nats = { replicas: 3 };
    const node = await makeNode(i, proxies.map((p) => p.url), extra);
    node.proxies = proxies;
    ctx.defer(() => Promise.all(proxies.map((p) => p.close())));
    nodes.push(node);
  }
  ctx.defer(() => Promise.all(nodes.map(async (n) => { n.signal('SIGCONT'); await n.kill(); })));
  for (const n of nodes) await n.start(); // one after the other: the first creates the stream
  return { nats, nodes, ctx };
}

/** The fault kinds and how each is done and undone. `log(kind, detail)` records it. */
export function faultKinds(sys, { rand, log, dropClients }) {
  const up = () => sys.nodes.filter((n) => n.alive() && !n.stopped);
  const ms = (lo, hi) => rand.int(lo, hi);
  return {
    async 'broker-kill'() {
      const n = rand.pick(sys.nodes);
      log('broker-kill', `${n.name} SIGKILL`);
      await n.kill();
      await sleep(ms(300, 2500));
      await n.start();
    },
    async 'broker-stop'() {
      const n = rand.pick(sys.nodes);
      const d = ms(500, 4000);
      log('broker-stop', `${n.name} SIGSTOP for ${d} ms`);
      n.stopped = true; n.signal('SIGSTOP');
      await sleep(d);
      n.signal('SIGCONT'); n.stopped = false;
    },
    async 'nats-restart'() {
      let s = rand.pick(sys.nats);
      if (sys.nats.length === 3 && rand() < 0.5) { // the JetStream meta leader
        try {
          const j = await s.monitor('/jsz');
          s = sys.nats.find((x) => x.name === j.meta_cluster.leader) || s;
        } catch {}
      }
      const hard = rand() < 0.5;
      const d = ms(200, 2000);
      log('nats-restart', `nats-server ${s.name || s.port} ${hard ? 'SIGKILL' : 'SIGTERM'}, back after ${d} ms`);
      await s.stop(hard ? 'SIGKILL' : 'SIGTERM');
      await sleep(d);
      await s.start();
    },
    async 'link-cut'() {
      const n = rand.pick(sys.nodes);
      const d = ms(300, 3000);
      log('link-cut', `${n.name} <-> NATS cut for ${d} ms`);
      n.proxies.forEach((p) => p.cut());
      await sleep(d);
      n.proxies.forEach((p) => p.restore());
    },
    async 'link-freeze'() {
      const n = rand.pick(sys.nodes);
      const d = ms(300, 3000); const cut = rand() < 0.7 ? ms(300, 2000) : 0;
      log('link-freeze', `${n.name} <-> NATS frozen for ${d} ms${cut ? `, then cut for ${cut} ms` : ''}`);
      n.proxies.forEach((p) => p.freeze());
      await sleep(d);
      if (cut) { n.proxies.forEach((p) => p.cut()); await sleep(cut); }
      n.proxies.forEach((p) => p.restore());
    },
    async 'link-delay'() {
      const n = rand.pick(sys.nodes);
      const d = ms(1000, 4000); const lat = ms(20, 400);
      log('link-delay', `${n.name} <-> NATS +${lat} ms for ${d} ms`);
      n.proxies.forEach((p) => p.delay(lat));
      await sleep(d);
      n.proxies.forEach((p) => p.restore());
    },
    async 'client-drop'() {
      const k = ms(1, 4);
      log('client-drop', `${k} client connections dropped`);
      dropClients(k);
      await sleep(ms(200, 1000));
    },
    up,
  };
}

/** A broker that connects straight to NATS after the run, to read the stream back as it is (no faults on its way). */
export async function startReader(sys) {
  const node = await makeNode(sys.nodes.length, sys.nats.map((n) => n.url), sys.nats.length === 3 ? { nats: { replicas: 3 } } : {});
  node.name = 'reader';
  sys.ctx.defer(() => node.kill());
  await node.start();
  const deadline = Date.now() + 30000;
  while (!(await node.ready())) {
    if (Date.now() > deadline) throw new Error(`the reader node is not ready within 30 s:\n${tail(node.logPath)}`);
    await sleep(100);
  }
  return node;
}

/** Undo every fault: SIGCONT, restart dead nodes and nats-servers, restore links; wait for /readyz everywhere. */
export async function heal(sys, ms = 60000) {
  for (const n of sys.nodes) for (const p of n.proxies) p.restore();
  for (const s of sys.nats) if (!s.alive()) await s.start();
  for (const n of sys.nodes) { n.signal('SIGCONT'); n.stopped = false; if (!n.alive()) await n.start(); }
  const deadline = Date.now() + ms;
  for (const n of sys.nodes) {
    while (!(await n.ready())) {
      if (Date.now() > deadline) throw new Error(`${n.name} not ready ${ms / 1000} s after healing:\n${tail(n.logPath)}`);
      await sleep(100);
    }
  }
}

// The topology of docker/docker-compose.yml as local processes, no Docker engine: a
// nats-server with JetStream, two rtbroker processes configured ONLY by the RTB_* variables the
// compose file sets (read from `docker-compose config`) plus the image's ENV (read from
// docker/Dockerfile, paths mapped to this checkout) — no config file, an empty working
// directory, as in the image — and Debian's nginx running conf/nginx-cluster.conf itself
// (rendered with 127.0.0.1 upstreams and listen port), as a non-daemon process.
// Every client connects through nginx only; each node's /metrics is read directly to see
// where the load balancer put them. The last case adds docker-compose.cluster.yml's variables
// and a 3-server NATS cluster standing in for its nats, nats2 and nats3.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { EventSource } from 'eventsource';
import {
  suite, assert, eq, ROOT, BIN, SLOW, mkTemp, trackChild, freePort, sleep, waitFor, request, subscribe,
  publish, trunc, indent, parseId,
} from './lib.mjs';
import { startNats, startNatsCluster, sameIds } from './natslib.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const WebSocket = require('ws');

const t = suite(import.meta.url, { hardTimeoutMs: 115000 });
const COMPOSE = path.join(ROOT, 'docker', 'docker-compose.yml');
const COMPOSE_CLUSTER = path.join(ROOT, 'docker', 'docker-compose.cluster.yml');
const DOCKERFILE = path.join(ROOT, 'docker', 'Dockerfile');
const NGINX_CONF = path.join(ROOT, 'conf', 'nginx-cluster.conf');
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)) || 'nginx';
const NODES = ['rtbroker1', 'rtbroker2'];

// ---------------------------------------------------------------- what the compose file and the image say
/** The resolved compose files (docker-compose config), as JSON. */
function composeConfig(files = [COMPOSE]) {
  const c = spawnSync('docker-compose', files.flatMap((f) => ['-f', f]).concat('config'), { cwd: ROOT, encoding: 'utf8', timeout: 30000 });
  if (c.error || c.status !== 0) throw new Error(`docker-compose ${files.map((f) => path.relative(ROOT, f)).join(' + ')} config: ${c.error ? c.error.message : c.stderr}`);
  const y = spawnSync('/usr/bin/python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'],
    { input: c.stdout, encoding: 'utf8', timeout: 15000 });
  if (y.status !== 0) throw new Error(`YAML → JSON (python3-yaml): ${y.stderr}`);
  return JSON.parse(y.stdout);
}

/** The runtime stage of the Dockerfile: its ENV, and where its COPY lines put things (image path → local path). */
function imageRuntime() {
  const joined = fs.readFileSync(DOCKERFILE, 'utf8').split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  const stages = joined.split(/^FROM /m).slice(1);
  const last = stages[stages.length - 1].split('\n');
  const env = {}; const copies = [];
  for (const line of last) {
    const m = /^(\w+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'ENV') {
      for (const kv of m[2].trim().split(/\s+/)) {
        const i = kv.indexOf('=');
        assert(i > 0, `Dockerfile: ENV ${m[2]}: only K=V is understood here`);
        env[kv.slice(0, i)] = kv.slice(i + 1);
      }
    } else if (m[1] === 'COPY') {
      const w = m[2].trim().split(/\s+/);
      const from = w[0].startsWith('--from=') ? w.shift().slice(7) : null;
      const [src, dest] = w;
      // the build stage's /src/build is this checkout's build directory (the one RTB_BIN is in)
      const local = from ? path.join(path.dirname(BIN), path.relative('/src/build', src)) : path.join(ROOT, src);
      copies.push({ dest, local });
    }
  }
  return { env, copies };
}

/** Every RTB_* variable a broker node gets: the image's ENV, then the node's compose environment; local addresses. */
function nodeEnv(cfg, img, node, { listen, natsPorts }) {
  const env = {};
  for (const [k, v] of Object.entries(img.env)) {
    if (!k.startsWith('RTB_')) continue;
    const c = img.copies.find((x) => v === x.dest || v.startsWith(x.dest + '/'));
    env[k] = c ? c.local + v.slice(c.dest.length) : v;
  }
  const svc = cfg.services[node];
  assert(svc, `no service ${node} in docker/docker-compose.yml`);
  for (const [k, v] of Object.entries(svc.environment || {})) env[k] = String(v);
  assert(env.RTB_LISTEN, 'the image sets no RTB_LISTEN');
  env.RTB_LISTEN = listen;
  // nats://SERVICE:4222 → the local nats-server standing in for that service
  env.RTB_NATS_URL = (env.RTB_NATS_URL || '').split(',').map((u) => {
    const m = /^nats:\/\/([^:/]+):4222$/.exec(u.trim());
    assert(m && natsPorts[m[1]], `RTB_NATS_URL entry ${u}: no local NATS server for it`);
    return `nats://127.0.0.1:${natsPorts[m[1]]}`;
  }).join(',');
  return env;
}

// ---------------------------------------------------------------- processes
const exitKills = new Set();
process.on('exit', () => { for (const pid of exitKills) { try { process.kill(pid, 'SIGKILL'); } catch {} } });

function tail(file, n = 60) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n'); } catch (e) { return `(no log: ${e.message})`; }
}

/** A broker with no arguments, in an empty working directory, on `env` alone; registered with the case (lib stops it). */
async function envBroker(c, name, env, port) {
  const dir = mkTemp(`rtb-${name}-`);
  const logPath = path.join(dir, 'broker.log');
  const fd = fs.openSync(logPath, 'a');
  const clean = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTB_')) clean[k] = v;
  const child = spawn(BIN, [], { cwd: dir, env: { ...clean, ...env }, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const b = {
    name, base: `http://127.0.0.1:${port}`, port, pid: child.pid, child, dir, logPath, env, exited: null, stopping: false,
    log: () => tail(logPath, 80), alive: () => b.exited === null,
  };
  b.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => { b.exited = { code, signal }; resolve(b.exited); }));
  child.once('error', (e) => { b.spawnError = e; });
  exitKills.add(child.pid);
  b.exitPromise.then(() => exitKills.delete(child.pid));
  c.brokers.push(b); // lib's cleanup stops it (SIGTERM), prints its log on failure, fails on an unexpected exit
  // and stop it before the NATS servers (their cleanup was registered earlier, so it runs later)
  c.defer(async () => {
    if (b.exited) return;
    b.stopping = true;
    try { process.kill(b.pid, 'SIGTERM'); } catch {}
    if (!await Promise.race([b.exitPromise, sleep(4000 * SLOW).then(() => null)])) { try { process.kill(b.pid, 'SIGKILL'); } catch {} }
  });
  let last = '';
  await waitFor(async () => {
    if (b.spawnError) throw new Error(`spawn ${BIN}: ${b.spawnError.message}`);
    if (b.exited) throw new Error(`${name} exited at start (${JSON.stringify(b.exited)})\n${indent(b.log())}`);
    try {
      const r = await request(b.base, 'GET', '/readyz', { timeout: 2000 });
      last = `${r.status} ${trunc(r.text, 100)}`;
      return r.status === 200;
    } catch (e) { last = e.message; return false; }
  }, 15000 * SLOW, `${name} /readyz 200`, () => `last answer ${last}\n${indent(b.log())}`);
  return b;
}

async function killNode(b) {
  b.stopping = true;
  try { process.kill(b.pid, 'SIGKILL'); } catch {}
  await Promise.race([b.exitPromise, sleep(5000)]);
}

/** conf/nginx-cluster.conf with the same four plain-text substitutions as test_cluster_compose.sh. */
function renderNginx(dir, listen, upstreams) {
  let conf = fs.readFileSync(NGINX_CONF, 'utf8');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `${k}_temp_path ${dir}/${k};`).join(' ');
  const subs = [
    ['server rtbroker1:8080', `server ${upstreams[0]}`],
    ['server rtbroker2:8080', `server ${upstreams[1]}`],
    ['listen 8080;', `listen ${listen};`],
    ['http {', `http {\n    ${temp}`],
  ];
  for (const [from, to] of subs) {
    const n = conf.split(from).length - 1;
    assert(n === 1, `conf/nginx-cluster.conf: "${from}" occurs ${n} times; the local tests replace it and need it exactly once`);
    conf = conf.replace(from, to);
  }
  const out = path.join(dir, 'nginx.conf');
  fs.writeFileSync(out, conf);
  return out;
}

/** nginx in the foreground (master + workers), logs and pid in its temp dir; stopped (workers too) when the case ends. */
async function startNginx(c, upstreams) {
  const dir = mkTemp('rtb-nginx-');
  const port = await freePort();
  const conf = renderNginx(dir, `127.0.0.1:${port}`, upstreams);
  const logPath = path.join(dir, 'nginx.log');
  const fd = fs.openSync(logPath, 'a');
  const child = trackChild(spawn(NGINX, ['-e', path.join(dir, 'error.log'), '-p', dir, '-c', conf, '-g', `daemon off; pid ${dir}/nginx.pid;`],
    { stdio: ['ignore', fd, fd] }));
  fs.closeSync(fd);
  exitKills.add(child.pid);
  const h = { base: `http://127.0.0.1:${port}`, port, dir, pid: child.pid, workers: [], exited: null };
  h.log = () => `${tail(logPath, 30)}\n${tail(path.join(dir, 'error.log'), 30)}`;
  h.exitPromise = new Promise((r) => child.once('exit', (code, signal) => { h.exited = { code, signal }; exitKills.delete(child.pid); r(); }));
  child.once('error', (e) => { h.spawnError = e; });
  c.defer(async () => {
    if (!h.exited) {
      try { process.kill(h.pid, 'SIGTERM'); } catch {}  // fast shutdown: the master stops its workers
      await Promise.race([h.exitPromise, sleep(3000)]);
      try { process.kill(h.pid, 'SIGKILL'); } catch {}
    }
    for (const w of h.workers) { try { process.kill(w, 'SIGKILL'); } catch {} }
  });
  await waitFor(async () => {
    if (h.spawnError) throw new Error(`spawn ${NGINX}: ${h.spawnError.message}`);
    if (h.exited) throw new Error(`nginx exited at start (${JSON.stringify(h.exited)})\n${indent(h.log())}`);
    try { return (await request(h.base, 'GET', '/healthz', { timeout: 2000 })).status === 200; } catch { return false; }
  }, 10000, 'nginx answering /healthz through to a node', () => h.log());
  try {
    h.workers = fs.readFileSync(`/proc/${h.pid}/task/${h.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    for (const w of h.workers) exitKills.add(w);
  } catch {}
  return h;
}

/**
 * NATS, two nodes on the compose file's environment, nginx in front. With natsCluster: the
 * compose file plus docker-compose.cluster.yml, and a 3-server JetStream cluster standing in for
 * its services nats, nats2, nats3.
 */
async function cluster(c, { natsCluster = false } = {}) {
  const cfg = composeConfig(natsCluster ? [COMPOSE, COMPOSE_CLUSTER] : [COMPOSE]);
  const img = imageRuntime();
  let natsPorts; let servers;
  if (natsCluster) {
    servers = await startNatsCluster(c, 3);
    natsPorts = { nats: servers[0].port, nats2: servers[1].port, nats3: servers[2].port };
  } else {
    servers = [await startNats(c)];
    natsPorts = { nats: servers[0].port };
  }
  const ports = [await freePort(), await freePort()];
  const nodes = [];
  for (let i = 0; i < NODES.length; i++) {
    const env = nodeEnv(cfg, img, NODES[i], { listen: `127.0.0.1:${ports[i]}`, natsPorts });
    nodes.push(await envBroker(c, NODES[i], env, ports[i]));
  }
  const lb = await startNginx(c, ports.map((p) => `127.0.0.1:${p}`));
  return { cfg, img, servers, nodes, lb };
}

// ---------------------------------------------------------------- clients (all through the LB)
async function nodeMetrics(b) {
  const text = (await request(b.base, 'GET', '/metrics', { timeout: 5000 })).text;
  const v = (name) => {
    const l = text.split('\n').find((x) => x.startsWith(name + ' '));
    return l ? Number(l.trim().split(/\s+/).pop()) : NaN;
  };
  return {
    sse: v('rtbroker_connections{transport="sse"}'),
    ws: v('rtbroker_connections{transport="websocket"}'),
    pollDelivered: v('rtbroker_messages_delivered_total{transport="longpoll"}'),
    published: v('rtbroker_messages_published_total'),
  };
}

/** EventSource (npm eventsource) on the LB; counts reconnects and the Last-Event-ID each one sent. */
function eventSource(c, base, p) {
  const h = { msgs: [], opens: 0, requests: [], errors: [] };
  const es = new EventSource(base + p, {
    fetch: (url, init) => {
      const hd = init.headers || {};
      h.requests.push({ at: Date.now(), lastEventId: hd['Last-Event-ID'] ?? hd['last-event-id'] ?? null });
      return fetch(url, init);
    },
  });
  h.es = es;
  es.onopen = () => { h.opens++; };
  es.onmessage = (e) => h.msgs.push({ id: e.lastEventId, data: e.data });
  es.onerror = (e) => h.errors.push(e && e.message ? e.message : String(e));
  c.defer(() => es.close());
  h.opened = () => waitFor(() => h.opens >= 1 || es.readyState === 2, 10000, `EventSource ${p} open`).then(() => {
    assert(es.readyState === 1, `EventSource ${p}: closed (${h.errors.join('; ')})`);
  });
  return h;
}

/** rt.v1 WebSocket on the LB's /ws that reconnects (through the LB) with since = the last id it got. */
function resumingWs(c, base, topic) {
  const h = { msgs: [], connects: 0, sinces: [], closes: [], stopped: false, ready: false };
  const open = () => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, ['rt.v1']);
    h.ws = ws;
    h.connects++;
    ws.on('open', () => {
      const since = h.msgs.length ? h.msgs[h.msgs.length - 1].id : undefined;
      h.sinces.push(since ?? null);
      ws.send(JSON.stringify({ op: 'sub', topic, ref: 'sub', ...(since ? { since } : {}) }));
    });
    ws.on('message', (d) => {
      let f; try { f = JSON.parse(d.toString('utf8')); } catch { return; }
      if (f.type === 'msg') h.msgs.push({ id: f.id, data: f.data });
      else if (f.type === 'ok' && f.ref === 'sub') h.ready = true;
    });
    ws.on('error', () => {});
    ws.on('close', (code) => {
      h.closes.push(code);
      h.ready = false;
      if (!h.stopped) setTimeout(open, 200);
    });
  };
  open();
  c.defer(() => { h.stopped = true; h.ws.terminate(); });
  return h;
}

/** Raw-mode WebSocket on the LB's /sub/{topic}: one frame per message, the payload. */
function rawWs(c, base, topic) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/sub/${topic}`);
    const h = { data: [] };
    c.defer(() => ws.terminate());
    ws.on('message', (d) => h.data.push(d.toString('utf8')));
    ws.on('open', () => resolve(h));
    ws.on('error', (e) => reject(new Error(`raw WebSocket through nginx: ${e.message}`)));
  });
}

/** Long-poll loop on the LB from `cursor`; a failed poll is repeated with the same cursor. stop() aborts the held poll. */
function poller(base, topic, cursor) {
  const p = { got: [], cursor, polls: 0, failures: [], stopped: false, ctl: null };
  p.done = (async () => {
    while (!p.stopped) {
      p.ctl = new AbortController();
      const qs = new URLSearchParams({ topic, cursor: p.cursor, timeout: '5' });
      let status = 0; let text = ''; let json = null;
      const timer = setTimeout(() => p.ctl.abort(), 20000);
      try {
        const r = await fetch(`${base}/poll?${qs}`, { signal: p.ctl.signal });
        status = r.status; text = await r.text();
        json = JSON.parse(text);
      } catch (e) { text = e.message; }
      clearTimeout(timer);
      if (p.stopped) break;
      p.polls++;
      if (status !== 200 || !json) { p.failures.push(`${status} ${trunc(text, 120)}`); await sleep(100); continue; }
      assert(!json.gap, `long-poll through the LB: a gap at cursor ${p.cursor}`);
      for (const m of json.messages) p.got.push({ id: m.id, data: m.data });
      p.cursor = json.cursor;
    }
  })();
  p.stop = async () => { p.stopped = true; p.ctl?.abort(); await Promise.race([p.done, sleep(3000)]); };
  return p;
}

/** POST through the LB until 200, the same Idempotency-Key on every try: stored once whichever node answers. */
async function publishThrough(lb, topic, body, key, stats) {
  for (let attempt = 0; attempt < 60; attempt++) {
    const r = await publish(lb.base, topic, body, { headers: { 'Idempotency-Key': key }, timeout: 10000 })
      .catch((e) => ({ status: 0, text: e.message }));
    if (r.status === 200) return r.json.id;
    stats.retries.push(`${r.status} ${trunc(r.text, 100)}`);
    await sleep(100);
  }
  throw new Error(`publish ${key} through the LB: no 200 after 60 tries: ${stats.retries.slice(-3).join('; ')}`);
}

// ---------------------------------------------------------------- cases
t.test('the nodes run on the compose file\'s RTB_* variables and the image\'s ENV alone (no config file), on the NATS bus, behind nginx', async (c) => {
  const { nodes, lb, cfg } = await cluster(c);
  eq(cfg.services.rtbroker1.environment, cfg.services.rtbroker2.environment, 'the two nodes\' compose environment');
  for (const b of nodes) {
    const log = b.log();
    assert(/built-in defaults/.test(log), `${b.name}: the start line does not say it runs on the built-in defaults:\n${indent(log)}`);
    assert(/bus nats/.test(log), `${b.name}: not on the NATS bus:\n${indent(log)}`);
    assert(!fs.existsSync(path.join(b.dir, 'conf')), `${b.name}: its working directory has a conf/`);
  }
  c.info(`node environment (besides the inherited non-RTB_ variables): ${JSON.stringify(nodes[0].env)}`);
  // anonymous pub/sub as the compose file opens it, and the static files through the LB
  const r = await request(lb.base, 'GET', '/', { timeout: 5000 });
  eq(r.status, 200, 'GET / (web root) through nginx');
  const id = (await publish(lb.base, 'demo.hello', 'hi', { timeout: 5000 })).json?.id;
  assert(id, 'an anonymous publish through nginx got no id');
}, { timeout: 30000 });

t.test('a publish through nginx reaches SSE, WebSocket (raw, rt.v1) and long-poll subscribers connected through nginx, which spread them over both nodes', async (c) => {
  const { nodes, lb } = await cluster(c);
  const topic = 'lb.fan';
  const sse = [];
  for (let i = 0; i < 4; i++) { const s = await subscribe(lb.base, `/sub/${topic}`); c.defer(() => s.close()); sse.push(s); }
  const raw = []; const v1 = [];
  for (let i = 0; i < 2; i++) raw.push(await rawWs(c, lb.base, topic));
  for (let i = 0; i < 2; i++) { const w = resumingWs(c, lb.base, topic); v1.push(w); }
  await waitFor(() => v1.every((w) => w.ready), 10000, 'rt.v1 subscriptions through nginx');
  // where nginx put them: each node's own gauges
  const before = await Promise.all(nodes.map(nodeMetrics));
  c.info(`connections per node: ${nodes.map((b, i) => `${b.name} sse ${before[i].sse} ws ${before[i].ws}`).join(', ')}`);
  for (const [i, b] of nodes.entries()) {
    assert(before[i].sse >= 1, `${b.name} holds no SSE connection: nginx did not round-robin (${JSON.stringify(before)})`);
    assert(before[i].ws >= 1, `${b.name} holds no WebSocket: nginx did not round-robin (${JSON.stringify(before)})`);
  }
  eq(before.reduce((a, m) => a + m.sse, 0), 4, 'SSE connections over both nodes');
  eq(before.reduce((a, m) => a + m.ws, 0), 4, 'WebSocket connections over both nodes');

  const stats = { retries: [] };
  const w = await publishThrough(lb, topic, 'warm-up', 'fan-w', stats);
  const pollers = [poller(lb.base, topic, w), poller(lb.base, topic, w)];
  c.defer(() => Promise.all(pollers.map((p) => p.stop())));
  await waitFor(() => sse.every((s) => s.messages.length >= 1) && raw.every((r) => r.data.length >= 1) && v1.every((x) => x.msgs.length >= 1),
    10000, 'the warm-up message on every subscriber');
  const sent = [];
  for (let i = 0; i < 30; i++) sent.push({ id: await publishThrough(lb, topic, `m${i}`, `fan-${i}`, stats), data: `m${i}` });
  const ids = sent.map((m) => m.id);
  await waitFor(() => sse.every((s) => s.messages.length >= 31) && raw.every((r) => r.data.length >= 31)
    && v1.every((x) => x.msgs.length >= 31) && pollers.every((p) => p.got.length >= 30), 15000, 'all 30 messages on every subscriber',
  () => JSON.stringify({ sse: sse.map((s) => s.messages.length), raw: raw.map((r) => r.data.length), v1: v1.map((x) => x.msgs.length), poll: pollers.map((p) => [p.got.length, p.failures.slice(-2)]) }));
  await sleep(300); // duplicates would show now
  for (const p of pollers) await p.stop();
  sse.forEach((s, i) => {
    sameIds(s.messages.map((m) => m.id), [w, ...ids], `SSE subscriber ${i}`);
    eq(s.messages.slice(1).map((m) => m.data), sent.map((m) => m.data), `SSE subscriber ${i}: payloads`);
  });
  raw.forEach((r, i) => eq(r.data, ['warm-up', ...sent.map((m) => m.data)], `raw WebSocket ${i}: payloads`));
  v1.forEach((x, i) => sameIds(x.msgs.map((m) => m.id), [w, ...ids], `rt.v1 WebSocket ${i}`));
  pollers.forEach((p, i) => {
    sameIds(p.got.map((m) => m.id), ids, `long-poller ${i}`);
    eq(p.failures, [], `long-poller ${i}: failed polls`);
  });
  const after = await Promise.all(nodes.map(nodeMetrics));
  for (const [i, b] of nodes.entries()) {
    assert(after[i].published - before[i].published >= 1, `no publish went through ${b.name}: nginx did not round-robin publishes (${JSON.stringify(after)})`);
    assert(after[i].pollDelivered >= 1, `${b.name} answered no long-poll with messages (${JSON.stringify(after)})`);
  }
  eq(stats.retries, [], 'publishes through nginx that needed a retry');
  c.info(`publishes per node: ${nodes.map((b, i) => `${b.name} ${after[i].published - before[i].published}`).join(', ')}; ` +
    `long-poll deliveries per node: ${nodes.map((b, i) => `${b.name} ${after[i].pollDelivered}`).join(', ')}`);
}, { timeout: 40000 });

t.test('SIGKILL of a node under load: EventSource reconnects through nginx with Last-Event-ID, rt.v1 resumes with since, long-poll cursors continue: nothing lost, nothing twice', async (c) => {
  const { nodes, lb } = await cluster(c);
  const topic = 'lb.kill';
  const es = [];
  for (let i = 0; i < 4; i++) { const h = eventSource(c, lb.base, `/sub/${topic}`); await h.opened(); es.push(h); }
  const ws = [];
  for (let i = 0; i < 4; i++) ws.push(resumingWs(c, lb.base, topic));
  await waitFor(() => ws.every((w) => w.ready), 10000, 'rt.v1 subscriptions through nginx');
  const before = await Promise.all(nodes.map(nodeMetrics));
  // the node to kill holds at least one EventSource and one WebSocket
  const vi = before.findIndex((m) => m.sse >= 1 && m.ws >= 1);
  assert(vi >= 0, `no node holds both an SSE and a WebSocket client: ${JSON.stringify(before)}`);
  const victim = nodes[vi]; const survivor = nodes[1 - vi];

  const stats = { retries: [] };
  const w = await publishThrough(lb, topic, 'warm-up', 'kill-w', stats);
  await waitFor(() => es.every((h) => h.msgs.length >= 1) && ws.every((x) => x.msgs.length >= 1), 10000, 'the warm-up message on every subscriber');
  const pollers = [poller(lb.base, topic, w), poller(lb.base, topic, w), poller(lb.base, topic, w)];
  c.defer(() => Promise.all(pollers.map((p) => p.stop())));
  await sleep(300); // let the polls be held on both nodes

  // publish through nginx all along (about 15 a second: the EventSources are away for their 3 s
  // retry, and history keeps the last history.max_messages = 100 per topic); kill the node a second in
  const ids = [];
  let stop = false; let n = 0; let killedAt = 0;
  const pub = (async () => {
    while (!stop) {
      const i = n++;
      ids.push(await publishThrough(lb, topic, `k${i}`, `kill-${i}`, stats));
      await sleep(60);
    }
  })();
  await sleep(1000);
  const esBefore = es.map((h) => h.requests.length);
  await killNode(victim);
  killedAt = Date.now();
  c.info(`SIGKILLed ${victim.name} (held sse ${before[vi].sse}, ws ${before[vi].ws}) after ${n} publishes`);
  // every EventSource that was on the victim reconnects (retry: 3 s), through nginx, to the survivor
  const reconnecting = () => es.filter((h, i) => h.requests.length > esBefore[i]);
  await waitFor(() => reconnecting().length >= before[vi].sse && reconnecting().every((h) => h.opens >= 2), 15000,
    `${before[vi].sse} EventSource(s) reconnected`, () => JSON.stringify(es.map((h) => ({ req: h.requests.length, opens: h.opens, err: h.errors.slice(-2) }))));
  await waitFor(() => ws.every((x) => x.ready), 10000, 'every rt.v1 client subscribed again');
  await sleep(1000);
  stop = true;
  await pub;
  ids.sort((a, b) => Number(parseId(a).seq - parseId(b).seq));
  const all = [w, ...new Set(ids)];
  eq(all.length, ids.length + 1, 'distinct ids for distinct messages (a retried publish is stored once)');
  const want = all.length;
  await waitFor(() => es.every((h) => h.msgs.length >= want) && ws.every((x) => x.msgs.length >= want) && pollers.every((p) => p.got.length >= want - 1),
    20000, `all ${want} messages on every subscriber`,
    () => JSON.stringify({ es: es.map((h) => h.msgs.length), ws: ws.map((x) => x.msgs.length), poll: pollers.map((p) => [p.got.length, p.failures.slice(-2)]) }));
  await sleep(500);
  for (const p of pollers) await p.stop();

  es.forEach((h, i) => sameIds(h.msgs.map((m) => m.id), all, `EventSource ${i}`));
  ws.forEach((x, i) => sameIds(x.msgs.map((m) => m.id), all, `rt.v1 WebSocket ${i}`));
  pollers.forEach((p, i) => sameIds(p.got.map((m) => m.id), all.slice(1), `long-poller ${i}`));
  // the reconnects really resumed: Last-Event-ID / since carried the last id seen
  for (const h of reconnecting()) {
    const r = h.requests[h.requests.length - 1];
    assert(r.lastEventId && all.includes(r.lastEventId), `an EventSource reconnected without a known Last-Event-ID: ${JSON.stringify(h.requests)}`);
  }
  const wsResumed = ws.filter((x) => x.connects >= 2);
  assert(wsResumed.length >= before[vi].ws, `${before[vi].ws} WebSocket(s) were on ${victim.name}, ${wsResumed.length} reconnected`);
  for (const x of wsResumed) assert(x.sinces[x.sinces.length - 1], `an rt.v1 client resubscribed without since: ${JSON.stringify(x.sinces)}`);
  const m = await nodeMetrics(survivor);
  eq(m.sse, 4, `SSE connections on ${survivor.name} after the kill`);
  // what nginx did with requests that were on, or headed for, the dead node
  const errLog = fs.readFileSync(path.join(lb.dir, 'nginx.log'), 'utf8') + fs.readFileSync(path.join(lb.dir, 'error.log'), 'utf8');
  const count = (re) => errLog.split('\n').filter((l) => re.test(l) && l.includes(`:${victim.port}`)).length;
  c.info(`nginx error log for ${victim.name}: ${count(/prematurely closed connection while reading response header/)} held request(s) cut ` +
    `before an answer (nginx retried them on the other node), ${count(/prematurely closed connection while reading upstream/)} stream(s) cut ` +
    `(their clients reconnected), ${count(/connect\(\) failed/)} connect(s) refused (retried on the other node)`);
  c.info(`${want} messages; ${reconnecting().length} EventSource(s) and ${wsResumed.length} WebSocket(s) resumed on ${survivor.name} ` +
    `${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill; publishes retried: ${stats.retries.length} (${[...new Set(stats.retries.map((r) => r.split(' ')[0]))].join(', ') || 'none'}); ` +
    `failed polls: ${pollers.map((p) => p.failures.length).join('/')}`);
}, { timeout: 60000 });

t.test('docker-compose.cluster.yml: on a 3-server NATS cluster the stream has 3 replicas, and a publish through nginx reaches subscribers on both nodes', async (c) => {
  const { nodes, lb, servers } = await cluster(c, { natsCluster: true });
  for (const b of nodes) {
    eq(b.env.RTB_NATS_URL.split(',').length, 3, `${b.name}: NATS servers in RTB_NATS_URL`);
    eq(b.env.RTB_NATS_REPLICAS, '3', `${b.name}: RTB_NATS_REPLICAS`);
  }
  // the stream the nodes created, as the NATS servers see it
  let replicas = null;
  await waitFor(async () => {
    for (const s of servers) {
      try {
        const j = await s.monitor('/jsz?accounts=true&streams=true&config=true');
        for (const a of j.account_details || []) for (const st of a.stream_detail || []) if (st.name === 'RT') replicas = st.config?.num_replicas;
      } catch {}
      if (replicas !== null) return true;
    }
    return false;
  }, 10000, 'stream RT in the servers\' /jsz');
  eq(replicas, 3, 'stream RT replicas');
  const topic = 'lb.nats3';
  const sse = [];
  for (let i = 0; i < 4; i++) { const s = await subscribe(lb.base, `/sub/${topic}`); c.defer(() => s.close()); sse.push(s); }
  const conns = await Promise.all(nodes.map(nodeMetrics));
  for (const [i, b] of nodes.entries()) assert(conns[i].sse >= 1, `${b.name} holds no SSE connection (${JSON.stringify(conns)})`);
  const stats = { retries: [] };
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(await publishThrough(lb, topic, `r${i}`, `nats3-${i}`, stats));
  await waitFor(() => sse.every((s) => s.messages.length >= ids.length), 10000, 'every message on every SSE subscriber',
    () => JSON.stringify(sse.map((s) => s.messages.length)));
  await sleep(300);
  sse.forEach((s, i) => sameIds(s.messages.map((m) => m.id), ids, `SSE subscriber ${i}`));
  c.info(`JetStream meta leader after ${servers.metaMs} ms; stream RT with ${replicas} replicas; SSE per node ${conns.map((m) => m.sse).join('/')}`);
}, { timeout: 60000 });

await t.run();

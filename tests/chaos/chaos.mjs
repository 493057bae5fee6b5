// The fault-injection run: node tests/chaos/chaos.mjs [--seed N] [--duration 90|90s|10m|1h] [--nats 1|3]
//   [--nodes 2|3] [--rate PER_SECOND_PER_PUBLISHER] [--faults kind,kind] [--logs yes|no]
// Starts the system (cluster.mjs), subscribers and publishers (clients.mjs), injects faults from the
// seeded schedule for the duration, heals everything, lets the clients catch up, reads the stream
// back and runs the checker (checker.mjs). Prints the seed, the faults by kind, messages published,
// deliveries checked and violations; exits 1 on any violation.
import { sleep, sanitizerReport } from '../integration/lib.mjs';
import { rng, startSystem, faultKinds, heal, tail, startReader } from './cluster.mjs';
import { subscriber, publisher, keyOf } from './clients.mjs';
import { check, report, matches } from './checker.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const seed = Number(args.seed ?? Math.floor(Math.random() * 2 ** 31));
// 90, 90s, 10m, 1h
const duration = (() => {
  const m = /^(\d+(?:\.\d+)?)([smh]?)$/.exec(String(args.duration ?? 60));
  if (!m) { console.error(`--duration ${args.duration}: expected seconds, or a number with s, m or h`); process.exit(2); }
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600 }[m[2]] * 1000;
})();
const natsCount = Number(args.nats ?? 1);
const nodeCount = Number(args.nodes ?? 3);
const rate = Number(args.rate ?? 8);
const rand = rng(seed); // the fault schedule: its own PRNG, so that it replays whatever the clients do
const crand = rng(seed ^ 0x5bd1e995); // the clients' and publishers' choices
const t0 = Date.now();
const say = (s) => console.log(`chaos: ${s}`);
const el = () => `+${((Date.now() - t0) / 1000).toFixed(1)} s`;

say(`seed ${seed}; ${duration / 1000} s of faults; ${nodeCount} broker nodes, ${natsCount} nats-server${natsCount > 1 ? 's (replicas 3)' : ''}; ` +
  `replay: node tests/chaos/chaos.mjs --seed ${seed} --duration ${duration / 1000} --nats ${natsCount} --nodes ${nodeCount}`);
const sys = await startSystem({ nats: natsCount, nodes: nodeCount });
let exitCode = 1;
try {
  const { nodes } = sys;
  // the first subscription point: an id from before any chaos message
  const mark = await (await fetch(`${nodes[0].base}/pub/cz.start`, { method: 'POST', body: 'start' })).json();
  const startId = mark.id;

  const pubs = new Map();
  const faults = [];
  const topics = ['cx.a', 'cx.b', 'cx.c', 'cx.d.e'];
  // raw WebSocket clients learn ids from the stream by their payload's key, as an application would
  const resolveId = async (topic, key) => {
    const p = pubs.get(key);
    if (p && p.id) return p.id;
    for (const n of nodes) {
      try {
        let since = startId;
        for (;;) {
          const r = await (await fetch(`${n.base}/history/${topic}?since=${encodeURIComponent(since)}&limit=1000`, { signal: AbortSignal.timeout(3000) })).json();
          const m = r.messages.find((x) => keyOf(x.data) === key);
          if (m) return m.id;
          if (!r.messages.length) break;
          since = r.cursor;
        }
      } catch {}
    }
    return null;
  };
  const specs = [
    ['sse', 'cx.a', false], ['sse', 'cx.>', true],
    ['ndjson', 'cx.b', false], ['ndjson', 'cx.*', true],
    ['longpoll', 'cx.c', true], ['longpoll', 'cx.>', false],
    ['rtv1', 'cx.*', false], ['rtv1', 'cx.a', true],
    ['raw', 'cx.a', true], ['raw', 'cx.d.e', false],
  ];
  const subs = specs.map(([transport, topic, moving], i) =>
    subscriber({ name: `${transport}#${i}(${topic}${moving ? ', moving' : ''})`, transport, topic, moving }, nodes, crand, resolveId));
  subs.forEach((s) => s.start(startId));
  await sleep(1500);
  const pubsrs = [
    publisher({ name: 'h1', via: 'http', topics, rate }, nodes, crand, pubs),
    publisher({ name: 'h2', via: 'http', topics, rate }, nodes, crand, pubs),
    publisher({ name: 'v1', via: 'rtv1', topics, rate }, nodes, crand, pubs),
  ];
  const dropClients = (k) => {
    for (let i = 0; i < k; i++) { const c = crand.pick([...subs, ...pubsrs]); c.drop(); }
  };
  const kinds = faultKinds(sys, { rand, dropClients, log: (kind, detail) => { faults.push({ t: Date.now(), kind, detail }); say(`${el()} fault ${kind}: ${detail}`); } });
  const weights = { 'broker-kill': 2, 'broker-stop': 2, 'nats-restart': 1, 'link-cut': 3, 'link-freeze': 3, 'link-delay': 2, 'client-drop': 2 };
  const allowed = args.faults ? args.faults.split(',') : Object.keys(weights);
  const bag = allowed.flatMap((k) => Array(weights[k] || 1).fill(k));
  while (Date.now() - t0 < duration) {
    await sleep(rand.int(500, 3000));
    const kind = rand.pick(bag);
    try { await kinds[kind](); } catch (e) { say(`${el()} fault ${kind} failed: ${e.message}`); }
  }
  say(`${el()} faults over; healing`);
  await heal(sys);
  await Promise.all(pubsrs.map((p) => p.stop()));
  // let every subscriber catch up with what was acknowledged (bounded)
  const acked = [...pubs.values()].filter((p) => p.outcome === 'acked');
  const behind = () => subs.filter((s) => {
    const have = new Set(s.deliveries.map((d) => d.key));
    return acked.some((p) => matches(s.topic, p.topic) && !have.has(p.key));
  });
  const until = Date.now() + 30000;
  while (behind().length && Date.now() < until) await sleep(250);
  await sleep(1000);
  await Promise.all(subs.map((s) => s.stop()));
  // the stream, read back by a fresh node; and what each node of the run holds
  const historyOf = async (node) => {
    const out = [];
    let since = startId;
    for (;;) {
      const r = await (await fetch(`${node.base}/history/cx.>?since=${encodeURIComponent(since)}&limit=100000`)).json();
      for (const m of r.messages) out.push({ id: m.id, topic: m.topic, key: keyOf(m.data) });
      if (!r.messages.length || r.cursor === since) return out;
      since = r.cursor;
    }
  };
  const truth = await historyOf(await startReader(sys));
  const held = {};
  for (const n of nodes) held[n.name] = await historyOf(n);
  const { violations, stats } = check({ pubs, truth, subs, faults, startId, held });
  for (const n of nodes) { // sanitizer builds: a report in any node's log (every start appends to it)
    const r = sanitizerReport(n.logPath);
    if (r) violations.push({ who: n.name, kind: 'sanitizer report', detail: r.slice(0, 2000) });
  }
  const byKind = {};
  for (const f of faults) byKind[f.kind] = (byKind[f.kind] || 0) + 1;
  say(`faults injected: ${faults.length} (${Object.entries(byKind).map(([k, n]) => `${k} ${n}`).join(', ')})`);
  say(`messages: ${stats.attempted} published, ${stats.acked} acknowledged, ${stats.unknown} unknown outcome, ${stats.refused} refused, ` +
    `${stats.retried} retried; ${stats.stored} in the stream`);
  say(`deliveries checked: ${stats.deliveries} over ${subs.length} subscribers (${subs.reduce((a, s) => a + s.sessions, 0)} sessions; ` +
    `${subs.map((s) => `${s.name.split('(')[0]} ${s.deliveries.length}`).join(', ')})`);
  report(violations, t0, (l) => console.log(l));
  say(`violations: ${violations.length} (seed ${seed})`);
  exitCode = violations.length ? 1 : 0;
  if ((violations.length && args.logs !== 'no') || args.logs === 'yes') {
    for (const n of nodes) console.log(`--- ${n.name} log tail (${n.logPath}):\n${tail(n.logPath, 15)}`);
  }
} catch (e) {
  say(`harness error: ${e.stack || e.message}`);
} finally {
  await sys.ctx.cleanup();
}
process.exit(exitCode);

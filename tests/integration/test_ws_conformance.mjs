// WebSocket conformance (tests/conformance/conformance.mjs, Autobahn-style case groups) against
// the real broker with `websocket.echo: true`: one PASS/FAIL line per case, a table by group,
// then `N passed, N failed`. RTB_WS_CASES=6.4,7. runs only the cases whose id starts so.
import { startBroker, sanitizerReport, indent, SLOW } from './lib.mjs';
import { runConformance, summaryTable, LIMIT } from '../conformance/conformance.mjs';

const FILE = 'test_ws_conformance.mjs';
const HARD_MS = 170000 * SLOW;
const hard = setTimeout(() => {
  console.log(`FAIL ${FILE}: hard timeout: the conformance run did not finish within ${HARD_MS} ms`);
  process.exit(1);
}, HARD_MS);

const common = {
  plugins: { load: ['sse', 'longpoll', 'websocket'] },
  // the queue limit well above the message limit, so that group 9 tests the message limit
  limits: { max_message_bytes: LIMIT, max_queue_bytes: '16MiB' },
  history: { max_messages: 100 },
};
const configs = {
  echo: { ...common, websocket: { echo: true } },
  nodeflate: { ...common, websocket: { echo: true, deflate: false } },
  tuned: { ...common, websocket: { echo: true, ping_interval: '300ms', deflate_threshold: 1000 } },
};

const brokers = {};
const all = [];
let passed = 0; let failed = 0;
const line = (ok, name, why) => {
  if (ok) { passed++; console.log(`PASS ${FILE}: ${name}`); } else { failed++; console.log(`FAIL ${FILE}: ${name}: ${why}`); }
};

async function start(name) {
  const b = await startBroker({ config: configs[name] });
  brokers[name] = b; all.push(b);
  return b;
}

let lastCase = '(start)';
let restarting = null;
try {
  await start('echo');
  await start('nodeflate');
  await start('tuned');
} catch (e) {
  line(false, 'start brokers with websocket.echo: true', e.message);
  console.log(`${FILE}: ${passed} passed, ${failed} failed`);
  process.exit(1);
}

// cases run 4 at a time: a failing case waits for the server to close the TCP connection
const CONCURRENCY = Number(process.env.RTB_WS_CONCURRENCY || 4);
const only = (process.env.RTB_WS_CASES || '').split(',').map((s) => s.trim()).filter(Boolean);
const t0 = Date.now();
const results = await runConformance({
  brokers,
  async beforeCase(k) {
    for (;;) {
      if (restarting) { await restarting; continue; }
      const name = Object.keys(brokers).find((n) => !brokers[n].alive());
      if (!name) break;
      const b = brokers[name];
      line(false, `broker "${name}" alive`, `the broker (pid ${b.pid}) exited (${JSON.stringify(b.exited)}) while running cases up to ${lastCase} (${CONCURRENCY} at a time); restarting it\n${indent(b.log())}`);
      restarting = start(name).catch((e) => { console.log(`  restart failed: ${e.message}`); process.exit(1); }).finally(() => { restarting = null; });
    }
    lastCase = k.id;
  },
  async brokerDown(k) {
    const bs = Object.values(brokers);
    if (bs.some((b) => !b.alive())) return true;
    await Promise.race([...bs.map((b) => b.exitPromise), new Promise((r) => setTimeout(r, 2000))]);
    return bs.some((b) => !b.alive());
  },
  onResult(r) {
    const name = `${r.id} ${r.desc} → ${r.expect}`;
    const notes = r.notes.length ? ` (${r.notes.join('; ')})` : '';
    if (r.ok) line(true, name + notes);
    else line(false, name, r.reason + notes);
  },
}, { concurrency: CONCURRENCY, filter: only.length ? (k) => only.some((p) => k.id === p || k.id.startsWith(p.endsWith('.') ? p : p + '.')) : null });

for (const [name, b] of Object.entries(brokers)) {
  if (!b.alive()) line(false, `broker "${name}" alive at the end`, `exited ${JSON.stringify(b.exited)} after case ${lastCase}\n${indent(b.log())}`);
}
for (const b of all) {
  if (b.alive()) {
    const r = await b.stop({ timeout: 8000 * SLOW });
    if (r.killed || r.code !== 0) line(false, `broker pid ${b.pid} exits 0 on SIGTERM after the run`, `exit ${JSON.stringify(r)}\n${indent(b.log())}`);
  }
  const rep = sanitizerReport(b.logPath);
  if (rep) line(false, `no sanitizer report (broker pid ${b.pid})`, `\n${indent(rep)}`);
}
console.log('');
console.log(summaryTable(results));
const slow = [...results].sort((a, b) => b.ms - a.ms).slice(0, 3).map((r) => `${r.id} ${r.ms} ms`).join(', ');
console.log(`INFO ${FILE}: ${results.length} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s (slowest: ${slow})`);
clearTimeout(hard);
console.log(`${FILE}: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

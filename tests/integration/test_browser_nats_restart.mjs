// web/realtime.js in headless Chromium against brokers on the NATS bus (issue 8): broker A, which
// the page is connected to, is killed with SIGKILL and restarted on the same port with the same
// config while a publisher keeps publishing (through B, and through A while it is up). The stream
// keeps its history, so the EPOCH does not change: the page must go open → reconnecting → open and
// end with exactly the messages that got a 200, in publish order, once each, with no gap notice.
//
// One nats-server (JetStream, storage in a temp dir), brokers A and B with `bus: nats` and the same
// config (A also serves the test page from a copy of web/). The page loads from A and connects to
// A's URL, which stays the same across the restart (same port), so no proxy is needed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  suite, assert, eq, waitFor, mkTemp, trunc, sleep, trackChild, brokerEnv, indent, epochOf, seqOf, request, HERE, ROOT, BIN, SLOW,
} from './lib.mjs';
import { launchChromium } from './browserlib.mjs';
import { startNats, natsBroker, killBroker, waitReady, tryPublish, sameIds } from './natslib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);
const FAST = { backoff: { base: 100, cap: 600 }, pingInterval: 2000, pingTimeout: 2000, connectTimeout: 4000 };
const JSON_CT = { headers: { 'Content-Type': 'application/json' } };

const t = suite(import.meta.url, { hardTimeoutMs: 118000 });

// ---------------------------------------------------------------- the browser (as in test_browser_resume.mjs)
function webRoot() {
  const dir = mkTemp('rtb-browser-web-');
  for (const f of fs.readdirSync(path.join(ROOT, 'web'))) fs.copyFileSync(path.join(ROOT, 'web', f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, 'browser_client.html'), path.join(dir, 'browser_client.html'));
  return dir;
}

let browserPromise = null;
async function browser() {
  browserPromise ||= launchChromium();
  return browserPromise;
}

/** browser_client.html on `base`, driven through window.T; every client also logs its states with times. */
async function clientPage(c, base) {
  const br = await browser();
  const ctx = await br.newContext();
  c.defer(() => ctx.close());
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const r = await p.goto(`${base}/browser_client.html`, { timeout: 15000 });
  assert(r && r.status() === 200, `GET /browser_client.html: ${r && r.status()}`);
  const api = {
    p, errors,
    // the state log starts with the state when the listener was added (the first "connecting" may come before it)
    connect: (opts) => p.evaluate(async (o) => {
      const k = await T.connect(o);
      const h = T.clients[k];
      h.stateLog = [{ state: h.rt.state, transport: h.rt.transport, at: Date.now() }];
      h.rt.on('state', (s) => h.stateLog.push({ state: s.state, transport: s.transport, at: Date.now() }));
      return k;
    }, { ...FAST, ...opts }),
    info: (i) => p.evaluate((a) => T.info(a), i),
    stateLog: (i) => p.evaluate((a) => T.clients[a].stateLog, i),
    async waitInfo(i, pred, ms, label) {
      let last = null;
      await waitFor(async () => { last = await api.info(i); return pred(last); }, ms, label,
        () => trunc(JSON.stringify({ ...last, msgs: last && last.msgs.slice(-4), n: last && last.msgs.length }), 900));
      return last;
    },
    waitOpen: (i, transport, ms = 10000) => api.waitInfo(i, (x) => x.state === 'open' && (!transport || x.transport === transport), ms, `client ${i} open${transport ? ' on ' + transport : ''}`),
  };
  return api;
}

// ---------------------------------------------------------------- broker A again, on the same port
/**
 * Start the broker binary again with `old`'s arguments (its config file and --listen port), as a
 * handle shaped like lib's (so that the harness prints its log on failure and reports an
 * unexpected exit). Waits for /healthz 200; stopped (by PID) when the case ends.
 */
async function restartSamePort(c, old) {
  const logPath = path.join(old.dir, `broker-restart-${c.brokers.length}.log`);
  const fd = fs.openSync(logPath, 'a');
  const child = trackChild(spawn(BIN, old.args, { cwd: ROOT, env: brokerEnv(), stdio: ['ignore', fd, fd] }));
  fs.closeSync(fd);
  const b = {
    base: old.base, port: old.port, pid: child.pid, child, dir: old.dir, configPath: old.configPath, logPath, args: old.args,
    exited: null, stopping: false,
    log: () => { try { return fs.readFileSync(logPath, 'utf8').split('\n').slice(-80).join('\n'); } catch (e) { return `(no log: ${e.message})`; } },
    alive: () => b.exited === null,
    kill: (sig = 'SIGKILL') => { try { process.kill(child.pid, sig); } catch {} },
  };
  b.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => { b.exited = { code, signal, at: Date.now() }; resolve(b.exited); }));
  child.once('error', (e) => { b.spawnError = e; });
  b.stop = async ({ timeout = 4000 } = {}) => {
    b.stopping = true;
    if (b.exited) return b.exited;
    b.kill('SIGTERM');
    if (await Promise.race([b.exitPromise, sleep(timeout).then(() => null)])) return b.exited;
    b.kill('SIGKILL');
    return Promise.race([b.exitPromise, sleep(3000).then(() => null)]);
  };
  c.brokers.push(b);
  c.defer(() => b.stop());
  const deadline = Date.now() + 10000 * SLOW;
  for (;;) {
    if (b.spawnError) throw new Error(`spawn ${BIN}: ${b.spawnError.message}`);
    if (b.exited) throw new Error(`restarted broker exited at start (${JSON.stringify(b.exited)})\n${indent(b.log())}`);
    try {
      const r = await fetch(b.base + '/healthz', { signal: AbortSignal.timeout(1000) });
      await r.text();
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`restarted broker: no /healthz 200 within ${10 * SLOW} s\n${indent(b.log())}`);
    await sleep(20);
  }
  return b;
}

// ---------------------------------------------------------------- the publisher
/**
 * Publishes {n} as JSON, one at a time, every `everyMs`, alternating `topics`; through A (every
 * other message) while `pub.aUp`, else through B. What got a 200 is in `ok` (in publish order,
 * which is the SEQ order: one publish at a time); anything else in `fails`. `holdA()` stops using A
 * and waits for the publish in flight there, so that no publish to A has an unknown outcome.
 */
function publisher(nodes, topics, { everyMs = 8 } = {}) {
  const pub = { ok: [], fails: [], stopped: false, aUp: true, aBusy: null, n: 0 };
  pub.done = (async () => {
    while (!pub.stopped) {
      const n = pub.n++;
      const viaA = pub.aUp && n % 2 === 1;
      const node = viaA ? nodes.A : nodes.B;
      const topic = topics[n % topics.length];
      const at = Date.now();
      const pr = tryPublish(node.base, topic, JSON.stringify({ n }), JSON_CT);
      if (viaA) pub.aBusy = pr;
      const r = await pr;
      if (viaA) pub.aBusy = null;
      if (r.status === 200) pub.ok.push({ id: r.id, n, topic, at, via: viaA ? 'A' : 'B' });
      else pub.fails.push(`${n} via ${viaA ? 'A' : 'B'}: ${r.status} ${trunc(r.text, 120)}`);
      await sleep(everyMs);
    }
  })();
  pub.holdA = async () => { pub.aUp = false; if (pub.aBusy) await pub.aBusy; };
  pub.stop = async () => { pub.stopped = true; await pub.done; };
  return pub;
}

// ---------------------------------------------------------------- checks
/** The state log entries at or after `since`, as "state:transport" strings. */
const statesAfter = (log, since) => log.filter((s) => s.at >= since).map((s) => `${s.state}:${s.transport}`);

/** For INFO lines: repeated states (one per retry) folded: "reconnecting:sse ×6 → open:sse". */
function foldStates(list) {
  const out = [];
  for (const x of list) {
    const last = out[out.length - 1];
    if (last && last.s === x) last.n++; else out.push({ s: x, n: 1 });
  }
  return out.map((x) => (x.n > 1 ? `${x.s} ×${x.n}` : x.s)).join(' → ');
}

/** How long the client was not open after `since`: from the first non-open state to the next open. */
function reconnectingMs(log, since) {
  const after = log.filter((s) => s.at >= since);
  const down = after.find((s) => s.state !== 'open');
  const up = down && after.find((s) => s.at >= down.at && s.state === 'open');
  return down && up ? up.at - down.at : NaN;
}

/** Exactly the 200s, in order, once each; their payloads; no gap; the state changes. */
function checkClient(info, log, pub, tr, tKill, what) {
  sameIds(info.msgs.map((m) => m.id), pub.ok.map((x) => x.id), `${what}: ids delivered (every 200, once, in publish order)`);
  eq(info.msgs.map((m) => [m.topic, m.data && m.data.n]), pub.ok.map((x) => [x.topic, x.n]), `${what}: topics and payloads`);
  eq(info.gaps, [], `${what}: gap notices (none: the stream kept its history, the EPOCH is the same)`);
  eq([info.state, info.transport], ['open', tr], `${what}: final state`);
  const before = log.filter((s) => s.at < tKill).pop();
  assert(before && before.state === 'open' && before.transport === tr, `${what}: state before the kill: ${JSON.stringify(before)}`);
  const after = statesAfter(log, tKill);
  assert(after.length >= 2 && after[0] === `reconnecting:${tr}` && after[after.length - 1] === `open:${tr}`,
    `${what}: states after the kill should go reconnecting:${tr} … open:${tr}, got ${after.join(' ')}`);
  assert(!after.some((s) => s.startsWith('closed')), `${what}: the client closed: ${after.join(' ')}`);
  const errs = info.errors.filter((e) => e.code !== 'disconnected');
  eq(errs, [], `${what}: error events`);
}

/** One nats-server (JetStream, disk storage), broker A (serving the test page) and, unless withB is false, B: the same config. */
async function setup(c, { withB = true } = {}) {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 5000 }, web: { root: webRoot() }, sse: { heartbeat: '1s' } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = withB ? await natsBroker(c, nats.url, cfg) : null;
  return { nats, A, B };
}

// ---------------------------------------------------------------- cases
for (const tr of ['websocket', 'sse', 'longpoll']) {
  t.test(`${tr}: broker A killed (SIGKILL) and restarted on the same port while publishing: open → reconnecting → open, every 200 once and in order, no gap`, async (c) => {
    const { A, B } = await setup(c);
    const nodes = { A, B };
    const pg = await clientPage(c, A.base);
    const i = await pg.connect({ transports: [tr], subscribe: ['nr.>'] });
    await pg.waitOpen(i, tr);
    const pub = publisher(nodes, ['nr.a', 'nr.b']);
    c.defer(() => pub.stop());
    await pg.waitInfo(i, (x) => x.msgs.length >= 40, 10000, '40 messages before the kill');
    await pub.holdA();
    const atKill = pub.ok.length;
    const epoch = epochOf(pub.ok[0].id);
    const tKill = Date.now();
    await killBroker(A, 'SIGKILL');
    await pg.waitInfo(i, (x) => x.state !== 'open', 8000, 'the page to notice the kill');
    await sleep(1500); // down: the page keeps trying (connection refused), messages go on through B
    const A2 = await restartSamePort(c, A);
    const tUp = Date.now();
    nodes.A = A2;
    const readyMs = await waitReady(A2);
    pub.aUp = true; // A takes every other publish again
    const atUp = pub.ok.length;
    await pg.waitOpen(i, tr, 15000);
    await sleep(1500); // live again, through A and B
    await pub.stop();
    const ok = pub.ok;
    assert(ok.length > atUp + 20, `publisher: only ${ok.length} 200s (${atUp} when A was back)`);
    await pg.waitInfo(i, (x) => x.msgs.length >= ok.length, 10000, `all ${ok.length} messages on the page`);
    await sleep(500); // nothing more may come
    const info = await pg.info(i);
    const log = await pg.stateLog(i);
    eq(pub.fails, [], 'publishes that did not get 200 (B never went down; A was used only while up)');
    for (const x of ok) eq(epochOf(x.id), epoch, `EPOCH of ${x.id} via ${x.via} (the stream kept its history)`);
    assert(ok.some((x) => x.via === 'A' && x.at > tUp), 'no publish through the restarted A');
    checkClient(info, log, pub, tr, tKill, tr);
    eq(pg.errors, [], 'page errors');
    c.info(`${tr}: ${ok.length} messages got 200 (${ok.filter((x) => x.via === 'A').length} via A), ` +
      `${atKill} before the kill, ${atUp - atKill} while A was down or starting, ${ok.length - atUp} after; page got ${info.msgs.length}, ` +
      `${info.stats.duplicates} duplicates dropped, ${info.gaps.length} gaps; reconnecting for ${reconnectingMs(log, tKill)} ms ` +
      `(A down ${tUp - tKill} ms, readyz 200 ${readyMs} ms after /healthz); states after the kill: ${foldStates(statesAfter(log, tKill))}`);
  }, { timeout: 30000 });
}

t.test('all three transports on one page, A killed twice (the second time while it reloads a long history) and back: every 200 once, no gap', async (c) => {
  const { A, B } = await setup(c);
  const nodes = { A, B };
  // ~190 MB of history on topics the page does not watch: a restarted A takes a few hundred ms to reload
  // the stream (/readyz 503 meanwhile), and the page reconnects to it during that time
  const BULK = 4000; const BIG = 'x'.repeat(48000);
  await Promise.all(Array.from({ length: 16 }, (_, w) => (async () => {
    for (let k = w; k < BULK; k += 16) {
      const r = await tryPublish(B.base, `bulk.t${k % 40}`, BIG);
      assert(r.status === 200, `bulk publish: ${r.status} ${trunc(r.text)}`);
    }
  })()));
  const pg = await clientPage(c, A.base);
  const clients = {};
  for (const tr of ['websocket', 'sse', 'longpoll']) clients[tr] = await pg.connect({ transports: [tr], subscribe: ['nr.>'] });
  for (const [tr, i] of Object.entries(clients)) await pg.waitOpen(i, tr);
  const pub = publisher(nodes, ['nr.a', 'nr.b', 'nr.c.d']);
  c.defer(() => pub.stop());
  for (const [tr, i] of Object.entries(clients)) await pg.waitInfo(i, (x) => x.msgs.length >= 30, 10000, `30 messages on ${tr} before the kill`);
  const epoch = epochOf(pub.ok[0].id);
  await pub.holdA();
  const tKill = Date.now();
  await killBroker(A, 'SIGKILL');
  await sleep(800);
  const A2 = await restartSamePort(c, A);
  const up1 = Date.now() - tKill;
  // killed again 150 ms after it answered /healthz: while it is still reloading the stream, clients maybe back on it
  await sleep(150);
  const ready1 = (await request(A2.base, 'GET', '/readyz', { timeout: 2000 }).catch(() => ({ status: 0 }))).status;
  const tKill2 = Date.now();
  await killBroker(A2, 'SIGKILL');
  await sleep(800);
  const A3 = await restartSamePort(c, A);
  const tUp = Date.now();
  nodes.A = A3;
  await waitReady(A3);
  const tReady = Date.now();
  pub.aUp = true;
  for (const [tr, i] of Object.entries(clients)) await pg.waitOpen(i, tr, 15000);
  await sleep(1500);
  await pub.stop();
  const ok = pub.ok;
  eq(pub.fails, [], 'publishes that did not get 200');
  for (const x of ok) eq(epochOf(x.id), epoch, `EPOCH of ${x.id}`);
  for (const [tr, i] of Object.entries(clients)) {
    await pg.waitInfo(i, (x) => x.msgs.length >= ok.length, 10000, `all ${ok.length} messages on ${tr}`);
  }
  await sleep(500);
  const parts = [];
  for (const [tr, i] of Object.entries(clients)) {
    const info = await pg.info(i);
    const log = await pg.stateLog(i);
    checkClient(info, log, pub, tr, tKill, tr);
    const onFirst = log.some((x) => x.at >= tKill && x.at < tKill2 && x.state === 'open');
    const open = log.find((x) => x.at >= tUp && x.state === 'open');
    parts.push(`${tr}: reconnecting ${reconnectingMs(log, tKill)} ms in all, ${onFirst ? 'open on the first restart too, ' : ''}` +
      `open on the second ${open ? open.at - tUp : '?'} ms after /healthz (${open && open.at < tReady ? 'before' : 'after'} /readyz), ` +
      `${info.stats.duplicates} duplicates dropped, states ${foldStates(statesAfter(log, tKill))}`);
  }
  eq(pg.errors, [], 'page errors');
  c.info(`double kill: ${BULK} bulk messages of ${BIG.length} bytes in the stream; ${ok.length} watched messages got 200 ` +
    `(${ok.filter((x) => x.via === 'A').length} via A); first restart answered after ${up1} ms and was killed 150 ms later (readyz then: ${ready1}); ` +
    `second restart: /readyz 200 ${tReady - tUp} ms after /healthz; ${parts.join('; ')}`);
}, { timeout: 50000 });

t.test('publishes from the page across the restart (rt.v1 on WebSocket, HTTP with Idempotency-Key on SSE and long-poll): each lands once, every client gets them all in order', async (c) => {
  const { A } = await setup(c, { withB: false });
  const pg = await clientPage(c, A.base);
  const clients = {};
  for (const tr of ['websocket', 'sse', 'longpoll']) clients[tr] = await pg.connect({ transports: [tr], subscribe: ['np.>'] });
  for (const [tr, i] of Object.entries(clients)) await pg.waitOpen(i, tr);
  // each client publishes {tr, k} to np.<tr> every 40 ms, without waiting for the answers
  const startPub = () => pg.p.evaluate((list) => {
    for (const [tr, i] of list) {
      const h = T.clients[i];
      h.pubLog = [];
      h.pubTimer = setInterval(() => {
        const rec = { k: h.pubLog.length, done: false, state: h.rt.state };
        h.pubLog.push(rec);
        h.rt.publish(`np.${tr}`, { tr, k: rec.k }).then((id) => { rec.done = true; rec.id = id; }, (e) => { rec.done = true; rec.code = e.code; });
      }, 40);
    }
  }, Object.entries(clients));
  const stopPub = () => pg.p.evaluate((list) => { for (const [, i] of list) clearInterval(T.clients[i].pubTimer); }, Object.entries(clients));
  const pubLogs = () => pg.p.evaluate((list) => Object.fromEntries(list.map(([tr, i]) => [tr, T.clients[i].pubLog])), Object.entries(clients));
  c.defer(() => stopPub().catch(() => {}));
  await startPub();
  await sleep(800);
  const tKill = Date.now();
  await killBroker(A, 'SIGKILL');
  await sleep(1500);
  const A2 = await restartSamePort(c, A);
  await waitReady(A2);
  for (const [tr, i] of Object.entries(clients)) await pg.waitOpen(i, tr, 15000);
  await sleep(1000);
  await stopPub();
  const logs = await waitFor(async () => { const l = await pubLogs(); return Object.values(l).every((x) => x.every((y) => y.done)) && l; },
    20000, 'every page publish answered');
  // what is known to be published (an id), what may or may not be (rt.v1 "disconnected"), what failed
  const known = new Map(); const maybe = new Set(); const bad = [];
  const counts = {};
  for (const [tr, log] of Object.entries(logs)) {
    counts[tr] = { sent: log.length, ok: 0, disconnected: 0, whileDown: log.filter((x) => x.state !== 'open').length };
    for (const x of log) {
      if (x.id) { known.set(x.id, `${tr}/${x.k}`); counts[tr].ok++; } else if (x.code === 'disconnected' && tr === 'websocket') { maybe.add(`${tr}/${x.k}`); counts[tr].disconnected++; } else bad.push(`${tr}/${x.k}: ${x.code}`);
    }
  }
  eq(bad, [], 'page publishes that failed (HTTP publishes are queued and retried with their Idempotency-Key; only rt.v1 ones in flight may end "disconnected")');
  assert(Object.values(counts).every((x) => x.whileDown > 5), `publishes made while A was down: ${JSON.stringify(counts)}`);
  let want = null;
  const seen = {};
  for (const [tr, i] of Object.entries(clients)) {
    await pg.waitInfo(i, (x) => x.msgs.length >= known.size && x.state === 'open', 10000, `the ${known.size} published messages on ${tr}`);
  }
  await sleep(500);
  for (const [tr, i] of Object.entries(clients)) {
    const info = await pg.info(i);
    const log = await pg.stateLog(i);
    const ids = info.msgs.map((m) => m.id);
    const payloads = info.msgs.map((m) => `${m.data && m.data.tr}/${m.data && m.data.k}`);
    const dupIds = ids.filter((x, k) => ids.indexOf(x) !== k);
    const dupPayloads = payloads.filter((x, k) => payloads.indexOf(x) !== k);
    assert(!dupIds.length, `${tr}: ids delivered twice: ${dupIds.slice(0, 5)}`);
    assert(!dupPayloads.length, `${tr}: messages published twice (same payload, two ids): ${dupPayloads.slice(0, 5)}`);
    for (let k = 1; k < ids.length; k++) assert(seqOf(ids[k]) > seqOf(ids[k - 1]), `${tr}: out of order at ${k}: ${ids[k - 1]} then ${ids[k]}`);
    for (const [id, what] of known) {
      const k = ids.indexOf(id);
      assert(k >= 0, `${tr}: ${what} (${id}) was published but not delivered`);
      eq(payloads[k], what, `${tr}: payload of ${id}`);
    }
    const extra = info.msgs.filter((m) => !known.has(m.id));
    for (const m of extra) assert(maybe.has(`${m.data.tr}/${m.data.k}`), `${tr}: delivered a message nobody published: ${JSON.stringify(m)}`);
    eq(info.gaps, [], `${tr}: gap notices`);
    const after = statesAfter(log, tKill);
    assert(after[0] === `reconnecting:${tr}` && after[after.length - 1] === `open:${tr}`, `${tr}: states after the kill: ${after.join(' ')}`);
    if (want) eq(ids, want, `${tr}: the same messages as the websocket client`); else want = ids;
    seen[tr] = { n: ids.length, reconnectingMs: reconnectingMs(log, tKill), duplicatesDropped: info.stats.duplicates };
  }
  eq(pg.errors, [], 'page errors');
  const landed = want.filter((id) => !known.has(id)).length;
  c.info(`page publishes: ${Object.entries(counts).map(([tr, x]) => `${tr} ${x.sent} sent (${x.whileDown} while not open), ${x.ok} with an id` +
    (x.disconnected ? `, ${x.disconnected} "disconnected"` : '')).join('; ')}; of the "disconnected" ones ${landed} were stored; ` +
    `every client got ${want.length}; ${Object.entries(seen).map(([tr, x]) => `${tr} reconnecting ${x.reconnectingMs} ms, ${x.duplicatesDropped} duplicates dropped`).join(', ')}`);
}, { timeout: 40000 });

t.test('the browser closes cleanly', async () => {
  if (!browserPromise) throw new Error('no browser was started');
  await (await browserPromise).close();
});

await t.run();

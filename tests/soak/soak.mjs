// Churn and soak: thousands of client sessions connect, subscribe, reconnect with resume and go away
// (cleanly or by destroying the socket) on every transport — raw WebSocket, rt.v1 WebSocket, SSE and
// long-poll — while publishers run. Then:
// - steady subscribers, connected the whole time, got every message answered 200 on their topic: none
//   lost, none twice, in order;
// - every session that resumed got exactly what followed its resume point (a prefix of it, since it may
//   have left early), and every other session a contiguous run: no hole, nothing twice, no gap notice;
// - the broker's resident memory (/proc/PID/status VmRSS) is back within 10% of its level after a warm-up
//   with the same load, and its open descriptors (/proc/PID/fd) back to that baseline.
// Counts come from the environment (SOAK_*; see DEFAULTS). runSoak() is used by
// tests/integration/test_soak.mjs (make test: the defaults) and `make soak` (longer).
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, SLOW, sleep, waitFor, openSSE, trunc } from '../integration/lib.mjs';
import { rssKiB, fdCount, metric, SANITIZER_RSS_KIB, sanitizerMemEnv } from '../integration/limitslib.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const WebSocket = require('ws');

export const DEFAULTS = {
  WARMUP_S: 15,        // churn and publishing before the baseline is taken
  SECONDS: 50,         // the measured churn
  CHURNERS: 50,        // concurrent churning clients
  RATE: 100,           // messages published per second (all publishers)
  PUBLISHERS: 4,
  TOPICS: 12,
  STEADY: 8,           // steady subscribers per transport (plus 2 rt.v1 on the wildcard soak.>)
  MIN_SESSIONS: 2000,  // fewer client sessions than this over the run is a failure
  RSS_SLACK: 0.10,
};

export function soakConfig(env = process.env) {
  const o = {};
  for (const [k, v] of Object.entries(DEFAULTS)) o[k] = env[`SOAK_${k}`] !== undefined ? Number(env[`SOAK_${k}`]) : v;
  return o;
}

const TRANSPORTS = ['sse', 'raw', 'v1', 'lp'];
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const rand = (lo, hi) => lo + Math.random() * (hi - lo);
const seqOf = (id) => Number(String(id).split(':').pop());

/**
 * Runs the soak against a started broker b (lib.mjs startBroker). log(msg) gets progress lines.
 * Returns {checks: [{name, ok, detail}], figures}.
 */
export async function runSoak(b, cfg, log = () => {}) {
  const topics = Array.from({ length: cfg.TOPICS }, (_, i) => `soak.t${i}`);
  const acked = new Map();   // key -> {id, seq, topic}
  const failedPublishes = [];
  const sessions = [];       // finished churn sessions
  const live = new Set();    // open client handles (for the final close)
  const stats = { byTransport: { sse: 0, raw: 0, v1: 0, lp: 0 }, abrupt: 0, resumed: 0, gaps: 0, errors: [] };
  const noteError = (e) => { if (stats.errors.length < 20) stats.errors.push(String(e).slice(0, 200)); };
  const wsBase = b.base.replace(/^http/, 'ws');

  // ------------------------------------------------------------ publishers
  let pubAgents = [];
  let publishing = false;
  let pubStop = false;
  let pubCount = 0;
  const publisherLoop = async (p) => {
    let i = 0;
    const period = (cfg.PUBLISHERS * 1000) / cfg.RATE;
    while (!pubStop) {
      if (!publishing) { await sleep(50); continue; }
      const t0 = Date.now();
      const topic = pick(topics);
      const key = `p${p}-${i++}`;
      const r = await post(pubAgents[p], `/pub/${topic}`, key);
      if (r.status === 200 && r.json && r.json.id) acked.set(key, { id: r.json.id, seq: seqOf(r.json.id), topic });
      else failedPublishes.push(`${key}: ${r.status} ${trunc(r.text, 100)}`);
      pubCount++;
      const wait = period - (Date.now() - t0);
      if (wait > 0) await sleep(wait);
    }
  };
  const post = (agent, p, body) => new Promise((resolve) => {
    const u = new URL(b.base);
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: p, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null; try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, text, json });
      });
    });
    req.setTimeout(10000 * SLOW, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, text: e.message }));
    req.end(body);
  });
  const newAgents = () => { pubAgents = Array.from({ length: cfg.PUBLISHERS }, () => new http.Agent({ keepAlive: true, maxSockets: 1 })); };
  const dropAgents = () => { for (const a of pubAgents) a.destroy(); };
  newAgents();
  const pubLoops = Array.from({ length: cfg.PUBLISHERS }, (_, p) => publisherLoop(p));

  // ------------------------------------------------------------ one subscriber of each kind
  // Each returns a handle {tp, topic, since, got: [{key|id}], gaps, close(abrupt)}; got holds ids (SSE, rt.v1,
  // long-poll) or payload keys (raw WebSocket, which carries no id).
  async function openSub(tp, topic, since, { pollTimeout = 2 } = {}) {
    const h = { tp, topic, since, got: [], gaps: 0, closed: false, error: null };
    if (tp === 'sse') {
      const s = await openSSE(b.base, `/sub/${topic}`, { headers: since ? { 'Last-Event-ID': since } : {}, timeout: 10000 * SLOW });
      if (s.status !== 200) throw new Error(`SSE ${topic}: ${s.status}`);
      await s.waitOk(10000 * SLOW);
      h.items = () => s.events;
      h.collect = () => {
        h.got = s.events.filter((e) => e.event === null && e.hasId).map((e) => e.id);
        h.gaps = s.events.filter((e) => e.event === 'rt.gap').length;
        h.ended = s.ended;
      };
      h.close = () => { h.collect(); s.close(); };
    } else if (tp === 'raw' || tp === 'v1') {
      const url = tp === 'raw' ? `${wsBase}/sub/${topic}${since ? `?since=${encodeURIComponent(since)}` : ''}` : `${wsBase}/ws`;
      const ws = new WebSocket(url, tp === 'v1' ? ['rt.v1'] : undefined);
      h.ws = ws;
      ws.on('message', (d) => {
        if (tp === 'raw') { h.got.push(d.toString('utf8')); return; }
        let f; try { f = JSON.parse(d.toString('utf8')); } catch { return; }
        if (f.type === 'msg') h.got.push(f.id);
        else if (f.type === 'gap') h.gaps++;
        else if (f.type === 'ok' && h.onOk) h.onOk(f);
        else if (f.type === 'error') { h.error = f; if (h.onOk) h.onOk(f); }
      });
      ws.on('close', (code) => { h.closedCode = code; h.ended = true; });
      ws.on('error', (e) => { h.error = h.error || e.message; });
      await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`WebSocket ${topic}: not open`)), 10000 * SLOW);
        ws.once('open', () => { clearTimeout(t); resolve(); });
        ws.once('error', (e) => { clearTimeout(t); reject(e); });
      });
      if (tp === 'v1') {
        const ok = await new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`rt.v1 sub ${topic}: no answer`)), 10000 * SLOW);
          h.onOk = (f) => { clearTimeout(t); h.onOk = null; resolve(f); };
          ws.send(JSON.stringify({ op: 'sub', topic, ref: 1, ...(since ? { since } : {}) }));
        });
        if (ok.type !== 'ok') throw new Error(`rt.v1 sub ${topic}: ${JSON.stringify(ok)}`);
      }
      h.collect = () => {};
      h.close = (abrupt) => { if (abrupt) ws.terminate(); else ws.close(1000); };
    } else {
      // long-poll: a loop of polls on one keep-alive connection; abrupt = destroy the one in flight
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let cursor = since;
      let current = null;
      h.agent = agent;
      const once = (timeout) => new Promise((resolve) => {
        const u = new URL(b.base);
        const qs = new URLSearchParams({ topic, timeout: String(timeout) });
        if (cursor) qs.set('cursor', cursor);
        const req = http.request({ host: u.hostname, port: u.port, path: `/poll?${qs}`, agent }, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => { let j = null; try { j = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch {} resolve({ status: res.statusCode, json: j }); });
          res.on('error', () => resolve({ status: 0 }));
        });
        req.on('error', () => resolve({ status: 0 }));
        req.end();
        current = req;
      });
      if (!cursor) { // "start now": learn the head first
        const r = await once(0);
        if (r.status !== 200) throw new Error(`long-poll ${topic}: ${r.status}`);
        cursor = r.json.cursor;
        h.since = null;
      }
      h.loop = (async () => {
        while (!h.closed) {
          const r = await once(pollTimeout);
          if (h.closed) break;
          if (r.status !== 200 || !r.json) { h.error = `poll status ${r.status}`; break; }
          if (r.json.gap) h.gaps++;
          for (const m of r.json.messages) h.got.push(m.id);
          cursor = r.json.cursor;
        }
      })();
      h.collect = () => {};
      h.close = (abrupt) => { h.closed = true; if (abrupt && current) current.destroy(); agent.destroy(); };
    }
    stats.byTransport[tp]++;
    return h;
  }

  // ------------------------------------------------------------ steady subscribers
  const steady = [];
  let k = 0;
  for (const tp of TRANSPORTS) {
    const n = tp === 'lp' ? Math.max(1, Math.floor(cfg.STEADY / 2)) : cfg.STEADY;
    for (let i = 0; i < n; i++) steady.push(await openSub(tp, topics[k++ % topics.length], null, { pollTimeout: 20 }));
  }
  for (let i = 0; i < 2; i++) { const w = await openSub('v1', 'soak.>', null); w.wildcard = true; steady.push(w); }
  log(`${steady.length} steady subscribers open`);

  // ------------------------------------------------------------ churners
  let churning = false;
  let churnStop = false;
  const keyToId = async (key) => {
    for (let i = 0; i < 100 && !acked.has(key); i++) await sleep(10);
    return acked.has(key) ? acked.get(key).id : null;
  };
  const churner = async () => {
    let tp = null; let topic = null; let resumeFrom = null;
    while (!churnStop) {
      if (!churning) { await sleep(50); continue; }
      let since = null;
      if (tp && resumeFrom && Math.random() < 0.6) {
        since = resumeFrom;
      } else {
        tp = pick(TRANSPORTS); topic = pick(topics);
      }
      let h;
      try {
        h = await openSub(tp, topic, since);
      } catch (e) { noteError(e.message); await sleep(200); tp = null; continue; }
      live.add(h);
      if (since) stats.resumed++;
      await sleep(rand(300, 2500));
      const abrupt = Math.random() < 0.5;
      if (abrupt) stats.abrupt++;
      h.close(abrupt);
      live.delete(h);
      h.abrupt = abrupt;
      if (h.loop) await h.loop;
      sessions.push(h);
      // where a reconnect would resume from: the last id seen, else where this session started
      let last = h.got.length ? h.got[h.got.length - 1] : null;
      if (last && tp === 'raw') last = await keyToId(last);
      resumeFrom = last || since;
    }
  };
  const churners = Array.from({ length: cfg.CHURNERS }, () => churner());

  // ------------------------------------------------------------ phases
  const quiesce = async (label) => {
    churning = false;
    publishing = false;
    while (live.size) await sleep(50); // the churners finish their sessions
    await sleep(200);
    dropAgents();
    newAgents();
    // dead SSE streams are noticed at the next heartbeat, abandoned polls when they answer (2 s)
    await sleep(4000 * SLOW);
    const m = { rss: rssKiB(b.pid), fd: fdCount(b.pid), tcp: await metric(b.base, 'rtbroker_tcp_connections') };
    log(`${label}: RSS ${(m.rss / 1024).toFixed(1)} MiB, ${m.fd} fds, ${m.tcp} TCP connections`);
    return m;
  };

  publishing = true; churning = true;
  const t0 = Date.now();
  await sleep(cfg.WARMUP_S * 1000);
  const base = await quiesce(`after the warm-up (${cfg.WARMUP_S} s)`);
  const sessionsWarm = sessions.length;
  publishing = true; churning = true;
  const t1 = Date.now();
  while (Date.now() - t1 < cfg.SECONDS * 1000) {
    await sleep(5000);
    log(`churn ${Math.round((Date.now() - t1) / 1000)} s: ${sessions.length} sessions done, ${acked.size} messages published`);
  }
  // stop: everything published must reach the steady subscribers
  let after = await quiesce(`after the churn (${cfg.SECONDS} s)`);
  churnStop = true; pubStop = true;
  await Promise.all([...churners, ...pubLoops]);
  // memory and descriptors may take a moment to settle
  const deadline = Date.now() + 15000 * SLOW;
  while ((after.rss > base.rss * (1 + cfg.RSS_SLACK) + SANITIZER_RSS_KIB || after.fd > base.fd) && Date.now() < deadline) {
    await sleep(1000);
    after = { rss: rssKiB(b.pid), fd: fdCount(b.pid), tcp: await metric(b.base, 'rtbroker_tcp_connections') };
  }
  const elapsed = (Date.now() - t0) / 1000;

  // ------------------------------------------------------------ checks
  const byTopic = new Map(topics.map((t) => [t, []]));
  for (const a of acked.values()) byTopic.get(a.topic).push(a);
  for (const list of byTopic.values()) list.sort((x, y) => x.seq - y.seq);
  const all = [...acked.values()].sort((x, y) => x.seq - y.seq);
  const idOf = (h, x) => (h.tp === 'raw' ? (acked.has(x) ? acked.get(x).id : `unknown:${x}`) : x);
  const checks = [];
  const check = (name, ok, detail) => checks.push({ name, ok: !!ok, detail });

  // steady: exactly everything on their topic
  await waitFor(() => steady.every((h) => { h.collect(); return h.got.length >= (h.wildcard ? all : byTopic.get(h.topic)).length; }),
    15000 * SLOW, 'steady subscribers caught up').catch(() => {});
  let sLost = 0; let sDup = 0; let sExtra = 0; let sDelivered = 0; let sDropped = 0; let sGaps = 0;
  const sBad = [];
  for (const h of steady) {
    h.collect();
    const want = (h.wildcard ? all : byTopic.get(h.topic)).map((a) => a.id);
    const got = h.got.map((x) => idOf(h, x));
    sDelivered += got.length;
    const seen = new Set();
    let dup = 0;
    for (const x of got) { if (seen.has(x)) dup++; seen.add(x); }
    const wantSet = new Set(want);
    const lost = want.filter((x) => !seen.has(x)).length;
    const extra = [...seen].filter((x) => !wantSet.has(x)).length;
    const inOrder = got.length === want.length && got.every((x, i) => x === want[i]);
    sLost += lost; sDup += dup; sExtra += extra; sGaps += h.gaps;
    if (h.ended || h.closed || (h.error && h.tp === 'lp')) sDropped++;
    if (!inOrder && sBad.length < 3) sBad.push(`${h.tp} ${h.topic}: ${got.length}/${want.length}, lost ${lost}, dup ${dup}, extra ${extra}`);
  }
  check(`steady subscribers (${steady.length}, connected throughout): ${all.length} messages published, ${sDelivered} delivered, ${sLost} lost, ${sDup} duplicates`,
    sLost === 0 && sDup === 0 && sExtra === 0 && sBad.length === 0 && sDropped === 0 && sGaps === 0,
    `${sBad.join('; ')}${sExtra ? `; ${sExtra} unexpected` : ''}${sDropped ? `; ${sDropped} dropped` : ''}${sGaps ? `; ${sGaps} gap notices` : ''}`);
  check(`every publish answered 200 (${pubCount} sent)`, failedPublishes.length === 0, failedPublishes.slice(0, 5).join('; '));

  // churn sessions: resumed ones get exactly what follows the resume point (a prefix), others a contiguous run
  let rLost = 0; let rDup = 0; let cHole = 0; let cDelivered = 0; let cGaps = 0; let resumedChecked = 0;
  const cBad = [];
  const index = new Map([...byTopic].map(([tp, list]) => [tp, { list, pos: new Map(list.map((a, i) => [a.id, i])) }]));
  const firstAfter = (list, seq) => { // binary search: the first message with SEQ > seq
    let lo = 0; let hi = list.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (list[mid].seq > seq) hi = mid; else lo = mid + 1; }
    return lo;
  };
  for (const h of sessions) {
    const { list, pos } = index.get(h.topic);
    const got = h.got.map((x) => idOf(h, x));
    cDelivered += got.length;
    cGaps += h.gaps;
    if (got.length === 0) continue;
    if (h.since) {
      resumedChecked++;
      const start = firstAfter(list, seqOf(h.since));
      for (let i = 0; i < got.length; i++) {
        const want = list[start + i] && list[start + i].id;
        if (got[i] !== want) {
          if (got.indexOf(got[i]) < i) rDup++; else rLost++;
          if (cBad.length < 3) cBad.push(`${h.tp} ${h.topic} since ${h.since}: message ${i} is ${got[i]}, expected ${want}`);
          break;
        }
      }
    } else {
      const start = pos.get(got[0]);
      const ok = start !== undefined && got.every((x, i) => list[start + i] && list[start + i].id === x);
      if (!ok) {
        cHole++;
        if (cBad.length < 3) cBad.push(`${h.tp} ${h.topic}: not a contiguous run: ${trunc(JSON.stringify(got.slice(0, 8)), 200)}`);
      }
    }
  }
  const total = steady.length + sessions.length;
  check(`churn sessions (${sessions.length}; ${resumedChecked} resumed with messages): ${cDelivered} delivered, ${rLost} lost after a resume point, ${rDup} duplicates, ${cHole} with a hole, ${cGaps} gap notices`,
    rLost === 0 && rDup === 0 && cHole === 0 && cGaps === 0, cBad.join('; '));
  const minSessions = Math.round(cfg.MIN_SESSIONS / (SLOW > 1 ? 2 : 1));
  check(`client sessions over the run: ${total} (SSE ${stats.byTransport.sse}, raw WebSocket ${stats.byTransport.raw}, rt.v1 ${stats.byTransport.v1}, long-poll ${stats.byTransport.lp}; ${stats.abrupt} destroyed abruptly, ${stats.resumed} resumed)`,
    total >= minSessions, `fewer than ${minSessions}; client errors: ${stats.errors.slice(0, 5).join('; ')}`);
  // under ASan freed memory waits in the quarantine first (limitslib.mjs)
  const rssLimit = base.rss * (1 + cfg.RSS_SLACK) + SANITIZER_RSS_KIB;
  check(`RSS after the churn ${(after.rss / 1024).toFixed(1)} MiB, after the warm-up ${(base.rss / 1024).toFixed(1)} MiB (limit +${cfg.RSS_SLACK * 100}%${process.env.RTB_SANITIZED ? ' + 8 MiB of ASan quarantine' : ''})`,
    after.rss <= rssLimit, `over the limit ${(rssLimit / 1024).toFixed(1)} MiB`);
  check(`open descriptors after the churn ${after.fd}, after the warm-up ${base.fd}; TCP connections ${after.tcp} / ${base.tcp}`,
    after.fd <= base.fd, 'descriptors were not released');
  const figures = {
    seconds: elapsed, sessions: total, sessionsWarm, steady: steady.length, published: all.length, steadyDelivered: sDelivered,
    churnDelivered: cDelivered, lost: sLost + rLost, duplicates: sDup + rDup, rssBefore: base.rss, rssAfter: after.rss,
    fdBefore: base.fd, fdAfter: after.fd, clientErrors: stats.errors,
  };
  for (const h of steady) h.close(false);
  await Promise.all(steady.filter((h) => h.loop).map((h) => h.loop));
  return { checks, figures };
}

// ------------------------------------------------------------ standalone: `node tests/soak/soak.mjs` (make soak)
if (import.meta.url === `file://${process.argv[1]}`) {
  const { suite, SLOW: slow } = await import('../integration/lib.mjs');
  const cfg = soakConfig();
  const budget = (cfg.WARMUP_S + cfg.SECONDS + 120) * 1000 * slow;
  const t = suite(import.meta.url, { hardTimeoutMs: budget + 30000 });
  t.test('soak', async (c) => {
    const b = await c.broker(soakBroker());
    const { checks } = await runSoak(b, cfg, (m) => c.info(m));
    report(t.file, checks);
  }, { timeout: budget });
  await t.run();
}

/** Broker options for the soak: dead SSE streams noticed within a second; history at its default size (100
 * per topic), so that it is full by the end of the warm-up and what it holds does not read as growth. */
export function soakBroker() {
  const env = sanitizerMemEnv();
  return {
    config: { history: { max_messages: 100 }, sse: { heartbeat: '1s' }, websocket: { ping_interval: '5s' } },
    env,
  };
}

/** Print each check as a PASS/FAIL line; throws when one failed. */
export function report(file, checks) {
  for (const ch of checks) console.log(`${ch.ok ? 'PASS' : 'FAIL'} ${file}: ${ch.name}${ch.ok || !ch.detail ? '' : `: ${ch.detail}`}`);
  const bad = checks.filter((ch) => !ch.ok);
  if (bad.length) throw new Error(`${bad.length} soak check(s) failed`);
}

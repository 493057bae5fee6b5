// Chaos clients: subscribers on every transport (SSE, NDJSON, long-poll, rt.v1, raw WebSocket) that
// resume with their last id after every disconnect, as web/realtime.js does, some staying on a home
// node and some moving between nodes; publishers over HTTP and rt.v1 with Idempotency-Keys that
// retry on 503 / unknown outcomes. Everything they see is recorded for the checker.
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, sleep, SSEParser } from '../integration/lib.mjs';

const require = createRequire(path.join(ROOT, 'tests', 'package.json'));
const WebSocket = require('ws');
const IDLE_MS = 4000; // the brokers send heartbeats every second: silence this long is a dead or stopped node

/** The payload key of a delivered `data` (an object, or its JSON text). */
export function keyOf(data) {
  try { return (typeof data === 'string' ? JSON.parse(data) : data).k ?? null; } catch { return null; }
}

/** A streaming HTTP GET (SSE or NDJSON); onChunk gets bytes; resolves when the stream ends for any reason. */
function streamGet(url, headers, sess, onChunk) {
  return new Promise((resolve) => {
    const req = http.get(url, { headers, agent: false });
    sess.abort = () => req.destroy();
    req.on('error', (e) => resolve(`error ${e.code || e.message}`));
    req.on('response', (res) => {
      if (res.statusCode !== 200) { res.resume(); req.destroy(); resolve(`status ${res.statusCode}`); return; }
      sess.alive();
      res.on('data', (d) => { sess.alive(); onChunk(d); });
      res.on('end', () => resolve('ended'));
      res.on('close', () => resolve('closed'));
      res.on('error', () => resolve('error'));
    });
  });
}

const transports = {
  // SSE with envelopes (topic and id of every message), resumed with Last-Event-ID
  async sse(s, node, sess) {
    const parser = new SSEParser();
    const q = `topic=${encodeURIComponent(s.topic)}&envelope=1`;
    return streamGet(`${node.base}/sse?${q}`, { Accept: 'text/event-stream', ...(s.lastId ? { 'Last-Event-ID': s.lastId } : {}) }, sess, (d) => {
      parser.push(d);
      for (const e of parser.items.splice(0)) {
        if (e.type !== 'event') continue;
        if (e.event === 'rt.gap') s.gap(e.data);
        else if (!e.event || !e.event.startsWith('rt.')) { const m = JSON.parse(e.data); s.deliver(m.id, m.topic, keyOf(m.data)); }
      }
    });
  },
  async ndjson(s, node, sess) {
    let buf = '';
    return streamGet(`${node.base}/sub/${s.topic}`, { Accept: 'application/x-ndjson', ...(s.lastId ? { 'Last-Event-ID': s.lastId } : {}) }, sess, (d) => {
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const m = JSON.parse(line);
        if (m.type === 'gap') s.gap(line);
        else if (m.id) s.deliver(m.id, m.topic, keyOf(m.data));
      }
    });
  },
  // long-poll: stateless, so a moving client asks a different node at every poll
  async longpoll(s, node, sess, pick) {
    let n = node;
    while (!sess.ended) {
      const q = `topic=${encodeURIComponent(s.topic)}&timeout=2${s.lastId ? `&cursor=${encodeURIComponent(s.lastId)}` : ''}`;
      let r;
      try {
        const ac = new AbortController();
        sess.abort = () => ac.abort();
        const t = setTimeout(() => ac.abort(), 2000 + IDLE_MS);
        const res = await fetch(`${n.base}/poll?${q}`, { signal: ac.signal });
        r = { status: res.status, json: await res.json().catch(() => null) };
        clearTimeout(t);
      } catch (e) { return `error ${e.name}`; }
      if (r.status !== 200 || !r.json) return `status ${r.status}`;
      sess.alive();
      if (r.json.gap) s.gap(JSON.stringify({ cursor: s.lastId }));
      for (const m of r.json.messages) if (m.id) s.deliver(m.id, m.topic, keyOf(m.data));
      if (r.json.cursor) s.lastId = r.json.cursor;
      if (s.moving) n = pick();
    }
    return 'ended';
  },
  async rtv1(s, node, sess) {
    return wsSession(`${node.base.replace('http', 'ws')}/ws`, ['rt.v1'], sess, (ws) => {
      ws.send(JSON.stringify({ op: 'sub', topic: s.topic, ...(s.lastId ? { since: s.lastId } : {}), ref: 's' }));
    }, (d) => {
      const m = JSON.parse(d.toString('utf8'));
      if (m.type === 'msg' && m.id) s.deliver(m.id, m.topic, keyOf(m.data));
      else if (m.type === 'gap') s.gap(JSON.stringify(m));
      else if (m.type === 'error') s.errors.push(JSON.stringify(m));
    });
  },
  // raw WebSocket: the payload only; the id is found from the payload's key when resuming
  async raw(s, node, sess) {
    const since = s.lastKey ? await s.resolveId(s.topic, s.lastKey) : s.startId;
    if (s.lastKey && !since) return 'unresolved';
    return wsSession(`${node.base.replace('http', 'ws')}/sub/${s.topic}?since=${encodeURIComponent(since)}`, [], sess, () => {}, (d) => {
      s.deliver(null, s.topic, keyOf(d.toString('utf8')));
    });
  },
};

function wsSession(url, protocols, sess, onOpen, onMessage) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    sess.abort = () => ws.terminate();
    ws.on('open', () => { sess.alive(); onOpen(ws); });
    ws.on('ping', () => sess.alive());
    ws.on('message', (d) => { sess.alive(); onMessage(d); });
    ws.on('close', (code) => resolve(`closed ${code}`));
    ws.on('error', (e) => resolve(`error ${e.code || e.message}`));
  });
}

/**
 * A subscriber. spec: {name, transport, topic, moving}. nodes: the broker nodes; rand: the PRNG;
 * resolveId(topic, key): the id of a delivered payload (raw WebSocket). Call .start(startId), .stop().
 */
export function subscriber(spec, nodes, rand, resolveId) {
  const s = {
    ...spec, deliveries: [], gaps: [], errors: [], sessions: 0, ends: {}, lastId: null, lastKey: null, startId: null,
    home: rand.int(0, nodes.length - 1), stopped: false, sess: null,
  };
  s.resolveId = resolveId;
  s.deliver = (id, topic, key) => {
    s.deliveries.push({ id, topic, key, t: Date.now(), node: s.sess && s.sess.node, session: s.sessions });
    if (id) s.lastId = id;
    s.lastKey = key;
  };
  s.gap = (detail) => s.gaps.push({ t: Date.now(), detail, after: s.deliveries.length, lastId: s.lastId });
  const pick = () => (s.moving ? rand.pick(nodes) : nodes[s.home]);
  s.drop = () => { if (s.sess && s.sess.abort) s.sess.abort(); };
  s.start = (startId) => {
    s.startId = startId; s.lastId = startId;
    s.done = (async () => {
      while (!s.stopped) {
        const node = pick();
        const sess = { node: node.name, ended: false, last: Date.now(), abort: null };
        sess.alive = () => { sess.last = Date.now(); };
        s.sess = sess; s.sessions++;
        // idle watchdog (a stopped or dead node), and moving clients leave on their own now and then
        const leaveAt = s.moving ? Date.now() + rand.int(2000, 8000) : Infinity;
        const dog = setInterval(() => {
          if (Date.now() - sess.last > IDLE_MS || Date.now() > leaveAt || s.stopped) { sess.ended = true; if (sess.abort) sess.abort(); }
        }, 250);
        const why = await transports[s.transport](s, node, sess, pick).catch((e) => `exception ${e.message}`);
        clearInterval(dog);
        sess.ended = true;
        const k = String(why).split(' ').slice(0, 2).join(' ');
        s.ends[k] = (s.ends[k] || 0) + 1;
        if (s.stopped) break;
        if (!s.moving && !/^(ended|closed 1000)/.test(why)) s.home = (s.home + 1) % nodes.length; // its node failed: another one
        await sleep(rand.int(50, 400));
      }
    })();
  };
  s.stop = async () => { s.stopped = true; s.drop(); await Promise.race([s.done, sleep(8000)]); };
  return s;
}

/**
 * A publisher: publishes {"k":KEY} to a random topic at `rate` per second, over HTTP or rt.v1, with the key as
 * Idempotency-Key, retrying on 503 and unknown outcomes (any node) for up to `retryMs`. Records every attempt.
 */
export function publisher({ name, via, topics, rate, retryMs = 30000 }, nodes, rand, pubs) {
  const p = { name, via, stopped: false, n: 0, ws: null };
  const attemptHttp = async (node, topic, key) => {
    try {
      const r = await fetch(`${node.base}/pub/${topic}`, {
        method: 'POST', body: JSON.stringify({ k: key }),
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key }, signal: AbortSignal.timeout(6000),
      });
      const j = await r.json().catch(() => null);
      return { status: r.status, id: j && j.id, error: j && j.error };
    } catch (e) { return { status: 0, error: e.name }; }
  };
  // one rt.v1 connection at a time, opened on demand on the node asked
  const attemptV1 = (node, topic, key) => new Promise((resolve) => {
    const ws = new WebSocket(`${node.base.replace('http', 'ws')}/ws`, ['rt.v1']);
    p.ws = ws;
    const t = setTimeout(() => { ws.terminate(); resolve({ status: 0, error: 'timeout' }); }, 6000);
    ws.on('open', () => ws.send(JSON.stringify({ op: 'pub', topic, data: { k: key }, idempotency_key: key, ref: 'p' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString('utf8'));
      if (m.ref !== 'p') return;
      clearTimeout(t); ws.close();
      resolve(m.type === 'ok' ? { status: 200, id: m.id } : { status: m.code === 'unavailable' ? 503 : 400, error: m.code });
    });
    ws.on('error', (e) => { clearTimeout(t); resolve({ status: 0, error: e.code || e.message }); });
    ws.on('close', () => { clearTimeout(t); resolve({ status: 0, error: 'closed' }); });
  });
  p.drop = () => { if (p.ws) p.ws.terminate(); };
  p.done = (async () => {
    while (!p.stopped) {
      const t0 = Date.now();
      const key = `${name}-${++p.n}`;
      const topic = rand.pick(topics);
      const rec = { key, topic, via, attempts: [], id: null, t0, tAck: null, outcome: 'unknown' };
      pubs.set(key, rec);
      while (Date.now() - t0 < retryMs) {
        const node = rand.pick(nodes);
        const r = await (via === 'http' ? attemptHttp : attemptV1)(node, topic, key);
        rec.attempts.push({ node: node.name, status: r.status, id: r.id || null, error: r.error || null, t: Date.now() });
        if (r.status === 200) { rec.id = r.id; rec.tAck = Date.now(); rec.outcome = 'acked'; break; }
        if (r.status !== 0 && r.status !== 503) { rec.outcome = `refused ${r.status} ${r.error}`; break; }
        await sleep(rand.int(100, 400));
      }
      await sleep(Math.max(0, 1000 / rate - (Date.now() - t0)));
    }
  })();
  p.stop = async () => { p.stopped = true; await p.done; };
  return p;
}

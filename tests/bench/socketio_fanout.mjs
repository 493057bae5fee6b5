// Socket.IO beside raw WebSocket in a fanout: N subscribers of one topic (socket.io-client v4 over WebSocket,
// subscribed through auth.topics; and `ws` clients on /sub/TOPIC raw), M publishes over HTTP from P concurrent
// publishers. Reports deliveries/s, latency p50/p99 (publish sent -> event received), loss and duplicates,
// and the broker's CPU per 1,000 deliveries (from /proc, the figure the client side cannot blur: every client
// runs in this one Node process, which is the bottleneck of the wall-clock figures).
// Usage: node tests/bench/socketio_fanout.mjs [N=1000] [M=200] [P=4]   (RTB_BIN: the broker; 2 workers)
import fs from 'node:fs';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { startBroker, sleep } from '../integration/lib.mjs';

const [N, M, P] = [Number(process.argv[2] || 1000), Number(process.argv[3] || 200), Number(process.argv[4] || 4)];
const TICK = 1000 / 100; // ms per clock tick (USER_HZ 100 on Linux)

function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK; // utime + stime
}

const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(a.length * p))];

async function arm(b, name, open) {
  const got = new Map(); // client -> [n...]
  const lat = [];
  const onMsg = (k, raw) => {
    const m = typeof raw === 'string' ? JSON.parse(raw) : raw;
    lat.push(Date.now() - m.t);
    got.get(k).push(m.n);
  };
  const clients = [];
  for (let k = 0; k < N; k += 50) { // in batches, not a SYN storm
    clients.push(...await Promise.all(Array.from({ length: Math.min(50, N - k) }, (_, j) => { got.set(k + j, []); return open(k + j, onMsg); })));
  }
  await sleep(300);
  const cpu0 = cpuMs(b.pid);
  const t0 = Date.now();
  let next = 0;
  await Promise.all(Array.from({ length: P }, async () => {
    while (next < M) {
      const n = next++;
      const r = await fetch(`${b.base}/pub/bench.${name}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ n, t: Date.now() }) });
      if (r.status !== 200) throw new Error(`publish ${n}: ${r.status}`);
      await r.arrayBuffer();
    }
  }));
  const want = N * M;
  const deadline = Date.now() + 60000;
  let total = 0;
  while (Date.now() < deadline) {
    total = 0;
    for (const a of got.values()) total += a.length;
    if (total >= want) break;
    await sleep(20);
  }
  const secs = (Date.now() - t0) / 1000;
  const cpu = cpuMs(b.pid) - cpu0;
  let lost = 0, dup = 0;
  for (const a of got.values()) {
    const seen = new Set(a);
    dup += a.length - seen.size;
    lost += M - seen.size;
  }
  for (const c of clients) c.close();
  lat.sort((x, y) => x - y);
  return { name, deliveries: total, rate: Math.round(total / secs), p50: pct(lat, 0.5), p99: pct(lat, 0.99), lost, dup, cpuPerK: (cpu / (total / 1000)).toFixed(2) };
}

const b = await startBroker({ config: { plugins: { load: ['websocket', 'socketio'] }, limits: { max_connections: 0 } } });
try {
  const rows = [];
  rows.push(await arm(b, 'raw', (k, on) => new Promise((res, rej) => {
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/sub/bench.raw`);
    ws.on('message', (d) => on(k, String(d)));
    ws.once('open', () => res(ws));
    ws.once('error', rej);
  })));
  rows.push(await arm(b, 'sio', (k, on) => new Promise((res, rej) => {
    const s = io(b.base, { transports: ['websocket'], auth: { topics: ['bench.sio'] }, reconnection: false, forceNew: true });
    s.on('message', (d) => on(k, d));
    s.once('connect', () => res(s));
    s.once('connect_error', rej);
  })));
  console.log(`| clients | ${N} subscribers, ${M} publishes, ${P} publishers, 2 workers |`);
  console.log('| arm | deliveries | delivered msg/s | p50 | p99 | lost | duplicates | broker CPU ms per 1,000 deliveries |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name === 'raw' ? 'raw WebSocket (/sub/TOPIC)' : 'Socket.IO (socket.io-client, websocket)'} | ${r.deliveries} | ${r.rate} | ${r.p50} ms | ${r.p99} ms | ${r.lost} | ${r.dup} | ${r.cpuPerK} |`);
} finally {
  await b.stop();
}

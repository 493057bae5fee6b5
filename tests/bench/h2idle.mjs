// S5-SSE-h2 of `make bench` (tests/bench/run): N idle EventSource streams over HTTP/2 on TLS, as browsers
// open them (HTTP/2 only over TLS), PER streams on each connection (100: h2o's and nginx's limit per
// connection is 100 and 128). Reads the server's memory (VmRSS and PSS, summed over --pid) and the kernel's
// TCP memory (/proc/net/sockstat `mem`) before connecting and once every stream has its first bytes and sat
// idle, and prints a RESULT line with the fields of tests/bench/loadgen.c that report.py reads for S5 rows.
//
//   node tests/bench/h2idle.mjs --port P --server rtbroker|nchan --pid PID[,PID...] [--streams 1000]
//        [--per 100] [--idle 2] [--label S5-SSE-h2] [--path /sub/t0]
import http2 from 'node:http2';
import fs from 'node:fs';

const opt = { port: 0, server: 'rtbroker', pid: '', streams: 1000, per: 100, idle: 2, label: 'S5-SSE-h2', path: '/sub/t0', timeout: 60 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt)) { console.error(`h2idle: unknown option ${process.argv[i]}`); process.exit(2); }
  opt[k] = typeof opt[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
if (!opt.port || !opt.pid) { console.error('h2idle: --port and --pid are required'); process.exit(2); }

const kb = (file, key) => {
  try {
    const m = fs.readFileSync(file, 'utf8').match(new RegExp(`^${key}\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
};
const pids = opt.pid.split(',').filter(Boolean);
const serverMem = () => ({
  rss: pids.reduce((a, p) => a + kb(`/proc/${p}/status`, 'VmRSS:'), 0),
  pss: pids.reduce((a, p) => a + kb(`/proc/${p}/smaps_rollup`, 'Pss:'), 0),
});
const tcpMemKb = () => {
  const m = fs.readFileSync('/proc/net/sockstat', 'utf8').match(/^TCP:.* mem (\d+)/m);
  return m ? Number(m[1]) * 4 : NaN; // pages of 4 KiB
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const m0 = serverMem(); const k0 = tcpMemKb();
const t0 = Date.now();
let connected = 0; let failed = 0; let dropped = 0; let idle = false;
const why = new Map(); // failure reason -> count
const note = (e) => why.set(String(e?.code || e?.message || e), (why.get(String(e?.code || e?.message || e)) || 0) + 1);
const sessions = [];
const nsess = Math.ceil(opt.streams / opt.per);
// at most 64 connections in their handshake at a time (as loadgen.c's 256): a burst of thousands of TLS
// handshakes on one pinned core outlasts the servers' handshake timeouts
let slots = 64; const waiting = [];
const slot = () => (slots > 0 ? (slots--, Promise.resolve()) : new Promise((r) => waiting.push(r)));
const unslot = () => { const next = waiting.shift(); if (next) next(); else slots++; };
await Promise.all(Array.from({ length: nsess }, (_, si) => slot().then(() => new Promise((resolve) => {
  const n = Math.min(opt.per, opt.streams - si * opt.per);
  const s = http2.connect(`https://127.0.0.1:${opt.port}`, { rejectUnauthorized: false, servername: 'localhost' });
  sessions.push(s);
  let left = n;
  const one = () => { if (--left === 0) resolve(); };
  s.on('error', note);
  s.on('connect', () => {
    for (let i = 0; i < n; i++) {
      const st = s.request({ ':path': opt.path, accept: 'text/event-stream' });
      let got = false;
      st.on('response', (h) => { if (h[':status'] !== 200) { note(`status ${h[':status']}`); failed++; got = true; one(); } });
      st.on('data', () => { if (!got) { got = true; connected++; one(); } });
      st.on('error', (e) => { note(e); if (!got) { got = true; failed++; one(); } else if (idle) dropped++; });
      st.on('close', () => { if (!got) { got = true; failed++; one(); } else if (idle) dropped++; });
    }
  });
  s.on('close', () => { while (left > 0) { failed++; one(); } });
}).finally(unslot))));
const tConn = (Date.now() - t0) / 1000;
idle = true;
await sleep(opt.idle * 1000);
const m1 = serverMem(); const k1 = tcpMemKb();
const per = connected ? (m1.pss - m0.pss) * 1024 / connected : NaN;
const perRss = connected ? (m1.rss - m0.rss) * 1024 / connected : NaN;
const kper = connected ? (k1 - k0) * 1024 / connected : NaN;
console.log(`h2idle ${opt.label}: server ${opt.server} port ${opt.port}, ${opt.streams} SSE streams over HTTP/2 (TLS), ${opt.per} per connection (${nsess} connections)`);
console.log(`  streams: ${connected} opened, ${failed} failed, ${dropped} dropped while idle, in ${tConn.toFixed(2)} s${why.size ? `; errors: ${[...why].map(([k, n]) => `${k} x${n}`).join(', ')}` : ''}`);
console.log(`  server mem:  before ${m0.rss} kB RSS (${m0.pss} PSS), idle ${m1.rss} kB (${m1.pss}); per stream ${per.toFixed(0)} B PSS (${perRss.toFixed(0)} B RSS)`);
console.log(`  kernel mem:  TCP sockets of the machine before ${k0} kB, idle ${k1} kB; per stream ${kper.toFixed(0)} B`);
const ok = connected === opt.streams && failed === 0 && dropped === 0;
console.log(`RESULT label=${opt.label} server=${opt.server} subs=${opt.streams} connected=${connected} failed=${failed} dropped=${dropped}` +
  ` published=0 pub_errors=0 expected=0 delivered=0 deliveries=0 lost=0 dups=0 reordered=0 mem_idle_kb=${m0.pss} mem_conn_kb=${m1.pss}` +
  ` rss_idle_kb=${m0.rss} rss_conn_kb=${m1.rss} per_conn_b=${per.toFixed(0)} per_conn_rss_b=${perRss.toFixed(0)}` +
  ` kmem_idle_kb=${k0} kmem_conn_kb=${k1} kper_conn_b=${kper.toFixed(0)} connections=${nsess} ok=${ok ? 1 : 0}`);
for (const s of sessions) s.destroy();
process.exit(0);

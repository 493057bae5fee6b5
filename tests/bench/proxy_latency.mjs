// What the connect proxy adds to a connect: N sequential SSE connects (request → 200 headers) against two brokers
// started side by side in the same run, one without proxy.connect and one asking a local Node backend that allows
// at once. Prints p50/p99 in ms for both. Usage: node tests/bench/proxy_latency.mjs [N=2000]
import http from 'node:http';
import { startBroker, freePort } from '../integration/lib.mjs';

const N = Number(process.argv[2] || 2000);
const port = await freePort();
const backend = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"allow":true}'); });
});
await new Promise((r) => backend.listen(port, '127.0.0.1', r));
const plain = await startBroker({ config: { auth: { anonymous: { subscribe: ['>'] } } } });
const proxied = await startBroker({ config: { proxy: { connect: { url: `http://127.0.0.1:${port}/c`, forward_headers: ['Cookie'] } } } });
const agent = new http.Agent({ keepAlive: false });

function connect(base) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.get({ host: u.hostname, port: u.port, path: '/sub/bench.t', agent, headers: { Accept: 'text/event-stream', Cookie: 'session=x' } }, (res) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      req.destroy();
      resolve(ms);
    });
    req.on('error', () => {});
  });
}
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(a.length * p))];
const runs = { none: [], proxy: [] };
for (let i = 0; i < N; i++) { // interleaved, so that both see the same machine load
  runs.none.push(await connect(plain.base));
  runs.proxy.push(await connect(proxied.base));
}
for (const [k, v] of Object.entries(runs)) {
  v.sort((a, b) => a - b);
  console.log(`${k.padEnd(6)} n=${v.length} p50=${pct(v, 0.5).toFixed(3)} ms p99=${pct(v, 0.99).toFixed(3)} ms`);
}
for (const b of [plain, proxied]) await b.stop();
backend.close();
process.exit(0);

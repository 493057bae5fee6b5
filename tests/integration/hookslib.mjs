// The application backend of the backend-hook tests: a real HTTP server on 127.0.0.1 in the test's process.
// Every call's JSON body is recorded; answer(ev, reply, res) decides: reply(obj, status = 200) sends JSON,
// res is the raw response for what a well-behaved backend would not do.
import http from 'node:http';
import { freePort } from './lib.mjs';

export async function hookBackend(c, answer) {
  const port = await freePort();
  const b = { port, calls: [], sockets: 0, url: (p = '/') => `http://127.0.0.1:${port}${p}` };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      let ev = null;
      try { ev = JSON.parse(body); } catch { /* recorded as null */ }
      b.calls.push({ ...ev, path: req.url, contentType: req.headers['content-type'], at: Date.now() });
      const reply = (o, status = 200) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(o)); };
      answer(ev, reply, res);
    });
  });
  server.on('connection', () => { b.sockets++; });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  b.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
  c.defer(b.close);
  return b;
}

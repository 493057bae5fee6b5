// A webhook receiver for the webhook tests: a real HTTP server on 127.0.0.1 in the test's process that checks
// X-Rt-Signature (HMAC-SHA256 of "t.body" with the secret of the path it was sent to) and records every call.
// mode(): 'ok' (200), 'fail' (500), or a function (call) => status; slowMs delays answers; down()/up() close and
// reopen it on the same port. tls: {key, cert} (PEM) makes it an https server.
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { freePort } from './lib.mjs';

export function verify(secret, header, body) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header || '');
  if (!m) return false;
  const want = crypto.createHmac('sha256', secret).update(`${m[1]}.${body}`).digest('hex');
  return crypto.timingSafeEqual(Buffer.from(want), Buffer.from(m[2])) && Math.abs(Date.now() / 1000 - Number(m[1])) < 300;
}

export async function webhookReceiver(c, secrets, { port, tls } = {}) {
  port = port ?? await freePort();
  const r = { port, calls: [], mode: 'ok', slowMs: 0, url: (p) => `${tls ? 'https' : 'http'}://127.0.0.1:${port}${p}`, server: null };
  const handle = (req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      let ev = null;
      try { ev = JSON.parse(body); } catch { /* recorded as null */ }
      const call = {
        path: req.url, ev, body, at: Date.now(), attempt: Number(req.headers['x-rt-attempt']), by: req.headers['x-rt-sent-by'],
        sigOk: secrets[req.url] !== undefined && verify(secrets[req.url], req.headers['x-rt-signature'], body),
      };
      call.status = typeof r.mode === 'function' ? r.mode(call) : r.mode === 'fail' ? 500 : 200;
      r.calls.push(call);
      const answer = () => { res.writeHead(call.status, { 'Content-Type': 'text/plain' }); res.end(call.status === 200 ? 'ok' : 'no'); };
      if (r.slowMs) setTimeout(answer, r.slowMs); else answer();
    });
  };
  r.up = () => new Promise((resolve, reject) => {
    r.server = tls ? https.createServer(tls, handle) : http.createServer(handle);
    r.server.once('error', reject);
    r.server.listen(port, '127.0.0.1', resolve);
  });
  r.down = () => new Promise((resolve) => {
    if (!r.server) return resolve();
    const s = r.server;
    r.server = null;
    s.closeAllConnections();
    s.close(() => resolve());
  });
  // accepted deliveries (answered 2xx), per path
  r.ok = (p) => r.calls.filter((x) => x.status === 200 && (!p || x.path === p));
  r.events = (p, type) => r.ok(p).map((x) => x.ev).filter((e) => !type || e.type === type);
  await r.up();
  c.defer(r.down);
  return r;
}

// Ids answered 2xx more than once.
export function duplicates(calls) {
  const seen = new Map();
  for (const x of calls) seen.set(x.ev.id, (seen.get(x.ev.id) || 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
}

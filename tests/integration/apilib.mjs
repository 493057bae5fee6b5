// Helpers of the server API tests (test_api*.mjs): API calls, tokens, and clients that keep what they receive.
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { request, waitFor, SLOW } from './lib.mjs';

export const API_KEY = 'api-test-key-0123456789abcdef';
export const SECRET = 'api-test-secret-0123456789abcdef';
export const W = 5000 * SLOW;

/** An HS256 JWT for user with the rt claim (default: room.> both ways). */
export function jwt(user, rt = { sub: ['room.>'], pub: ['room.>'] }) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ ...(user ? { sub: user } : {}), iat: now, exp: now + 3600, rt })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

export const apiConfig = (extra = {}) => ({
  api: { keys: [API_KEY] },
  auth: { jwt: { secret: SECRET }, anonymous: { subscribe: ['pub.>'], publish: ['pub.>'] } },
  ...extra,
});

/** A call of the server API: method, path, JSON body (or a string sent as is). */
export function api(base, method, p, body, { key = API_KEY, headers = {} } = {}) {
  return request(base, method, p, {
    headers: { ...(key ? { Authorization: `apikey ${key}` } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A WebSocket keeping every text frame parsed as JSON; send(op) resolves with its reply. */
export function wsOpen(c, url, { protocols, headers } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    const h = { ws, frames: [], closed: null, reason: '', ref: 0 };
    c.defer(() => ws.terminate());
    h.send = (op) => {
      const ref = `r${++h.ref}`;
      ws.send(JSON.stringify({ ...op, ref }));
      return waitFor(() => h.frames.find((f) => f.ref === ref), W, `reply to ${JSON.stringify(op)}`);
    };
    h.of = (type) => h.frames.filter((f) => f.type === type);
    ws.on('message', (d) => { const s = d.toString('utf8'); try { h.frames.push(JSON.parse(s)); } catch { h.frames.push({ type: 'text', raw: s }); } });
    ws.on('close', (code, reason) => { h.closed = code; h.reason = reason.toString(); });
    ws.on('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.on('open', () => resolve(h));
    ws.on('error', (e) => { if (h.closed === null) reject(e); });
  });
}

/** An rt.v1 WebSocket of user (token as a bearer subprotocol entry). */
export function wsUser(c, b, user, rt) {
  const url = b.base.replace('http', 'ws') + '/ws';
  return wsOpen(c, url, { protocols: ['rt.v1', `bearer.${jwt(user, rt)}`] });
}

/** An ndjson stream read with fetch(); .lines are parsed JSON objects; .ended once the server ended it. */
export async function ndjson(c, base, p, headers = {}) {
  const ac = new AbortController();
  c.defer(() => ac.abort());
  const res = await fetch(base + p, { headers: { Accept: 'application/x-ndjson', ...headers }, signal: ac.signal });
  const h = { status: res.status, lines: [], ended: false };
  (async () => {
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        const parts = buf.split('\n');
        buf = parts.pop();
        for (const l of parts) h.lines.push(JSON.parse(l));
      }
    } catch { /* aborted at cleanup */ }
    h.ended = true;
  })();
  return h;
}

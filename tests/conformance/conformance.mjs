// WebSocket conformance cases for rtbroker, modelled on the Autobahn Testsuite case groups
// (1 framing, 2 ping/pong, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close,
// 9 limits, 12–13 permessage-deflate) plus 0 (opening handshake), driven by the raw client
// in wsraw.mjs against a broker started with `websocket.echo: true`.
//
// Every case states its expected outcome (an echo or a delivery, a close code, or an HTTP
// status) and gets a verdict; a case also fails when the server breaks RFC 6455 on its own
// side (masked frames, bad RSV bits, a message that does not inflate, …) or leaves the TCP
// connection open after the closing handshake.
//
// runConformance(env) runs them; env.brokers: {echo, nodeflate, tuned} each {port, base};
// env.onResult(result) is called per case. The echo broker has limits.max_message_bytes = LIMIT
// and permessage-deflate on (default threshold 128); nodeflate has `websocket.deflate: false`;
// tuned has `websocket.ping_interval: 300ms` and `websocket.deflate_threshold: 1000`.
// All three have `websocket.echo: true`.

import crypto from 'node:crypto';
import {
  OP, wsConnect, frame, closePayload, deflateMessage, inflateMessage, contextDeflater, parseExtensions,
  acceptFor, isUtf8, toBuf, sleep,
} from './wsraw.mjs';

export const LIMIT = 1024 * 1024; // limits.max_message_bytes of the echo broker
export const ECHO_PATH = '/sub/echo.test';
export const GROUPS = {
  0: 'opening handshake', 1: 'framing', 2: 'ping/pong', 3: 'reserved bits', 4: 'opcodes', 5: 'fragmentation',
  6: 'UTF-8 handling', 7: 'close handling', 9: 'limits/performance', 12: 'permessage-deflate: negotiation',
  13: 'permessage-deflate: messages',
};

class CaseError extends Error {}
const fail = (m) => { throw new CaseError(m); };
const check = (cond, m) => { if (!cond) fail(typeof m === 'function' ? m() : m); };

const B = (...bytes) => Buffer.from(bytes.flat());
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const U = (s) => Buffer.from(s, 'utf8');
const pattern = (n, seed = 0) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff; return b; };
const textOf = (n, ch = '*') => Buffer.alloc(n, ch);
const rand = (n) => crypto.randomBytes(n);
const short = (b) => (b.length <= 32 ? b.toString('hex') : `${b.subarray(0, 16).toString('hex')}…(${b.length} bytes)`);

// ------------------------------------------------------------------ case runner context
class T {
  constructor(env, kase) { this.env = env; this.kase = kase; this.conns = []; this.notes = []; }

  broker(name) { return this.env.brokers[name || this.kase.broker || 'echo']; }

  /** Open a WebSocket; asserts 101 unless o.status is given. */
  async open(o = {}) {
    const b = this.broker(o.broker);
    const c = await wsConnect(b.port, { path: ECHO_PATH, ...o });
    this.conns.push(c);
    const want = o.status ?? 101;
    check(c.status === want, () => `handshake ${o.path || ECHO_PATH}: expected HTTP ${want}, got ${c.statusLine || c.status} ${c.body.toString('utf8').slice(0, 200)}`);
    if (want === 101) {
      check(c.headers['sec-websocket-accept'] === acceptFor(c.key), () => `bad Sec-WebSocket-Accept ${c.headers['sec-websocket-accept']}`);
      if (o.deflate === true) check(c.deflate, () => `permessage-deflate not negotiated (offer ${JSON.stringify(o.extensions)}, answer ${JSON.stringify(c.headers['sec-websocket-extensions'])})`);
    }
    return c;
  }

  /** Open with permessage-deflate negotiated. */
  openDeflate(o = {}) { return this.open({ extensions: 'permessage-deflate; client_max_window_bits', deflate: true, ...o }); }

  /** Expect exactly these data messages (in order): [{type, data}]. */
  async echo(c, expected, { ms = 8000, compressed } = {}) {
    await c.waitFor((x) => x.messages.length >= expected.length || x.closeFrame || x.ended, ms, `${expected.length} echoed message(s)`);
    check(c.messages.length >= expected.length, () => `expected ${expected.length} echoed message(s), got ${c.describe()}`);
    expected.forEach((e, i) => {
      const m = c.messages[i];
      const want = toBuf(e.data);
      check(m.type === e.type, () => `message ${i}: expected a ${e.type} message, got ${m.type} (${short(m.data)})`);
      if (!m.data.equals(want)) {
        let j = 0; while (j < want.length && j < m.data.length && want[j] === m.data[j]) j++;
        fail(`message ${i}: payload differs: expected ${want.length} bytes ${short(want)}, got ${m.data.length} bytes ${short(m.data)} (first difference at byte ${j})`);
      }
      if (compressed !== undefined) check(m.compressed === compressed, () => `message ${i}: RSV1 (compressed) is ${m.compressed}, expected ${compressed}`);
    });
  }

  /** Client-initiated closing handshake: close(code) → the server's close echoes it, then TCP closes. */
  async cleanClose(c, { code = 1000, expect = code, nMessages, ms = 4000 } = {}) {
    const before = nMessages ?? c.messages.length;
    await c.send(OP.CLOSE, code === null ? Buffer.alloc(0) : closePayload(code));
    await c.waitFor((x) => x.closeFrame || x.ended, ms, 'the server\'s close frame');
    check(c.closeFrame, () => `connection dropped without answering our close: ${c.describe()}`);
    check(c.closeFrame.code === expect, () => `our close ${code ?? '(no code)'} answered with close ${c.closeFrame.code}, expected ${expect}`);
    check(c.messages.length === before, () => `unexpected extra data messages: ${c.describe()}`);
    await c.waitFor((x) => x.ended, ms, 'the server to close the TCP connection after the closing handshake');
  }

  /** Expect the server to close with one of `codes` (number or array); then TCP closes. */
  async closed(c, codes, { ms = 5000, nMessages = 0 } = {}) {
    const list = [].concat(codes);
    await c.waitFor((x) => x.closeFrame || x.ended, ms, `close ${list.join('/')}`);
    check(c.closeFrame, () => `expected close ${list.join('/')}, the connection dropped without a close frame: ${c.describe()}`);
    check(list.includes(c.closeFrame.code), () => `expected close ${list.join('/')}, got ${c.describe()}`);
    check(c.messages.length === nMessages, () => `expected ${nMessages} data message(s) before the close, got ${c.describe()}`);
    if (!c.sentClose) await c.send(OP.CLOSE, closePayload([1005, 1006, 1015].includes(c.closeFrame.code) || !c.closeFrame.code ? 1000 : c.closeFrame.code));
    await c.waitFor((x) => x.ended, ms, 'the TCP connection to close after the server\'s close frame');
  }

  /** Echo first, then a protocol failure, and nothing after (e.g. no pong for a later ping). */
  async echoThenClose(c, expected, codes) {
    await this.echo(c, expected);
    await this.closed(c, codes, { nMessages: expected.length });
    const iClose = c.events.findIndex((e) => e.kind === 'close');
    const after = c.events.slice(iClose + 1);
    check(after.length === 0, () => `frames after the close frame: ${c.describe()}`);
    const pongs = c.events.filter((e) => e.kind === 'pong');
    check(pongs.length === 0, () => `the server answered a ping sent after the failing frame: ${c.describe()}`);
  }

  note(s) { this.notes.push(s); }

  finish() {
    for (const c of this.conns) {
      const v = c.violations.filter((x) => !(this.kase.allow || []).some((a) => x.includes(a)));
      if (v.length) fail(`server protocol violation: ${v.join('; ')}`);
    }
  }

  destroy() { for (const c of this.conns) c.destroy(); }
}

// ------------------------------------------------------------------ case table
export const cases = [];
function C(id, desc, expect, run, o = {}) {
  const group = Number(id.split('.')[0]);
  cases.push({ id, group, desc, expect, run, timeout: o.timeout ?? 15000, broker: o.broker, allow: o.allow });
}

const text = (d) => ({ type: 'text', data: toBuf(d) });
const bin = (d) => ({ type: 'binary', data: toBuf(d) });

/** Send frames (each a frame() spec or a Buffer) in one TCP write. */
function sendAll(c, specs, wo) {
  const buf = Buffer.concat(specs.map((s) => (Buffer.isBuffer(s) ? s : frame(s))));
  for (const s of specs) if (!Buffer.isBuffer(s) && s.op === OP.CLOSE) c.sentClose = true;
  return c.write(buf, wo);
}
/** Send frames one write each, optionally with a delay between frames. */
async function sendEach(c, specs, delayMs = 0, wo = {}) {
  for (const s of specs) {
    if (s.op === OP.CLOSE) c.sentClose = true;
    await c.write(frame(s), wo);
    if (delayMs) await sleep(delayMs);
  }
}

// ================================================================== 0 opening handshake
C('0.1', 'plain handshake, no subprotocol, no extension', '101, correct Accept, no Sec-WebSocket-Protocol/Extensions; echo works', async (t) => {
  const c = await t.open();
  check(/websocket/i.test(c.headers.upgrade || ''), `Upgrade header ${c.headers.upgrade}`);
  check(/upgrade/i.test(c.headers.connection || ''), `Connection header ${c.headers.connection}`);
  check(!c.headers['sec-websocket-protocol'], `Sec-WebSocket-Protocol ${c.headers['sec-websocket-protocol']} without an offer`);
  check(!c.headers['sec-websocket-extensions'], `Sec-WebSocket-Extensions ${c.headers['sec-websocket-extensions']} without an offer`);
  await c.text('hello');
  await t.echo(c, [text('hello')]);
  await t.cleanClose(c);
});
C('0.2', 'subprotocol rt.raw offered', '101 with Sec-WebSocket-Protocol: rt.raw; raw echo', async (t) => {
  const c = await t.open({ protocols: 'rt.raw' });
  check(c.headers['sec-websocket-protocol'] === 'rt.raw', `Sec-WebSocket-Protocol ${c.headers['sec-websocket-protocol']}`);
  await c.text('raw');
  await t.echo(c, [text('raw')]);
  await t.cleanClose(c);
});
C('0.3', 'subprotocols "x-unknown, rt.raw"', 'rt.raw selected', async (t) => {
  const c = await t.open({ protocols: 'x-unknown, rt.raw' });
  check(c.headers['sec-websocket-protocol'] === 'rt.raw', `Sec-WebSocket-Protocol ${c.headers['sec-websocket-protocol']}`);
  await t.cleanClose(c);
});
C('0.4', 'missing Sec-WebSocket-Key', 'HTTP 400 before upgrade', async (t) => { await t.open({ key: null, status: 400 }); });
C('0.5', 'Sec-WebSocket-Key not 16 base64-encoded bytes', 'HTTP 400', async (t) => { await t.open({ key: 'c2hvcnQ=', status: 400 }); });
C('0.6', 'Sec-WebSocket-Key not base64', 'HTTP 400', async (t) => { await t.open({ key: '!!!!!!!!!!!!!!!!!!!!!!==', status: 400 }); });
C('0.7', 'Sec-WebSocket-Version: 8', 'HTTP 400', async (t) => { await t.open({ version: '8', status: 400 }); });
C('0.8', 'Sec-WebSocket-Version missing', 'HTTP 400', async (t) => { await t.open({ version: null, status: 400 }); });
C('0.9', 'invalid topic /sub/bad..topic', 'HTTP 400 invalid_topic before upgrade', async (t) => {
  const c = await t.open({ path: '/sub/bad..topic', status: 400 });
  check(c.json && c.json.error === 'invalid_topic', () => `body ${c.body.toString('utf8').slice(0, 200)}`);
});
C('0.10', 'Firefox-style headers: "Connection: keep-alive, Upgrade", "Upgrade: WebSocket"', '101; echo', async (t) => {
  const b = t.broker();
  const key = crypto.randomBytes(16).toString('base64');
  const req = `GET ${ECHO_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${b.port}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:${b.port}\r\n\r\n`;
  const c = await t.open({ request: req, key });
  await c.text('ff');
  await t.echo(c, [text('ff')]);
  await t.cleanClose(c);
});
C('0.11', 'first frame in the same TCP segment as the handshake request', 'the frame is not lost: echo', async (t) => {
  const b = t.broker();
  const key = crypto.randomBytes(16).toString('base64');
  const req = Buffer.concat([
    Buffer.from(`GET ${ECHO_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${b.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`),
    frame({ op: OP.TEXT, payload: 'early bird' }),
  ]);
  const c = await t.open({ request: req, key });
  await t.echo(c, [text('early bird')]);
  await t.cleanClose(c);
});
C('0.12', 'multi-topic raw subscription /sub?topic=a&topic=b', '101', async (t) => {
  const c = await t.open({ path: '/sub?topic=echo.test&topic=echo.other' });
  await t.cleanClose(c);
});
C('0.13', 'invalid topic among several /sub?topic=ok&topic=*bad', 'HTTP 400 invalid_topic', async (t) => {
  const c = await t.open({ path: '/sub?topic=echo.test&topic=a..b', status: 400 });
  check(c.json && c.json.error === 'invalid_topic', () => `body ${c.body.toString('utf8').slice(0, 200)}`);
});

// ================================================================== 1 framing
const SIZES = [0, 125, 126, 127, 65535, 65536];
SIZES.forEach((n, i) => {
  C(`1.1.${i + 1}`, `text message of ${n} bytes`, `echo text ${n}`, async (t) => {
    const c = await t.open(); const p = textOf(n);
    await c.text(p); await t.echo(c, [text(p)]); await t.cleanClose(c);
  });
});
SIZES.forEach((n, i) => {
  C(`1.2.${i + 1}`, `binary message of ${n} bytes`, `echo binary ${n}`, async (t) => {
    const c = await t.open(); const p = pattern(n, i);
    await c.binary(p); await t.echo(c, [bin(p)]); await t.cleanClose(c);
  });
});
C('1.2.7', 'binary message of 65536 bytes written in 997-byte chunks', 'echo binary 65536', async (t) => {
  const c = await t.open(); const p = pattern(65536, 7);
  await c.send(OP.BINARY, p, {}, { chunk: 997 }); await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
C('1.2.8', 'text message of 125 bytes written 1 byte at a time', 'echo text 125', async (t) => {
  const c = await t.open(); const p = textOf(125, 'a');
  await c.send(OP.TEXT, p, {}, { chunk: 1 }); await t.echo(c, [text(p)]); await t.cleanClose(c);
});
C('1.2.9', 'binary 300 bytes written in 3-byte chunks 1 ms apart (16-bit length split)', 'echo binary 300', async (t) => {
  const c = await t.open(); const p = pattern(300, 9);
  await c.send(OP.BINARY, p, {}, { chunk: 3, delayMs: 1 }); await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
C('1.2.10', 'binary 70000 bytes with the 64-bit length split over writes', 'echo binary 70000', async (t) => {
  const c = await t.open(); const p = pattern(70000, 10);
  const f = frame({ op: OP.BINARY, payload: p });
  for (const [a, z] of [[0, 1], [1, 2], [2, 6], [6, 10], [10, 14], [14, f.length]]) { await c.write(f.subarray(a, z)); await sleep(15); }
  await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
C('1.3.1', 'unmasked text frame', 'close 1002', async (t) => {
  const c = await t.open(); await c.text('unmasked', { mask: false }); await t.closed(c, 1002);
});
C('1.3.2', 'unmasked ping frame', 'close 1002, no pong', async (t) => {
  const c = await t.open(); await c.ping('x', { mask: false }); await t.closed(c, 1002);
  check(c.pongs.length === 0, 'pong for an unmasked ping');
});
C('1.3.3', 'valid text, then unmasked binary', 'echo, then close 1002', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'first' }, { op: OP.BINARY, payload: 'second', mask: false }]);
  await t.echoThenClose(c, [text('first')], 1002);
});
C('1.3.4', 'mask key of zeros (valid masking)', 'echo', async (t) => {
  const c = await t.open(); await c.text('zero key', { maskKey: B(0, 0, 0, 0) }); await t.echo(c, [text('zero key')]); await t.cleanClose(c);
});
C('1.3.5', '64-bit payload length with the most significant bit set', 'close 1002 (or 1009)', async (t) => {
  const c = await t.open();
  const f = Buffer.alloc(14); f[0] = 0x82; f[1] = 0xff; f.writeBigUInt64BE(0x8000000000000010n, 2); f.writeUInt32BE(0x01020304, 10);
  await c.write(Buffer.concat([f, Buffer.alloc(16)]));
  await t.closed(c, [1002, 1009]);
});
C('1.4.1', '100 text messages in one TCP write', 'all 100 echoed in order', async (t) => {
  const c = await t.open(); const msgs = Array.from({ length: 100 }, (_, i) => `m${i}`);
  await sendAll(c, msgs.map((m) => ({ op: OP.TEXT, payload: m })));
  await t.echo(c, msgs.map(text)); await t.cleanClose(c);
});
C('1.4.2', 'text and binary interleaved, sizes 0..300', 'all echoed in order with their types', async (t) => {
  const c = await t.open(); const exp = [];
  const specs = [];
  for (let n = 0; n <= 300; n += 25) {
    const isText = (n / 25) % 2 === 0; const p = isText ? textOf(n, 'q') : pattern(n, n);
    specs.push({ op: isText ? OP.TEXT : OP.BINARY, payload: p }); exp.push(isText ? text(p) : bin(p));
  }
  await sendAll(c, specs); await t.echo(c, exp); await t.cleanClose(c);
});

// ================================================================== 2 ping/pong
C('2.1', 'ping without payload', 'pong without payload', async (t) => {
  const c = await t.open(); await c.ping('');
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong');
  check(c.pongs.length === 1 && c.pongs[0].length === 0, () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.2', 'ping with a small text payload', 'pong with the same payload', async (t) => {
  const c = await t.open(); await c.ping('Hello, world!');
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong');
  check(c.pongs[0] && c.pongs[0].equals(U('Hello, world!')), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.3', 'ping with a binary payload (00 ff fe fd fc fb 00 ff)', 'pong with the same bytes', async (t) => {
  const c = await t.open(); const p = B(0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff); await c.ping(p);
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong');
  check(c.pongs[0] && c.pongs[0].equals(p), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.4', 'ping with a 125-byte payload', 'pong with the same 125 bytes', async (t) => {
  const c = await t.open(); const p = pattern(125, 4); await c.ping(p);
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong');
  check(c.pongs[0] && c.pongs[0].equals(p), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.5', 'ping with a 126-byte payload', 'close 1002, no pong', async (t) => {
  const c = await t.open(); await c.ping(pattern(126, 5)); await t.closed(c, 1002);
  check(c.pongs.length === 0, 'pong for an oversize ping');
});
C('2.6', 'ping with a 125-byte payload written 1 byte at a time', 'pong with the same payload', async (t) => {
  const c = await t.open(); const p = pattern(125, 6); await c.send(OP.PING, p, {}, { chunk: 1 });
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong');
  check(c.pongs[0] && c.pongs[0].equals(p), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.7', 'unsolicited pong without payload, then ping "after"', 'the pong is ignored: only pong "after" back', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.PONG, payload: '' }, { op: OP.PING, payload: 'after' }]);
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong');
  check(c.events.length === 1 && c.pongs[0].equals(U('after')), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.8', 'unsolicited pong with payload, then text', 'the pong is ignored; the text is echoed', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.PONG, payload: 'unsolicited pong payload' }, { op: OP.TEXT, payload: 'txt' }]);
  await t.echo(c, [text('txt')]);
  check(c.events[0].kind === 'msg', () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.9', 'unsolicited pong, then ping with payload', 'a single pong echoing the ping payload', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.PONG, payload: 'unsolicited' }, { op: OP.PING, payload: 'solicited' }]);
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 4000, 'a pong'); await sleep(100);
  check(c.pongs.length === 1 && c.pongs[0].equals(U('solicited')), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('2.10', '10 pings with payloads in one write', 'pongs in order, the last ping answered (RFC may coalesce)', async (t) => {
  const c = await t.open(); const ps = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
  await sendAll(c, ps.map((p) => ({ op: OP.PING, payload: p })));
  await c.waitFor((x) => x.pongs.some((p) => p.equals(U('payload-9'))) || x.ended, 4000, 'the pong of the last ping');
  const got = c.pongs.map((p) => p.toString());
  let k = -1; for (const g of got) { const j = ps.indexOf(g); check(j > k, () => `pongs out of order or unknown: ${JSON.stringify(got)}`); k = j; }
  if (got.length < 10) t.note(`${got.length}/10 pongs (coalesced)`);
  await t.cleanClose(c);
});
C('2.11', '10 pings written in 1-byte chunks', 'pongs in order, the last ping answered', async (t) => {
  const c = await t.open(); const ps = Array.from({ length: 10 }, (_, i) => `chunked-${i}`);
  await c.write(Buffer.concat(ps.map((p) => frame({ op: OP.PING, payload: p }))), { chunk: 1 });
  await c.waitFor((x) => x.pongs.some((p) => p.equals(U('chunked-9'))) || x.ended, 6000, 'the pong of the last ping');
  const got = c.pongs.map((p) => p.toString());
  let k = -1; for (const g of got) { const j = ps.indexOf(g); check(j > k, () => `pongs out of order or unknown: ${JSON.stringify(got)}`); k = j; }
  await t.cleanClose(c);
});
C('2.12', 'ping in the middle of a fragmented text message', 'pong first, then the whole message echoed', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'frag1-', fin: false }, { op: OP.PING, payload: 'mid' }, { op: OP.CONT, payload: 'frag2' }]);
  await t.echo(c, [text('frag1-frag2')]);
  check(c.events[0].kind === 'pong' && c.events[0].data.equals(U('mid')), () => `expected the pong before the message: ${c.describe()}`);
  await t.cleanClose(c);
});

C('2.13', 'server heartbeat (websocket.ping_interval 300ms): pings arrive; a client that answers them stays open', '≥ 3 server pings in 1.6 s, still open, echo works', async (t) => {
  const c = await t.open({ broker: 'tuned' });
  c.autoPong = true;
  await sleep(1600);
  check(c.pings.length >= 3, () => `${c.pings.length} server pings in 1.6 s with ping_interval 300ms: ${c.describe()}`);
  check(!c.closeFrame && !c.ended, () => `a client answering pings was closed: ${c.describe()}`);
  await c.text('still here'); await t.echo(c, [text('still here')]); await t.cleanClose(c);
}, { broker: 'tuned' });
C('2.14', 'server heartbeat: a client that never answers (sends nothing) is closed after about 2 × ping_interval', 'closed within 0.5–3 s', async (t) => {
  const c = await t.open({ broker: 'tuned' });
  const t0 = Date.now();
  await c.waitFor((x) => x.closeFrame || x.ended, 4000, 'the silent client to be closed');
  const ms = Date.now() - t0;
  check(ms >= 500, `closed after only ${ms} ms (2 × ping_interval is 600 ms)`);
  t.note(`closed after ${ms} ms${c.closeFrame ? ` with ${c.closeFrame.code}` : ' (no close frame)'}; ${c.pings.length} pings unanswered`);
  check(c.pings.length >= 1, 'closed without having been pinged');
  await c.waitFor((x) => x.ended, 3000, 'the TCP connection to close');
}, { broker: 'tuned' });
C('2.15', 'server heartbeat: a client that keeps sending data but never pongs is not silent', 'still open after 1.5 s', async (t) => {
  const c = await t.open({ broker: 'tuned' });
  for (let i = 0; i < 10; i++) { await c.text(`tick${i}`); await sleep(150); }
  check(!c.closeFrame && !c.ended, () => `closed although it was sending: ${c.describe()}`);
  await t.echo(c, Array.from({ length: 10 }, (_, i) => text(`tick${i}`))); await t.cleanClose(c);
}, { broker: 'tuned' });

// ================================================================== 3 reserved bits
const rsvCase = (id, desc, spec) => C(id, desc, 'echo of the preceding text, then close 1002, no pong for the following ping', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'before' }, spec, { op: OP.PING, payload: 'after' }]);
  await t.echoThenClose(c, [text('before')], 1002);
});
rsvCase('3.1', 'text with RSV1 (no extension negotiated)', { op: OP.TEXT, payload: 'rsv1', rsv1: true });
rsvCase('3.2', 'text with RSV2', { op: OP.TEXT, payload: 'rsv2', rsv2: true });
rsvCase('3.3', 'text with RSV3', { op: OP.TEXT, payload: 'rsv3', rsv3: true });
rsvCase('3.4', 'text with RSV1+RSV2', { op: OP.TEXT, payload: 'rsv12', rsv1: true, rsv2: true });
rsvCase('3.5', 'binary with RSV1+RSV2+RSV3', { op: OP.BINARY, payload: B(0, 0xff), rsv1: true, rsv2: true, rsv3: true });
rsvCase('3.6', 'binary with RSV1 (no extension negotiated)', { op: OP.BINARY, payload: B(1, 2), rsv1: true });
rsvCase('3.7', 'ping with RSV3', { op: OP.PING, payload: 'p', rsv3: true });
rsvCase('3.8', 'pong with RSV2', { op: OP.PONG, payload: 'p', rsv2: true });
rsvCase('3.9', 'close with RSV1', { op: OP.CLOSE, payload: closePayload(1000), rsv1: true });
C('3.10', 'continuation frame with RSV2', 'close 1002, no echo', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'a', fin: false }, { op: OP.CONT, payload: 'b', rsv2: true }]);
  await t.closed(c, 1002);
});
C('3.11', 'RSV1 text when deflate was offered but the server has websocket.deflate: false', 'no extension; close 1002', async (t) => {
  const c = await t.open({ broker: 'nodeflate', extensions: 'permessage-deflate' });
  check(!c.deflate, () => `permessage-deflate negotiated although websocket.deflate is false: ${c.headers['sec-websocket-extensions']}`);
  await c.sendCompressed('text', 'compressed anyway');
  await t.closed(c, 1002);
});

// ================================================================== 4 opcodes
[3, 4, 5, 6, 7].forEach((op, i) => {
  C(`4.1.${i + 1}`, `reserved non-control opcode ${op}${i % 2 ? ' with payload' : ''}`, 'echo of the preceding text, then close 1002, no pong', async (t) => {
    const c = await t.open();
    await sendAll(c, [{ op: OP.TEXT, payload: 'before' }, { op, payload: i % 2 ? 'reserved payload' : '' }, { op: OP.PING, payload: 'after' }]);
    await t.echoThenClose(c, [text('before')], 1002);
  });
});
[11, 12, 13, 14, 15].forEach((op, i) => {
  C(`4.2.${i + 1}`, `reserved control opcode ${op}${i % 2 ? ' with payload' : ''}`, 'echo of the preceding text, then close 1002, no pong', async (t) => {
    const c = await t.open();
    await sendAll(c, [{ op: OP.TEXT, payload: 'before' }, { op, payload: i % 2 ? 'reserved payload' : '' }, { op: OP.PING, payload: 'after' }]);
    await t.echoThenClose(c, [text('before')], 1002);
  });
});
C('4.3.1', 'reserved opcode 3 as the only frame of a connection', 'close 1002', async (t) => {
  const c = await t.open(); await c.send(3, 'x'); await t.closed(c, 1002);
});
C('4.3.2', 'reserved opcode 7 with FIN=0 inside a fragmented text message', 'close 1002', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'a', fin: false }, { op: 7, payload: 'b', fin: false }, { op: OP.CONT, payload: 'c' }]);
  await t.closed(c, 1002);
});

// ================================================================== 5 fragmentation
C('5.1', 'ping fragmented in two (FIN=0 ping, then continuation)', 'close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.PING, payload: 'frag', fin: false }, { op: OP.CONT, payload: 'ment' }]);
  await t.closed(c, 1002); check(c.pongs.length === 0, 'pong for a fragmented ping');
});
C('5.2', 'pong fragmented in two', 'close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.PONG, payload: 'frag', fin: false }, { op: OP.CONT, payload: 'ment' }]);
  await t.closed(c, 1002);
});
C('5.3', 'text in two fragments', 'echo of the whole text', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'frag1', fin: false }, { op: OP.CONT, payload: 'frag2' }]);
  await t.echo(c, [text('frag1frag2')]); await t.cleanClose(c);
});
C('5.4', 'text in two fragments written 1 byte at a time', 'echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'frag1', fin: false }, { op: OP.CONT, payload: 'frag2' }], { chunk: 1 });
  await t.echo(c, [text('frag1frag2')]); await t.cleanClose(c);
});
C('5.5', 'text in two fragments, 200 ms apart', 'echo', async (t) => {
  const c = await t.open(); await sendEach(c, [{ op: OP.TEXT, payload: 'frag1', fin: false }, { op: OP.CONT, payload: 'frag2' }], 200);
  await t.echo(c, [text('frag1frag2')]); await t.cleanClose(c);
});
C('5.6', 'text in two fragments with a ping between', 'pong, then echo', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'fragment1', fin: false }, { op: OP.PING, payload: 'pongme!' }, { op: OP.CONT, payload: 'fragment2' }]);
  await t.echo(c, [text('fragment1fragment2')]);
  check(c.events[0].kind === 'pong' && c.events[0].data.equals(U('pongme!')), () => `pong not before the message: ${c.describe()}`);
  await t.cleanClose(c);
});
C('5.7', 'same as 5.6 written 1 byte at a time', 'pong, then echo', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'fragment1', fin: false }, { op: OP.PING, payload: 'pongme!' }, { op: OP.CONT, payload: 'fragment2' }], { chunk: 1 });
  await t.echo(c, [text('fragment1fragment2')]);
  check(c.events[0].kind === 'pong', () => `pong not before the message: ${c.describe()}`);
  await t.cleanClose(c);
});
C('5.8', 'same as 5.6 with 100 ms between frames', 'pong (before the last fragment is sent), then echo', async (t) => {
  const c = await t.open();
  await sendEach(c, [{ op: OP.TEXT, payload: 'fragment1', fin: false }, { op: OP.PING, payload: 'pongme!' }], 100);
  await c.waitFor((x) => x.pongs.length >= 1 || x.ended, 3000, 'the pong while the message is still incomplete');
  await sendEach(c, [{ op: OP.CONT, payload: 'fragment2' }]);
  await t.echo(c, [text('fragment1fragment2')]); await t.cleanClose(c);
});
C('5.9', 'continuation FIN=1 with nothing to continue, then a text', 'close 1002, no echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CONT, payload: 'non-continuation payload' }, { op: OP.TEXT, payload: 'Hello, world!' }]);
  await t.closed(c, 1002);
});
C('5.10', 'same as 5.9 written 1 byte at a time', 'close 1002, no echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CONT, payload: 'non-continuation payload' }, { op: OP.TEXT, payload: 'Hello, world!' }], { chunk: 1 });
  await t.closed(c, 1002);
});
C('5.11', 'continuation FIN=0 with nothing to continue, then a text', 'close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CONT, payload: 'non-continuation', fin: false }, { op: OP.TEXT, payload: 'Hello' }]);
  await t.closed(c, 1002);
});
C('5.12', 'a complete text, then a stray continuation', 'echo, then close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'complete' }, { op: OP.CONT, payload: 'stray' }, { op: OP.PING, payload: 'x' }]);
  await t.echoThenClose(c, [text('complete')], 1002);
});
C('5.13', 'text FIN=0, then a new text FIN=1 inside the message', 'close 1002, no echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'frag1', fin: false }, { op: OP.TEXT, payload: 'frag2' }]);
  await t.closed(c, 1002);
});
C('5.14', 'text FIN=0, then a new text FIN=0, then continuation', 'close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'a', fin: false }, { op: OP.TEXT, payload: 'b', fin: false }, { op: OP.CONT, payload: 'c' }]);
  await t.closed(c, 1002);
});
C('5.15', 'binary FIN=0, then a text FIN=1 inside the message', 'close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.BINARY, payload: B(1), fin: false }, { op: OP.TEXT, payload: 'b' }]);
  await t.closed(c, 1002);
});
C('5.16', 'text FIN=0, continuation FIN=1, continuation FIN=1 (one too many)', 'echo, then close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'a', fin: false }, { op: OP.CONT, payload: 'b' }, { op: OP.CONT, payload: 'c' }]);
  await t.echoThenClose(c, [text('ab')], 1002);
});
C('5.17', 'text in 5 fragments with a ping after each of the first 4', '4 pongs, then the echo', async (t) => {
  const c = await t.open(); const specs = [];
  for (let i = 0; i < 5; i++) {
    specs.push({ op: i === 0 ? OP.TEXT : OP.CONT, payload: `f${i}`, fin: i === 4 });
    if (i < 4) specs.push({ op: OP.PING, payload: `p${i}` });
  }
  await sendAll(c, specs);
  await t.echo(c, [text('f0f1f2f3f4')]);
  const kinds = c.events.map((e) => e.kind).join(',');
  check(kinds.startsWith('pong,pong,pong,pong,msg'), () => `expected 4 pongs then the message: ${c.describe()}`);
  check(c.pongs.map(String).join() === 'p0,p1,p2,p3', () => `pong payloads ${c.pongs.map(String)}`);
  await t.cleanClose(c);
});
C('5.18', 'same as 5.17 with 50 ms between frames', 'each pong before the message completes, then the echo', async (t) => {
  const c = await t.open(); const specs = [];
  for (let i = 0; i < 5; i++) {
    specs.push({ op: i === 0 ? OP.TEXT : OP.CONT, payload: `f${i}`, fin: i === 4 });
    if (i < 4) specs.push({ op: OP.PING, payload: `p${i}` });
  }
  await sendEach(c, specs, 50);
  await t.echo(c, [text('f0f1f2f3f4')]);
  check(c.events.map((e) => e.kind).join(',').startsWith('pong,pong,pong,pong,msg'), () => `got ${c.describe()}`);
  await t.cleanClose(c);
});
C('5.19', 'binary of 200 bytes in 200 fragments of 1 byte', 'echo binary 200', async (t) => {
  const c = await t.open(); const p = pattern(200, 19);
  await sendAll(c, [...p].map((b, i) => ({ op: i === 0 ? OP.BINARY : OP.CONT, payload: B(b), fin: i === p.length - 1 })));
  await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
C('5.20', 'multibyte UTF-8 text in fragments of 1 byte', 'echo', async (t) => {
  const c = await t.open(); const p = U('Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞');
  await sendAll(c, [...p].map((b, i) => ({ op: i === 0 ? OP.TEXT : OP.CONT, payload: B(b), fin: i === p.length - 1 })));
  await t.echo(c, [text(p)]); await t.cleanClose(c);
});
C('5.21', 'text whose fragments are all empty', 'echo of an empty text', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: '', fin: false }, { op: OP.CONT, payload: '', fin: false }, { op: OP.CONT, payload: '' }]);
  await t.echo(c, [text('')]); await t.cleanClose(c);
});
C('5.22', 'text with empty first and last fragments around data', 'echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: '', fin: false }, { op: OP.CONT, payload: 'middle', fin: false }, { op: OP.CONT, payload: '' }]);
  await t.echo(c, [text('middle')]); await t.cleanClose(c);
});
C('5.23', 'binary 65536 bytes in 64 fragments of 1024', 'echo binary 65536', async (t) => {
  const c = await t.open(); const p = pattern(65536, 23);
  await sendAll(c, Array.from({ length: 64 }, (_, i) => ({ op: i === 0 ? OP.BINARY : OP.CONT, payload: p.subarray(i * 1024, (i + 1) * 1024), fin: i === 63 })));
  await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
C('5.24', 'two fragmented messages back to back', 'two echoes in order', async (t) => {
  const c = await t.open();
  await sendAll(c, [{ op: OP.TEXT, payload: 'a1', fin: false }, { op: OP.CONT, payload: 'a2' }, { op: OP.BINARY, payload: B(1), fin: false }, { op: OP.CONT, payload: B(2) }]);
  await t.echo(c, [text('a1a2'), bin(B(1, 2))]); await t.cleanClose(c);
});
C('5.25', 'close in the middle of a fragmented message', 'close 1000 answered; the incomplete message is not echoed', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'incomplete', fin: false }]);
  await t.cleanClose(c, { nMessages: 0 });
});

// ================================================================== 6 UTF-8 handling
const utfOk = (id, desc, bytes) => C(id, desc, 'echo text (valid UTF-8)', async (t) => {
  const c = await t.open(); await c.text(bytes); await t.echo(c, [text(bytes)]); await t.cleanClose(c);
});
const utfBad = (id, desc, bytes) => C(id, desc, 'close 1007 (invalid UTF-8), no echo', async (t) => {
  const c = await t.open(); await c.text(bytes); await t.closed(c, 1007);
});
utfOk('6.1.1', 'empty text', B());
utfOk('6.1.2', 'ASCII text', U('Hello, world!'));
utfOk('6.1.3', '"Hello-µ@ßöäüàá-UTF-8!!"', U('Hello-µ@ßöäüàá-UTF-8!!'));
utfOk('6.1.4', '"κόσμε"', hex('cebae1bdb9cf83cebcceb5'));
utfOk('6.1.5', 'U+0000 (NUL is valid UTF-8)', B(0));
C('6.1.6', 'binary message that is not valid UTF-8', 'echo binary (binary is not checked)', async (t) => {
  const c = await t.open(); const p = B(0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80); await c.binary(p); await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
// 6.2: "κόσμε" prefixes: valid exactly on character boundaries
{
  const k = hex('cebae1bdb9cf83cebcceb5');
  const bounds = new Set([2, 5, 7, 9, 11]);
  for (let n = 1; n <= k.length; n++) {
    const p = k.subarray(0, n);
    if (bounds.has(n)) utfOk(`6.2.${n}`, `"κόσμε" prefix of ${n} bytes (${p.toString('hex')})`, p);
    else utfBad(`6.2.${n}`, `"κόσμε" prefix of ${n} bytes, ends mid-character (${p.toString('hex')})`, p);
  }
}
// 6.3: boundary code points
[
  ['first 1-byte U+0000', '00'], ['first 2-byte U+0080', 'c280'], ['first 3-byte U+0800', 'e0a080'], ['first 4-byte U+10000', 'f0908080'],
  ['last 1-byte U+007F', '7f'], ['last 2-byte U+07FF', 'dfbf'], ['last 3-byte U+FFFF', 'efbfbf'], ['last 4-byte U+10FFFF', 'f48fbfbf'],
  ['U+D7FF', 'ed9fbf'], ['U+E000', 'ee8080'], ['U+FFFD', 'efbfbd'], ['noncharacter U+FFFE', 'efbfbe'],
  ['noncharacter U+FDD0', 'efb790'], ['noncharacter U+1FFFE', 'f09fbfbe'],
].forEach(([d, h], i) => utfOk(`6.3.${i + 1}`, `${d} (${h})`, hex(h)));
// 6.4: invalid sequences
[
  ['first 5-byte sequence', 'f888808080'], ['first 6-byte sequence', 'fc8480808080'],
  ['U+110000, above U+10FFFF', 'f4908080'], ['0x1FFFFF (f7 bf bf bf)', 'f7bfbfbf'], ['last 5-byte (fb bf bf bf bf)', 'fbbfbfbfbf'],
  ['lone continuation 0x80', '80'], ['lone continuation 0xbf', 'bf'], ['continuations 80 bf 80 bf', '80bf80bf'],
  ['lonely start c0 followed by space', 'c020'], ['lonely start e0 followed by space', 'e020'], ['lonely start f0 followed by space', 'f020'],
  ['2-byte sequence missing its last byte (df)', 'df'], ['3-byte sequence missing its last byte (ef bf)', 'efbf'],
  ['4-byte sequence missing its last byte (f4 8f bf)', 'f48fbf'], ['concatenated incomplete sequences', 'c0e080f08080df'],
  ['impossible byte fe', 'fe'], ['impossible byte ff', 'ff'], ['fe fe ff ff', 'fefeffff'],
  ['overlong "/" in 2 bytes (c0 af)', 'c0af'], ['overlong "/" in 3 bytes (e0 80 af)', 'e080af'], ['overlong "/" in 4 bytes (f0 80 80 af)', 'f08080af'],
  ['maximum overlong 2-byte (c1 bf)', 'c1bf'], ['maximum overlong 3-byte (e0 9f bf)', 'e09fbf'], ['maximum overlong 4-byte (f0 8f bf bf)', 'f08fbfbf'],
  ['overlong NUL (c0 80)', 'c080'], ['overlong NUL (e0 80 80)', 'e08080'],
  ['surrogate U+D800', 'eda080'], ['surrogate U+DB7F', 'edadbf'], ['surrogate U+DC00', 'edb080'], ['surrogate U+DFFF', 'edbfbf'],
  ['surrogate pair U+D800 U+DC00', 'eda080edb080'], ['surrogate pair U+DBFF U+DFFF', 'edafbfedbfbf'],
  ['valid "κόσμε", then a surrogate, then ASCII', 'cebae1bdb9cf83cebcceb5eda080656469746564'],
  ['valid ASCII then 0xff at the end', '48656c6c6fff'],
].forEach(([d, h], i) => utfBad(`6.4.${i + 1}`, `${d} (${h.length > 24 ? h.slice(0, 24) + '…' : h})`, hex(h)));
// 6.5: the same strings split into two fragments at every byte position
{
  const valid = U('κόσμε-€-𝄞');
  for (let i = 1; i < valid.length; i++) {
    C(`6.5.${i}`, `valid "κόσμε-€-𝄞" split into 2 fragments at byte ${i}`, 'echo text', async (t) => {
      const c = await t.open();
      await sendAll(c, [{ op: OP.TEXT, payload: valid.subarray(0, i), fin: false }, { op: OP.CONT, payload: valid.subarray(i) }]);
      await t.echo(c, [text(valid)]); await t.cleanClose(c);
    });
  }
  const bad = hex('cebae1bdb9cf83cebcceb5eda080656469746564'); // κόσμε U+D800 "edited"
  for (let i = 1; i < bad.length; i++) {
    C(`6.6.${i}`, `"κόσμε"+surrogate+"edited" split into 2 fragments at byte ${i}`, 'close 1007, no echo', async (t) => {
      const c = await t.open();
      await sendAll(c, [{ op: OP.TEXT, payload: bad.subarray(0, i), fin: false }, { op: OP.CONT, payload: bad.subarray(i) }]);
      await t.closed(c, 1007);
    });
  }
  const trunc = hex('cebae1bdb9cf83cebcceb5f09080'); // κόσμε then an incomplete 4-byte sequence at the very end
  for (let i = 1; i < trunc.length; i++) {
    C(`6.7.${i}`, `"κόσμε" + truncated 4-byte sequence at the end, split at byte ${i}`, 'close 1007 at the end of the message', async (t) => {
      const c = await t.open();
      await sendAll(c, [{ op: OP.TEXT, payload: trunc.subarray(0, i), fin: false }, { op: OP.CONT, payload: trunc.subarray(i) }]);
      await t.closed(c, 1007);
    });
  }
}
C('6.8.1', 'invalid UTF-8 (U+110000) in the first of two fragments, second sent 1 s later', 'close 1007 (fail-fast or at the end)', async (t) => {
  const c = await t.open();
  await c.send(OP.TEXT, hex('48656c6c6ff4908080'), { fin: false });
  await c.waitFor((x) => x.closeFrame || x.ended, 1000, 'fail-fast').then(() => t.note('fail-fast'), () => t.note('not fail-fast'));
  if (!c.closeFrame && !c.ended) await c.send(OP.CONT, 'world');
  await t.closed(c, 1007);
});
C('6.8.2', 'valid text in 3 fragments, a 4-byte character split over all three', 'echo', async (t) => {
  const c = await t.open(); const p = U('a𝄞b');
  await sendAll(c, [{ op: OP.TEXT, payload: p.subarray(0, 2), fin: false }, { op: OP.CONT, payload: p.subarray(2, 4), fin: false }, { op: OP.CONT, payload: p.subarray(4) }]);
  await t.echo(c, [text(p)]); await t.cleanClose(c);
});
C('6.8.3', 'overlong sequence split between fragments (c0 | af)', 'close 1007', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: B(0x41, 0xc0), fin: false }, { op: OP.CONT, payload: B(0xaf) }]);
  await t.closed(c, 1007);
});
C('6.8.4', 'valid text of 100000 bytes with invalid byte at the very end', 'close 1007', async (t) => {
  const c = await t.open(); await c.text(Buffer.concat([textOf(99999, 'v'), B(0xff)])); await t.closed(c, 1007);
});

// ================================================================== 7 close handling
C('7.1.1', 'echo, then close 1000', 'echo; close 1000 answered; TCP closed by the server', async (t) => {
  const c = await t.open(); await c.text('Hello World!'); await t.echo(c, [text('Hello World!')]); await t.cleanClose(c);
});
C('7.1.2', 'close sent twice', 'one close answer; TCP closed', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CLOSE, payload: closePayload(1000) }, { op: OP.CLOSE, payload: closePayload(1000) }]);
  await t.closed(c, 1000);
  check(c.frames.filter((f) => f.op === OP.CLOSE).length === 1, 'more than one close frame');
});
C('7.1.3', 'close, then ping', 'close 1000 answered, no pong', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CLOSE, payload: closePayload(1000) }, { op: OP.PING, payload: 'late' }]);
  await t.closed(c, 1000); check(c.pongs.length === 0, () => `pong after close: ${c.describe()}`);
});
C('7.1.4', 'close, then text (data after close is ignored)', 'close 1000 answered, no echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CLOSE, payload: closePayload(1000) }, { op: OP.TEXT, payload: 'late' }]);
  await t.closed(c, 1000);
});
C('7.1.5', 'text FIN=0, close, then the last fragment', 'close 1000 answered, no echo', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.TEXT, payload: 'frag1', fin: false }, { op: OP.CLOSE, payload: closePayload(1000) }, { op: OP.CONT, payload: 'frag2' }]);
  await t.closed(c, 1000);
});
C('7.1.6', 'close, then garbage bytes that would be a protocol error', 'close 1000 answered (the garbage is ignored)', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CLOSE, payload: closePayload(1000) }, Buffer.from([0x8f, 0x00, 0xff, 0xff])]);
  await t.closed(c, 1000);
});
C('7.1.7', '200 KB text, then close in the same write', 'echo of 200 KB, then close 1000', async (t) => {
  const c = await t.open(); const p = textOf(200000, 'z');
  await sendAll(c, [{ op: OP.TEXT, payload: p }, { op: OP.CLOSE, payload: closePayload(1000) }]);
  await t.echo(c, [text(p)]); await t.closed(c, 1000, { nMessages: 1 });
});
C('7.2.1', 'close without payload', 'close 1000 answered (spec: 1000 when none)', async (t) => {
  const c = await t.open(); await t.cleanClose(c, { code: null, expect: 1000 });
});
C('7.2.2', 'close with a 1-byte payload', 'close 1002', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, B(0x03)); await t.closed(c, 1002);
});
C('7.2.3', 'close 1000 with reason "Hello World!"', 'close 1000 answered', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, closePayload(1000, 'Hello World!')); await t.closed(c, 1000);
});
C('7.2.4', 'close 1000 with a 123-byte reason (maximum)', 'close 1000 answered', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, closePayload(1000, 'r'.repeat(123))); await t.closed(c, 1000);
});
C('7.2.5', 'close 1000 with a 124-byte reason (payload 126)', 'close 1002', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, closePayload(1000, 'r'.repeat(124))); await t.closed(c, 1002);
});
C('7.2.6', 'close with a UTF-8 reason "κόσμε 𝄞"', 'close 1000 answered', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, closePayload(1000, 'κόσμε 𝄞')); await t.closed(c, 1000);
});
C('7.2.7', 'close with an invalid UTF-8 reason (surrogate)', 'close 1007', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, Buffer.concat([closePayload(1000), hex('cebae1bdb9eda080')])); await t.closed(c, 1007);
});
C('7.2.8', 'close with an invalid UTF-8 reason (lone 0xff)', 'close 1007', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, Buffer.concat([closePayload(1001), B(0x61, 0xff)])); await t.closed(c, 1007);
});
C('7.2.9', 'close frame with FIN=0', 'close 1002', async (t) => {
  const c = await t.open(); await sendAll(c, [{ op: OP.CLOSE, payload: closePayload(1000), fin: false }, { op: OP.CONT, payload: '' }]);
  await t.closed(c, 1002);
});
C('7.2.10', 'unmasked close frame', 'close 1002', async (t) => {
  const c = await t.open(); await c.send(OP.CLOSE, closePayload(1000), { mask: false }); await t.closed(c, 1002);
});
[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999].forEach((code, i) => {
  C(`7.3.${i + 1}`, `close with valid code ${code}`, `close ${code} echoed`, async (t) => {
    const c = await t.open(); await c.send(OP.CLOSE, closePayload(code, 'bye')); await t.closed(c, code);
  });
});
[0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535].forEach((code, i) => {
  C(`7.4.${i + 1}`, `close with invalid code ${code}`, 'close 1002', async (t) => {
    const c = await t.open(); await c.send(OP.CLOSE, closePayload(code)); await t.closed(c, 1002);
  });
});

// ================================================================== 9 limits / performance
[['text', OP.TEXT], ['binary', OP.BINARY]].forEach(([kind, op], k) => {
  [[-1, 'echo'], [0, 'echo'], [1, 'close 1009']].forEach(([d, what], j) => {
    const n = LIMIT + d;
    C(`9.1.${k * 3 + j + 1}`, `${kind} message of limits.max_message_bytes${d ? (d > 0 ? '+1' : '-1') : ''} (${n} bytes)`, what, async (t) => {
      const c = await t.open(); const p = kind === 'text' ? textOf(n, 'L') : pattern(n, j);
      await c.write(frame({ op, payload: p }), { chunk: 262144 });
      if (d <= 0) { await t.echo(c, [{ type: kind, data: p }], { ms: 15000 }); await t.cleanClose(c); } else await t.closed(c, 1009, { ms: 10000 });
    }, { timeout: 30000 });
  });
});
C('9.2.1', 'text of limit+1 bytes in 8 fragments', 'close 1009', async (t) => {
  const c = await t.open(); const n = LIMIT + 1; const p = textOf(n, 'F'); const step = Math.ceil(n / 8);
  const specs = []; for (let i = 0; i < n; i += step) specs.push({ op: i === 0 ? OP.TEXT : OP.CONT, payload: p.subarray(i, i + step), fin: i + step >= n });
  await c.write(Buffer.concat(specs.map(frame)), { chunk: 262144 });
  await t.closed(c, 1009, { ms: 10000 });
}, { timeout: 30000 });
C('9.2.2', 'binary of exactly the limit in 16 fragments', 'echo', async (t) => {
  const c = await t.open(); const p = pattern(LIMIT, 22); const step = LIMIT / 16;
  const specs = []; for (let i = 0; i < LIMIT; i += step) specs.push({ op: i === 0 ? OP.BINARY : OP.CONT, payload: p.subarray(i, i + step), fin: i + step >= LIMIT });
  await c.write(Buffer.concat(specs.map(frame)), { chunk: 262144 });
  await t.echo(c, [bin(p)], { ms: 15000 }); await t.cleanClose(c);
}, { timeout: 30000 });
C('9.2.3', 'frame header claiming 4 MiB, payload streamed', 'close 1009 (no need to read it all)', async (t) => {
  const c = await t.open(); const n = 4 * LIMIT;
  const f = frame({ op: OP.BINARY, payload: Buffer.alloc(n) });
  await c.write(f, { chunk: 65536 });
  await t.closed(c, 1009, { ms: 10000 });
}, { timeout: 30000 });
[[256 * 1024, 'text'], [512 * 1024, 'binary'], [1000 * 1000, 'text']].forEach(([n, kind], i) => {
  C(`9.3.${i + 1}`, `${kind} message of ${n} bytes`, 'echo', async (t) => {
    const c = await t.open(); const p = kind === 'text' ? textOf(n, 'k') : rand(n);
    const t0 = Date.now();
    await c.write(frame({ op: kind === 'text' ? OP.TEXT : OP.BINARY, payload: p }), { chunk: 131072 });
    await t.echo(c, [{ type: kind, data: p }], { ms: 15000 });
    t.note(`${Date.now() - t0} ms round trip`);
    await t.cleanClose(c);
  }, { timeout: 30000 });
});
C('9.4.1', '2000 text messages of 16 bytes in one burst', 'all echoed in order within 10 s', async (t) => {
  const c = await t.open(); const msgs = Array.from({ length: 2000 }, (_, i) => `msg-${String(i).padStart(12, '0')}`);
  const t0 = Date.now();
  await sendAll(c, msgs.map((m) => ({ op: OP.TEXT, payload: m })));
  await t.echo(c, msgs.map(text), { ms: 10000 });
  const ms = Date.now() - t0; t.note(`${ms} ms, ${Math.round(2000 / (ms / 1000))} msg/s`);
  await t.cleanClose(c);
}, { timeout: 20000 });
C('9.4.2', '1000 binary messages of 1 KiB, one write each', 'all echoed in order within 10 s', async (t) => {
  const c = await t.open(); const msgs = Array.from({ length: 1000 }, (_, i) => pattern(1024, i));
  const t0 = Date.now();
  for (const m of msgs) c.binary(m);
  await t.echo(c, msgs.map(bin), { ms: 10000 });
  t.note(`${Date.now() - t0} ms`);
  await t.cleanClose(c);
}, { timeout: 20000 });
C('9.4.3', '500 messages in 1-byte fragments each (2500 frames)', 'all echoed', async (t) => {
  const c = await t.open(); const specs = []; const exp = [];
  for (let i = 0; i < 500; i++) {
    const p = U(`m${i % 10}xyz`.slice(0, 5));
    for (let j = 0; j < 5; j++) specs.push({ op: j === 0 ? OP.TEXT : OP.CONT, payload: p.subarray(j, j + 1), fin: j === 4 });
    exp.push(text(p));
  }
  await sendAll(c, specs);
  await t.echo(c, exp, { ms: 10000 }); await t.cleanClose(c);
}, { timeout: 20000 });
C('9.5.1', 'a message over the limit after echoed ones', 'the earlier messages echoed, then close 1009', async (t) => {
  const c = await t.open();
  await c.write(Buffer.concat([frame({ op: OP.TEXT, payload: 'small' }), frame({ op: OP.BINARY, payload: Buffer.alloc(LIMIT + 100) })]), { chunk: 262144 });
  await t.echo(c, [text('small')]); await t.closed(c, 1009, { nMessages: 1, ms: 10000 });
}, { timeout: 30000 });

// ================================================================== 12 permessage-deflate: negotiation
const pmdOk = (id, offer, note = '') => C(id, `offer "${offer}"${note}`, 'accepted: permessage-deflate; server_no_context_takeover; client_no_context_takeover', async (t) => {
  const c = await t.open({ extensions: offer });
  const answer = c.headers['sec-websocket-extensions'];
  const ex = parseExtensions(answer);
  check(ex.length === 1 && ex[0].name === 'permessage-deflate', () => `expected permessage-deflate in the answer, got ${JSON.stringify(answer)}`);
  const p = ex[0].params;
  check(!ex[0].dup, `duplicate parameters in ${answer}`);
  check(p.server_no_context_takeover === true && p.client_no_context_takeover === true, () => `answer lacks server_no_context_takeover/client_no_context_takeover: ${answer}`);
  for (const k of Object.keys(p)) check(['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits'].includes(k), `unknown parameter ${k} in ${answer}`);
  if ('server_max_window_bits' in p) check(p.server_max_window_bits === '15', `server_max_window_bits=${p.server_max_window_bits} in ${answer}`);
  if ('client_max_window_bits' in p) check(/client_max_window_bits/.test(offer) && /^(8|9|1[0-5])$/.test(p.client_max_window_bits), `client_max_window_bits=${p.client_max_window_bits} in ${answer} (offer ${offer})`);
  const m = U('negotiated '.repeat(30));
  await c.sendCompressed('text', m);
  await t.echo(c, [text(m)]); await t.cleanClose(c);
});
const pmdNo = (id, offer, why) => C(id, `offer "${offer}" (${why})`, 'declined: 101 without Sec-WebSocket-Extensions; uncompressed echo', async (t) => {
  const c = await t.open({ extensions: offer });
  check(!c.headers['sec-websocket-extensions'], () => `expected no extension, got ${c.headers['sec-websocket-extensions']}`);
  const m = textOf(300, 'u'); await c.text(m);
  await t.echo(c, [text(m)], { compressed: false }); await t.cleanClose(c);
});
pmdOk('12.1.1', 'permessage-deflate');
pmdOk('12.1.2', 'permessage-deflate; client_max_window_bits', ' (Chromium, Node ws)');
pmdOk('12.1.3', 'permessage-deflate; server_max_window_bits=15');
pmdOk('12.1.4', 'permessage-deflate; client_no_context_takeover');
pmdOk('12.1.5', 'permessage-deflate; server_no_context_takeover');
pmdOk('12.1.6', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits');
pmdOk('12.1.7', 'permessage-deflate; client_max_window_bits=15');
pmdOk('12.1.8', 'permessage-deflate;client_max_window_bits', ' (no space)');
pmdNo('12.2.1', 'permessage-deflate; server_max_window_bits=10', 'window other than 15');
pmdNo('12.2.2', 'permessage-deflate; server_max_window_bits=8', 'window other than 15');
pmdNo('12.2.3', 'x-webkit-deflate-frame', 'unknown extension');
pmdNo('12.2.4', 'permessage-deflate; foo=bar', 'unknown parameter, RFC 7692 §5.1');
pmdNo('12.2.5', 'permessage-deflate; server_max_window_bits=abc', 'malformed value');
pmdNo('12.2.6', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', 'duplicate parameter');
C('12.3.1', 'offers "permessage-deflate; server_max_window_bits=10, permessage-deflate"', 'the second offer accepted (or all declined); echo either way', async (t) => {
  const c = await t.open({ extensions: 'permessage-deflate; server_max_window_bits=10, permessage-deflate' });
  const ex = parseExtensions(c.headers['sec-websocket-extensions']);
  check(ex.length <= 1, `more than one extension accepted: ${c.headers['sec-websocket-extensions']}`);
  if (ex.length) {
    check(!('server_max_window_bits' in ex[0].params) || ex[0].params.server_max_window_bits === '15', `answer ${c.headers['sec-websocket-extensions']}`);
    t.note('second offer accepted');
  } else t.note('declined');
  const m = textOf(400, 'w'); await (c.deflate ? c.sendCompressed('text', m) : c.text(m));
  await t.echo(c, [text(m)]); await t.cleanClose(c);
});
C('12.3.2', 'offer with websocket.deflate: false', 'declined', async (t) => {
  const c = await t.open({ broker: 'nodeflate', extensions: 'permessage-deflate; client_max_window_bits' });
  check(!c.headers['sec-websocket-extensions'], () => `extension negotiated although disabled: ${c.headers['sec-websocket-extensions']}`);
  await t.cleanClose(c);
});

// ================================================================== 13 permessage-deflate: messages
[0, 1, 64, 125, 126, 1000, 65535, 65536, 300000].forEach((n, i) => {
  C(`13.1.${i + 1}`, `compressed text of ${n} bytes`, 'echo (inflated content equal)', async (t) => {
    const c = await t.openDeflate(); const p = Buffer.from(Array.from({ length: n }, (_, j) => 'abcdefghij'[(j * 7) % 10]).join(''));
    await c.sendCompressed('text', p); await t.echo(c, [text(p)]); await t.cleanClose(c);
  });
});
[0, 10, 200, 65536, 300000].forEach((n, i) => {
  C(`13.2.${i + 1}`, `compressed random binary of ${n} bytes (incompressible)`, 'echo', async (t) => {
    const c = await t.openDeflate(); const p = rand(n);
    await c.sendCompressed('binary', p); await t.echo(c, [bin(p)]); await t.cleanClose(c);
  });
});
C('13.3.1', 'uncompressed messages on a deflate connection', 'echo', async (t) => {
  const c = await t.openDeflate(); const p = textOf(1000, 'n');
  await c.text(p); await c.binary(B(1, 2, 3)); await t.echo(c, [text(p), bin(B(1, 2, 3))]); await t.cleanClose(c);
});
C('13.3.2', 'compressed message sent with BFINAL=1 (Z_FINISH), then another', 'both echoed', async (t) => {
  const c = await t.openDeflate(); const p = U('final block '.repeat(20));
  await c.send(OP.TEXT, deflateMessage(p, { final: true }), { rsv1: true });
  await c.sendCompressed('text', 'second message after a final block');
  await t.echo(c, [text(p), text('second message after a final block')]); await t.cleanClose(c);
});
C('13.3.3', 'compressed message fragmented in 3 (RSV1 only on the first)', 'echo', async (t) => {
  const c = await t.openDeflate(); const p = U('fragmented compressed message '.repeat(40)); const z = deflateMessage(p); const a = Math.floor(z.length / 3);
  await sendAll(c, [{ op: OP.TEXT, payload: z.subarray(0, a), fin: false, rsv1: true }, { op: OP.CONT, payload: z.subarray(a, 2 * a), fin: false }, { op: OP.CONT, payload: z.subarray(2 * a) }]);
  await t.echo(c, [text(p)]); await t.cleanClose(c);
});
C('13.3.4', 'compressed message in 1-byte fragments with pings interleaved', 'pongs, then echo', async (t) => {
  const c = await t.openDeflate(); const p = U('tiny fragments '.repeat(10)); const z = deflateMessage(p);
  const specs = [];
  for (let i = 0; i < z.length; i++) {
    specs.push({ op: i === 0 ? OP.BINARY : OP.CONT, payload: z.subarray(i, i + 1), fin: i === z.length - 1, rsv1: i === 0 });
    if (i % 10 === 5) specs.push({ op: OP.PING, payload: `p${i}` });
  }
  await sendAll(c, specs);
  await t.echo(c, [bin(p)]); await t.cleanClose(c);
});
C('13.3.5', 'RSV1 on a continuation frame', 'close 1002', async (t) => {
  const c = await t.openDeflate(); const z = deflateMessage(U('x'.repeat(500))); const a = Math.floor(z.length / 2);
  await sendAll(c, [{ op: OP.TEXT, payload: z.subarray(0, a), fin: false, rsv1: true }, { op: OP.CONT, payload: z.subarray(a), rsv1: true }]);
  await t.closed(c, 1002);
});
C('13.3.6', 'RSV1 on a ping (deflate negotiated)', 'close 1002', async (t) => {
  const c = await t.openDeflate(); await c.ping('compressed?', { rsv1: true }); await t.closed(c, 1002);
});
C('13.3.7', 'RSV1 on a continuation of an uncompressed message', 'close 1002', async (t) => {
  const c = await t.openDeflate();
  await sendAll(c, [{ op: OP.TEXT, payload: 'plain', fin: false }, { op: OP.CONT, payload: deflateMessage('more'), rsv1: true }]);
  await t.closed(c, 1002);
});
C('13.3.8', 'compressed message inflating to limit+1 bytes (≈1 KB on the wire)', 'close 1009', async (t) => {
  const c = await t.openDeflate(); const z = deflateMessage(Buffer.alloc(LIMIT + 1));
  t.note(`${z.length} bytes compressed`);
  await c.send(OP.BINARY, z, { rsv1: true }); await t.closed(c, 1009);
});
C('13.3.9', 'compressed message inflating to 100 MiB (deflate bomb)', 'close 1009 promptly', async (t) => {
  const c = await t.openDeflate(); const z = deflateMessage(Buffer.alloc(100 * LIMIT));
  const t0 = Date.now(); await c.send(OP.BINARY, z, { rsv1: true }); await t.closed(c, 1009, { ms: 5000 });
  t.note(`${z.length} bytes compressed; close frame after ${c.closeFrame.at - t0} ms`);
});
C('13.3.10', 'compressed message inflating to exactly the limit', 'echo', async (t) => {
  const c = await t.openDeflate(); const p = textOf(LIMIT, 'e');
  await c.sendCompressed('text', p); await t.echo(c, [text(p)], { ms: 15000 }); await t.cleanClose(c);
}, { timeout: 30000 });
C('13.3.11', 'compressed text that inflates to invalid UTF-8', 'close 1007', async (t) => {
  const c = await t.openDeflate(); await c.sendCompressed('text', Buffer.concat([U('valid then '.repeat(20)), hex('eda080')])); await t.closed(c, 1007);
});
C('13.3.12', 'compressed payload that is not deflate data', 'close 1002 or 1007, no echo', async (t) => {
  const c = await t.openDeflate(); await c.send(OP.BINARY, B(0xff, 0xff, 0xff, 0xff, 0x12, 0x34), { rsv1: true }); await t.closed(c, [1002, 1007]);
});
C('13.3.13', 'compressed text with invalid UTF-8 split across fragments', 'close 1007', async (t) => {
  const c = await t.openDeflate(); const z = deflateMessage(Buffer.concat([U('abc'), hex('f4908080'), U('def'.repeat(50))])); const a = Math.floor(z.length / 2);
  await sendAll(c, [{ op: OP.TEXT, payload: z.subarray(0, a), fin: false, rsv1: true }, { op: OP.CONT, payload: z.subarray(a) }]);
  await t.closed(c, 1007);
});
C('13.4.1', 'client_no_context_takeover: 20 identical messages, each compressed with a fresh context', 'all 20 echoed', async (t) => {
  const c = await t.openDeflate(); const p = U('same message, fresh context each time. '.repeat(8));
  const sizes = new Set();
  for (let i = 0; i < 20; i++) { const z = deflateMessage(p); sizes.add(z.length); await c.send(OP.TEXT, z, { rsv1: true }); }
  await t.echo(c, Array.from({ length: 20 }, () => text(p))); await t.cleanClose(c);
});
C('13.4.2', 'client uses context takeover although the server asked for client_no_context_takeover', 'never garbage: correct echo or close 1002/1007', async (t) => {
  const c = await t.openDeflate(); const d = contextDeflater(); const p = U('back references into the previous message '.repeat(6));
  try {
    await c.send(OP.TEXT, await d.compress(p), { rsv1: true });
    const z2 = await d.compress(p); // refers back to message 1
    await c.send(OP.TEXT, z2, { rsv1: true });
  } finally { d.close(); }
  await c.waitFor((x) => x.messages.length >= 2 || x.closeFrame || x.ended, 5000, 'two echoes or a close');
  if (c.messages.length >= 2) { await t.echo(c, [text(p), text(p)]); t.note('server kept the context; echo correct'); await t.cleanClose(c); } else {
    await t.closed(c, [1002, 1007], { nMessages: c.messages.length });
    check(c.messages.length === 0 || c.messages[0].data.equals(p), 'first echo corrupted');
    t.note(`closed ${c.closeFrame.code}`);
  }
});
C('13.4.3', 'server_no_context_takeover: the same 1000-byte delivery twice', 'two compressed frames, identical bytes, each inflates alone', async (t) => {
  const c = await t.openDeflate({ path: '/sub/conf.deliver1' });
  const body = 'server context test '.repeat(50);
  for (let i = 0; i < 2; i++) await publishHttp(t, 'conf.deliver1', body);
  await t.echo(c, [text(body), text(body)], { compressed: true });
  const fr = c.frames.filter((f) => f.op === OP.TEXT);
  check(fr.length === 2 && fr[0].payload.equals(fr[1].payload), () => `compressed frames differ (context carried over?): ${fr.map((f) => f.payload.length)}`);
  await t.cleanClose(c);
});
const thr = (id, n, compressed) => C(id, `delivery of ${n} bytes with deflate_threshold 128`, compressed ? 'RSV1 set (compressed)' : 'RSV1 unset (sent uncompressed)', async (t) => {
  const tp = `conf.thr${n}`;
  const c = await t.openDeflate({ path: `/sub/${tp}` });
  const body = Array.from({ length: n }, (_, j) => 'thresholds'[j % 10]).join('');
  await publishHttp(t, tp, body);
  await t.echo(c, [text(body)], { compressed });
  await t.cleanClose(c);
});
thr('13.5.1', 20, false); thr('13.5.2', 127, false); thr('13.5.3', 128, true); thr('13.5.4', 5000, true);
C('13.5.5', 'delivery of 5000 bytes to a client that did not offer deflate', 'RSV1 unset', async (t) => {
  const c = await t.open({ path: '/sub/conf.thr-plain' });
  const body = 'x'.repeat(5000); await publishHttp(t, 'conf.thr-plain', body);
  await t.echo(c, [text(body)], { compressed: false }); await t.cleanClose(c);
});
C('13.5.6', 'binary delivery of 60000 compressible bytes', 'compressed binary frame that inflates to the payload', async (t) => {
  const c = await t.openDeflate({ path: '/sub/conf.thrbin' });
  const body = Buffer.concat([B(0xff, 0xfe), Buffer.alloc(59998, 7)]); await publishHttp(t, 'conf.thrbin', body);
  await t.echo(c, [bin(body)], { compressed: true }); await t.cleanClose(c);
});
const thrTuned = (id, n, compressed) => C(id, `delivery of ${n} bytes with websocket.deflate_threshold 1000`, compressed ? 'RSV1 set' : 'RSV1 unset', async (t) => {
  const tp = `conf.tthr${n}`;
  const c = await t.openDeflate({ path: `/sub/${tp}` });
  const body = Array.from({ length: n }, (_, j) => 'thresholds'[j % 10]).join('');
  await publishHttp(t, tp, body);
  await t.echo(c, [text(body)], { compressed });
  await t.cleanClose(c);
}, { broker: 'tuned' });
thrTuned('13.5.7', 999, false); thrTuned('13.5.8', 1000, true);

async function publishHttp(t, topic, body) {
  const r = await fetch(`${t.broker().base}/pub/${topic}`, { method: 'POST', body, signal: AbortSignal.timeout(5000) });
  const txt = await r.text();
  check(r.status === 200, `POST /pub/${topic}: ${r.status} ${txt.slice(0, 200)}`);
  return JSON.parse(txt).id;
}

// ------------------------------------------------------------------ runner
/**
 * Run the cases (optionally filtered), `concurrency` at a time (each case has its own
 * connections and topics). Results are reported through env.onResult in case order.
 * env: { brokers: {echo, nodeflate, tuned}, onResult(r), beforeCase(kase) → may restart brokers }
 * Returns [{id, group, desc, expect, ok, reason, notes, ms}].
 */
export async function runConformance(env, { filter, concurrency = 1 } = {}) {
  const list = cases.filter((k) => !filter || filter(k));
  const results = new Array(list.length);
  let next = 0; let reported = 0;
  const flush = async () => {
    while (reported < list.length && results[reported]) {
      const r = results[reported++];
      if (env.onResult) await env.onResult(r);
    }
  };
  const runOne = async (k, retried = false) => {
    const r = await runOnce(k);
    // a case that could not even connect because the broker had crashed (during another case)
    // is run again once the broker is back; the crash itself is reported by the caller
    if (!r.ok && !retried && /before a handshake response|ECONNREFUSED|ECONNRESET/.test(r.reason) && env.brokerDown && await env.brokerDown(k)) {
      const again = await runOne(k, true);
      again.notes.push('run again after a broker restart');
      return again;
    }
    return r;
  };
  const runOnce = async (k) => {
    if (env.beforeCase) await env.beforeCase(k);
    const t = new T(env, k);
    const t0 = Date.now();
    let reason = null;
    let timer;
    try {
      await Promise.race([
        Promise.resolve().then(() => k.run(t)),
        new Promise((_, rej) => { timer = setTimeout(() => rej(new CaseError(`case timed out after ${k.timeout} ms`)), k.timeout); }),
      ]);
      t.finish();
    } catch (e) {
      reason = e instanceof CaseError ? e.message : `${e.message}`;
      const v = t.conns.flatMap((c) => c.violations);
      if (v.length && !reason.includes('violation')) reason += ` [server violations: ${v.join('; ')}]`;
    } finally {
      clearTimeout(timer);
      t.destroy();
    }
    return { id: k.id, group: k.group, desc: k.desc, expect: k.expect, ok: reason === null, reason, notes: t.notes, ms: Date.now() - t0 };
  };
  const worker = async () => {
    while (next < list.length) {
      const i = next++;
      results[i] = await runOne(list[i]);
      await flush();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  await flush();
  return results;
}

export function summaryTable(results) {
  const rows = [];
  rows.push('group                              cases  pass  fail');
  const groups = [...new Set(results.map((r) => r.group))].sort((a, b) => a - b);
  for (const g of groups) {
    const rs = results.filter((r) => r.group === g);
    const p = rs.filter((r) => r.ok).length;
    rows.push(`${String(g).padStart(2)} ${(GROUPS[g] || '').padEnd(31)} ${String(rs.length).padStart(5)} ${String(p).padStart(5)} ${String(rs.length - p).padStart(5)}`);
  }
  const p = results.filter((r) => r.ok).length;
  rows.push(`   ${'total'.padEnd(31)} ${String(results.length).padStart(5)} ${String(p).padStart(5)} ${String(results.length - p).padStart(5)}`);
  return rows.join('\n');
}

export { inflateMessage, isUtf8 };

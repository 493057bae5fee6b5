// A raw WebSocket client for tests: its own handshake, framing, masking and parsing over
// node:net, so a test can send anything (bad masks, reserved bits, odd fragmentation,
// partial writes) and see exactly what the server sends back (every frame, its RSV bits,
// the close code, whether and when the TCP connection ends).
//
// It also checks the server: a masked server frame, RSV bits the client did not negotiate,
// a control frame that is fragmented or too long, a bad close payload, a compressed message
// that does not inflate, or a text message that is not UTF-8 is recorded in `violations`.

import crypto from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/** Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF). */
export function isUtf8(buf) {
  try { new TextDecoder('utf-8', { fatal: true }).decode(buf); return true; } catch { return false; }
}

export function toBuf(x) {
  if (x === undefined || x === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof Uint8Array) return Buffer.from(x);
  return Buffer.from(String(x), 'utf8');
}

/**
 * Build one frame.
 * o.op, o.payload, o.fin (default true), o.rsv1/rsv2/rsv3, o.mask (default true),
 * o.maskKey (4 bytes), o.len64 (force the 64-bit length form), o.lenOverride (claim another length)
 */
export function frame(o) {
  const payload = toBuf(o.payload);
  const fin = o.fin === undefined ? true : !!o.fin;
  const mask = o.mask === undefined ? true : !!o.mask;
  const len = o.lenOverride !== undefined ? o.lenOverride : payload.length;
  let b0 = (fin ? 0x80 : 0) | (o.rsv1 ? 0x40 : 0) | (o.rsv2 ? 0x20 : 0) | (o.rsv3 ? 0x10 : 0) | (o.op & 0x0f);
  let head;
  if (len < 126 && !o.len64 && !o.len16) {
    head = Buffer.from([b0, (mask ? 0x80 : 0) | len]);
  } else if (len < 65536 && !o.len64) {
    head = Buffer.alloc(4); head[0] = b0; head[1] = (mask ? 0x80 : 0) | 126; head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10); head[0] = b0; head[1] = (mask ? 0x80 : 0) | 127; head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  const key = o.maskKey ? toBuf(o.maskKey) : crypto.randomBytes(4);
  const body = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

export function closePayload(code, reason = '') {
  if (code === undefined || code === null) return Buffer.alloc(0);
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/** permessage-deflate: compress one message with a fresh context (BFINAL=0, sync flush, tail stripped). */
export function deflateMessage(data, { final = false, level } = {}) {
  const opts = level !== undefined ? { level } : {};
  if (final) return zlib.deflateRawSync(toBuf(data), opts); // ends with a BFINAL block, no tail to strip
  const out = zlib.deflateRawSync(toBuf(data), { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  if (out.length >= 4 && out.subarray(out.length - 4).equals(Buffer.from([0, 0, 0xff, 0xff]))) return out.subarray(0, out.length - 4);
  return out;
}

/** Inflate one permessage-deflate message (fresh context), bounded. */
export function inflateMessage(data, max = 64 * 1024 * 1024) {
  return zlib.inflateRawSync(Buffer.concat([toBuf(data), Buffer.from([0, 0, 0xff, 0xff])]),
    { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: max });
}

/** A compressor that keeps its context across messages (what client_no_context_takeover forbids). */
export function contextDeflater() {
  const d = zlib.createDeflateRaw();
  const chunks = [];
  d.on('data', (c) => chunks.push(c));
  return {
    async compress(data) {
      chunks.length = 0;
      d.write(toBuf(data));
      await new Promise((r) => d.flush(zlib.constants.Z_SYNC_FLUSH, r));
      const out = Buffer.concat(chunks);
      return out.subarray(0, out.length - 4);
    },
    close() { d.close(); },
  };
}

/** Parse a Sec-WebSocket-Extensions value into [{name, params: {k: v|true}, dup: bool}]. */
export function parseExtensions(v) {
  if (!v) return [];
  return String(v).split(',').map((e) => {
    const parts = e.split(';').map((p) => p.trim()).filter((p) => p !== '');
    const name = (parts.shift() || '').toLowerCase();
    const params = {}; let dup = false;
    for (const p of parts) {
      const i = p.indexOf('=');
      const k = (i < 0 ? p : p.slice(0, i)).trim().toLowerCase();
      let val = i < 0 ? true : p.slice(i + 1).trim();
      if (typeof val === 'string' && val.startsWith('"') && val.endsWith('"')) val = val.slice(1, -1);
      if (k in params) dup = true;
      params[k] = val;
    }
    return { name, params, dup };
  }).filter((e) => e.name);
}

/**
 * Open a TCP connection and perform the opening handshake.
 * Resolves with a WsConn (also for a non-101 answer: check .status).
 * o.path, o.host, o.key (null = omit), o.version (null = omit), o.protocols ([] or string),
 * o.extensions (string offer, e.g. 'permessage-deflate'), o.headers (extra), o.request (raw override),
 * o.timeout (handshake), o.noDelay
 */
export function wsConnect(port, o = {}) {
  const key = o.key === undefined ? crypto.randomBytes(16).toString('base64') : o.key;
  const lines = [
    `GET ${o.path || '/sub/echo.test'} HTTP/1.1`,
    `Host: ${o.host || `127.0.0.1:${port}`}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
  ];
  if (key !== null) lines.push(`Sec-WebSocket-Key: ${key}`);
  if (o.version !== null) lines.push(`Sec-WebSocket-Version: ${o.version ?? '13'}`);
  const protos = Array.isArray(o.protocols) ? o.protocols.join(', ') : o.protocols;
  if (protos) lines.push(`Sec-WebSocket-Protocol: ${protos}`);
  if (o.extensions) lines.push(`Sec-WebSocket-Extensions: ${o.extensions}`);
  for (const [k, v] of Object.entries(o.headers || {})) lines.push(`${k}: ${v}`);
  const req = o.request ?? (lines.join('\r\n') + '\r\n\r\n');
  const timeout = o.timeout ?? 5000;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', noDelay: o.noDelay !== false });
    const conn = new WsConn(sock, key);
    let settled = false;
    const to = setTimeout(() => {
      if (settled) return; settled = true; sock.destroy();
      reject(new Error(`handshake GET ${o.path}: no complete response within ${timeout} ms (got ${JSON.stringify(conn.head.toString('latin1').slice(0, 200))})`));
    }, timeout);
    conn.onHandshake = (err) => {
      if (settled) return; settled = true; clearTimeout(to);
      if (err) { sock.destroy(); reject(err); } else resolve(conn);
    };
    sock.on('connect', () => sock.write(req));
  });
}

export class WsConn {
  constructor(sock, key) {
    this.sock = sock;
    this.key = key;
    this.head = Buffer.alloc(0);
    this.status = 0;
    this.headers = {};
    this.body = Buffer.alloc(0);
    this.upgraded = false;
    this.buf = Buffer.alloc(0);
    this.frames = [];        // every frame received: {fin, rsv1, rsv2, rsv3, op, masked, payload, at}
    this.events = [];        // in order: {kind:'msg'|'ping'|'pong'|'close', ...}
    this.messages = [];      // assembled data messages: {type:'text'|'binary', data, compressed, nframes}
    this.pings = []; this.pongs = [];
    this.closeFrame = null;  // {code, reason, raw}
    this.violations = [];    // server-side protocol violations seen
    this.ended = false; this.endedAt = 0; this.error = null;
    this.deflate = false;    // set once permessage-deflate is negotiated
    this.inflateMax = 64 * 1024 * 1024;
    this.frag = null;
    this.sentClose = false;
    this.paused = false;
    this.waiters = new Set();
    this.onHandshake = null;
    this.endPromise = new Promise((r) => { this.resolveEnd = r; });
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => { this.error = e; this.finish(); });
    sock.on('end', () => this.finish());
    sock.on('close', () => this.finish());
  }

  finish() {
    if (!this.ended) {
      this.ended = true; this.endedAt = Date.now();
      if (this.onHandshake && !this.status) this.onHandshake(new Error(`connection closed before a handshake response (${this.error ? this.error.code : 'EOF'})`));
      else if (this.onHandshake && !this.upgraded) this.onHandshake(null);
      this.resolveEnd();
      this.wake();
    }
  }

  wake() { for (const w of [...this.waiters]) w(); }

  onData(d) {
    if (!this.upgraded) {
      if (this.status) { this.body = Buffer.concat([this.body, d]); this.maybeBodyDone(); this.wake(); return; }
      this.head = Buffer.concat([this.head, d]);
      const i = this.head.indexOf('\r\n\r\n');
      if (i < 0) { if (this.head.length > 65536) this.onHandshake?.(new Error('handshake response head over 64 KiB')); return; }
      const rest = this.head.subarray(i + 4);
      const text = this.head.subarray(0, i).toString('latin1');
      this.head = this.head.subarray(0, i + 4);
      const [statusLine, ...hl] = text.split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
      this.statusLine = statusLine;
      this.status = m ? Number(m[1]) : -1;
      this.rawHeaders = hl;
      for (const l of hl) {
        const j = l.indexOf(':');
        if (j < 0) continue;
        const k = l.slice(0, j).trim().toLowerCase(); const v = l.slice(j + 1).trim();
        this.headers[k] = k in this.headers ? `${this.headers[k]}, ${v}` : v;
      }
      if (this.status === 101) {
        this.upgraded = true;
        const exts = parseExtensions(this.headers['sec-websocket-extensions']);
        this.extensions = exts;
        this.deflate = exts.some((e) => e.name === 'permessage-deflate');
        this.onHandshake?.(null);
        if (rest.length) this.onFrames(rest);
      } else {
        this.body = Buffer.from(rest);
        this.maybeBodyDone();
        // no Content-Length (or a body that never completes): answer with what came within 1 s
        setTimeout(() => { if (this.onHandshake) { this.onHandshake(null); this.onHandshake = null; } }, 1000).unref();
      }
      this.wake();
      return;
    }
    this.onFrames(d);
  }

  maybeBodyDone() {
    const cl = Number(this.headers['content-length']);
    if (Number.isFinite(cl) && this.body.length >= cl) { this.onHandshake?.(null); this.onHandshake = null; }
  }

  get json() { try { return JSON.parse(this.body.toString('utf8')); } catch { return null; } }

  onFrames(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const masked = !!(b[1] & 0x80);
      let len = b[1] & 0x7f; let off = 2;
      if (len === 126) { if (b.length < 4) break; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > 0x7fffffffn) { this.violation(`server frame with a ${big}-byte length`); this.buf = Buffer.alloc(0); this.sock.destroy(); return; }
        len = Number(big); off = 10;
      }
      if (masked) off += 4;
      if (b.length < off + len) break;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) { const k = b.subarray(off - 4, off); for (let i = 0; i < payload.length; i++) payload[i] ^= k[i & 3]; }
      this.buf = b.subarray(off + len);
      this.onFrame({ fin: !!(b[0] & 0x80), rsv1: !!(b[0] & 0x40), rsv2: !!(b[0] & 0x20), rsv3: !!(b[0] & 0x10), op: b[0] & 0x0f, masked, payload, at: Date.now() });
    }
    this.wake();
  }

  violation(s) { this.violations.push(s); }

  onFrame(f) {
    if (this.onFrameHook) this.onFrameHook(f);
    this.frames.push(f);
    const name = Object.keys(OP).find((k) => OP[k] === f.op) || `op${f.op}`;
    if (f.masked) this.violation(`server sent a masked ${name} frame`);
    if (f.rsv2 || f.rsv3) this.violation(`server set RSV2/RSV3 on a ${name} frame`);
    if (this.closeFrame) this.violation(`server sent a ${name} frame after its close frame`);
    if (f.op >= 8) {
      if (!f.fin) this.violation(`server sent a fragmented ${name} frame`);
      if (f.payload.length > 125) this.violation(`server sent a ${name} frame of ${f.payload.length} bytes`);
      if (f.rsv1) this.violation(`server set RSV1 on a ${name} frame`);
    }
    if (f.op === OP.PING) { this.pings.push(f.payload); this.events.push({ kind: 'ping', data: f.payload }); if (this.autoPong) this.send(OP.PONG, f.payload); return; }
    if (f.op === OP.PONG) { this.pongs.push(f.payload); this.events.push({ kind: 'pong', data: f.payload }); return; }
    if (f.op === OP.CLOSE) {
      const p = f.payload;
      let code = null; let reason = '';
      if (p.length === 1) this.violation('server close frame with a 1-byte payload');
      if (p.length >= 2) {
        code = p.readUInt16BE(0);
        if (!isUtf8(p.subarray(2))) this.violation('server close reason is not UTF-8');
        reason = p.subarray(2).toString('utf8');
      }
      this.closeFrame = { code, reason, raw: p, at: Date.now() };
      this.events.push({ kind: 'close', code, reason });
      return;
    }
    if (f.op === OP.TEXT || f.op === OP.BINARY) {
      if (this.frag) this.violation('server started a new data message inside a fragmented one');
      if (f.rsv1 && !this.deflate) this.violation('server set RSV1 without permessage-deflate');
      this.frag = { type: f.op === OP.TEXT ? 'text' : 'binary', parts: [f.payload], compressed: f.rsv1, nframes: 1 };
    } else if (f.op === OP.CONT) {
      if (!this.frag) { this.violation('server sent a continuation frame with nothing to continue'); return; }
      if (f.rsv1) this.violation('server set RSV1 on a continuation frame');
      this.frag.parts.push(f.payload); this.frag.nframes++;
    } else {
      this.violation(`server sent a frame with reserved opcode ${f.op}`);
      return;
    }
    if (!f.fin) return;
    const m = this.frag; this.frag = null;
    let data = Buffer.concat(m.parts);
    if (m.compressed && this.skipInflate) {
      // counting only (throughput runs): keep the compressed bytes, check nothing
    } else if (m.compressed) {
      try { data = inflateMessage(data, this.inflateMax); } catch (e) { this.violation(`server compressed message does not inflate with a fresh context: ${e.message}`); data = null; }
    }
    if (data && m.type === 'text' && !(m.compressed && this.skipInflate) && !isUtf8(data)) this.violation('server text message is not valid UTF-8');
    const msg = { type: m.type, data: data || Buffer.alloc(0), compressed: m.compressed, nframes: m.nframes, at: Date.now() };
    if (this.onMessage) this.onMessage(msg);
    if (!this.dropMessages) this.messages.push(msg);
    this.messageCount = (this.messageCount || 0) + 1;
    this.events.push({ kind: 'msg', msg });
  }

  /** Write bytes; opts.chunk: split into writes of that size; opts.delayMs between writes. Stops early once the peer closed. */
  async write(buf, { chunk = 0, delayMs = 0 } = {}) {
    if (this.ended || this.sock.destroyed) return false;
    if (!chunk) { return this.writeOne(buf); }
    for (let i = 0; i < buf.length; i += chunk) {
      if (this.ended || this.sock.destroyed || this.closeFrame) return false;
      await this.writeOne(buf.subarray(i, i + chunk));
      if (delayMs) await sleep(delayMs);
    }
    return true;
  }

  writeOne(buf) {
    return new Promise((resolve) => {
      if (this.ended || this.sock.destroyed) return resolve(false);
      try {
        this.sock.write(buf, (err) => resolve(!err));
      } catch { resolve(false); }
    });
  }

  /** Send a frame (see frame()); wo: write options (chunk, delayMs). Does not wait for the write to drain. */
  send(op, payload, fo = {}, wo = {}) {
    if (op === OP.CLOSE) this.sentClose = true;
    const f = frame({ op, payload, ...fo });
    if (wo.chunk) return this.write(f, wo);
    if (this.ended || this.sock.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => { try { this.sock.write(f, (err) => resolve(!err)); } catch { resolve(false); } });
  }

  text(s, fo) { return this.send(OP.TEXT, s, fo); }
  binary(b, fo) { return this.send(OP.BINARY, b, fo); }
  ping(p, fo) { return this.send(OP.PING, p, fo); }
  close(code = 1000, reason = '') { return this.send(OP.CLOSE, closePayload(code, reason)); }
  /** A compressed data message in one frame (RSV1 set). */
  sendCompressed(type, data, fo = {}) {
    return this.send(type === 'binary' ? OP.BINARY : OP.TEXT, deflateMessage(data, fo), { rsv1: true, ...fo });
  }

  /** Wait until pred(this) is truthy; throws with a description of what arrived. */
  waitFor(pred, ms, label) {
    return new Promise((resolve, reject) => {
      let to = null;
      const check = () => {
        let v;
        try { v = pred(this); } catch (e) { cleanup(); reject(e); return; }
        if (v) { cleanup(); resolve(v); }
      };
      const cleanup = () => { this.waiters.delete(check); clearTimeout(to); };
      to = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${ms} ms waiting for ${label}; got ${this.describe()}`)); }, ms);
      this.waiters.add(check);
      check();
    });
  }

  /** Wait for n data messages (or the end of the connection). */
  async waitMessages(n, ms = 5000, label) {
    await this.waitFor((c) => c.messages.length >= n || c.closeFrame || c.ended, ms, label || `${n} messages`);
    return this.messages;
  }

  /** Wait for the server's close frame or the TCP end, whichever first; then the TCP end (bounded). */
  async waitClose(ms = 5000) {
    await this.waitFor((c) => c.closeFrame || c.ended, ms, 'a close frame or the end of the connection');
    await this.waitFor((c) => c.ended, ms, 'the TCP connection to be closed after the close frame').catch(() => {});
    return { code: this.closeFrame ? this.closeFrame.code : undefined, frame: this.closeFrame, ended: this.ended };
  }

  pause() { this.paused = true; this.sock.pause(); }
  resume() { this.paused = false; this.sock.resume(); }
  destroy() { try { this.sock.destroy(); } catch {} }

  describe() {
    const ev = this.events.slice(0, 12).map((e) => {
      if (e.kind === 'msg') return `${e.msg.type}${e.msg.compressed ? '(deflate)' : ''}[${e.msg.data.length}]${e.msg.data.length <= 40 ? JSON.stringify(e.msg.type === 'text' ? e.msg.data.toString('utf8') : e.msg.data.toString('hex')) : ''}`;
      if (e.kind === 'close') return `close(${e.code}${e.reason ? ' ' + JSON.stringify(e.reason) : ''})`;
      return `${e.kind}[${e.data.length}]`;
    });
    if (this.events.length > 12) ev.push(`…+${this.events.length - 12}`);
    const st = this.upgraded ? '' : `HTTP ${this.status} `;
    return `${st}[${ev.join(', ')}]${this.ended ? ` TCP closed${this.error ? ' (' + this.error.code + ')' : ''}` : ' (open)'}${this.violations.length ? ' violations: ' + this.violations.join('; ') : ''}`;
  }
}

// WebSocket interop with the npm `ws` client, with and without permessage-deflate:
// raw mode (text and binary payloads verbatim, resume with since/lastEventId/Last-Event-ID),
// rt.v1 (sub/unsub/pub/ping with acks, JSON payload shapes, replay before the ok, gap for a
// foreign or expired cursor) and the close codes a client sees (1001 on SIGTERM, 4001 when
// subscribing is not allowed, 1009 for an oversize client message).
import { createRequire } from 'node:module';
import { wsConnect, OP } from '../conformance/wsraw.mjs';
import {
  suite, assert, eq, publishOk, publish, poll, waitFor, sleep, seqOf, epochOf, trunc, ROOT,
} from './lib.mjs';

const require = createRequire(`${ROOT}/tests/package.json`);
const WebSocket = require('ws');

const t = suite(import.meta.url, { hardTimeoutMs: 100000 });
const WS_PLUGINS = { plugins: { load: ['sse', 'longpoll', 'websocket'] } };
const cfg = (extra = {}) => ({ ...WS_PLUGINS, ...extra });

/** Open a `ws` client; collects messages ({data: Buffer, isBinary, json}) and the close. */
function openWs(base, path, { protocols, deflate = false, headers = {}, timeout = 8000 } = {}) {
  const url = base.replace(/^http/, 'ws') + path;
  const ws = new WebSocket(url, protocols, { perMessageDeflate: deflate, headers, handshakeTimeout: timeout });
  const h = {
    ws, url, msgs: [], close: null, error: null, opened: false, unexpected: null,
    get json() { return h.msgs.map((m) => m.json); },
    get data() { return h.msgs.filter((m) => !m.json || m.json.type === 'msg'); },
    waitFor: (pred, ms, label) => waitFor(() => pred(h), ms, label,
      () => `open ${h.opened}, close ${JSON.stringify(h.close)}, error ${h.error && h.error.message}, ${h.msgs.length} messages: ${trunc(JSON.stringify(h.msgs.slice(-6).map((m) => (m.json ? m.json : (m.isBinary ? 'bin:' + m.data.toString('hex') : m.data.toString('utf8'))))), 600)}`),
    send: (obj) => ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj)),
    closed: () => h.waitFor((x) => x.close, 8000, `close of ${path}`).then(() => h.close),
    end: () => { try { ws.terminate(); } catch {} },
  };
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    let json;
    if (!isBinary) { try { json = JSON.parse(buf.toString('utf8')); } catch {} }
    h.msgs.push({ data: buf, isBinary, json, text: buf.toString('utf8') });
  });
  ws.on('close', (code, reason) => { h.close = { code, reason: reason.toString() }; });
  ws.on('error', (e) => { h.error = e; });
  ws.on('unexpected-response', (req, res) => { h.unexpected = res.statusCode; h.close = { code: -res.statusCode, reason: 'HTTP ' + res.statusCode }; });
  h.ready = new Promise((resolve, reject) => {
    ws.once('open', () => { h.opened = true; resolve(h); });
    ws.once('close', (code) => { if (!h.opened) reject(new Error(`${url}: closed (${code}) before open${h.unexpected ? `: HTTP ${h.unexpected}` : ''}${h.error ? `: ${h.error.message}` : ''}`)); });
    ws.once('error', (e) => { if (!h.opened) reject(new Error(`${url}: ${e.message}`)); });
  });
  return h;
}

async function ws(c, base, path, opts) {
  const h = openWs(base, path, opts);
  c.defer(() => h.end());
  await h.ready;
  return h;
}

/** rt.v1: send an op and wait for the ok/error with its ref. */
let refN = 0;
async function op(h, obj, { ms = 5000 } = {}) {
  const ref = obj.ref ?? `r${++refN}`;
  h.send({ ...obj, ref });
  await h.waitFor((x) => x.msgs.some((m) => m.json && (m.json.type === 'ok' || m.json.type === 'error') && m.json.ref === ref), ms, `answer to ${JSON.stringify({ ...obj, ref })}`);
  return h.msgs.find((m) => m.json && (m.json.type === 'ok' || m.json.type === 'error') && m.json.ref === ref).json;
}

function checkDeflate(h, deflate) {
  const ext = h.ws.extensions || '';
  if (deflate) assert(/permessage-deflate/.test(ext), `permessage-deflate offered by ws but not negotiated (extensions "${ext}")`);
  else assert(!ext, `an extension was negotiated although none was offered: "${ext}"`);
}

const BIN = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x01, 0xc0, 0xaf]); // not UTF-8
const BIG = 'compressible text payload '.repeat(400); // ~10 KB

for (const deflate of [false, true]) {
  const tag = `(deflate: ${deflate ? 'yes' : 'no'})`;

  t.test(`raw mode: text, binary and 10 KB payloads arrive verbatim with their frame types; client frames are ignored ${tag}`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const h = await ws(c, b.base, '/sub/iop.raw', { deflate });
    checkDeflate(h, deflate);
    assert(!h.ws.protocol, `a subprotocol was selected without an offer: ${h.ws.protocol}`);
    await sleep(50);
    h.ws.send('client text is ignored in raw mode');
    h.ws.send(Buffer.from([1, 2, 3]));
    await publishOk(b.base, 'iop.raw', 'héllo wörld');
    await publishOk(b.base, 'iop.raw', BIN);
    await publishOk(b.base, 'iop.raw', BIG);
    await publishOk(b.base, 'iop.raw', '{"a":1}', { headers: { 'Content-Type': 'application/json' } });
    await publishOk(b.base, 'iop.raw', '');
    await h.waitFor((x) => x.msgs.length >= 5, 5000, '5 raw messages');
    await sleep(200);
    eq(h.msgs.length, 5, 'raw messages (the client\'s own frames must not come back)');
    const [m1, m2, m3, m4, m5] = h.msgs;
    eq([m1.isBinary, m1.text], [false, 'héllo wörld'], 'UTF-8 payload as a text frame');
    assert(m2.isBinary && m2.data.equals(BIN), `non-UTF-8 payload: expected a binary frame ${BIN.toString('hex')}, got ${m2.isBinary ? 'binary' : 'text'} ${m2.data.toString('hex')}`);
    assert(!m3.isBinary && m3.text === BIG, `10 KB text payload: got ${m3.isBinary ? 'binary' : 'text'} of ${m3.data.length} bytes`);
    eq([m4.isBinary, m4.text], [false, '{"a":1}'], 'JSON payload verbatim (no envelope in raw mode)');
    eq([m5.isBinary, m5.data.length], [false, 0], 'empty payload as an empty text frame');
    assert(!h.close, `closed: ${JSON.stringify(h.close)}`);
  });

  t.test(`rt.v1 on /ws: sub with ack, msg envelopes (JSON, text, base64, event), pub with id, ping, unsub, errors ${tag}`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const h = await ws(c, b.base, '/ws', { deflate, protocols: ['rt.v1'] });
    checkDeflate(h, deflate);
    eq(h.ws.protocol, 'rt.v1', 'selected subprotocol');
    eq(await op(h, { op: 'sub', topic: 'chat.*', ref: 'a1' }), { type: 'ok', ref: 'a1' }, 'sub ack');
    const id1 = await publishOk(b.base, 'chat.room1', '{"text":"hi","n":[1,2]}', { headers: { 'Content-Type': 'application/json' } });
    const id2 = await publishOk(b.base, 'chat.room2', 'plain ünïcode', { headers: { 'X-Event': 'typing' } });
    const id3 = await publishOk(b.base, 'chat.room1', BIN);
    await publishOk(b.base, 'other.room', 'not subscribed');
    const id4 = await publishOk(b.base, 'chat.room1', BIG);
    await h.waitFor((x) => x.json.filter((j) => j && j.type === 'msg').length >= 4, 5000, '4 msg envelopes');
    const msgs = h.json.filter((j) => j && j.type === 'msg');
    const [a, bb, cc, dd] = msgs;
    eq([a.id, a.topic, a.event ?? null, a.data], [id1, 'chat.room1', null, { text: 'hi', n: [1, 2] }], 'JSON payload envelope');
    eq([bb.id, bb.topic, bb.event, bb.data], [id2, 'chat.room2', 'typing', 'plain ünïcode'], 'text payload envelope with event');
    eq([cc.id, cc.encoding, Buffer.from(String(cc.data), 'base64').toString('hex')], [id3, 'base64', BIN.toString('hex')], 'binary payload envelope');
    eq([dd.id, dd.data], [id4, BIG], '10 KB text envelope');
    // pub from the connection: ok with an id, delivered to this subscriber (chat.*) and to HTTP readers
    const before = id4;
    const okPub = await op(h, { op: 'pub', topic: 'chat.room1', data: { from: 'ws', list: [true, null, 1.5] }, ref: 7 });
    eq([okPub.type, okPub.ref], ['ok', 7], `pub ack ${JSON.stringify(okPub)}`);
    assert(typeof okPub.id === 'string' && epochOf(okPub.id) === epochOf(id1) && seqOf(okPub.id) > seqOf(id4), `pub ack id ${okPub.id} (after ${id4})`);
    const okStr = await op(h, { op: 'pub', topic: 'chat.room3', data: 'a JSON string is published as text', event: 'note', ref: 8 });
    assert(okStr.type === 'ok' && typeof okStr.id === 'string', `pub of a string: ${JSON.stringify(okStr)}`);
    await h.waitFor((x) => x.json.filter((j) => j && j.type === 'msg').length >= 6, 5000, 'own publishes delivered');
    const own = h.json.filter((j) => j && j.type === 'msg').slice(4);
    eq([own[0].id, own[0].data], [okPub.id, { from: 'ws', list: [true, null, 1.5] }], 'own JSON publish delivered');
    eq([own[1].id, own[1].event, own[1].data], [okStr.id, 'note', 'a JSON string is published as text'], 'own string publish delivered');
    const lp = await poll(b.base, { topic: 'chat.*', cursor: before, timeout: 1 });
    eq(lp.status, 200, `long-poll after ${before}: ${trunc(lp.text)}`);
    const lpm = lp.json.messages;
    eq(lpm.map((m) => m.id), [okPub.id, okStr.id], 'long-poll sees the rt.v1 publishes');
    eq([lpm[0].data, lpm[0].content_type], [{ from: 'ws', list: [true, null, 1.5] }, 'application/json'], 'a JSON value is published as application/json');
    assert(lpm[1].data === 'a JSON string is published as text' && lpm[1].content_type !== 'application/json', `a JSON string is published as text: ${JSON.stringify(lpm[1])}`);
    // ping
    eq(await op(h, { op: 'ping', ref: 'p1' }), { type: 'ok', ref: 'p1' }, 'ping ack');
    // errors keep the connection open
    const e1 = await op(h, { op: 'sub', topic: 'bad..topic', ref: 'e1' });
    eq([e1.type, e1.ref, e1.code], ['error', 'e1', 'invalid_topic'], `sub to an invalid topic: ${JSON.stringify(e1)}`);
    assert(typeof e1.message === 'string' && e1.message, 'error without a message');
    const e2 = await op(h, { op: 'pub', topic: 'chat.*', data: 1, ref: 'e2' });
    eq([e2.type, e2.ref, e2.code], ['error', 'e2', 'invalid_topic'], `pub to a wildcard: ${JSON.stringify(e2)}`);
    // unsub: nothing more arrives for chat.*
    eq(await op(h, { op: 'unsub', topic: 'chat.*', ref: 'u1' }), { type: 'ok', ref: 'u1' }, 'unsub ack');
    const nBefore = h.json.filter((j) => j && j.type === 'msg').length;
    await publishOk(b.base, 'chat.room1', 'after unsub');
    eq(await op(h, { op: 'ping', ref: 'p2' }), { type: 'ok', ref: 'p2' }, 'ping ack after unsub');
    await sleep(200);
    eq(h.json.filter((j) => j && j.type === 'msg').length, nBefore, 'messages after unsub');
    assert(!h.close, `connection closed: ${JSON.stringify(h.close)}`);
  });

  t.test(`multi-topic /sub?topic=A&topic=B in raw and rt.v1 mode: both topics delivered ${tag}`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const raw = await ws(c, b.base, '/sub?topic=iop.m1&topic=iop.m2', { deflate });
    const v1 = await ws(c, b.base, '/sub?topic=iop.m1&topic=iop.m2', { deflate, protocols: ['rt.v1'] });
    eq(v1.ws.protocol, 'rt.v1', 'selected subprotocol');
    await sleep(100);
    const i1 = await publishOk(b.base, 'iop.m1', 'one');
    await publishOk(b.base, 'iop.m3', 'not subscribed');
    const i2 = await publishOk(b.base, 'iop.m2', 'two');
    await raw.waitFor((x) => x.msgs.length >= 2, 5000, 'raw: 2 messages');
    await v1.waitFor((x) => x.json.filter((j) => j && j.type === 'msg').length >= 2, 5000, 'rt.v1: 2 messages');
    await sleep(150);
    eq(raw.msgs.map((m) => m.text), ['one', 'two'], 'raw multi-topic payloads');
    eq(v1.json.filter((j) => j && j.type === 'msg').map((m) => [m.id, m.topic, m.data]), [[i1, 'iop.m1', 'one'], [i2, 'iop.m2', 'two']], 'rt.v1 multi-topic envelopes');
  });

  t.test(`rt.v1 via subprotocol on /sub/{topic}: the path topic is subscribed at connect ${tag}`, async (c) => {
    const b = await c.broker({ config: cfg() });
    const h = await ws(c, b.base, '/sub/iop.v1path', { deflate, protocols: ['rt.v1'] });
    eq(h.ws.protocol, 'rt.v1', 'selected subprotocol');
    await sleep(100);
    const id = await publishOk(b.base, 'iop.v1path', 'direct');
    await h.waitFor((x) => x.json.some((j) => j && j.type === 'msg'), 5000, 'the msg');
    const m = h.json.find((j) => j && j.type === 'msg');
    eq([m.id, m.topic, m.data], [id, 'iop.v1path', 'direct'], 'msg on the path topic');
  });
}

t.test('raw resume: ?since=, ?lastEventId= and Last-Event-ID deliver exactly the missed messages in order, then live', async (c) => {
  const b = await c.broker({ config: cfg() });
  for (const [how, mk] of [
    ['since', (id) => ({ path: `/sub/iop.res1?since=${encodeURIComponent(id)}` })],
    ['lastEventId', (id) => ({ path: `/sub/iop.res1?lastEventId=${encodeURIComponent(id)}` })],
    ['Last-Event-ID', (id) => ({ path: '/sub/iop.res1', headers: { 'Last-Event-ID': id } })],
  ]) {
    const first = await ws(c, b.base, '/sub/iop.res1', { deflate: how !== 'since' });
    await sleep(50);
    const ids = [];
    const live = [];
    for (let i = 0; i < 3; i++) { const p = `${how}-seen-${i}`; ids.push(await publishOk(b.base, 'iop.res1', p)); live.push(p); }
    await first.waitFor((x) => x.msgs.length >= 3, 5000, '3 live');
    eq(first.msgs.map((m) => m.text), live, `${how}: live messages before the disconnect`);
    first.ws.close(1000);
    await first.closed();
    eq(first.close.code, 1000, `${how}: close code after a client close`);
    const missed = [];
    for (let i = 0; i < 5; i++) { const p = `${how}-missed-${i}`; await publishOk(b.base, 'iop.res1', p); missed.push(p); }
    const o = mk(ids[2]);
    const again = await ws(c, b.base, o.path, { headers: o.headers || {}, deflate: how === 'since' });
    await again.waitFor((x) => x.msgs.length >= 5, 5000, `${how}: the 5 missed`);
    const livePay = `${how}-live-after`;
    await publishOk(b.base, 'iop.res1', livePay);
    await again.waitFor((x) => x.msgs.length >= 6, 5000, `${how}: live after replay`);
    await sleep(150);
    eq(again.msgs.map((m) => m.text), [...missed, livePay], `${how}: replay then live (exactly once, in order)`);
    again.end();
  }
});

t.test('rt.v1 resume: replay comes before the sub ok, exactly once, then live; unsub of a resumed sub', async (c) => {
  const b = await c.broker({ config: cfg() });
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(await publishOk(b.base, i % 2 ? 'iop.r.a' : 'iop.r.b', `m${i}`));
  const h = await ws(c, b.base, '/ws', { deflate: true });
  eq(h.ws.protocol, '', '/ws without an offered subprotocol selects none (and is rt.v1)');
  const ok = await op(h, { op: 'sub', topic: 'iop.r.*', since: ids[2], ref: 'rs' });
  eq(ok, { type: 'ok', ref: 'rs' }, 'sub with since: ack');
  const iOk = h.json.findIndex((j) => j && j.type === 'ok' && j.ref === 'rs');
  const replay = h.json.slice(0, iOk).filter((j) => j && j.type === 'msg');
  eq(replay.map((m) => m.id), ids.slice(3), 'replayed ids before the ok (wildcard, one cursor across topics)');
  eq(replay.map((m) => m.data), ['m3', 'm4', 'm5', 'm6', 'm7'], 'replayed payloads');
  assert(!h.json.some((j) => j && j.type === 'gap'), `a gap notice for a retained cursor: ${JSON.stringify(h.json)}`);
  const live = await publishOk(b.base, 'iop.r.a', 'live');
  await h.waitFor((x) => x.json.filter((j) => j && j.type === 'msg').length >= 6, 5000, 'live after replay');
  await sleep(150);
  eq(h.json.filter((j) => j && j.type === 'msg').map((m) => m.id), [...ids.slice(3), live], 'replay then live, no duplicate at the seam');
  eq(await op(h, { op: 'unsub', topic: 'iop.r.*', ref: 'us' }), { type: 'ok', ref: 'us' }, 'unsub of the resumed subscription');
  await publishOk(b.base, 'iop.r.b', 'after unsub');
  eq(await op(h, { op: 'ping', ref: 'pg' }), { type: 'ok', ref: 'pg' }, 'ping after unsub');
  await sleep(150);
  eq(h.json.filter((j) => j && j.type === 'msg').length, 6, 'messages after unsub');
});

t.test('rt.v1: a replay is never cut short by an earlier subscription that started later; nothing comes twice', async (c) => {
  const b = await c.broker({ config: cfg() });
  const S = await publishOk(b.base, 'zz.a', 'a0');
  const ids = {};
  for (const name of ['a1', 'b1', 'a2', 'b2', 'a3', 'b3']) ids[name] = await publishOk(b.base, `zz.${name[0]}`, name);
  const msgs = (h) => h.json.filter((j) => j && j.type === 'msg').map((m) => m.data);
  const sub = async (h, o) => eq((await op(h, { op: 'sub', ...o })).type, 'ok', `sub ${JSON.stringify(o)}`);
  // live zz.a first: it delivered none of the retained zz.a messages, so the zz.* replay owes all of them
  const h = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  await sub(h, { topic: 'zz.a' });
  await sub(h, { topic: 'zz.*', since: S });
  eq(msgs(h), ['a1', 'b1', 'a2', 'b2', 'a3', 'b3'], 'live zz.a, then zz.* since S: every retained message after S');
  // zz.a resumed from a2 replays a3; zz.* since S then owes the rest, but not a3 again
  const k = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  await sub(k, { topic: 'zz.a', since: ids.a2 });
  await sub(k, { topic: 'zz.*', since: S });
  eq(msgs(k), ['a3', 'a1', 'b1', 'a2', 'b2', 'b3'], 'zz.a since a2, then zz.* since S: each retained message once');
  // the same pattern again from an earlier point: the part before the first start, once
  const m = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  await sub(m, { topic: 'zz.b', since: ids.b2 });
  await sub(m, { topic: 'zz.b', since: S });
  await sub(m, { topic: 'zz.*', since: S });
  eq(msgs(m), ['b3', 'b1', 'b2', 'a1', 'a2', 'a3'], 'zz.b since b2, zz.b since S, zz.* since S');
  // live messages after the replays: once per connection
  await publishOk(b.base, 'zz.a', 'a4');
  for (const [name, x] of [['h', h], ['k', k], ['m', m]]) {
    await x.waitFor((y) => msgs(y).length >= 7, 5000, `${name}: the live message`);
    await sleep(100);
    eq(msgs(x).slice(6), ['a4'], `${name}: the live message once`);
  }
});

t.test('gap: a cursor from a foreign epoch and one older than the retained history get {"type":"gap"} first, then what is retained', async (c) => {
  const b = await c.broker({ config: cfg({ history: { max_messages: 3 } }) });
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(await publishOk(b.base, 'iop.gap', `g${i}`));
  const foreign = `zz${epochOf(ids[0]).slice(0, 6)}x:2`;
  const h = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  const ok = await op(h, { op: 'sub', topic: 'iop.gap', since: foreign, ref: 'g1' });
  eq(ok, { type: 'ok', ref: 'g1' }, 'sub with a foreign cursor: ack');
  const upTo = h.json.slice(0, h.json.findIndex((j) => j && j.type === 'ok' && j.ref === 'g1'));
  eq(upTo[0], { type: 'gap', topic: 'iop.gap', from: foreign }, 'first frame: the gap notice');
  eq(upTo.slice(1).map((m) => m.type === 'msg' && m.id), ids.slice(3), 'after the gap: the 3 retained messages');
  // older than the retained history (max_messages 3): ids[0] is gone
  const h2 = await ws(c, b.base, '/ws', { protocols: ['rt.v1'], deflate: true });
  const ok2 = await op(h2, { op: 'sub', topic: 'iop.gap', since: ids[0], ref: 'g2' });
  eq(ok2.type, 'ok', `sub with an expired cursor: ${JSON.stringify(ok2)}`);
  const upTo2 = h2.json.slice(0, h2.json.findIndex((j) => j && j.type === 'ok' && j.ref === 'g2'));
  eq(upTo2[0], { type: 'gap', topic: 'iop.gap', from: ids[0] }, 'gap notice for an expired cursor');
  eq(upTo2.slice(1).map((m) => m.id), ids.slice(3), 'retained messages after the gap');
  // a retained cursor: no gap
  const h3 = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  await op(h3, { op: 'sub', topic: 'iop.gap', since: ids[4], ref: 'g3' });
  eq(h3.json.filter((j) => j && j.type !== 'ok').map((j) => j.type === 'msg' ? j.id : j), [ids[5]], 'retained cursor: no gap, only the newer message');
  // the gap names the pattern subscribed to
  const h4 = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  await op(h4, { op: 'sub', topic: 'iop.>', since: foreign, ref: 'g5' });
  eq(h4.json[0], { type: 'gap', topic: 'iop.>', from: foreign }, 'gap notice of a wildcard subscription');
  // a malformed cursor is an error, not a silent start-now
  const bad = await op(h3, { op: 'sub', topic: 'iop.gap', since: 'not an id', ref: 'g4' });
  eq([bad.type, bad.ref], ['error', 'g4'], `sub with a malformed since: ${JSON.stringify(bad)}`);
});

t.test('SIGTERM: raw and rt.v1 clients (with and without deflate) see close 1001; the broker exits 0', async (c) => {
  const b = await c.broker({ config: cfg() });
  const hs = [];
  for (const deflate of [false, true]) {
    hs.push(await ws(c, b.base, '/sub/iop.sd', { deflate }));
    hs.push(await ws(c, b.base, '/sub/iop.sd', { deflate, protocols: ['rt.v1'] }));
    const v = await ws(c, b.base, '/ws', { deflate });
    await op(v, { op: 'sub', topic: 'iop.>', ref: 's' });
    hs.push(v);
  }
  await publishOk(b.base, 'iop.sd', 'before shutdown');
  await waitFor(() => hs.every((h) => h.msgs.some((m) => m.text === 'before shutdown' || (m.json && m.json.data === 'before shutdown'))), 5000, 'every client got the message');
  const res = await b.stop({ timeout: 10000 });
  await waitFor(() => hs.every((h) => h.close), 5000, 'every client saw a close', () => hs.map((h) => JSON.stringify(h.close)).join(' '));
  eq(hs.map((h) => h.close.code), hs.map(() => 1001), 'close codes seen by the clients');
  eq([res.code, res.signal, !!res.killed], [0, null, false], 'broker exit after SIGTERM');
});

t.test('auth refusal: with auth.anonymous.subscribe empty, raw and rt.v1 clients are upgraded then closed with 4001', async (c) => {
  const b = await c.broker({ config: cfg({ auth: { anonymous: { subscribe: [], publish: ['>'] } } }) });
  for (const [path, protocols] of [['/sub/iop.auth', undefined], ['/sub/iop.auth', ['rt.v1']], ['/sub/iop.auth', ['rt.raw']]]) {
    for (const deflate of [false, true]) {
      const h = openWs(b.base, path, { protocols, deflate });
      c.defer(() => h.end());
      const close = await h.closed();
      assert(h.opened, `${path} ${protocols || ''}: no upgrade (close ${JSON.stringify(close)}); the refusal must come after the upgrade`);
      eq(close.code, 4001, `${path} ${protocols || ''} deflate ${deflate}: close code`);
      assert(close.reason.length > 0, 'close 4001 without a reason');
    }
  }
  // publishing stays open, and no refused subscriber got it
  await publishOk(b.base, 'iop.auth', 'x');
});

t.test('oversize client messages: close 1009 (raw and rt.v1; with deflate the small compressed frame still counts inflated)', async (c) => {
  const b = await c.broker({ config: cfg({ limits: { max_message_bytes: 65536 } }) });
  for (const [path, protocols, deflate] of [['/sub/iop.big', undefined, false], ['/sub/iop.big', undefined, true], ['/ws', ['rt.v1'], false], ['/ws', ['rt.v1'], true]]) {
    const h = await ws(c, b.base, path, { protocols, deflate });
    // just at the limit: accepted (raw: ignored; rt.v1: a pub of a 65536-byte JSON text → error or ok, but no close)
    if (path === '/ws') {
      const ok = await op(h, { op: 'ping', ref: 'x'.repeat(100) });
      eq(ok.type, 'ok', 'ping before the oversize message');
    } else {
      h.ws.send(Buffer.alloc(65536, 0x61));
      await sleep(200);
      assert(!h.close, `a message of exactly limits.max_message_bytes closed the connection: ${JSON.stringify(h.close)}`);
    }
    h.ws.send(Buffer.alloc(65537, 0x61), { binary: !protocols });
    const close = await h.closed();
    eq(close.code, 1009, `${path} ${protocols || 'raw'} deflate ${deflate}: close code for 65537 bytes`);
  }
});

t.test('raw mode without echo (the default): client frames are validated though ignored — bad UTF-8 1007, unmasked 1002, oversize 1009', async (c) => {
  const b = await c.broker({ config: cfg({ limits: { max_message_bytes: 65536 } }) });
  const cases = [
    ['text that is not UTF-8', (x) => x.text(Buffer.from([0x61, 0xed, 0xa0, 0x80])), 1007],
    ['unmasked frame', (x) => x.text('hi', { mask: false }), 1002],
    ['reserved opcode 5', (x) => x.send(5, 'x'), 1002],
    ['binary of 65537 bytes', (x) => x.binary(Buffer.alloc(65537)), 1009],
  ];
  for (const [what, act, code] of cases) {
    const x = await wsConnect(b.port, { path: '/sub/iop.val' });
    c.defer(() => x.destroy());
    eq(x.status, 101, 'handshake');
    await x.text('valid text is ignored');
    await x.binary(Buffer.from([0xff]));
    await act(x);
    await x.waitFor((y) => y.closeFrame || y.ended, 5000, `close after ${what}`);
    assert(x.closeFrame, `${what}: connection dropped without a close frame`);
    eq(x.closeFrame.code, code, `${what}: close code`);
    eq(x.messages.length, 0, `${what}: data frames sent back with echo off`);
  }
});

t.test('rt.v1: malformed input gets an error (or a close with a reason), never silence; unknown op with a ref gets an error with that ref', async (c) => {
  const b = await c.broker({ config: cfg() });
  const h = await ws(c, b.base, '/ws', { protocols: ['rt.v1'] });
  const e = await op(h, { op: 'nope', topic: 'a.b', ref: 'z1' });
  eq([e.type, e.ref], ['error', 'z1'], `unknown op: ${JSON.stringify(e)}`);
  assert(typeof e.code === 'string' && e.code && typeof e.message === 'string', `error without code/message: ${JSON.stringify(e)}`);
  const e2 = await op(h, { op: 'sub', ref: 'z2' });
  eq([e2.type, e2.ref], ['error', 'z2'], `sub without a topic: ${JSON.stringify(e2)}`);
  for (const garbage of ['not json', '', '[1,2]', '{"op":', '"just a string"']) {
    const n = h.msgs.length;
    h.send(garbage);
    h.send({ op: 'ping', ref: 'after' });
    await h.waitFor((x) => x.close || x.msgs.slice(n).some((m) => m.json && m.json.ref === 'after'), 5000, `an answer after ${JSON.stringify(garbage)}`);
    if (h.close) {
      assert([1003, 1007, 1008, 1002].includes(h.close.code) && h.close.reason, `closed after ${JSON.stringify(garbage)} with ${JSON.stringify(h.close)}`);
      c.info(`rt.v1 closes on ${JSON.stringify(garbage)}: ${JSON.stringify(h.close)}`);
      return;
    }
    const answers = h.msgs.slice(n).map((m) => m.json);
    assert(answers.some((j) => j && j.type === 'error'), `no error frame for ${JSON.stringify(garbage)}: ${JSON.stringify(answers)}`);
  }
  assert(b.alive(), 'broker died');
});

await t.run();

// Socket.IO transport (plugins/socketio) with the real socket.io-client v4: connect with a token, polling only,
// WebSocket only, the upgrade, subscribe/publish/ack, refusals (CONNECT_ERROR), connection state recovery, heartbeats.
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { suite, assert, eq, publishOk, sleep, withTimeout, hs256Token, trunc, mkTemp, ROOT } from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 100000 });
const SECRET = 'sio-test-secret-0123456789abcdef';

function sioBroker(c, extra = {}) {
  return c.broker({
    config: {
      plugins: { load: ['sse', 'longpoll', 'websocket', 'ndjson', 'socketio'] },
      socketio: { ping_interval: '400ms', ping_timeout: '300ms', ...(extra.socketio || {}) },
      auth: { anonymous: { subscribe: [], publish: [] }, jwt: { secret: SECRET } },
      ...(extra.config || {}),
    },
  });
}

const token = (rt) => hs256Token(SECRET, { sub: 'u1', rt: rt || { sub: ['chat.>'], pub: ['chat.>'] } });

function connect(b, opts = {}) {
  const s = io(b.base, { reconnection: false, timeout: 3000, forceNew: true, ...opts });
  return s;
}

function once(s, ev, ms = 4000) {
  return withTimeout(new Promise((r) => s.once(ev, (...a) => r(a))), ms, `socket event ${ev}`);
}

/** The first ev whose arguments pass keep (others, e.g. one's own presence join arriving late, are passed over). */
function onceWhere(s, ev, keep, ms = 4000) {
  return withTimeout(new Promise((r) => {
    const f = (...a) => { if (keep(...a)) { s.off(ev, f); r(a); } };
    s.on(ev, f);
  }), ms, `socket event ${ev}`);
}

function emitAck(s, ...args) {
  return withTimeout(s.timeout(4000).emitWithAck(...args), 5000, `ack of ${args[0]}`);
}

async function roundTrip(c, b, opts, what) {
  // retained before the subscription: a subscribe without since must not replay it
  await publishOk(b.base, 'chat.room1', 'old', { headers: { Authorization: `Bearer ${token()}` } });
  const s = connect(b, { auth: { token: token() }, ...opts });
  try {
    await once(s, 'connect');
    const sub = await emitAck(s, 'subscribe', 'chat.room1');
    assert(sub.ok === true && typeof sub.cursor === 'string', `${what}: subscribe ack ${JSON.stringify(sub)}`);
    const got = once(s, 'message');
    const pub = await emitAck(s, 'publish', 'chat.room1', { text: 'hi' });
    assert(/^[A-Za-z0-9_-]+:\d+$/.test(pub.id || ''), `${what}: publish ack ${JSON.stringify(pub)}`);
    const [data, meta, offset] = await got;
    eq(data, { text: 'hi' }, `${what}: data`);
    eq(meta, { id: pub.id, topic: 'chat.room1' }, `${what}: meta`);
    // the rtbroker id; on a WebSocket followed by the signed list of emitted topics (recovery on any node)
    const [oid, ...tok] = offset.split('~');
    eq(oid, pub.id, `${what}: the recovery offset starts with the rtbroker id`);
    assert(tok.length === 0 || (tok.length === 2 && /^[0-9a-f]{32}$/.test(tok[0]) && tok[1] === 'chat.room1'), `${what}: offset ${offset}`);
    // a message published over HTTP arrives too, with its event name
    const ev = once(s, 'greet');
    const id = await publishOk(b.base, 'chat.room1', 'plain text', { headers: { 'X-Event': 'greet', Authorization: `Bearer ${token()}` } });
    const [d2, m2] = await ev;
    eq([d2, m2.id], ['plain text', id], `${what}: HTTP publish delivered as event greet`);
    return s.io.engine.transport.name;
  } finally {
    s.close();
  }
}

t.test('WebSocket only: connect with a token, subscribe, publish with ack, messages with meta', async (c) => {
  const b = await sioBroker(c);
  const tr = await roundTrip(c, b, { transports: ['websocket'] }, 'websocket');
  eq(tr, 'websocket', 'transport');
});

t.test('polling only: the same over HTTP long-polling', async (c) => {
  const b = await sioBroker(c);
  const tr = await roundTrip(c, b, { transports: ['polling'] }, 'polling');
  eq(tr, 'polling', 'transport');
});

t.test('default client: polling, then the upgrade to WebSocket keeps the socket and its subscriptions', async (c) => {
  const b = await sioBroker(c);
  const s = connect(b, { auth: { token: token(), topics: ['chat.up'] } });
  let first = null;
  const upgraded = new Promise((r) => s.io.on('open', () => { first = s.io.engine.transport.name; s.io.engine.once('upgrade', r); }));
  try {
    await once(s, 'connect');
    const sub = await emitAck(s, 'subscribe', 'chat.up2');
    assert(sub.ok, `subscribe ack ${JSON.stringify(sub)}`);
    await withTimeout(upgraded, 4000, 'upgrade');
    eq(first, 'polling', 'first transport');
    eq(s.io.engine.transport.name, 'websocket', 'transport after the upgrade');
    for (const topic of ['chat.up', 'chat.up2']) {
      const got = once(s, 'message');
      const id = await publishOk(b.base, topic, '{"n":1}', { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token()}` } });
      const [data, meta] = await got;
      eq([data, meta.id, meta.topic], [{ n: 1 }, id, topic], 'message after the upgrade (subscription moved to the WebSocket)');
    }
    // the upgraded session no longer takes polls
    const r = await fetch(`${b.base}/socket.io/?EIO=4&transport=polling&sid=${s.io.engine.id}`);
    eq([r.status, await r.json()], [400, { code: 3, message: 'Bad request' }], 'poll on an upgraded session');
  } finally {
    s.close();
  }
});

t.test('refusals: no token, a bad token, forbidden auth.topics give CONNECT_ERROR; forbidden subscribe and publish give an error ack', async (c) => {
  const b = await sioBroker(c);
  for (const [what, auth, want] of [
    ['no token', {}, 'unauthorized'],
    ['bad token', { token: 'x.y.z' }, 'unauthorized'],
    ['forbidden topics', { token: token(), topics: ['admin.x'] }, 'forbidden'],
  ]) {
    for (const transports of [['websocket'], ['polling']]) {
      const s = connect(b, { auth, transports });
      try {
        const [err] = await once(s, 'connect_error');
        eq(err.data && err.data.error, want, `${what} over ${transports}: CONNECT_ERROR data (message ${err.message})`);
        assert(!s.connected, `${what}: not connected`);
      } finally { s.close(); }
    }
  }
  const s = connect(b, { auth: { token: token({ sub: ['chat.>'], pub: [] }) }, transports: ['websocket'] });
  try {
    await once(s, 'connect');
    eq((await emitAck(s, 'subscribe', 'admin.>')).error, 'forbidden', 'subscribe outside the rights');
    eq((await emitAck(s, 'publish', 'chat.x', 'hi')).error, 'forbidden', 'publish without publish rights');
    eq((await emitAck(s, 'subscribe', 'bad..topic')).error, 'invalid_topic', 'invalid topic');
    eq((await emitAck(s, 'nope', 1)).error, 'unknown_event', 'unknown event');
    assert(s.connected, 'refusals keep the socket connected');
  } finally { s.close(); }
});

t.test('presence (rt.join, rt.leave, the snapshot) and ephemeral publishes', async (c) => {
  const b = await sioBroker(c);
  const a = connect(b, { auth: { token: hs256Token(SECRET, { sub: 'alice', rt: { sub: ['chat.>'], pub: ['chat.>'] } }) }, transports: ['websocket'] });
  const p = connect(b, { auth: { token: hs256Token(SECRET, { sub: 'bob', rt: { sub: ['chat.>'], pub: ['chat.>'] } }) }, transports: ['polling'] });
  try {
    await Promise.all([once(a, 'connect'), once(p, 'connect')]);
    assert((await emitAck(a, 'subscribe', { topic: 'chat.pr', presence: true })).ok, 'alice subscribes with presence');
    // alice's own join may reach her after her ack, in a later read: the one wanted is bob's
    const join = onceWhere(a, 'rt.join', (j) => j && j.user !== 'alice');
    assert((await emitAck(p, 'subscribe', { topic: 'chat.pr', presence: true })).ok, 'bob subscribes with presence');
    const [j, jm] = await join;
    eq([j.user, jm.topic], ['bob', 'chat.pr'], `alice sees bob join: ${JSON.stringify(j)}`);
    const snap = await emitAck(a, 'presence', 'chat.pr');
    eq(snap.users.map((u) => u.user).sort(), ['alice', 'bob'], `snapshot ${JSON.stringify(snap)}`);
    const eph = once(a, 'message');
    const ack = await emitAck(p, 'publish', 'chat.pr', { typing: true }, { ephemeral: true });
    assert(!ack.error, `ephemeral publish ack ${JSON.stringify(ack)}`);
    const [d, m, offset] = await eph;
    eq([d, m, offset], [{ typing: true }, { topic: 'chat.pr', ephemeral: true }, undefined], 'ephemeral: no id, no offset');
  } finally { a.close(); p.close(); }
});

t.test('token lifetime on a WebSocket: rt.expiring before exp; emit("auth") refreshes, and drops what the new token does not cover', async (c) => {
  const b = await sioBroker(c);
  const now = Math.floor(Date.now() / 1000);
  const short = hs256Token(SECRET, { sub: 'u1', exp: now + 20, rt: { sub: ['chat.>'], pub: [] } });
  const s = connect(b, { auth: { token: short }, transports: ['websocket'] });
  try {
    const expiring = once(s, 'rt.expiring', 5000);
    await once(s, 'connect');
    assert((await emitAck(s, 'subscribe', 'chat.>')).ok && (await emitAck(s, 'subscribe', 'chat.a')).ok, 'subscribed');
    const [e] = await expiring;
    assert(e.in_s > 0 && e.in_s <= 20, `rt.expiring ${JSON.stringify(e)}`);
    const dropped = once(s, 'rt.dropped');
    const r = await emitAck(s, 'auth', hs256Token(SECRET, { sub: 'u1', rt: { sub: ['chat.a'], pub: [] } }));
    eq(r, { ok: true }, 'auth ack');
    eq((await dropped)[0], { topic: 'chat.>' }, 'the dropped subscription');
    const got = once(s, 'message');
    const id = await publishOk(b.base, 'chat.a', 'still here', { headers: { Authorization: `Bearer ${token()}` } });
    eq((await got)[1].id, id, 'chat.a still delivered');
    eq((await emitAck(s, 'auth', 'not.a.token')).error, 'unauthorized', 'a bad refresh');
  } finally { s.close(); }
});

// Drops the transport under the client (as a network failure would); the manager reconnects and recovers.
async function dropAndRecover(c, b, s, publishWhileAway) {
  const reconnected = once(s, 'connect', 8000);
  s.io.engine.close();
  const ids = await publishWhileAway();
  await reconnected;
  return ids;
}

t.test('connection state recovery: a reconnect gets what it missed, in order, and socket.recovered is true', async (c) => {
  const b = await sioBroker(c);
  for (const transports of [['websocket'], ['polling']]) {
    const s = connect(b, { auth: { token: token() }, transports, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    try {
      await once(s, 'connect');
      assert(!s.recovered, 'first connect is not a recovery');
      assert((await emitAck(s, 'subscribe', 'chat.rec')).ok, 'subscribe');
      const first = once(s, 'message');
      await emitAck(s, 'publish', 'chat.rec', 'before');
      await first;
      const seen = [];
      s.on('message', (d, m) => seen.push([d, m.id]));
      const missed = await dropAndRecover(c, b, s, async () => {
        const out = [];
        for (let i = 0; i < 3; i++) out.push(await publishOk(b.base, 'chat.rec', `missed ${i}`, { headers: { Authorization: `Bearer ${token()}` } }));
        return out;
      });
      eq(s.recovered, true, `${transports}: socket.recovered`);
      await sleep(300);
      eq(seen, missed.map((id, i) => [`missed ${i}`, id]), `${transports}: the missed messages, once each, in order`);
      const live = once(s, 'message');
      const id = await publishOk(b.base, 'chat.rec', 'live', { headers: { Authorization: `Bearer ${token()}` } });
      eq((await live)[1].id, id, `${transports}: live after the recovery`);
    } finally { s.close(); }
  }
});

t.test('recovery past the history: a gap, recovered is false', async (c) => {
  const b = await sioBroker(c, { config: { history: { max_messages: 2 } } });
  const s = connect(b, { auth: { token: token(), topics: ['chat.gap'] }, transports: ['websocket'], reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  try {
    await once(s, 'connect');
    const first = once(s, 'message');
    await publishOk(b.base, 'chat.gap', 'seen', { headers: { Authorization: `Bearer ${token()}` } });
    await first;
    const gaps = [];
    s.on('rt.gap', (g) => gaps.push(g));
    await dropAndRecover(c, b, s, async () => {
      for (let i = 0; i < 5; i++) await publishOk(b.base, 'chat.gap', `m${i}`, { headers: { Authorization: `Bearer ${token()}` } });
    });
    eq(s.recovered, false, 'socket.recovered after a gap');
    await sleep(200);
    eq(gaps.length, 1, `rt.gap events ${JSON.stringify(gaps)}`);
  } finally { s.close(); }
});

t.test('heartbeats: a client stays connected over many ping intervals; a peer that never pongs is dropped', async (c) => {
  const b = await sioBroker(c);
  const s = connect(b, { auth: { token: token() } });
  let gone = null;
  s.on('disconnect', (r) => { gone = r; });
  try {
    await once(s, 'connect');
    await sleep(2500); // ping_interval 400ms, ping_timeout 300ms
    eq(gone, null, 'disconnect during heartbeats');
  } finally { s.close(); }
  // a raw WebSocket that never answers "2"
  const ws = new WebSocket(`ws://127.0.0.1:${b.port}/socket.io/?EIO=4&transport=websocket`);
  const msgs = [];
  ws.on('message', (m) => msgs.push(String(m)));
  const t0 = Date.now();
  await withTimeout(new Promise((r) => ws.on('close', r)), 4000, 'close of a silent peer');
  const ms = Date.now() - t0;
  assert(msgs[0].startsWith('0{') && msgs.includes('2'), `handshake then ping: ${trunc(JSON.stringify(msgs))}`);
  assert(ms >= 600 && ms < 2000, `closed after ${ms} ms (ping_interval 400 + ping_timeout 300)`);
  // a polling session that never pongs is gone after the timeout
  const h = await (await fetch(`${b.base}/socket.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(h.slice(1)).sid;
  const p1 = await (await fetch(`${b.base}/socket.io/?EIO=4&transport=polling&sid=${sid}`)).text();
  eq(p1, '2', 'a held poll answers the ping');
  await sleep(1200);
  const r = await fetch(`${b.base}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
  const body = await r.text();
  assert((r.status === 400 && body.includes('Session ID unknown')) || body === '1', `after a missed pong: ${r.status} ${body}`);
});

t.test('bad input gets the protocol errors and the broker stays up', async (c) => {
  const b = await sioBroker(c, { socketio: { max_payload: '4KiB' } });
  const get = async (q, init) => { const r = await fetch(`${b.base}/socket.io/?${q}`, init); return [r.status, await r.text()]; };
  eq(await get('EIO=4&transport=polling&sid=nope'), [400, '{"code":1,"message":"Session ID unknown"}'], 'unknown sid');
  eq(await get('EIO=3&transport=polling'), [400, '{"code":5,"message":"Unsupported protocol version"}'], 'EIO=3');
  eq(await get('EIO=4&transport=carrier-pigeon'), [400, '{"code":0,"message":"Transport unknown"}'], 'transport');
  eq(await get('EIO=4&transport=polling', { method: 'POST', body: '40' }), [400, '{"code":2,"message":"Bad handshake method"}'], 'POST handshake');
  eq(await get('EIO=4&transport=websocket'), [400, '{"code":3,"message":"Bad request"}'], 'websocket without Upgrade');
  const open = async () => JSON.parse((await get('EIO=4&transport=polling'))[1].slice(1)).sid;
  for (const [what, body, status] of [
    ['malformed Socket.IO packet', '4{oops', 400], ['unknown Engine.IO type', '9', 400], ['binary', 'bAQID', 400],
    ['bad JSON event', '42["subscribe",', 400], ['binary event', '451-["x",{"_placeholder":true,"num":0}]', 400],
    ['over maxPayload', '4' + '2["publish","chat.x","' + 'x'.repeat(5000) + '"]', 413],
  ]) {
    const sid = await open();
    const [st] = await get(`EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body });
    eq(st, status, what);
    eq((await get(`EIO=4&transport=polling&sid=${sid}`))[0], 400, `${what}: the session is closed`);
  }
  // WebSocket: a binary frame and a malformed packet close the connection
  for (const [what, send, code] of [['binary frame', Buffer.from([1, 2, 3]), 1003], ['malformed packet', '42[oops', 1002]]) {
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/socket.io/?EIO=4&transport=websocket`);
    await withTimeout(new Promise((r) => ws.once('message', r)), 3000, 'handshake');
    ws.send(send);
    const [got] = await withTimeout(new Promise((r) => ws.on('close', (...a) => r(a))), 3000, `${what}: close`);
    eq(got, code, `${what}: close code`);
  }
  // after all that, a real client still works
  const tr = await roundTrip(c, b, { transports: ['polling'] }, 'after bad input');
  eq(tr, 'polling', 'transport');
});

t.test('the plugin builds out of tree (-std=c11, only the public header) and loads by path; other plugins still take GET only', async (c) => {
  const dir = mkTemp('rtb-sio-oot-');
  for (const [from, to] of [['plugins/socketio', 'socketio'], ['plugins/websocket', 'websocket']]) {
    fs.mkdirSync(path.join(dir, to));
    for (const f of fs.readdirSync(path.join(ROOT, from))) {
      if (to === 'socketio' || f.startsWith('ws_frame.')) fs.copyFileSync(path.join(ROOT, from, f), path.join(dir, to, f));
    }
  }
  const srcs = fs.readdirSync(path.join(dir, 'socketio')).filter((f) => f.endsWith('.c')).map((f) => `socketio/${f}`);
  const r = spawnSync('cc', ['-std=c11', '-O1', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', `-I${ROOT}/include`,
    '-o', 'socketio.so', ...srcs, 'websocket/ws_frame.c', '-lcrypto'], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  eq(r.status, 0, `cc: ${r.stderr}`);
  const b = await c.broker({ config: { plugins: { load: ['longpoll', path.join(dir, 'socketio.so')] } } });
  const h = await fetch(`${b.base}/socket.io/?EIO=4&transport=polling`);
  assert(h.status === 200 && (await h.text()).startsWith('0{"sid":'), 'handshake from the out-of-tree build');
  eq((await fetch(`${b.base}/poll/x.y`, { method: 'POST', body: 'x' })).status, 405, 'POST on a plugin without RT_TRANSPORT_ANY_METHOD');
});

t.run();

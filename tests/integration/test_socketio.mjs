// Socket.IO transport (plugins/socketio) with the real socket.io-client v4: connect with a token, polling only,
// WebSocket only, the upgrade, subscribe/publish/ack, refusals (CONNECT_ERROR), connection state recovery, heartbeats.
import { io } from 'socket.io-client';
import { suite, assert, eq, publishOk, sleep, withTimeout, hs256Token, trunc } from './lib.mjs';

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

function emitAck(s, ...args) {
  return withTimeout(s.timeout(4000).emitWithAck(...args), 5000, `ack of ${args[0]}`);
}

async function roundTrip(c, b, opts, what) {
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
    eq(offset, pub.id, `${what}: the recovery offset is the rtbroker id`);
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

t.run();

// Socket.IO connection state recovery across two brokers on one NATS JetStream: a socket.io-client connected to
// node A, whose node is killed, reconnects to node B and gets exactly what it missed (socket.recovered true),
// because the recovery offset is the rtbroker id and auth.topics names what to resubscribe; topics subscribed with
// emit('subscribe') travel signed in the offset itself, so no node needs to remember them.
import { io } from 'socket.io-client';
import { suite, eq, assert, sleep, withTimeout, hs256Token, publishOk } from './lib.mjs';
import { startNats, natsBroker, killBroker, waitReady } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });
const SECRET = 'sio-nats-secret-0123456789abcdef';
const token = () => hs256Token(SECRET, { sub: 'u1', rt: { sub: ['chat.>'], pub: ['chat.>'] } });
const cfg = {
  plugins: { load: ['websocket', 'socketio'] },
  auth: { anonymous: { subscribe: [], publish: [] }, jwt: { secret: SECRET } },
  presence: { client_secret: 'sio-cluster-mac-secret-0123456789' }, // the same on every node: signs the offsets
};
const pub = (b, topic, data, tok = token()) => publishOk(b.base, topic, data, { headers: { Authorization: `Bearer ${tok}` } });
const emitAck = (s, ...a) => withTimeout(s.emitWithAck(...a), 5000, `ack of ${a[0]}`);
const once = (s, ev, ms = 8000) => withTimeout(new Promise((r) => s.once(ev, (...a) => r(a))), ms, `socket event ${ev}`);

for (const transports of [['websocket'], ['polling']]) {
  t.test(`${transports}: node A killed, the client reconnects to node B and recovers what it missed`, async (c) => {
    const nats = await startNats(c);
    const A = await natsBroker(c, nats.url, cfg);
    const B = await natsBroker(c, nats.url, cfg);
    const s = io(A.base, {
      auth: { token: token(), topics: ['chat.n'] }, transports, forceNew: true,
      reconnectionDelay: 100, reconnectionDelayMax: 300, timeout: 3000,
    });
    try {
      await once(s, 'connect');
      const first = once(s, 'message');
      await publishOk(A.base, 'chat.n', 'on A', { headers: { Authorization: `Bearer ${token()}` } });
      eq((await first)[0], 'on A', 'first message');
      const seen = [];
      s.on('message', (d, m) => seen.push([d, m.id]));
      const reconnected = once(s, 'connect', 15000);
      s.io.uri = B.base; // the load balancer sends the reconnect to another node
      await killBroker(A);
      const missed = [];
      for (let i = 0; i < 3; i++) missed.push(await publishOk(B.base, 'chat.n', `missed ${i}`, { headers: { Authorization: `Bearer ${token()}` } }));
      await reconnected;
      eq(s.recovered, true, 'socket.recovered on node B');
      await sleep(300);
      eq(seen, missed.map((id, i) => [`missed ${i}`, id]), 'what it missed, once each, in order');
      const live = once(s, 'message');
      const id = await publishOk(B.base, 'chat.n', 'live', { headers: { Authorization: `Bearer ${token()}` } });
      eq((await live)[1].id, id, 'live on node B');
      assert(s.io.engine.transport.name === transports[0], 'transport');
    } finally { s.close(); }
  });
}

t.test('websocket: the broker restarts (same address, no memory of the socket) and the client recovers from JetStream', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, cfg);
  const s = io(A.base, {
    auth: { token: token(), topics: ['chat.r'] }, transports: ['websocket'], forceNew: true,
    reconnectionDelay: 200, reconnectionDelayMax: 500, timeout: 3000,
  });
  try {
    await once(s, 'connect');
    const first = once(s, 'message');
    await publishOk(A.base, 'chat.r', 'before', { headers: { Authorization: `Bearer ${token()}` } });
    await first;
    const seen = [];
    s.on('message', (d, m) => seen.push([d, m.id]));
    const reconnected = once(s, 'connect', 20000);
    await killBroker(A);
    // the same address again: a new process listening on A's port as well as its own
    const A2 = await c.broker({ config: { bus: 'nats', nats: { url: [nats.url] }, ...cfg }, listen: async (port) => [`127.0.0.1:${port}`, `127.0.0.1:${A.port}`] });
    c.defer(() => A2.stop({ timeout: 4000 }));
    await waitReady(A2);
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await publishOk(A2.base, 'chat.r', `missed ${i}`, { headers: { Authorization: `Bearer ${token()}` } }));
    await reconnected;
    eq(s.recovered, true, 'socket.recovered after the restart');
    await sleep(300);
    eq(seen, missed.map((id, i) => [`missed ${i}`, id]), 'what it missed, once each, in order');
  } finally { s.close(); }
});

// Two nodes on one JetStream and a WebSocket-only socket on A, connected with a token and no auth.topics.
async function twoNodes(c) {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const s = io(A.base, { auth: { token: token() }, transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300, timeout: 3000 });
  c.defer(() => s.close());
  await once(s, 'connect');
  return { A, B, s };
}

t.test("websocket: topics subscribed with emit('subscribe') come back on node B, from the signed offset", async (c) => {
  const { A, B, s } = await twoNodes(c);
  try {
    eq((await emitAck(s, 'subscribe', 'chat.e')).ok, true, 'subscribe chat.e');
    eq((await emitAck(s, 'subscribe', 'chat.f')).ok, true, 'subscribe chat.f');
    const first = once(s, 'message');
    await pub(A, 'chat.e', 'on A');
    eq((await first)[0], 'on A', 'first message');
    // subscribed after the last message: only the rt.offset event carries it
    eq((await emitAck(s, 'subscribe', 'chat.g')).ok, true, 'subscribe chat.g');
    await sleep(100);
    const seen = [];
    s.on('message', (d, m) => seen.push([d, m.topic, m.id]));
    const reconnected = once(s, 'connect', 15000);
    s.io.uri = B.base; // the reconnect lands on another node, which never saw this socket
    await killBroker(A);
    const sent = [['m0', 'chat.e'], ['m1', 'chat.g'], ['m2', 'chat.f'], ['m3', 'chat.x']];
    const ids = [];
    for (const [d, topic] of sent) ids.push(await pub(B, topic, d));
    await reconnected;
    eq(s.recovered, true, 'socket.recovered on node B');
    await sleep(300);
    eq(seen, sent.slice(0, 3).map(([d, topic], i) => [d, topic, ids[i]]), 'what it missed on its three topics, once each, in order');
    const live = once(s, 'message');
    const id = await pub(B, 'chat.g', 'live');
    eq((await live)[1].id, id, 'live on node B');

    // tampered: the offset's topic list widened to chat.> (its MAC no longer matches): refused, nothing resubscribed
    const off = s._lastOffset;
    assert(typeof off === 'string' && off.split('~').length === 3, `an offset with a token: ${off}`);
    const [oid, mac, list] = off.split('~');
    assert(list.split(',').sort().join() === 'chat.e,chat.f,chat.g', `the token lists the emitted topics: ${list}`);
    const refusal = once(s, 'rt.recovery', 15000);
    const again = once(s, 'connect', 15000);
    s._lastOffset = `${oid}~${mac}~chat.>`;
    s.io.engine.close();
    await again;
    eq(s.recovered, false, 'a tampered offset does not recover');
    eq((await refusal)[0].error, 'invalid_offset', 'the refusal is reported');
    const after = [];
    s.on('message', (d) => after.push(d));
    await pub(B, 'chat.e', 'not for it');
    await pub(B, 'chat.z', 'nor this');
    await sleep(300);
    eq(after, [], 'no subscription survives a tampered offset');
  } finally { s.close(); }
});

t.test('websocket: on recovery the new token is checked again; a topic it no longer allows is dropped and reported', async (c) => {
  const { A, B, s } = await twoNodes(c);
  try {
    eq((await emitAck(s, 'subscribe', 'chat.ok')).ok, true, 'subscribe chat.ok');
    eq((await emitAck(s, 'subscribe', 'chat.no')).ok, true, 'subscribe chat.no');
    const first = once(s, 'message');
    await pub(A, 'chat.ok', 'first');
    await first;
    const seen = [];
    s.on('message', (d) => seen.push(d));
    const dropped = once(s, 'rt.dropped', 15000);
    const reconnected = once(s, 'connect', 15000);
    s.auth = { token: hs256Token(SECRET, { sub: 'u1', rt: { sub: ['chat.ok'] } }) };
    s.io.uri = B.base;
    await killBroker(A);
    await pub(B, 'chat.no', 'forbidden now');
    await pub(B, 'chat.ok', 'allowed');
    await reconnected;
    eq(s.recovered, true, 'recovered what is still allowed');
    eq((await dropped)[0].topic, 'chat.no', 'the refused topic is reported');
    await sleep(300);
    eq(seen, ['allowed'], 'only the allowed topic');
  } finally { s.close(); }
});

t.run();

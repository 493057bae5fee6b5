// Socket.IO connection state recovery across two brokers on one NATS JetStream: a socket.io-client connected to
// node A, whose node is killed, reconnects to node B and gets exactly what it missed (socket.recovered true),
// because the recovery offset is the rtbroker id and auth.topics names what to resubscribe.
import { io } from 'socket.io-client';
import { suite, eq, assert, sleep, withTimeout, hs256Token, publishOk } from './lib.mjs';
import { startNats, natsBroker, killBroker, waitReady } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });
const SECRET = 'sio-nats-secret-0123456789abcdef';
const token = () => hs256Token(SECRET, { sub: 'u1', rt: { sub: ['chat.>'], pub: ['chat.>'] } });
const cfg = {
  plugins: { load: ['websocket', 'socketio'] },
  auth: { anonymous: { subscribe: [], publish: [] }, jwt: { secret: SECRET } },
};
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

t.run();

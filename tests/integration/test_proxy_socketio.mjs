// Backend hooks on the Socket.IO transport, with the real socket.io-client and a real backend in this process: the
// session cookie (sent with extraHeaders on polling and WebSocket) becomes the socket's identity, asked once per
// Engine.IO session however many polls it makes; refusals are CONNECT_ERRORs with the backend's code; subscribe
// (the event, auth.topics, the topics a WebSocket upgrade takes over) waits for the backend's yes per topic, with its
// reason in the ack; publish is asked too; a backend that is down gets the deny policy.
import { io } from 'socket.io-client';
import { hookBackend } from './hookslib.mjs';
import { suite, assert, eq, publishOk, sleep, waitFor, withTimeout, SLOW } from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });
const W = 5000 * SLOW;

const revoked = new Set(); // topics the backend refuses from now on
const backend = (c) => hookBackend(c, (ev, reply) => {
  if (ev.event === 'connect') {
    const session = /(?:^|;\s*)session=([^;]*)/.exec(ev.headers.cookie || '')?.[1];
    if (!session) return reply({ allow: false, code: 401, reason: 'log in first' });
    if (session === 'banned') return reply({ allow: false, code: 403, reason: 'banned' });
    return reply({ allow: true, user: session, info: { name: session.toUpperCase() }, subscribe: ['room.>'], publish: ['room.>'] });
  }
  if (ev.topic.startsWith('room.secret') || revoked.has(ev.topic)) return reply({ allow: false, code: 403, reason: `not for ${ev.user}` });
  return reply({ allow: true });
});

function sioBroker(c, be) {
  return c.broker({
    config: {
      plugins: { load: ['sse', 'websocket', 'socketio'] },
      socketio: { ping_interval: '300ms', ping_timeout: '1s' }, // many polls per session
      auth: { anonymous: { subscribe: [], publish: [] } },
      proxy: {
        connect: { url: be.url('/connect'), forward_headers: ['Cookie'] },
        subscribe: { url: be.url('/subscribe') },
        publish: { url: be.url('/publish') },
        timeout: '500ms',
      },
    },
  });
}

function connect(c, b, { cookie, ...opts } = {}) {
  const s = io(b.base, { reconnection: false, timeout: 3000 * SLOW, forceNew: true, extraHeaders: cookie ? { Cookie: cookie } : {}, ...opts });
  c.defer(() => s.close());
  return s;
}
const once = (s, ev) => withTimeout(new Promise((r) => s.once(ev, (...a) => r(a))), W, `socket event ${ev}`);
const emitAck = (s, ...args) => withTimeout(s.timeout(W).emitWithAck(...args), W + 1000, `ack of ${args[0]}`);
const calls = (be, event, transport = 'socketio') => be.calls.filter((x) => x.event === event && x.transport === transport);

for (const transport of ['polling', 'websocket']) {
  t.test(`${transport}: the session cookie is the identity (asked once per session); subscribe and publish asked per topic`, async (c) => {
    const be = await backend(c);
    const b = await sioBroker(c, be);
    const s = connect(c, b, { cookie: 'theme=dark; session=alice', transports: [transport] });
    await once(s, 'connect');
    const sub = await emitAck(s, 'subscribe', { topic: 'room.a', presence: true });
    eq(sub.ok, true, `subscribe allowed: ${JSON.stringify(sub)}`);
    const p = await emitAck(s, 'presence', 'room.a');
    eq(p.users?.map((u) => [u.user, u.info]), [['alice', { name: 'ALICE' }]], 'presence sees the user and info the backend granted');
    const no = await emitAck(s, 'subscribe', 'room.secret');
    eq([no.error, no.message], ['forbidden', 'not for alice'], 'a refused subscribe acks the backend code and reason');
    const got = once(s, 'message');
    const pub = await emitAck(s, 'publish', 'room.a', { text: 'hi' });
    assert(typeof pub.id === 'string', `publish allowed: ${JSON.stringify(pub)}`);
    eq((await got)[0], { text: 'hi' }, 'the message arrives');
    const pno = await emitAck(s, 'publish', 'room.secret', 'x');
    eq(pno.error, 'forbidden', `a publish the backend refuses: ${JSON.stringify(pno)}`);
    await sleep(1000); // a few ping intervals: polling makes new requests meanwhile
    assert(s.connected, 'still connected');
    const con = calls(be, 'connect');
    eq(con.length, 1, `one connect call for the session (${be.calls.length} calls in all)`);
    eq([con[0].user, con[0].headers], [null, { cookie: 'theme=dark; session=alice' }], 'connect call: the forwarded cookie');
    eq(calls(be, 'subscribe').map((x) => [x.topic, x.user]), [['room.a', 'alice'], ['room.secret', 'alice']], 'subscribe calls with the user');
    eq(calls(be, 'publish').map((x) => [x.topic, x.user]), [['room.a', 'alice'], ['room.secret', 'alice']], 'publish calls with the user');
  });
}

t.test('refusals: no cookie, a banned session, auth.topics the backend refuses, the backend down: CONNECT_ERROR', async (c) => {
  const be = await backend(c);
  const b = await sioBroker(c, be);
  const refused = async (opts, what) => {
    const s = connect(c, b, opts);
    const [err] = await once(s, 'connect_error');
    assert(!s.connected, `${what}: not connected`);
    s.close();
    return [err.data?.error, err.message];
  };
  for (const transports of [['polling'], ['websocket']]) {
    const [code] = await refused({ transports }, `no cookie over ${transports}`);
    eq(code, 'unauthorized', `no cookie over ${transports}`);
    eq((await refused({ transports, cookie: 'session=banned', auth: { token: 'x.y.z' } }, 'banned'))[0], 'forbidden',
      `banned over ${transports}: a token in the CONNECT does not get around the backend`);
    eq(await refused({ transports, cookie: 'session=alice', auth: { topics: ['room.ok', 'room.secret.x'] } }, 'auth.topics'),
      ['forbidden', 'not for alice'], `auth.topics refused over ${transports}`);
    const ok = connect(c, b, { transports, cookie: 'session=alice', auth: { topics: ['room.t1', 'room.t2'] } });
    await once(ok, 'connect');
    const got = once(ok, 'message');
    await emitAck(ok, 'publish', 'room.t2', 'via auth.topics');
    eq((await got)[0], 'via auth.topics', `allowed auth.topics are subscribed over ${transports}`);
    ok.close();
  }
  await be.close();
  for (const transports of [['polling'], ['websocket']])
    eq((await refused({ transports, cookie: 'session=alice' }, 'down'))[0], 'unavailable', `backend down over ${transports}: deny`);
});

t.test('the upgrade from polling keeps the identity (no new connect call) and asks again for its topics', async (c) => {
  const be = await backend(c);
  const b = await sioBroker(c, be);
  // auth.topics: the CONNECT goes over polling (the upgrade waits for its POST), so the WebSocket takes over a topic
  const s = connect(c, b, { cookie: 'session=bob', auth: { topics: ['room.up'] } });
  await once(s, 'connect');
  await waitFor(() => s.io.engine.transport.name === 'websocket', W, 'the upgrade');
  await waitFor(() => calls(be, 'subscribe').length === 2, W, 'the WebSocket asks for its topic',
    () => JSON.stringify(be.calls.map((x) => [x.event, x.topic])));
  const got = once(s, 'message');
  await emitAck(s, 'publish', 'room.up', 'after the upgrade');
  eq((await got)[0], 'after the upgrade', 'the subscription went on after the upgrade');
  eq(calls(be, 'connect').length, 1, 'one connect call for the session, its upgrade included');
  eq(calls(be, 'subscribe').map((x) => [x.topic, x.user]), [['room.up', 'bob'], ['room.up', 'bob']], 'subscribe calls');
});

t.test('recovery after a reconnect asks again: the missed messages of allowed topics come, a revoked topic is dropped', async (c) => {
  const be = await backend(c);
  const b = await sioBroker(c, be);
  for (const transports of [['websocket'], ['polling']]) {
    revoked.clear();
    const s = connect(c, b, { cookie: 'session=carol', transports, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await once(s, 'connect');
    for (const topic of ['room.keep', 'room.revoked']) eq((await emitAck(s, 'subscribe', topic)).ok, true, `subscribe ${topic}`);
    const first = once(s, 'message');
    await emitAck(s, 'publish', 'room.keep', 'before');
    await first;
    const seen = [], drops = [];
    s.on('message', (d) => seen.push(d));
    s.on('rt.dropped', (d) => drops.push(d));
    const asked = calls(be, 'subscribe').length;
    revoked.add('room.revoked');
    const back = once(s, 'connect');
    s.io.engine.close();
    await publishOk(b.base, 'room.keep', 'missed'); // POST /pub without credentials: proxy.publish decides
    await back;
    await waitFor(() => seen.includes('missed') && drops.length === 1, W, `${transports}: the missed message and the drop`,
      () => JSON.stringify({ seen, drops }));
    eq(s.recovered, true, `${transports}: socket.recovered`);
    eq(drops, [{ topic: 'room.revoked', error: 'forbidden' }], `${transports}: the revoked topic is dropped`);
    eq(calls(be, 'subscribe').slice(asked).map((x) => x.topic).sort(), ['room.keep', 'room.revoked'], `${transports}: both asked again`);
    s.close();
  }
});

await t.run();

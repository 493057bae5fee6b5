// The server API across two brokers on one nats-server: a call made on node A acts on node B's clients (publish,
// disconnect, server-side subscribe and unsubscribe), counts them (topics, one topic, info lists both nodes),
// DELETE /api/history purges the stream and every node's cache (a resume on B from before gets a gap), and a node
// that died is named in "missing" within api.timeout instead of holding the answer.
import {
  suite, assert, eq, subscribe, poll, waitFor, trunc, sleep, request, publish, toYaml,
} from './lib.mjs';
import { startNats, natsBroker, killBroker, natsConfig, waitReady, natsClient } from './natslib.mjs';
import { API_KEY, SECRET, W, api, jwt, wsUser } from './apilib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });

const CFG = {
  api: { keys: API_KEY, timeout: '1500ms' },
  auth: { jwt: { secret: SECRET }, anonymous: { subscribe: 'pub.>', publish: 'pub.>' } },
};

async function twoNodes(c) {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, CFG);
  const B = await natsBroker(c, nats.url, CFG);
  // each node knows the other from its heartbeats (every second)
  await waitFor(async () => (await api(A.base, 'GET', '/api/info')).json.nodes.length === 2 &&
    (await api(B.base, 'GET', '/api/info')).json.nodes.length === 2, 8000, 'both nodes in /api/info');
  return { nats, A, B };
}

t.test('info lists both nodes; publish on A reaches B; topics and one topic count B\'s subscribers', async (c) => {
  const { A, B } = await twoNodes(c);
  const info = await api(A.base, 'GET', '/api/info');
  eq(info.json.missing, []);
  const ids = info.json.nodes.map((n) => n.id);
  const infoB = await api(B.base, 'GET', '/api/info');
  eq(infoB.json.nodes[0].id, ids[1], 'each node lists itself first');
  assert(info.json.nodes.every((n) => n.bus === 'nats' && n.version === '0.1.0'), info.text);
  const s = await subscribe(B.base, '/sse?topic=pub.x&envelope=1');
  const s2 = await subscribe(A.base, '/sse?topic=pub.x');
  const p = await api(A.base, 'POST', '/api/publish', { topics: ['pub.x', 'pub.y'], data: { hi: 1 } });
  eq([p.status, p.json.failed], [200, 0], p.text);
  await s.waitMessages(1, W);
  eq(JSON.parse(s.messages[0].data).data, { hi: 1 }, 'B\'s subscriber');
  await s2.waitMessages(1, W);
  const info2 = await api(A.base, 'GET', '/api/info');
  eq(info2.json.nodes.map((n) => n.connections.sse), [1, 1], `SSE connections per node: ${info2.text}`);
  const tp = await api(A.base, 'GET', '/api/topics?pattern=pub.>');
  eq([tp.json.topics, tp.json.nodes, tp.json.missing], [[{ topic: 'pub.x', subscribers: 2 }], 2, []], tp.text);
  const one = await api(B.base, 'GET', '/api/topics/pub.x');
  eq([one.json.subscribers, one.json.retained, one.json.last_id], [2, 1, p.json.results[0].id], one.text);
});

t.test('disconnect on A ends the user\'s connections on B; subscribe / unsubscribe on A act on B', async (c) => {
  const { A, B } = await twoNodes(c);
  const onB = await wsUser(c, B, 'alice');
  const onA = await wsUser(c, A, 'alice');
  const bob = await wsUser(c, B, 'bob');
  const sub = await api(A.base, 'POST', '/api/subscribe', { user: 'bob', topic: 'secret.b' });
  eq([sub.json.connections, sub.json.nodes, sub.json.missing], [1, 2, []], sub.text);
  await waitFor(() => bob.of('subscribed').length === 1, W, 'bob told on B');
  await api(A.base, 'POST', '/api/publish', { topics: ['secret.b'], data: 'psst' });
  await waitFor(() => bob.of('msg').length === 1, W, 'bob gets it on B');
  eq(bob.of('msg')[0].data, 'psst');
  const un = await api(B.base, 'POST', '/api/unsubscribe', { user: 'bob', topic: 'secret.b' });
  eq(un.json.connections, 1);
  await waitFor(() => bob.of('unsubscribed').length === 1, W, 'bob told');
  const r = await api(A.base, 'POST', '/api/disconnect', { user: 'alice', reason: 'bye', reconnect: false });
  eq([r.json.disconnected, r.json.nodes, r.json.missing], [2, 2, []], r.text);
  await waitFor(() => onB.closed !== null && onA.closed !== null, W, 'alice closed on both nodes');
  eq([onA.closed, onB.closed], [4010, 4010]);
  eq(onB.of('disconnect')[0], { type: 'disconnect', reason: 'bye', reconnect: false });
  await sleep(200);
  eq(bob.closed, null, 'bob stays');
});

t.test('DELETE /api/history on A purges the stream and B\'s cache: a resume on B from before gets a gap', async (c) => {
  const { nats, A, B } = await twoNodes(c);
  const first = (await api(A.base, 'POST', '/api/publish', { topics: ['pub.h'], data: 1 })).json.results[0].id;
  await api(A.base, 'POST', '/api/publish', { topics: ['pub.h', 'pub.keep'], data: 2 });
  let warm = null; // B gets the messages from the stream a moment after A's answer
  await waitFor(async () => (warm = await poll(B.base, { topic: 'pub.h', cursor: first, timeout: 0 })).json.messages.length === 1,
    W, 'B has the second message of pub.h', () => warm && warm.text);
  await waitFor(async () => (await api(B.base, 'GET', '/api/topics/pub.keep')).json.retained === 1, W, 'B has pub.keep');
  const d = await api(A.base, 'DELETE', '/api/history/pub.h');
  eq([d.status, d.json.nodes, d.json.missing], [200, 2, []], d.text);
  for (const n of [A, B]) eq((await api(n.base, 'GET', '/api/topics/pub.h')).json.retained, 0, `nothing retained on ${n.base}`);
  const lp = await poll(B.base, { topic: 'pub.h', cursor: first, timeout: 0 });
  eq([lp.json.gap, lp.json.messages.length], [true, 0], `B from before: ${lp.text}`);
  eq((await api(B.base, 'GET', '/api/topics/pub.keep')).json.retained, 1, 'another topic keeps its history');
  // a node started after it has nothing cached: what it finds comes from the stream, which no longer has them
  const C = await natsBroker(c, nats.url, CFG);
  const lc = await poll(C.base, { topic: 'pub.h', cursor: first, timeout: 0 });
  eq(lc.json.messages.length, 0, `a new node from before finds nothing in the stream: ${lc.text}`);
  const kc = await poll(C.base, { topic: 'pub.keep', cursor: first, timeout: 0 });
  eq(kc.json.messages.length, 1, `but finds the other topic: ${kc.text}`);
});

t.test('a dead node is named in "missing" within api.timeout; the answer still comes', async (c) => {
  const { A, B } = await twoNodes(c);
  const idB = (await api(B.base, 'GET', '/api/info')).json.nodes[0].id;
  await killBroker(B);
  const t0 = Date.now();
  const r = await api(A.base, 'POST', '/api/disconnect', { user: 'nobody' });
  const ms = Date.now() - t0;
  eq([r.status, r.json.nodes, r.json.missing], [200, 1, [idB]], r.text);
  assert(ms >= 1000 && ms < 4000, `answered after the timeout (1.5 s), not held: ${ms} ms`);
  await sleep(5500); // past the heartbeat TTL: B is no longer expected
  const r2 = await api(A.base, 'GET', '/api/info');
  eq([r2.json.nodes.length, r2.json.missing], [1, []], trunc(r2.text));
});

const TOPICS = `topics:
  - pattern: "chat.>"
    history: {max_messages: 3}
  - pattern: "ticker.*"
    history: {max_messages: 1}
    recover: latest
    presence: false
    publish: server
  - pattern: "big.>"
    history: {max_messages: 8}
`;

async function nsNode(c, nats) {
  const cfg = natsConfig(nats.url, { ...CFG, auth: { jwt: { secret: SECRET }, anonymous: { subscribe: '>', publish: '>' } }, history: { max_messages: 5 }, workers: 2, limits: { connections_per_ip: 0, publish_per_subject: 0 } });
  const b = await c.broker({ configText: toYaml(cfg) + TOPICS });
  c.defer(() => b.stop({ timeout: 4000 }));
  await waitReady(b);
  return b;
}

t.test('namespaces on NATS: the stream keeps each namespace\'s length (a new node finds 3, 1, 8 and the global 5); rules hold on every node', async (c) => {
  const nats = await startNats(c);
  const A = await nsNode(c, nats);
  const B = await nsNode(c, nats);
  for (let i = 0; i < 10; i++) {
    const r = await api(A.base, 'POST', '/api/publish', { topics: ['chat.a', 'ticker.x', 'misc.z', 'big.b'], data: i });
    eq(r.json.failed, 0, r.text);
  }
  // the stream's per-subject limit is the largest namespace's (8); the sweep (every 3 s, by one node) trims the others
  let info = '';
  await waitFor(async () => { info = (await natsClient(['info', nats.url, 'RT'])).stdout; return /^msgs=17$/m.test(info); }, 8000,
    'the stream holds 3 + 1 + 5 + 8 messages', () => info);
  assert(/^max_msgs_per_subject=8$/m.test(info), info);
  const C = await nsNode(c, nats);
  const kept = {};
  for (const tp of ['chat.a', 'ticker.x', 'misc.z', 'big.b']) {
    const first = (await api(A.base, 'GET', `/api/topics/${tp}`)).json.last_id.split(':')[0] + ':0';
    const lp = await poll(C.base, { topic: tp, cursor: first, timeout: 0 });
    assert(lp.json && lp.json.messages, `poll ${tp} on C: ${lp.status} ${lp.text}`);
    kept[tp] = lp.json.messages.map((m) => m.data);
  }
  eq(kept, { 'chat.a': [7, 8, 9], 'ticker.x': [9], 'misc.z': [5, 6, 7, 8, 9], 'big.b': [2, 3, 4, 5, 6, 7, 8, 9] }, 'what the stream holds');
  const pub = await publish(B.base, 'ticker.x', '1');
  eq(pub.status, 403, `publish: server on B: ${pub.text}`);
  const pr = await request(B.base, 'GET', '/sse?topic=ticker.x&presence=1', { headers: { Accept: 'text/event-stream' } });
  eq(pr.status, 403, `presence: false on B: ${pr.text}`);
  const s = await subscribe(C.base, '/sse?topic=ticker.x&envelope=1');
  await s.waitMessages(1, W);
  const e = JSON.parse(s.messages[0].data);
  eq([e.data, e.latest], [9, true], 'recover: latest on a node that fetched it from the stream');
});

await t.run();

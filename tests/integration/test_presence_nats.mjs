// Presence across nodes on the NATS bus (one nats-server, presence.ttl 3s): a join on node A reaches
// presence subscribers on node B (SSE and rt.v1), both nodes give the same snapshot, a close on A is
// a leave on B, a SIGKILLed node's members leave on the others within presence.ttl, a SIGTERMed
// node's members leave at once, a node started later has the whole view from the KV bucket, and a
// long-poll client_key is taken by every node that shares presence.client_secret (and only by them).
import crypto from 'node:crypto';
import {
  suite, assert, eq, request, subscribe, poll, sleep, waitFor, trunc, SLOW,
} from './lib.mjs';
import { startNats, natsBroker, killBroker, metrics, metricValue, WebSocket } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 170000 });
const SECRET = 'presence-nats-secret-0123456789abcdef';
const TTL_MS = 3000;
const W = 5000 * SLOW;
const CFG = {
  presence: { ttl: '3s' },
  auth: { jwt: { secret: SECRET }, anonymous: { subscribe: ['room.>'], publish: ['room.>'] } },
};

function tok(user, info) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: user, iat: now, exp: now + 3600, rt: { sub: ['room.>'], ...(info ? { info } : {}) } })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

// presence events of an SSE stream; .at: when they arrived (stamped by sseMember)
const sseEvents = (s) => s.events.filter((e) => e.event === 'rt.join' || e.event === 'rt.leave')
  .map((e) => ({ type: e.event.slice(3), hasId: e.hasId, ...JSON.parse(e.data), ...(e.at ? { at: e.at } : {}) }));
const noAt = (list) => list.map(({ at, ...e }) => e);
const v1Events = (h) => h.frames.filter((f) => f.type === 'join' || f.type === 'leave');
const sees = (list, type, client) => list.some((e) => e.type === type && e.client === client);

/** A presence SSE member; resolves after its own join, with .self = that join. */
async function sseMember(c, base, topic, user, info) {
  const s = await subscribe(base, `/sub/${topic}?presence=1`, { headers: user ? { Authorization: `Bearer ${tok(user, info)}` } : {} });
  c.defer(() => s.close());
  const stamp = () => { const now = Date.now(); for (const e of s.events) e.at ||= now; };
  stamp();
  s.res.on('data', stamp);
  // others' joins queued just before ours may come first (a join from another node arrives whenever it arrives)
  const mine = (e) => e.type === 'join' && e.user === (user ?? null);
  await s.waitFor((x) => sseEvents(x).some(mine), W, `own join of ${user} on SSE`);
  s.self = sseEvents(s).find(mine);
  return s;
}

/** An rt.v1 connection with `user`'s token, subscribed to topic with presence; .self = its own join. */
async function v1Member(c, base, topic, user) {
  const h = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, ['rt.v1'], { headers: { Authorization: `Bearer ${tok(user)}` } });
    c.defer(() => ws.terminate());
    const x = { ws, frames: [], ref: 0 };
    x.send = (op) => {
      const ref = `r${++x.ref}`;
      ws.send(JSON.stringify({ ...op, ref }));
      return waitFor(() => x.frames.find((f) => f.ref === ref), W, `reply to ${JSON.stringify(op)}`);
    };
    ws.on('message', (d) => x.frames.push(JSON.parse(d.toString())));
    ws.on('open', () => resolve(x));
    ws.on('error', reject);
  });
  const sub = await h.send({ op: 'sub', topic, presence: true });
  assert(sub.type === 'ok', `rt.v1 sub with presence: ${JSON.stringify(sub)}`);
  await waitFor(() => v1Events(h).some((e) => e.type === 'join' && e.user === user), W, `own join of ${user} on rt.v1`);
  h.self = v1Events(h).find((e) => e.type === 'join' && e.user === user);
  return h;
}

async function snapshot(base, topic) {
  const r = await request(base, 'GET', `/presence/${topic}`);
  assert(r.status === 200 && r.json, `GET /presence/${topic} on ${base}: ${r.status} ${trunc(r.text)}`);
  return r.json;
}
const brief = (s) => JSON.stringify([s.count, s.users.map((u) => [u.user, u.clients]), s.anonymous]);

/** Wait until every node's snapshot is `want` (brief form); returns the ms waited. */
async function sameSnapshot(nodes, topic, want, ms = W) {
  const t0 = Date.now();
  let last = [];
  await waitFor(async () => {
    last = await Promise.all(nodes.map((n) => snapshot(n.base, topic)));
    return last.every((s) => brief(s) === want);
  }, ms, `snapshot ${want} on every node`, () => last.map(brief).join(' / '));
  return Date.now() - t0;
}

t.test('a join on A reaches presence subscribers on B (SSE, rt.v1); same snapshot on both nodes; leave across nodes', async (c) => {
  const nats = await startNats(c, { monitor: true });
  const A = await natsBroker(c, nats.url, CFG);
  const B = await natsBroker(c, nats.url, CFG);
  const topic = 'room.x';
  const wb = await sseMember(c, B.base, topic, 'wendy');
  const vb = await v1Member(c, B.base, topic, 'victor');
  const plainB = await subscribe(B.base, `/sub/${topic}`);
  c.defer(() => plainB.close());

  const t0 = Date.now();
  const alice = await sseMember(c, A.base, topic, 'alice', { name: 'Alice' });
  const bob = await v1Member(c, A.base, topic, 'bob');
  const anon = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${A.base.replace('http', 'ws')}/sub/${topic}?presence=1`);
    c.defer(() => ws.terminate());
    const h = { ws, frames: [] };
    ws.on('message', (d) => h.frames.push(JSON.parse(d.toString())));
    ws.on('open', () => resolve(h));
    ws.on('error', reject);
  });
  await waitFor(() => anon.frames.length >= 1, W, 'own join on the anonymous raw WebSocket');
  const anonSelf = anon.frames[0];
  const fromA = [alice.self.client, bob.self.client, anonSelf.client];
  await waitFor(() => fromA.every((cl) => sees(sseEvents(wb), 'join', cl) && sees(v1Events(vb), 'join', cl)), W,
    "A's three joins on B's SSE and rt.v1 presence subscribers", () => JSON.stringify([sseEvents(wb), v1Events(vb)]));
  c.info(`joins on A seen on B within ${Date.now() - t0} ms`);
  const onB = sseEvents(wb).find((e) => e.client === alice.self.client);
  eq([onB.user, onB.info, onB.hasId, onB.topic], ['alice', { name: 'Alice' }, false, topic], "alice's join as B tells it");
  eq(noAt([onB])[0], noAt([alice.self])[0], "alice's join: the same event on A and B");
  eq(v1Events(vb).find((e) => e.client === anonSelf.client), { ...anonSelf }, 'the anonymous join on B (rt.v1) = on A (raw)');
  const bCl = [wb.self.client, vb.self.client];
  assert(!bCl.some((x) => fromA.includes(x)), `client ids unique across nodes: A ${fromA} B ${bCl}`);

  // and the other way: a member joining on B is a join on A
  const xena = await sseMember(c, B.base, topic, 'xena');
  await waitFor(() => sees(sseEvents(alice), 'join', xena.self.client) && sees(v1Events(bob), 'join', xena.self.client), W, "xena's join (on B) at A");
  const want = JSON.stringify([6, [['alice', 1], ['bob', 1], ['victor', 1], ['wendy', 1], ['xena', 1]], 1]);
  await sameSnapshot([A, B], topic, want);
  const [sa, sb] = [await snapshot(A.base, topic), await snapshot(B.base, topic)];
  eq(sa, sb, 'the full snapshots are identical');
  const jsz = await nats.monitor('/jsz?streams=true');
  const names = jsz.account_details.flatMap((a) => a.stream_detail.map((s) => s.name));
  assert(names.includes('KV_RT_presence'), `KV bucket RT_presence (stream KV_RT_presence) missing: ${names}`);

  // leaves cross too: alice closes SSE, bob unsubscribes (rt.v1)
  alice.close();
  eq((await bob.send({ op: 'unsub', topic })).type, 'ok', 'unsub on A');
  await waitFor(() => [alice.self.client, bob.self.client].every((cl) => sees(sseEvents(wb), 'leave', cl) && sees(v1Events(vb), 'leave', cl)), W,
    "A's leaves on B", () => JSON.stringify(sseEvents(wb)));
  await sameSnapshot([A, B], topic, JSON.stringify([4, [['victor', 1], ['wendy', 1], ['xena', 1]], 1]));
  await sleep(200);
  eq(sseEvents(plainB).length, 0, 'a subscriber on B without presence=1 got no join/leave');
  const m = await metrics(B.base);
  eq(metricValue(m, 'rtbroker_presence_members'), 4, 'members gauge on B (cluster view)');
});

t.test('long-poll client_key: a node with the same presence.client_secret continues the member; one without refuses the key', async (c) => {
  const nats = await startNats(c);
  const shared = { ...CFG, presence: { ...CFG.presence, client_secret: 'cluster-client-secret-0123456789' } };
  const [A, B, C] = await Promise.all([natsBroker(c, nats.url, shared), natsBroker(c, nats.url, shared), natsBroker(c, nats.url, CFG)]);
  const topic = 'room.keys';
  const hd = { Authorization: `Bearer ${tok('dora')}` };
  const p1 = await poll(A.base, { topic, presence: 1, timeout: 0 }, { headers: hd });
  assert(p1.status === 200 && p1.json && p1.json.client_key, `first poll on A: ${p1.status} ${trunc(p1.text)}`);
  const p2 = await poll(B.base, { topic, presence: 1, timeout: 0, client: p1.json.client_key }, { headers: hd });
  eq([p2.status, p2.json && p2.json.client], [200, p1.json.client], "B continues A's member with its key");
  const p3 = await poll(C.base, { topic, presence: 1, timeout: 0, client: p1.json.client_key }, { headers: hd });
  eq([p3.status, p3.json && p3.json.error], [400, 'invalid_id'], 'C (its own random secret) refuses the key');
  await sameSnapshot([A, B], topic, JSON.stringify([1, [['dora', 1]], 0]));
});

t.test('SIGKILL of node A: its members leave on B within presence.ttl; B keeps its own', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, CFG);
  const B = await natsBroker(c, nats.url, CFG);
  const topic = 'room.kill';
  const wb = await sseMember(c, B.base, topic, 'wendy');
  const a1 = await sseMember(c, A.base, topic, 'alice');
  const a2 = await v1Member(c, A.base, topic, 'bob');
  const a3 = await sseMember(c, A.base, topic, null);
  const gone = [a1.self.client, a2.self.client, a3.self.client];
  await waitFor(() => gone.every((cl) => sees(sseEvents(wb), 'join', cl)), W, "A's joins on B");
  await sameSnapshot([A, B], topic, JSON.stringify([4, [['alice', 1], ['bob', 1], ['wendy', 1]], 1]));
  await sleep(500);

  const t0 = Date.now();
  await killBroker(A, 'SIGKILL');
  const left = {};
  await waitFor(() => {
    for (const e of sseEvents(wb)) if (e.type === 'leave' && gone.includes(e.client)) left[e.client] = e.at - t0;
    return Object.keys(left).length === gone.length;
  }, (TTL_MS + 1500) * SLOW + 1000, "A's members' leaves on B after SIGKILL",
  () => JSON.stringify(sseEvents(wb).map((e) => ({ ...e, at: e.at - t0 }))));
  const delay = Math.max(...Object.values(left));
  c.info(`SIGKILL → leaves on B after ${Object.values(left).join(', ')} ms (presence.ttl ${TTL_MS} ms)`);
  assert(delay <= (TTL_MS + 1500) * SLOW, `leaves took ${delay} ms, more than ttl + 1.5 s`);
  eq(JSON.parse(brief(await snapshot(B.base, topic))), [1, [['wendy', 1]], 0], "B's snapshot: only its own member");
  eq(sseEvents(wb).filter((e) => e.type === 'leave' && e.client === wb.self.client), [], 'B never made its own member leave');
});

t.test('SIGTERM of node B: its members leave on A promptly', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, CFG);
  const B = await natsBroker(c, nats.url, CFG);
  const topic = 'room.term';
  const wa = await sseMember(c, A.base, topic, 'wendy');
  const v = await v1Member(c, A.base, topic, 'vic');
  const b1 = await sseMember(c, B.base, topic, 'bea');
  const b2 = await v1Member(c, B.base, topic, 'ben');
  const gone = [b1.self.client, b2.self.client];
  await waitFor(() => gone.every((cl) => sees(sseEvents(wa), 'join', cl) && sees(v1Events(v), 'join', cl)), W, "B's joins on A");
  const t0 = Date.now();
  const stop = B.stop({ timeout: 8000 * SLOW });
  const left = {};
  await waitFor(() => {
    for (const e of sseEvents(wa)) if (e.type === 'leave' && gone.includes(e.client)) left[e.client] = e.at - t0;
    return Object.keys(left).length === gone.length && gone.every((cl) => sees(v1Events(v), 'leave', cl));
  }, TTL_MS * SLOW, "B's members' leaves on A after SIGTERM", () => JSON.stringify(sseEvents(wa)));
  const delay = Math.max(...Object.values(left));
  const r = await stop;
  c.info(`SIGTERM → leaves on A after ${Object.values(left).join(', ')} ms; B exited after ${r.ms} ms (code ${r.code})`);
  assert(delay < 2000 * SLOW, `graceful leaves took ${delay} ms (a SIGKILL-like expiry would take ~${TTL_MS} ms)`);
  eq(JSON.parse(brief(await snapshot(A.base, topic))), [2, [['vic', 1], ['wendy', 1]], 0], "A's snapshot after B stopped");
});

t.test('a node started later gets the full snapshot from the bucket at once, then live events', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, CFG);
  const B = await natsBroker(c, nats.url, CFG);
  const topic = 'room.late';
  const other = 'room.late2';
  await sseMember(c, A.base, topic, 'alice', { n: 1 });
  await sseMember(c, A.base, topic, 'alice', { n: 1 });
  await sseMember(c, A.base, topic, null);
  await sseMember(c, B.base, topic, 'bob');
  await sseMember(c, B.base, other, 'carl');
  const want = JSON.stringify([3, [['alice', 2], ['bob', 1]], 1]);
  await sameSnapshot([A, B], topic, want);
  await sleep(300);

  const C = await natsBroker(c, nats.url, CFG, { ready: false });
  const t0 = Date.now();
  const ms = await sameSnapshot([C], topic, want, 2000 * SLOW);
  c.info(`node C (started later) had the full snapshot ${ms} ms after /healthz (${Date.now() - t0} ms)`);
  eq(await snapshot(C.base, topic), await snapshot(A.base, topic), 'C = A, info included');
  eq(JSON.parse(brief(await snapshot(C.base, other))), [1, [['carl', 1]], 0], 'the other topic on C');
  // and C follows live changes
  const wc = await sseMember(c, C.base, topic, 'cora');
  const late = await sseMember(c, B.base, topic, 'dora');
  await wc.waitFor((s) => sees(sseEvents(s), 'join', late.self.client), W, "dora's join (on B) at C");
  late.close();
  await wc.waitFor((s) => sees(sseEvents(s), 'leave', late.self.client), W, "dora's leave at C");
  await sameSnapshot([A, B, C], topic, JSON.stringify([4, [['alice', 2], ['bob', 1], ['cora', 1]], 1]));
});

await t.run();

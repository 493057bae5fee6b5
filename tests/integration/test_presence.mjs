// Presence on the memory bus (2 workers): join/leave events and snapshots on SSE (plain and
// envelope), long-poll (client= continuation with the client_key, poll_grace expiry, a borrowed or
// forged client= refused), raw WebSocket, rt.v1 (sub with
// "presence":true, the presence op, unsub → leave) and ndjson; identity from the JWT (sub → user,
// rt.info → info), anonymous members, one user on two connections, no events for subscribers that
// did not ask, wildcards refused, snapshot permissions, and the presence metrics.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import {
  suite, assert, eq, expectError, publish, publishOk, poll, request, subscribe, openSSE, sleep, waitFor, trunc, SLOW, ROOT,
} from './lib.mjs';

const RT = await import(path.join(ROOT, 'web', 'realtime.js'));

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });
const SECRET = 'presence-test-secret-0123456789abcdef';
const W = 5000 * SLOW; // how long an event may take to arrive

/** An HS256 JWT for `user` (null: no sub claim) with the rt claim `rt`. */
function jwt(user, rt = { sub: ['room.>'], pub: ['room.>'] }, secret = SECRET) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ ...(user ? { sub: user } : {}), iat: now, exp: now + 3600, rt })}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}
/** JSON with object keys sorted: the broker may re-serialise the token's info object. */
const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x)
  ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));
const eqc = (got, want, msg) => eq(JSON.parse(canon(got)), JSON.parse(canon(want)), msg);
const tok = (user, info, sub = ['room.>']) => jwt(user, { sub, pub: ['room.>'], ...(info ? { info } : {}) });
const bearer = (token) => (token ? { Authorization: `Bearer ${token}` } : {});

const config = (extra = {}) => ({
  auth: { jwt: { secret: SECRET }, anonymous: { subscribe: ['room.>'], publish: ['room.>'] } },
  presence: { poll_grace: '1s' },
  ...extra,
});

/** Presence events of an SSE stream: [{type, hasId, ...data}]. */
const sseEvents = (s) => s.events.filter((e) => e.event === 'rt.join' || e.event === 'rt.leave')
  .map((e) => ({ type: e.event.slice(3), hasId: e.hasId, ...JSON.parse(e.data) }));
const has = (list, type, pred) => list.some((e) => e.type === type && pred(e));

async function sseMember(base, topic, token, query = '', viaSse = false) {
  const p = viaSse ? `/sse?topic=${topic}&presence=1${query}` : `/sub/${topic}?presence=1${query}`;
  const s = await subscribe(base, p, { headers: bearer(token) });
  await s.waitFor((x) => sseEvents(x).some((e) => e.type === 'join'), W, `own join on SSE ${topic}`);
  s.self = sseEvents(s).find((e) => e.type === 'join');
  return s;
}

async function snapshot(base, topic, token) {
  const r = await request(base, 'GET', `/presence/${topic}`, { headers: bearer(token) });
  assert(r.status === 200 && r.json, `GET /presence/${topic}: expected 200 JSON, got ${r.status} ${trunc(r.text)}`);
  return r.json;
}
const brief = (snap) => [snap.count, snap.users.map((u) => [u.user, u.clients]), snap.anonymous];

/** A WebSocket (raw or rt.v1) keeping every text frame parsed as JSON; send(op) resolves with its ok/error. */
function wsOpen(c, url, { protocols, headers } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    const h = { ws, frames: [], text: [], closed: null, ref: 0 };
    c.defer(() => ws.terminate());
    h.pres = () => h.frames.filter((f) => f.type === 'join' || f.type === 'leave');
    h.send = (op) => {
      const ref = `r${++h.ref}`;
      ws.send(JSON.stringify({ ...op, ref }));
      return waitFor(() => h.frames.find((f) => f.ref === ref), W, `reply to ${JSON.stringify(op)}`);
    };
    ws.on('message', (d, bin) => {
      const s = d.toString('utf8');
      if (!bin) h.text.push(s);
      try { h.frames.push(JSON.parse(s)); } catch { h.frames.push({ type: 'text', raw: s }); }
    });
    ws.on('close', (code) => { h.closed = code; });
    ws.on('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('open', () => resolve(h));
    ws.on('error', (e) => reject(e));
  });
}

/** An ndjson stream (Accept: application/x-ndjson); .lines are parsed JSON objects. */
function ndjson(c, base, p, headers = {}) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, agent: false, headers: { Accept: 'application/x-ndjson', ...headers } });
    c.defer(() => req.destroy());
    req.on('error', reject);
    req.on('response', (res) => {
      const h = { status: res.statusCode, lines: [], buf: '', close: () => req.destroy() };
      res.on('data', (d) => {
        h.buf += d.toString('utf8');
        let i;
        while ((i = h.buf.indexOf('\n')) >= 0) {
          const l = h.buf.slice(0, i); h.buf = h.buf.slice(i + 1);
          try { h.lines.push(JSON.parse(l)); } catch { h.lines.push({ type: 'unparsable', raw: l }); }
        }
      });
      h.pres = () => h.lines.filter((f) => f.type === 'join' || f.type === 'leave');
      resolve(h);
    });
    req.end();
  });
}

async function metricsOf(base) {
  const text = (await request(base, 'GET', '/metrics')).text;
  const val = (name) => {
    const l = text.split('\n').find((x) => x.startsWith(name + ' '));
    return l ? Number(l.split(' ').pop()) : NaN;
  };
  return {
    members: val('rtbroker_presence_members'),
    joins: val('rtbroker_presence_events_total{type="join"}'),
    leaves: val('rtbroker_presence_events_total{type="leave"}'),
    ephemeral: val('rtbroker_ephemeral_messages_total'),
  };
}

t.test('SSE: own join, others join/leave with user, client and token info; no id line; envelope mode; others get nothing', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.sse';
  const alice = await sseMember(b.base, topic, tok('alice', { name: 'Alice', n: 1 }));
  eqc(alice.self, { type: 'join', hasId: false, topic, user: 'alice', client: alice.self.client, info: { name: 'Alice', n: 1 } }, 'own join');
  assert(typeof alice.self.client === 'string' && alice.self.client.length > 0, `client id: ${alice.self.client}`);
  eq(Object.keys(JSON.parse(alice.events.find((e) => e.event === 'rt.join').data)).sort(), ['client', 'info', 'topic', 'user'], 'join data keys');
  const plain = await subscribe(b.base, `/sub/${topic}`, { headers: bearer(tok('carol')) });
  const plainEnv = await subscribe(b.base, `/sse?topic=${topic}&envelope=1`);
  c.defer(() => { alice.close(); plain.close(); plainEnv.close(); });

  // /sse?topic= in envelope mode: presence events keep their event name and plain data, still without an id
  const bob = await sseMember(b.base, topic, tok('bob'), '&envelope=1', true);
  eqc(bob.self, { type: 'join', hasId: false, topic, user: 'bob', client: bob.self.client, info: null }, 'own join in envelope mode');
  assert(bob.self.client !== alice.self.client, 'two connections, two client ids');
  await alice.waitFor((s) => has(sseEvents(s), 'join', (e) => e.client === bob.self.client), W, "bob's join on alice's stream");
  eqc(sseEvents(alice).find((e) => e.client === bob.self.client), { ...bob.self }, 'the same join event on both streams');
  eq(brief(await snapshot(b.base, topic)), [2, [['alice', 1], ['bob', 1]], 0], 'snapshot with two members');

  bob.close();
  await alice.waitFor((s) => has(sseEvents(s), 'leave', (e) => e.client === bob.self.client), W, "bob's leave on alice's stream");
  eqc(sseEvents(alice).find((e) => e.type === 'leave'), { ...bob.self, type: 'leave' }, 'leave event');
  eq((await snapshot(b.base, topic)).users.map((u) => u.user), ['alice'], 'snapshot after the leave');
  // an over-1-KiB info is not taken
  const big = await sseMember(b.base, topic, tok('dave', { pad: 'x'.repeat(1100) }));
  eq(big.self.info, null, 'info over 1 KiB is dropped');
  big.close();

  const mark = await publishOk(b.base, topic, 'marker');
  await plain.waitFor((s) => s.messages.some((m) => m.id === mark), W, 'marker on the non-presence stream');
  await plainEnv.waitMessages(1, W);
  await sleep(200);
  eq([sseEvents(plain).length, sseEvents(plainEnv).length], [0, 0], 'subscribers without presence=1 get no join/leave');
  eq(plainEnv.events.map((e) => e.event), [null], 'envelope subscriber without presence: only the message');
});

t.test('snapshot: one user on two connections counted once (clients 2), anonymous members, users sorted; metrics', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.snap';
  const m0 = await metricsOf(b.base);
  eq([m0.members, m0.joins, m0.leaves], [0, 0, 0], 'presence metrics at start');
  const watcher = await sseMember(b.base, topic, tok('zed', { role: 'mod' }));
  const a1 = await sseMember(b.base, topic, tok('alice', { name: 'Alice' }));
  const a2 = await wsOpen(c, `${b.base.replace('http', 'ws')}/sub/${topic}?presence=1&token=${tok('alice', { name: 'Alice' })}`);
  const bob = await wsOpen(c, `${b.base.replace('http', 'ws')}/ws`, { protocols: ['rt.v1', `bearer.${tok('bob')}`] });
  eq((await bob.send({ op: 'sub', topic, presence: true })).type, 'ok', 'rt.v1 sub with presence');
  const anon1 = await sseMember(b.base, topic, null);
  const anon2 = await wsOpen(c, `${b.base.replace('http', 'ws')}/sub/${topic}?presence=1`);
  c.defer(() => { watcher.close(); a1.close(); anon1.close(); });
  eq([anon1.self.user, anon1.self.info], [null, null], 'anonymous member: user null');
  await watcher.waitFor((s) => sseEvents(s).filter((e) => e.type === 'join').length >= 6, W, '6 joins on the watcher',
    () => JSON.stringify(sseEvents(watcher)));
  const snap = await snapshot(b.base, topic, tok('zed'));
  eqc(snap, {
    topic, count: 5,
    users: [{ user: 'alice', clients: 2, info: { name: 'Alice' } }, { user: 'bob', clients: 1, info: null }, { user: 'zed', clients: 1, info: { role: 'mod' } }],
    anonymous: 2,
  }, 'snapshot: count = 3 users + 2 anonymous clients');
  const m1 = await metricsOf(b.base);
  eq([m1.members, m1.joins, m1.leaves], [6, 6, 0], 'members gauge and join counter');

  // one of alice's connections goes: alice stays with clients 1
  await waitFor(() => a2.pres().length >= 1, W, "own join on alice's WebSocket");
  const a2client = a2.pres()[0].client;
  a2.ws.close();
  await watcher.waitFor((s) => has(sseEvents(s), 'leave', (e) => e.client === a2client), W, "leave of alice's WebSocket");
  eq(sseEvents(watcher).find((e) => e.type === 'leave').user, 'alice', 'leave names the user');
  anon2.ws.terminate();
  await watcher.waitFor((s) => sseEvents(s).filter((e) => e.type === 'leave').length >= 2, W, 'leave of the dropped anonymous WebSocket');
  eq(brief(await snapshot(b.base, topic)), [4, [['alice', 1], ['bob', 1], ['zed', 1]], 1], 'snapshot after two leaves');
  const m2 = await metricsOf(b.base);
  eq([m2.members, m2.joins, m2.leaves], [4, 6, 2], 'metrics after two leaves');
  const r = await publish(b.base, topic, 'typing', { headers: { 'X-Ephemeral': '1' } });
  eq(r.json, { id: null, topic }, 'ephemeral publish');
  eq((await metricsOf(b.base)).ephemeral, m2.ephemeral + 1, 'rtbroker_ephemeral_messages_total +1');
});

t.test('long-poll: own join answers a held poll, client= continues without a new join, leave after poll_grace', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.lp';
  const watcher = await sseMember(b.base, topic, tok('alice'));
  c.defer(() => watcher.close());
  const hb = bearer(tok('bob', { via: 'poll' }));
  const p1 = await poll(b.base, { topic, presence: 1, timeout: 10 }, { headers: hb });
  assert(p1.status === 200 && p1.json, `first poll: ${p1.status} ${trunc(p1.text)}`);
  assert(p1.ms < 3000 * SLOW, `the own join should answer the held poll at once (took ${p1.ms} ms)`);
  const client = p1.json.client, key = p1.json.client_key;
  assert(typeof client === 'string' && client.length > 0, `poll answer lacks "client": ${trunc(p1.text)}`);
  assert(typeof key === 'string' && key.startsWith(`${client}.`), `poll answer lacks "client_key" (${client}.MAC): ${trunc(p1.text)}`);
  eqc(p1.json.messages, [{ type: 'join', topic, user: 'bob', client, info: { via: 'poll' } }], 'own join among the messages');
  await watcher.waitFor((s) => has(sseEvents(s), 'join', (e) => e.client === client), W, "bob's join on the SSE watcher");

  // the next poll continues the member: held, no second join; a join of someone else answers it, cursor unchanged
  const held = poll(b.base, { topic, presence: 1, client: key, cursor: p1.json.cursor, timeout: 10 }, { headers: hb });
  await sleep(400);
  const carol = await sseMember(b.base, topic, tok('carol'));
  c.defer(() => carol.close());
  const p2 = await held;
  eq([p2.status, p2.json.client, p2.json.client_key, p2.json.cursor], [200, client, key, p1.json.cursor], 'continued poll: same client and key, same cursor');
  eq(p2.json.messages.map((m) => [m.type, m.user]), [['join', 'carol']], "continued poll gets carol's join only");
  eq(sseEvents(watcher).filter((e) => e.user === 'bob').length, 1, 'no second join for bob');
  eq(brief(await snapshot(b.base, topic)), [3, [['alice', 1], ['bob', 1], ['carol', 1]], 0], 'bob is a member between polls');
  // a poll without presence=1 is not held up by joins and sees none
  const plain = poll(b.base, { topic, cursor: p2.json.cursor, timeout: 1 });
  const held2 = poll(b.base, { topic, presence: 1, client: key, cursor: p2.json.cursor, timeout: 10 }, { headers: hb });
  await sleep(300);
  const dan = await sseMember(b.base, topic, tok('dan'));
  c.defer(() => dan.close());
  const p3 = await held2;
  eq([p3.json.messages.map((m) => [m.type, m.user]), p3.json.cursor], [[['join', 'dan']], p1.json.cursor], "dan's join, cursor unchanged");
  // a published message still comes with an id and moves the cursor
  const held3 = poll(b.base, { topic, presence: 1, client: key, cursor: p3.json.cursor, timeout: 10 }, { headers: hb });
  const pp = await plain; // ends before the publish below
  eq([pp.status, pp.json.messages, 'client' in pp.json], [200, [], false], 'poll without presence: no entries, no client');
  assert(pp.ms >= 900, `poll without presence returned early (${pp.ms} ms)`);
  const id = await publishOk(b.base, topic, 'hello', { headers: bearer(tok('alice')) });
  const p4 = await held3;
  eq([p4.json.messages.map((m) => [m.id, m.data]), p4.json.cursor], [[[id, 'hello']], id], 'a message moves the cursor');
  const stopped = Date.now();
  eq(sseEvents(watcher).filter((e) => e.client === client).map((e) => e.type), ['join'], 'still one join and no leave for bob');

  // bob stops polling: member until poll_grace (1s) ends, then a leave
  await sleep(Math.max(0, 400 - (Date.now() - stopped)));
  assert((await snapshot(b.base, topic)).users.some((u) => u.user === 'bob'), 'bob still a member 400 ms after his last poll');
  await watcher.waitFor((s) => has(sseEvents(s), 'leave', (e) => e.client === client), 4000 * SLOW, "bob's leave after poll_grace");
  const ms = Date.now() - stopped;
  c.info(`long-poll member left ${ms} ms after the last poll (poll_grace 1s)`);
  assert(ms >= 900, `leave came before poll_grace (${ms} ms)`);
});

t.test('long-poll: a client id cannot be borrowed: client= takes only the key given to that user (400 invalid_id otherwise)', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.borrow';
  const watcher = await sseMember(b.base, topic, tok('alice'));
  c.defer(() => watcher.close());
  const hb = bearer(tok('bob'));
  const p1 = await poll(b.base, { topic, presence: 1, timeout: 0 }, { headers: hb });
  assert(p1.status === 200 && p1.json && p1.json.client, `bob's first poll: ${p1.status} ${trunc(p1.text)}`);
  const { client, client_key: key } = p1.json;
  const anon = await poll(b.base, { topic, presence: 1, timeout: 0 });
  assert(anon.status === 200 && anon.json && anon.json.client, `anonymous poll: ${anon.status} ${trunc(anon.text)}`);
  const tampered = key ? key.slice(0, -1) + (key.endsWith('0') ? '1' : '0') : `${client}.${'0'.repeat(32)}`;
  const forged = [
    ["mallory with bob's client id (as join events show it)", { client }, bearer(tok('mallory'))],
    ["bob's client id without its key, by bob himself", { client }, hb],
    ["bob's key from mallory's token", { client: key }, bearer(tok('mallory'))],
    ["bob's key without a token (anonymous)", { client: key }, {}],
    ["the anonymous member's id, by another anonymous client", { client: anon.json.client }, {}],
    ['a tampered key', { client: tampered }, hb],
    ['a made-up id', { client: 'someone-else-1' }, hb],
  ];
  for (const [what, q, headers] of forged) {
    const r = await poll(b.base, { topic, presence: 1, timeout: 0, ...q }, { headers });
    eq([r.status, r.json && r.json.error], [400, 'invalid_id'], `${what}: refused`);
    assert(/client/.test(r.json.message), `${what}: the message should name client=: ${trunc(r.text)}`);
  }
  const ok = await poll(b.base, { topic, presence: 1, timeout: 0, client: key }, { headers: hb });
  eq([ok.status, ok.json.client], [200, client], "bob's own key continues bob's member");
  await sleep(200);
  eq(sseEvents(watcher).filter((e) => e.type === 'join' && e.client === client).length, 1, 'one join for bob, none from the refused polls');
  eq(sseEvents(watcher).filter((e) => e.type === 'join' && e.user === 'mallory').length, 0, 'no join for mallory');
});

t.test('web/realtime.js long-poll (in Node, real fetch): one member across polls through client_key; a key refused after a user change → a new member', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.rtjs';
  const watcher = await sseMember(b.base, topic, tok('alice'));
  c.defer(() => watcher.close());
  const polls = [];
  const fetchSpy = (u, init) => { if (String(u).includes('/poll?')) polls.push(new URL(String(u)).searchParams); return fetch(u, init); };
  const rt = RT.connect(b.base, { transports: ['longpoll'], pollTimeout: 1, remember: false, fetch: fetchSpy, token: tok('dora') });
  c.defer(() => rt.close());
  const view = rt.presence(topic);
  await waitFor(() => polls.filter((q) => q.get('client')).length >= 3, 8000 * SLOW, 'three polls handing back the client key');
  const keys = new Set(polls.map((q) => q.get('client')).filter(Boolean));
  eq(keys.size, 1, 'the same key on every poll');
  const [key] = keys;
  const dora = sseEvents(watcher).filter((e) => e.type === 'join' && e.user === 'dora');
  eq(dora.length, 1, 'one join for dora over several polls');
  assert(key.startsWith(`${dora[0].client}.`) && key.length > dora[0].client.length + 30, `client= is the key, not the id: ${key} (id ${dora[0].client})`);
  eq(brief(await snapshot(b.base, topic)).slice(0, 2), [2, [['alice', 1], ['dora', 1]]], 'dora is one member');
  // another user's token: the old key is refused (400 invalid_id) and the client becomes a new member
  const before = polls.length;
  rt.setToken(tok('erin'));
  await waitFor(() => sseEvents(watcher).some((e) => e.type === 'join' && e.user === 'erin'), 8000 * SLOW, "erin's join after the token change");
  await waitFor(() => polls.slice(before).some((q) => q.get('client') && q.get('client') !== key), 8000 * SLOW, "erin's own key handed back");
  eq(rt.state, 'open', 'still open after the refused key');
  void view;
});

t.test('raw WebSocket: join/leave frames for presence=1 only; published payloads verbatim', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.raw';
  const wsb = b.base.replace('http', 'ws');
  const a = await wsOpen(c, `${wsb}/sub/${topic}?presence=1`, { headers: bearer(tok('alice', { x: 1 })) });
  const plain = await wsOpen(c, `${wsb}/sub/${topic}`);
  await waitFor(() => a.pres().length >= 1, W, 'own join on the raw WebSocket');
  const self = a.pres()[0];
  eqc(self, { type: 'join', topic, user: 'alice', client: self.client, info: { x: 1 } }, 'raw own join frame');
  const anon = await wsOpen(c, `${wsb}/sub/${topic}?presence=1`);
  await waitFor(() => a.pres().length >= 2, W, 'anonymous join on the raw WebSocket');
  const aj = a.pres()[1];
  eq([aj.type, aj.user, aj.info], ['join', null, null], 'anonymous join');
  anon.ws.close();
  await waitFor(() => a.pres().length >= 3, W, 'leave on the raw WebSocket');
  eqc(a.pres()[2], { ...aj, type: 'leave' }, 'leave frame');
  await publishOk(b.base, topic, 'payload');
  await waitFor(() => plain.text.includes('payload') && a.text.includes('payload'), W, 'payload on both');
  eq(plain.text, ['payload'], 'raw subscriber without presence: only the payload');
});

t.test('rt.v1: sub with presence, presence op, unsub → leave, re-sub, errors', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.v1';
  const url = `${b.base.replace('http', 'ws')}/ws`;
  const a = await wsOpen(c, url, { protocols: ['rt.v1'], headers: bearer(tok('alice', { k: 'a' })) });
  const bo = await wsOpen(c, url, { protocols: ['rt.v1'], headers: bearer(tok('bob')) });
  eq((await a.send({ op: 'sub', topic, presence: true })).type, 'ok', 'alice sub');
  await waitFor(() => a.pres().length >= 1, W, "alice's own join");
  eqc(a.pres()[0], { type: 'join', topic, user: 'alice', client: a.pres()[0].client, info: { k: 'a' } }, 'own join');
  eq((await bo.send({ op: 'sub', topic, presence: true })).type, 'ok', 'bob sub');
  await waitFor(() => a.pres().length >= 2 && bo.pres().length >= 1, W, "bob's join on both");
  const bj = bo.pres()[0];
  eqc(a.pres()[1], bj, "bob's join as alice sees it");
  const snap = await a.send({ op: 'presence', topic });
  eqc(snap, { type: 'presence', ref: snap.ref, topic, count: 2, users: [{ user: 'alice', clients: 1, info: { k: 'a' } }, { user: 'bob', clients: 1, info: null }], anonymous: 0 }, 'presence op');
  eqc(snap, { ...(await snapshot(b.base, topic)), type: 'presence', ref: snap.ref }, 'presence op = GET /presence');

  eq((await bo.send({ op: 'unsub', topic })).type, 'ok', 'bob unsub');
  await waitFor(() => a.pres().length >= 3, W, "bob's leave after unsub");
  eqc(a.pres()[2], { ...bj, type: 'leave' }, 'unsub → leave');
  eq(bo.closed, null, "bob's connection stays open");
  eq(brief(await snapshot(b.base, topic)), [1, [['alice', 1]], 0], 'snapshot after unsub');
  eq((await bo.send({ op: 'sub', topic, presence: true })).type, 'ok', 'bob re-sub');
  await waitFor(() => a.pres().length >= 4, W, "bob's second join");
  eq([a.pres()[3].type, a.pres()[3].client], ['join', bj.client], 'a re-sub joins again with the connection\'s client id');
  // a plain sub on another connection: no presence frames
  const plain = await wsOpen(c, url, { protocols: ['rt.v1'] });
  eq((await plain.send({ op: 'sub', topic })).type, 'ok', 'plain sub');

  const e1 = await bo.send({ op: 'sub', topic: 'room.*', presence: true });
  eq([e1.type, e1.code], ['error', 'invalid_topic'], 'presence on a wildcard sub');
  const e2 = await bo.send({ op: 'presence', topic: 'room.>' });
  eq([e2.type, e2.code], ['error', 'invalid_topic'], 'presence op on a wildcard');
  const e3 = await bo.send({ op: 'presence', topic: 'priv.x' });
  eq([e3.type, e3.code], ['error', 'forbidden'], 'presence op on a topic the token does not allow');
  const e4 = await plain.send({ op: 'presence', topic: 'priv.x' });
  eq([e4.type, e4.code], ['error', 'unauthorized'], 'presence op without a token on a closed topic');

  a.ws.close();
  await waitFor(() => bo.pres().some((f) => f.type === 'leave' && f.user === 'alice'), W, "alice's leave on close");
  await sleep(200);
  eq(plain.pres(), [], 'rt.v1 sub without presence: no join/leave frames');
});

t.test('ndjson: own join line, others join/leave; the SSE watcher sees the ndjson member leave', async (c) => {
  const b = await c.broker({ config: config() });
  const topic = 'room.nd';
  const nd = await ndjson(c, b.base, `/sub/${topic}?presence=1`, bearer(tok('nina', { t: 'nd' })));
  eq(nd.status, 200, 'ndjson status');
  await waitFor(() => nd.pres().length >= 1, W, 'own join on ndjson', () => JSON.stringify(nd.lines));
  const self = nd.pres()[0];
  eqc(self, { type: 'join', topic, user: 'nina', client: self.client, info: { t: 'nd' } }, 'ndjson own join');
  const w = await sseMember(b.base, topic, tok('walt'));
  c.defer(() => w.close());
  await waitFor(() => nd.pres().length >= 2, W, "walt's join on ndjson");
  eq([nd.pres()[1].type, nd.pres()[1].user], ['join', 'walt'], 'ndjson join line');
  nd.close();
  await w.waitFor((s) => has(sseEvents(s), 'leave', (e) => e.client === self.client), W, "nina's leave");
  const nd2 = await ndjson(c, b.base, `/ndjson?topic=${topic}`);
  await waitFor(() => nd2.lines.length >= 1, W, 'ndjson ok line');
  await publishOk(b.base, topic, 'm');
  await waitFor(() => nd2.lines.some((l) => l.data === 'm'), W, 'message on plain ndjson');
  eq(nd2.pres(), [], 'ndjson without presence: no join/leave lines');
});

t.test('wildcard presence refused (400 invalid_topic) on every transport and GET /presence', async (c) => {
  const b = await c.broker({ config: config() });
  const sse = await openSSE(b.base, '/sub/room.*?presence=1');
  await sse.done;
  eq([sse.status, sse.json()?.error], [400, 'invalid_topic'], `SSE wildcard presence: ${trunc(sse.text())}`);
  const multi = await openSSE(b.base, '/sse?topic=room.a&topic=room.%3E&presence=1');
  await multi.done;
  eq([multi.status, multi.json()?.error], [400, 'invalid_topic'], `SSE list with a wildcard: ${trunc(multi.text())}`);
  expectError(await poll(b.base, { topic: 'room.>', presence: 1, timeout: 1 }), 400, 'invalid_topic', 'long-poll');
  expectError(await request(b.base, 'GET', '/sub/room.*?presence=1', { headers: { Accept: 'application/x-ndjson' } }), 400, 'invalid_topic', 'ndjson');
  const err = await wsOpen(c, `${b.base.replace('http', 'ws')}/sub/room.*?presence=1`).then(() => null, (e) => e);
  eq(err && err.status, 400, `raw WebSocket wildcard presence (${err && err.message})`);
  expectError(await request(b.base, 'GET', '/presence/room.*'), 400, 'invalid_topic', 'GET /presence wildcard');
  expectError(await request(b.base, 'GET', '/presence/room.%3E'), 400, 'invalid_topic', 'GET /presence >');
  // the same wildcards without presence are fine
  const ok = await subscribe(b.base, '/sub/room.*');
  ok.close();
  eq(brief(await snapshot(b.base, 'room.a')), [0, [], 0], 'no member left behind by the refusals');
});

t.test('GET /presence permissions: 401 without a token on a closed topic, 403 for a token not allowed, bad token 401', async (c) => {
  const b = await c.broker({ config: config() });
  expectError(await request(b.base, 'GET', '/presence/priv.x'), 401, 'unauthorized', 'no token');
  expectError(await request(b.base, 'GET', '/presence/priv.x', { headers: bearer(tok('alice')) }), 403, 'forbidden', 'token for room.> only');
  expectError(await request(b.base, 'GET', '/presence/priv.x', { headers: bearer(jwt('alice', { sub: ['priv.>'] }, 'wrong-secret')) }), 401, 'unauthorized', 'bad signature');
  expectError(await request(b.base, 'POST', '/presence/room.a'), 405, 'method_not_allowed', 'POST');
  const owner = tok('olga', null, ['priv.>']);
  const s = await sseMember(b.base, 'priv.x', owner);
  c.defer(() => s.close());
  eqc(await snapshot(b.base, 'priv.x', owner), { topic: 'priv.x', count: 1, users: [{ user: 'olga', clients: 1, info: null }], anonymous: 0 }, 'allowed token');
  eq(brief(await snapshot(b.base, 'room.a')), [0, [], 0], 'anonymous snapshot of an open topic');
  const q = await request(b.base, 'GET', `/presence?topic=priv.x&token=${owner}`);
  eq([q.status, q.json && q.json.count], [200, 1], `?topic= and ?token= (${trunc(q.text)})`);
});

await t.run();

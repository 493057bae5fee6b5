// An Idempotency-Key belongs to its publisher (token subject, or client address without a token), on both buses:
// - a second publisher who uses (or guesses first) the same key on the same topic gets its own message stored and
//   its own id, and the first publisher's message is stored too;
// - the same publisher retrying (over HTTP through any node, or rt.v1 over WebSocket) gets its first id and
//   nothing new is stored.
import { suite, assert, eq, publish, poll, hs256Token, trunc } from './lib.mjs';
import { httpOnce, wsOpen, ATTACKER } from './limitslib.mjs';
import { startNats, natsBroker } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });
const SECRET = 'idem-test-secret-0123456789abcdef';
const AUTH = { jwt: { secret: SECRET }, anonymous: { subscribe: ['orders.>'], publish: ['orders.>'] } };
const token = (sub) => hs256Token(SECRET, { sub, rt: { sub: ['orders.>'], pub: ['orders.>'] } });
const KEY = 'order-42';
const TOPIC = 'orders.42';

/** POST with the key, as a token holder (sub) or anonymously from a local address; returns the id of a 200. */
async function keyed(base, body, { sub, from } = {}) {
  const headers = { 'Idempotency-Key': KEY, ...(sub ? { Authorization: `Bearer ${token(sub)}` } : {}) };
  const r = from
    ? await httpOnce(base, 'POST', `/pub/${TOPIC}`, { body, headers, localAddress: from })
    : await publish(base, TOPIC, body, { headers });
  assert(r.status === 200, `publish "${body}" (${sub || from}): ${r.status} ${trunc(r.text)}`);
  return r.json.id;
}

/** rt.v1 pub with the key over a WebSocket (token in the query, or anonymous from `from`); returns the ok's id. */
async function keyedWs(c, base, body, { sub, from } = {}) {
  const w = await wsOpen(base, `/ws${sub ? `?token=${token(sub)}` : ''}`, { protocols: ['rt.v1'], localAddress: from });
  c.defer(() => w.ws.terminate());
  const f = await w.op({ op: 'pub', topic: TOPIC, data: body, idempotency_key: KEY });
  assert(f.type === 'ok', `rt.v1 pub "${body}" (${sub || from}): ${JSON.stringify(f)}`);
  return f.id;
}

/** Every message stored on TOPIC after `after` up to `last`, as [id, data], read from node base. */
async function storedBetween(base, after, last) {
  const got = [];
  let cursor = after;
  while (!got.some(([id]) => id === last)) {
    const r = await poll(base, { topic: TOPIC, cursor, timeout: 5 });
    assert(r.status === 200 && r.json.messages.length > 0, `poll after ${cursor}: ${r.status} ${trunc(r.text)}`);
    for (const m of r.json.messages) got.push([m.id, m.data]);
    cursor = r.json.cursor;
  }
  return got;
}

/** The attack and the retries against nodes A and B (the same node on the memory bus). */
async function scenario(c, A, B) {
  const before = (await publish(A.base, TOPIC, 'before')).json.id;
  const mallory = await keyed(A.base, 'mallory first', { sub: 'mallory' });
  const alice = await keyed(B.base, 'alice', { sub: 'alice' });
  assert(alice !== mallory, `alice's publish with mallory's key answered mallory's id ${mallory}: alice's message was discarded`);
  eq(await keyed(A.base, 'alice retry', { sub: 'alice' }), alice, 'alice retrying (another node) gets her first id');
  eq(await keyed(B.base, 'mallory retry', { sub: 'mallory' }), mallory, 'mallory retrying gets his first id');
  eq(await keyedWs(c, A.base, 'alice over rt.v1', { sub: 'alice' }), alice, 'alice retrying over rt.v1 gets her first id');
  const local = await keyed(A.base, 'anonymous 127.0.0.1', { from: '127.0.0.1' });
  const other = await keyed(B.base, 'anonymous 127.0.0.2', { from: ATTACKER });
  assert(new Set([mallory, alice, local, other]).size === 4, `four publishers, four ids: ${[mallory, alice, local, other]}`);
  eq(await keyed(A.base, 'anonymous 127.0.0.2 retry', { from: ATTACKER }), other, 'an anonymous retry from the same address gets its first id');
  eq(await keyedWs(c, B.base, 'anonymous rt.v1 127.0.0.2', { from: ATTACKER }), other, 'the same address over rt.v1 gets its first id');
  const after = (await publish(B.base, TOPIC, 'after')).json.id;
  eq(await storedBetween(A.base, before, after),
    [[mallory, 'mallory first'], [alice, 'alice'], [local, 'anonymous 127.0.0.1'], [other, 'anonymous 127.0.0.2'], [after, 'after']],
    'stored: each publisher\'s message once, no retry');
}

t.test('memory bus: the same Idempotency-Key from two publishers stores both; each publisher\'s retry gets its own id', async (c) => {
  const b = await c.broker({ config: { auth: AUTH } });
  await scenario(c, b, b);
});

t.test('NATS bus (Nats-Msg-Id): the same Idempotency-Key from two publishers stores both; retries through another node get their own id', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, { auth: AUTH });
  const B = await natsBroker(c, nats.url, { auth: AUTH });
  await scenario(c, A, B);
}, { timeout: 40000 });

await t.run();

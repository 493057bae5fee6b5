// Ephemeral messages (live only, no id, never replayed) and the history API (GET /history/{topic}).
import WebSocket from 'ws';
import {
  suite, assert, eq, expectError, publishOk, publish, poll, request, subscribe, sleep, trunc,
} from './lib.mjs';

const t = suite(import.meta.url);

async function history(base, q) {
  const r = await request(base, 'GET', `/history/${q}`);
  assert(r.status === 200, `GET /history/${q}: expected 200, got ${r.status} ${trunc(r.text)}`);
  const j = JSON.parse(r.text);
  assert(typeof j.cursor === 'string' && typeof j.gap === 'boolean' && Array.isArray(j.messages), `shape: ${trunc(r.text)}`);
  return j;
}

function wsOpen(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    const got = [];
    ws.on('message', (d) => got.push(d.toString()));
    ws.once('open', () => resolve({ ws, got }));
    ws.once('error', reject);
  });
}

t.test('ephemeral: live on SSE, raw WebSocket, rt.v1 and long-poll; no id; reply id null', async (c) => {
  const b = await c.broker();
  const wsBase = b.base.replace('http', 'ws');
  const sse = await subscribe(b.base, '/sub/eph.t');
  const raw = await wsOpen(`${wsBase}/sub/eph.t`);
  const v1 = await wsOpen(`${wsBase}/ws`, ['rt.v1']);
  v1.ws.send(JSON.stringify({ op: 'sub', topic: 'eph.*', ref: 1 }));
  await sleep(200);
  const held = poll(b.base, { topic: 'eph.t', timeout: 10 });
  await sleep(300);
  const r = await publish(b.base, 'eph.t', 'typing', { headers: { 'X-Ephemeral': '1' } });
  eq([r.status, JSON.parse(r.text)], [200, { id: null, topic: 'eph.t' }], 'ephemeral publish reply');
  await sse.waitMessages(1, 5000);
  const ev = sse.messages[0];
  eq([ev.data, ev.hasId], ['typing', false], 'SSE event without an id line');
  const lp = await held;
  const lj = JSON.parse(lp.text);
  eq(lj.messages.map((m) => [m.id, m.data]), [[null, 'typing']], 'long-poll entry with id null');
  await sleep(200);
  eq(raw.got, ['typing'], 'raw WebSocket frame');
  const msgs = v1.got.map((x) => JSON.parse(x)).filter((m) => m.type === 'msg');
  eq(msgs.map((m) => [m.id, m.data]), [[null, 'typing']], 'rt.v1 msg with id null');
  // rt.v1 publish with "ephemeral": true
  v1.ws.send(JSON.stringify({ op: 'pub', topic: 'eph.t', data: 'from-ws', ephemeral: true, ref: 'e1' }));
  await sse.waitMessages(2, 5000);
  eq([sse.messages[1].data, sse.messages[1].hasId], ['from-ws', false], 'rt.v1 ephemeral pub reaches SSE without id');
  const ack = v1.got.map((x) => JSON.parse(x)).find((m) => m.ref === 'e1');
  eq(ack, { type: 'ok', ref: 'e1', id: null }, 'rt.v1 ack for an ephemeral pub');
  raw.ws.close(); v1.ws.close(); sse.close();
});

t.test('ephemeral: never replayed, absent from history, Last-Event-ID resume unaffected', async (c) => {
  const b = await c.broker();
  const id1 = await publishOk(b.base, 'ep2.t', 'one');
  await publish(b.base, 'ep2.t', 'ghost', { query: 'ephemeral=1' });
  const id2 = await publishOk(b.base, 'ep2.t', 'two');
  const h = await history(b.base, 'ep2.t');
  eq(h.messages.map((m) => m.data), ['one', 'two'], 'history holds only stored messages');
  const s = await subscribe(b.base, '/sub/ep2.t', { headers: { 'Last-Event-ID': id1 } });
  await s.waitMessages(1, 5000);
  await sleep(300);
  eq(s.messages.map((m) => [m.id, m.data]), [[id2, 'two']], 'resume replays stored messages only');
  const p = JSON.parse((await poll(b.base, { topic: 'ep2.t', cursor: id1, timeout: 1 })).text);
  eq(p.messages.map((m) => m.data), ['two'], 'long-poll replay skips the ephemeral message');
  s.close();
});

t.test('history: latest N, paging back with before, forward with since, wildcards', async (c) => {
  const b = await c.broker();
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push(await publishOk(b.base, `hp.t${i % 2}`, `m${i}`));
  const latest = await history(b.base, 'hp.*?limit=3');
  eq(latest.messages.map((m) => m.data), ['m4', 'm5', 'm6'], 'latest 3 across the wildcard, oldest first');
  eq(latest.cursor, ids[4], 'cursor = oldest returned (page back from it)');
  const back = await history(b.base, `hp.*?limit=3&before=${latest.cursor}`);
  eq(back.messages.map((m) => m.data), ['m1', 'm2', 'm3'], 'the page before');
  const back2 = await history(b.base, `hp.*?limit=3&before=${back.cursor}`);
  eq(back2.messages.map((m) => m.data), ['m0'], 'the first page');
  const fwd = await history(b.base, `hp.t0?since=${ids[0]}&limit=2`);
  eq(fwd.messages.map((m) => m.data), ['m2', 'm4'], 'forward from since on one topic');
  eq(fwd.cursor, ids[4], 'cursor = newest returned (page forward from it)');
  const fwd2 = await history(b.base, `hp.t0?since=${fwd.cursor}&limit=2`);
  eq(fwd2.messages.map((m) => m.data), ['m6'], 'the next forward page');
  const multi = await history(b.base, '?topic=hp.t0&topic=hp.t1&limit=2');
  eq(multi.messages.map((m) => m.data), ['m5', 'm6'], 'topic= list');
});

t.test('history: gap flag when the history is incomplete or from another epoch', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 3 } } });
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(await publishOk(b.base, 'hg.t', `m${i}`));
  const fwd = await history(b.base, `hg.t?since=${ids[0]}`);
  eq([fwd.gap, fwd.messages.map((m) => m.data)], [true, ['m3', 'm4', 'm5']], 'since older than retention → gap');
  const ok = await history(b.base, `hg.t?since=${ids[3]}`);
  eq([ok.gap, ok.messages.map((m) => m.data)], [false, ['m4', 'm5']], 'since within retention → no gap');
  const foreign = await history(b.base, 'hg.t?since=zzzz:1');
  eq(foreign.gap, true, 'since from another epoch → gap');
  const backAll = await history(b.base, `hg.t?before=${ids[4]}`);
  eq([backAll.gap, backAll.messages.map((m) => m.data)], [true, ['m3']], 'paging back past evicted history → gap');
});

t.test('history: bad input and permissions', async (c) => {
  const b = await c.broker({ config: { auth: { anonymous: { subscribe: ['open.>'], publish: ['>'] } } } });
  expectError(await request(b.base, 'GET', '/history/closed.t'), 401, 'unauthorized');
  expectError(await request(b.base, 'GET', '/history/open.t?limit=0'), 400, 'invalid_parameter');
  expectError(await request(b.base, 'GET', '/history/open.t?limit=abc'), 400, 'invalid_parameter');
  expectError(await request(b.base, 'GET', '/history/open.t?since=nope'), 400, 'invalid_id');
  expectError(await request(b.base, 'GET', '/history/open.t?since=a:1&before=a:2'), 400, 'invalid_parameter');
  expectError(await request(b.base, 'GET', '/history/bad..t'), 400, 'invalid_topic');
  expectError(await request(b.base, 'POST', '/history/open.t'), 405, 'method_not_allowed');
  const j = await history(b.base, 'open.>');
  eq(j.messages, [], 'an empty history is an empty list');
});

t.test('rt.v1 pub with idempotency_key: a retry gets the first id and stores nothing new', async (c) => {
  const b = await c.broker();
  const v1 = await wsOpen(`${b.base.replace('http', 'ws')}/ws`, ['rt.v1']);
  for (const ref of ['a', 'b']) v1.ws.send(JSON.stringify({ op: 'pub', topic: 'idem.t', data: 'x', idempotency_key: 'k-1', ref }));
  v1.ws.send(JSON.stringify({ op: 'pub', topic: 'idem.t', data: 'y', idempotency_key: 'bad key with spaces', ref: 'c' }));
  await sleep(300);
  const acks = Object.fromEntries(v1.got.map((x) => JSON.parse(x)).filter((m) => m.ref).map((m) => [m.ref, m]));
  assert(acks.a && acks.a.type === 'ok' && acks.a.id, `first pub acked with an id: ${JSON.stringify(acks.a)}`);
  eq(acks.b, { type: 'ok', ref: 'b', id: acks.a.id }, 'the retry gets the first id');
  eq([acks.c.type, acks.c.code], ['error', 'invalid_parameter'], 'a bad key is refused');
  const h = await history(b.base, 'idem.t');
  eq(h.messages.map((m) => m.id), [acks.a.id], 'stored once');
  v1.ws.close();
});

await t.run();

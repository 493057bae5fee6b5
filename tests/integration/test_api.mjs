// The server API on one node (memory bus, 2 workers): API keys (none = 404, wrong = 401, RTB_API_KEYS), POST
// /api/publish to many topics (ids, events, ephemeral, idempotency), every refusal of bad input naming its field,
// /api/info, /api/topics (pattern, pages), /api/topics/{topic}, DELETE /api/history/{topic} (a later resume gets a
// gap), /api/disconnect seen by rt.v1 and raw WebSocket, SSE, NDJSON and long-poll clients, server-side subscribe and
// unsubscribe seen by rt.v1 WebSocket and SSE clients, api.listen, and the /metrics counters.
import {
  suite, assert, eq, request, subscribe, publishOk, poll, waitFor, trunc, sleep,
} from './lib.mjs';
import { API_KEY, W, api, apiConfig, jwt, ndjson, wsOpen, wsUser } from './apilib.mjs';
import { freePort } from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });

function expect400(r, field, code = null, status = 400) {
  assert(r.status === status, `expected ${status}, got ${r.status} ${trunc(r.text)}`);
  assert(r.json && r.json.field === field, `expected field ${field} in ${trunc(r.text)}`);
  if (code) eq(r.json.error, code, `error code of ${trunc(r.text)}`);
  assert(typeof r.json.message === 'string' && r.json.message.length > 0, 'a message');
}

t.test('keys: none configured → 404; missing or wrong key → 401; api.keys and RTB_API_KEYS work', async (c) => {
  const off = await c.broker();
  const r0 = await api(off.base, 'GET', '/api/info');
  eq(r0.status, 404, `no key configured: ${r0.text}`);
  const b = await c.broker({ config: apiConfig() });
  eq((await api(b.base, 'GET', '/api/info', undefined, { key: null })).status, 401, 'no Authorization');
  eq((await api(b.base, 'GET', '/api/info', undefined, { key: API_KEY + 'x' })).status, 401, 'wrong key');
  eq((await request(b.base, 'GET', '/api/info', { headers: { Authorization: `Bearer ${API_KEY}` } })).status, 401, 'Bearer is not apikey');
  const ok = await api(b.base, 'GET', '/api/info');
  eq(ok.status, 200, ok.text);
  const e = await c.broker({ config: apiConfig({ api: {} }), env: { RTB_API_KEYS: 'env-key-0123456789abcdef,other-key-0123456789abc' } });
  eq((await api(e.base, 'GET', '/api/info', undefined, { key: 'other-key-0123456789abc' })).status, 200, 'a key of RTB_API_KEYS');
  eq((await api(e.base, 'GET', '/api/info', undefined, { key: API_KEY })).status, 401, 'a key not in RTB_API_KEYS');
});

t.test('publish: one call to many topics, per-topic ids, delivered to each; event, JSON and text data; ephemeral; idempotency', async (c) => {
  const b = await c.broker({ config: apiConfig() });
  const s = await subscribe(b.base, '/sse?topic=pub.a&topic=pub.b&envelope=1');
  const r = await api(b.base, 'POST', '/api/publish', { topics: ['pub.a', 'pub.b', 'room.x'], data: { n: 1 }, event: 'ev' });
  eq(r.status, 200, r.text);
  eq(r.json.results.map((x) => x.topic), ['pub.a', 'pub.b', 'room.x']);
  assert(r.json.results.every((x) => /^[a-z0-9]+:\d+$/.test(x.id)), `ids: ${r.text}`);
  eq(r.json.failed, 0);
  await s.waitMessages(2, W);
  const got = s.messages.map((m) => JSON.parse(m.data));
  eq(got.map((m) => [m.topic, m.event, m.data]), [['pub.a', 'ev', { n: 1 }], ['pub.b', 'ev', { n: 1 }]]);
  const txt = await api(b.base, 'POST', '/api/publish', { topics: ['pub.a'], data: 'plain text' });
  await s.waitMessages(3, W);
  eq(JSON.parse(s.messages[2].data).data, 'plain text', 'a JSON string is published as its text');
  eq(txt.json.results[0].topic, 'pub.a');
  const eph = await api(b.base, 'POST', '/api/publish', { topics: ['pub.b'], data: 1, ephemeral: true });
  eq(eph.json.results[0].id, null, 'ephemeral: no id');
  await s.waitMessages(4, W);
  const k1 = await api(b.base, 'POST', '/api/publish', { topics: ['pub.c', 'pub.d'], data: 2, idempotency_key: 'order-7' });
  const k2 = await api(b.base, 'POST', '/api/publish', { topics: ['pub.c', 'pub.d'], data: 2, idempotency_key: 'order-7' });
  eq(k2.json.results.map((x) => x.id), k1.json.results.map((x) => x.id), 'a retry with the same key gives the same ids');
  const h = await request(b.base, 'GET', '/history/pub.c?since=' + k1.json.results[0].id.split(':')[0] + ':0');
  eq(h.json.messages.length, 1, 'published once');
});

t.test('bad input: each refusal is 400 (or 405/413) JSON naming the field', async (c) => {
  const b = await c.broker({ config: apiConfig({ api: { keys: [API_KEY], max_topics_per_publish: 3, max_body_bytes: '2KiB' }, limits: { max_message_bytes: 1024 } }) });
  const P = (body) => api(b.base, 'POST', '/api/publish', body);
  expect400(await P({ topics: ['pub.a'], data: 1, extra: true }), 'extra', 'invalid_parameter');
  expect400(await P({ topics: 'pub.a', data: 1 }), 'topics', 'invalid_parameter');
  expect400(await P({ topics: ['pub.a'], data: 1, ephemeral: 'yes' }), 'ephemeral', 'invalid_parameter');
  expect400(await P({ topics: ['pub.*'], data: 1 }), 'topics[0]', 'invalid_topic');
  expect400(await P({ topics: ['pub.a', 'pub.>'], data: 1 }), 'topics[1]', 'invalid_topic');
  expect400(await P({ topics: ['pub.a', 7], data: 1 }), 'topics[1]', 'invalid_topic');
  expect400(await P({ topics: ['bad topic'], data: 1 }), 'topics[0]', 'invalid_topic');
  expect400(await P({ topics: [], data: 1 }), 'topics', 'invalid_topic');
  expect400(await P({ topics: ['a', 'b', 'c', 'd'], data: 1 }), 'topics', 'too_many_topics');
  expect400(await P({ topics: ['a'] }), 'data', 'invalid_parameter');
  expect400(await P({ data: 1 }), 'topics', 'invalid_parameter');
  expect400(await P({ topics: ['a'], data: 1, event: 'bad event' }), 'event', 'invalid_event');
  expect400(await P({ topics: ['a'], data: 1, idempotency_key: 'x'.repeat(65) }), 'idempotency_key', 'invalid_parameter');
  expect400(await P({ topics: ['a'], data: 'x'.repeat(1500) }), 'data', 'too_large', 413);
  expect400(await P({ topics: ['a'], data: 'x'.repeat(3000) }), 'body', 'too_large', 413);
  expect400(await P('{"topics":["a"],'), 'body', 'invalid_json');
  expect400(await P('[1]'), 'body', 'invalid_json');
  expect400(await P({ topics: ['a'], topics2: 1, data: 1 }), 'topics2');
  expect400(await api(b.base, 'POST', '/api/disconnect', { user: 'a', client: 'b' }), 'user');
  expect400(await api(b.base, 'POST', '/api/disconnect', { user: 5 }), 'user');
  expect400(await api(b.base, 'POST', '/api/disconnect', { user: 'a', reconnect: 'no' }), 'reconnect');
  expect400(await api(b.base, 'POST', '/api/disconnect', { user: 'a', reason: 'r'.repeat(300) }), 'reason');
  expect400(await api(b.base, 'POST', '/api/subscribe', { user: 'a' }), 'topic');
  expect400(await api(b.base, 'POST', '/api/subscribe', { user: 'a', topic: 'a..b' }), 'topic', 'invalid_topic');
  expect400(await api(b.base, 'GET', '/api/topics?pattern=a..b'), 'pattern', 'invalid_topic');
  expect400(await api(b.base, 'GET', '/api/topics?limit=0'), 'limit');
  expect400(await api(b.base, 'GET', '/api/topics?color=red'), 'color');
  expect400(await api(b.base, 'GET', '/api/topics/room.*'), 'topic', 'invalid_topic');
  expect400(await api(b.base, 'DELETE', '/api/history/room.>'), 'topic', 'invalid_topic');
  const m = await api(b.base, 'GET', '/api/publish');
  eq(m.status, 405, m.text);
  eq(m.headers.get('allow'), 'POST');
  eq((await api(b.base, 'GET', '/api/nothing')).status, 404);
  const ok = await P({ topics: ['a', 'b', 'c'], data: 1 });
  eq(ok.status, 200, `3 topics is within the limit: ${ok.text}`);
});

t.test('info, topics (pattern, pages) and one topic (subscribers, presence, retained, last id)', async (c) => {
  const b = await c.broker({ config: apiConfig({ auth: { anonymous: { subscribe: ['>'], publish: ['>'] } } }) });
  const info = await api(b.base, 'GET', '/api/info');
  eq(info.json.nodes.length, 1);
  const n = info.json.nodes[0];
  eq([typeof n.id, n.version, n.bus, typeof n.uptime_s], ['string', '0.1.0', 'memory', 'number']);
  const streams = [];
  for (const tp of ['pub.a', 'pub.a', 'pub.b', 'pub.c.d', 'pub.*', 'other.x']) streams.push(await subscribe(b.base, `/sse?topic=${tp}${tp.includes('*') ? '' : '&presence=1'}`));
  const info2 = await api(b.base, 'GET', '/api/info');
  eq(info2.json.nodes[0].connections.sse, 6, `connections by transport: ${info2.text}`);
  const all = await api(b.base, 'GET', '/api/topics');
  eq(all.json.topics, [{ topic: 'other.x', subscribers: 1 }, { topic: 'pub.*', subscribers: 1 }, { topic: 'pub.a', subscribers: 2 },
    { topic: 'pub.b', subscribers: 1 }, { topic: 'pub.c.d', subscribers: 1 }]);
  eq(all.json.next, null);
  const under = await api(b.base, 'GET', '/api/topics?pattern=pub.*');
  eq(under.json.topics.map((x) => x.topic), ['pub.*', 'pub.a', 'pub.b'], 'pattern pub.* (pub.c.d has two more segments)');
  const p1 = await api(b.base, 'GET', '/api/topics?pattern=pub.>&limit=2');
  eq(p1.json.topics.map((x) => x.topic), ['pub.*', 'pub.a']);
  eq(p1.json.next, 'pub.a');
  const p2 = await api(b.base, 'GET', `/api/topics?pattern=pub.>&limit=2&after=${p1.json.next}`);
  eq(p2.json.topics.map((x) => x.topic), ['pub.b', 'pub.c.d']);
  eq(p2.json.next, null);
  const id = await publishOk(b.base, 'pub.a', 'one');
  const id2 = await publishOk(b.base, 'pub.a', 'two');
  assert(id !== id2);
  const one = await api(b.base, 'GET', '/api/topics/pub.a');
  eq(one.status, 200, one.text);
  eq([one.json.subscribers, one.json.retained, one.json.last_id, one.json.presence.count], [3, 2, id2, 2],
    `subscribers (2 exact + pub.*), retained, last id, presence members: ${one.text}`);
  const none = await api(b.base, 'GET', '/api/topics/nobody.here');
  eq([none.json.subscribers, none.json.retained, none.json.last_id], [0, 0, null]);
});

t.test('DELETE /api/history/{topic}: nothing retained after; a resume from before gets a gap on SSE and long-poll', async (c) => {
  const b = await c.broker({ config: apiConfig() });
  const id1 = await publishOk(b.base, 'pub.h', 'a');
  await publishOk(b.base, 'pub.h', 'b');
  await publishOk(b.base, 'pub.keep', 'c');
  const d = await api(b.base, 'DELETE', '/api/history/pub.h');
  eq([d.status, d.json.dropped], [200, 2], d.text);
  eq((await api(b.base, 'GET', '/api/topics/pub.h')).json.retained, 0);
  eq((await api(b.base, 'GET', '/api/topics/pub.keep')).json.retained, 1, 'another topic keeps its history');
  const lp = await poll(b.base, { topic: 'pub.h', cursor: id1, timeout: 0 });
  eq([lp.json.gap, lp.json.messages.length], [true, 0], `long-poll from before: ${lp.text}`);
  const s = await subscribe(b.base, '/sse?topic=pub.h', { headers: { 'Last-Event-ID': id1 } });
  await s.waitFor((x) => x.events.some((e) => e.event === 'rt.gap'), W, 'rt.gap');
});

t.test('disconnect by user: rt.v1 and raw WebSocket, SSE, NDJSON and long-poll end as documented; others stay', async (c) => {
  const b = await c.broker({ config: apiConfig() });
  const v1 = await wsUser(c, b, 'alice');
  eq((await v1.send({ op: 'sub', topic: 'room.1' })).type, 'ok');
  const raw = await wsOpen(c, b.base.replace('http', 'ws') + '/sub/room.1', { protocols: ['rt.raw', `bearer.${jwt('alice')}`] });
  const bob = await wsUser(c, b, 'bob');
  eq((await bob.send({ op: 'sub', topic: 'room.1' })).type, 'ok');
  const sse = await subscribe(b.base, '/sse?topic=room.1', { headers: { Authorization: `Bearer ${jwt('alice')}` } });
  const nd = await ndjson(c, b.base, '/sub/room.1', { Authorization: `Bearer ${jwt('alice')}` });
  await waitFor(() => nd.lines.length > 0, W, 'ndjson ok');
  const held = poll(b.base, { topic: 'room.1', timeout: 20 }, { headers: { Authorization: `Bearer ${jwt('alice')}` } });
  await sleep(300);
  const r = await api(b.base, 'POST', '/api/disconnect', { user: 'alice', reason: 'banned', reconnect: false });
  eq([r.status, r.json.disconnected], [200, 5], r.text);
  await waitFor(() => v1.closed !== null && raw.closed !== null, W, 'both WebSockets closed');
  eq(v1.closed, 4010, 'rt.v1: close 4010 (do not reconnect)');
  eq(raw.closed, 4010, 'raw: close 4010');
  eq(v1.of('disconnect'), [{ type: 'disconnect', reason: 'banned', reconnect: false }], 'rt.v1 is told why first');
  await sse.waitFor((x) => x.ended, W, 'SSE ended');
  const ev = sse.events.find((e) => e.event === 'rt.disconnect');
  assert(ev, `SSE event rt.disconnect: ${trunc(sse.text())}`);
  eq(JSON.parse(ev.data), { reason: 'banned', reconnect: false });
  await waitFor(() => nd.ended, W, 'ndjson ended');
  eq(nd.lines.at(-1), { type: 'disconnect', reason: 'banned', reconnect: false });
  const lp = await held;
  eq([lp.status, lp.json.disconnect], [200, { reason: 'banned', reconnect: false }], `held long-poll: ${lp.text}`);
  assert(lp.ms < 5000, 'answered at once');
  await sleep(200);
  eq(bob.closed, null, 'bob stays');
  const again = await wsUser(c, b, 'alice');
  const r2 = await api(b.base, 'POST', '/api/disconnect', { user: 'alice' });
  eq(r2.json.disconnected, 1);
  await waitFor(() => again.closed !== null, W, 'closed');
  eq(again.closed, 4000, 'reconnect allowed: 4000');
  eq(again.of('disconnect')[0], { type: 'disconnect', reason: null, reconnect: true });
});

t.test('disconnect by client id (the id a presence join shows)', async (c) => {
  const b = await c.broker({ config: apiConfig() });
  const a = await wsUser(c, b, 'carol');
  eq((await a.send({ op: 'sub', topic: 'room.p', presence: true })).type, 'ok');
  const other = await wsUser(c, b, 'carol');
  eq((await other.send({ op: 'sub', topic: 'room.p', presence: true })).type, 'ok');
  await waitFor(() => a.of('join').length >= 2, W, 'joins');
  const mine = a.of('join')[0].client;
  const r = await api(b.base, 'POST', '/api/disconnect', { client: mine });
  eq(r.json.disconnected, 1, r.text);
  await waitFor(() => a.closed !== null || other.closed !== null, W, 'one closed');
  await sleep(200);
  eq([a.closed === null, other.closed === null].filter(Boolean).length, 1, 'exactly one of the two connections ended');
});

t.test('server-side subscribe / unsubscribe: rt.v1 and SSE (envelope) are told and get the messages; others not', async (c) => {
  const b = await c.broker({ config: apiConfig() });
  const ws = await wsUser(c, b, 'dave');
  const sse = await subscribe(b.base, '/sse?topic=room.own&envelope=1', { headers: { Authorization: `Bearer ${jwt('dave')}` } });
  const plain = await subscribe(b.base, '/sse?topic=room.own', { headers: { Authorization: `Bearer ${jwt('dave')}` } });
  const erin = await wsUser(c, b, 'erin');
  const r = await api(b.base, 'POST', '/api/subscribe', { user: 'dave', topic: 'secret.news' });
  eq([r.status, r.json.connections], [200, 2], `rt.v1 and SSE with envelopes take it: ${r.text}`);
  await waitFor(() => ws.of('subscribed').length === 1, W, 'rt.v1 subscribed notice');
  eq(ws.of('subscribed')[0], { type: 'subscribed', topic: 'secret.news' });
  await sse.waitFor((x) => x.events.some((e) => e.event === 'rt.subscribed'), W, 'SSE rt.subscribed');
  eq(JSON.parse(sse.events.find((e) => e.event === 'rt.subscribed').data), { topic: 'secret.news' });
  const pr = await api(b.base, 'POST', '/api/publish', { topics: ['secret.news'], data: 'hi' });
  await waitFor(() => ws.of('msg').length === 1, W, 'rt.v1 message of the server-side subscription');
  eq([ws.of('msg')[0].topic, ws.of('msg')[0].data, ws.of('msg')[0].id], ['secret.news', 'hi', pr.json.results[0].id]);
  await sse.waitMessages(1, W);
  eq(JSON.parse(sse.messages[0].data).topic, 'secret.news');
  const again = await api(b.base, 'POST', '/api/subscribe', { user: 'dave', topic: 'secret.news' });
  eq(again.json.connections, 2, 'subscribing again changes nothing');
  const u = await api(b.base, 'POST', '/api/unsubscribe', { user: 'dave', topic: 'secret.news' });
  eq(u.json.connections, 2, u.text);
  await waitFor(() => ws.of('unsubscribed').length === 1, W, 'rt.v1 unsubscribed notice');
  eq(ws.of('unsubscribed')[0], { type: 'unsubscribed', topic: 'secret.news' });
  await api(b.base, 'POST', '/api/publish', { topics: ['secret.news', 'room.own'], data: 'after' });
  await sse.waitMessages(2, W);
  eq(JSON.parse(sse.messages[1].data).topic, 'room.own', 'nothing more of secret.news');
  await sleep(200);
  eq(ws.of('msg').length, 1, 'rt.v1: nothing after unsubscribe');
  eq(plain.messages.map((m) => m.data), ['after'], 'SSE without envelopes is left alone');
  eq(erin.of('msg').length + erin.of('subscribed').length, 0, 'another user is left alone');
  const u2 = await api(b.base, 'POST', '/api/unsubscribe', { user: 'dave', topic: 'room.own' });
  eq(u2.json.connections, 2, 'unsubscribe also acts on connections that subscribed themselves');
});

t.test('api.listen: the API there only; /metrics counts calls by method and result', async (c) => {
  const apiPort = await freePort();
  const b = await c.broker({ config: apiConfig({ api: { keys: [API_KEY], listen: [`127.0.0.1:${apiPort}`] } }) });
  const apiBase = `http://127.0.0.1:${apiPort}`;
  eq((await api(b.base, 'GET', '/api/info')).status, 404, 'not on the public listener');
  eq((await api(apiBase, 'GET', '/api/info')).status, 200, 'on api.listen');
  eq((await request(apiBase, 'GET', '/sub/pub.a')).status, 404, 'api.listen serves nothing else');
  await api(apiBase, 'POST', '/api/publish', { topics: ['a'], data: 1, x: 1 });
  await api(apiBase, 'GET', '/api/info', undefined, { key: 'nope-nope-nope-nope' });
  const m = await request(b.base, 'GET', '/metrics');
  for (const line of ['rtbroker_api_calls_total{method="info",result="ok"} 1', 'rtbroker_api_calls_total{method="publish",result="invalid"} 1',
    'rtbroker_api_calls_total{method="other",result="unauthorized"} 1']) assert(m.text.includes(line), `/metrics has ${line}`);
});

t.test('limits.connections_per_user: past it SSE gets 429 rate_limited, WebSocket close 4029 (token at upgrade or by op auth)', async (c) => {
  const b = await c.broker({ config: apiConfig({ limits: { connections_per_user: 2, connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 } }) });
  const amy = { Authorization: `Bearer ${jwt('amy')}` };
  const s1 = await subscribe(b.base, '/sse?topic=room.1', { headers: amy });
  const w1 = await wsUser(c, b, 'amy');
  const r = await request(b.base, 'GET', '/sse?topic=room.1', { headers: { ...amy, Accept: 'text/event-stream' } });
  eq([r.status, r.json && r.json.error], [429, 'rate_limited'], `third SSE: ${r.text}`);
  assert(/connections_per_user/.test(r.json.message), r.json.message);
  const w2 = await wsUser(c, b, 'amy');
  await waitFor(() => w2.closed !== null, W, 'third WebSocket closed');
  eq(w2.closed, 4029, 'close 4029');
  const late = await wsOpen(c, b.base.replace('http', 'ws') + '/ws', { protocols: ['rt.v1'] });
  const a = await late.send({ op: 'auth', token: jwt('amy') });
  eq([a.type, a.code], ['error', 'rate_limited'], JSON.stringify(a));
  await waitFor(() => late.closed !== null, W, 'closed after auth');
  eq(late.closed, 4029);
  const ben = await wsUser(c, b, 'ben');
  eq((await ben.send({ op: 'sub', topic: 'room.1' })).type, 'ok', 'another user is not limited');
  s1.close();
  await waitFor(async () => (await api(b.base, 'GET', '/api/info')).json.nodes[0].connections.sse === 0, W, 'SSE gone');
  const again = await subscribe(b.base, '/sse?topic=room.1', { headers: amy });
  assert(again.status === 200, 'a slot is free again');
  eq(w1.closed, null);
});

await t.run();

// Topic namespaces (config `topics:`) on the memory bus: history lengths per namespace, `presence: false` refusing
// presence on every transport, `publish: server` refusing client publishes (HTTP and rt.v1) but taking the server
// API and a POST carrying an API key, `recover: latest` sending the latest retained message first (marked
// "latest": true) on SSE, rt.v1 WebSocket, long-poll and NDJSON, `recover: none` ignoring resume points, and
// configuration errors that name the line.
import fs from 'node:fs';
import path from 'node:path';
import {
  suite, assert, eq, request, subscribe, publish, poll, waitFor, trunc, toYaml, mkTemp, runBrokerSync, sleep,
} from './lib.mjs';
import { API_KEY, SECRET, W, api, jwt, ndjson, wsOpen, wsUser } from './apilib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 120000 });

const TOPICS = `topics:
  - pattern: "chat.>"
    history: {max_messages: 5, max_age: 10m}
  - pattern: "ticker.*"
    history: {max_messages: 2}
    recover: latest
    presence: false
    publish: server
  - pattern: "feed.>"
    recover: none
`;

function nsBroker(c, extra = {}) {
  const base = {
    workers: 2, shutdown: { drain: '3s' },
    limits: { connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0 },
    history: { max_messages: 3 },
    api: { keys: API_KEY },
    auth: { jwt: { secret: SECRET }, anonymous: { subscribe: '>', publish: '>' } },
    ...extra,
  };
  return c.broker({ configText: toYaml(base) + TOPICS });
}

const apiPub = (b, topic, data) => api(b.base, 'POST', '/api/publish', { topics: [topic], data });

t.test('history lengths per namespace (chat.> keeps 5, ticker.* 2, other topics the global 3)', async (c) => {
  const b = await nsBroker(c);
  for (let i = 0; i < 8; i++) for (const tp of ['chat.a', 'ticker.x', 'misc.z']) eq((await apiPub(b, tp, i)).status, 200);
  const retained = {};
  for (const tp of ['chat.a', 'ticker.x', 'misc.z']) retained[tp] = (await api(b.base, 'GET', `/api/topics/${tp}`)).json.retained;
  eq(retained, { 'chat.a': 5, 'ticker.x': 2, 'misc.z': 3 });
});

t.test('presence: false refuses presence on SSE, long-poll, NDJSON, raw and rt.v1 WebSocket; presence elsewhere works', async (c) => {
  const b = await nsBroker(c);
  for (const [label, r] of [
    ['SSE', await request(b.base, 'GET', '/sse?topic=ticker.x&presence=1', { headers: { Accept: 'text/event-stream' } })],
    ['long-poll', await poll(b.base, { topic: 'ticker.x', presence: 1, timeout: 0 })],
    ['NDJSON', await request(b.base, 'GET', '/sub/ticker.x?presence=1', { headers: { Accept: 'application/x-ndjson' } })],
  ]) {
    eq(r.status, 403, `${label}: ${r.text}`);
    assert(/presence is off/.test(r.json.message), `${label}: a clear reason: ${r.text}`);
  }
  let refused = null;
  try { await wsOpen(c, b.base.replace('http', 'ws') + '/sub/ticker.x?presence=1'); } catch (e) { refused = e.message; }
  eq(refused, 'HTTP 403', 'raw WebSocket refused before the upgrade');
  const ws = await wsUser(c, b, 'u1', { sub: ['>'], pub: ['>'] });
  const r = await ws.send({ op: 'sub', topic: 'ticker.x', presence: true });
  eq([r.type, r.code], ['error', 'forbidden'], JSON.stringify(r));
  assert(/presence is off/.test(r.message), r.message);
  eq((await ws.send({ op: 'sub', topic: 'chat.a', presence: true })).type, 'ok', 'presence on chat.a');
  await waitFor(() => ws.of('join').length === 1, W, 'own join on chat.a');
  const s = await subscribe(b.base, '/sse?topic=ticker.x');
  assert(s.status === 200, 'subscribing without presence works');
});

t.test('publish: server refuses clients on HTTP and rt.v1; the API and a POST with an API key publish', async (c) => {
  const b = await nsBroker(c);
  const anon = await publish(b.base, 'ticker.x', '1');
  eq(anon.status, 403, anon.text);
  assert(/publish: server/.test(anon.json.message), anon.text);
  const tok = await publish(b.base, 'ticker.x', '1', { headers: { Authorization: `Bearer ${jwt('u', { sub: ['>'], pub: ['>'] })}` } });
  eq(tok.status, 403, `a token allowing every topic is refused too: ${tok.text}`);
  const ws = await wsUser(c, b, 'u2', { sub: ['>'], pub: ['>'] });
  const r = await ws.send({ op: 'pub', topic: 'ticker.x', data: 1 });
  eq([r.type, r.code], ['error', 'forbidden'], JSON.stringify(r));
  eq((await publish(b.base, 'ticker.x', '2', { headers: { Authorization: `apikey ${API_KEY}` } })).status, 200, 'POST /pub with an API key');
  eq((await publish(b.base, 'ticker.x', '3', { headers: { Authorization: 'apikey wrong-key-0123456789abc' } })).status, 403, 'a wrong key is no key');
  eq((await apiPub(b, 'ticker.x', 4)).status, 200, 'the server API');
  eq((await publish(b.base, 'chat.a', 'hi')).status, 200, 'other namespaces: clients publish');
  eq((await api(b.base, 'GET', '/api/topics/ticker.x')).json.retained, 2);
});

t.test('recover: latest: a new subscriber without a resume point gets the latest first (SSE, rt.v1, long-poll, NDJSON)', async (c) => {
  const b = await nsBroker(c);
  for (const p of [100, 101, 102]) await apiPub(b, 'ticker.btc', { p });
  const lastId = (await api(b.base, 'GET', '/api/topics/ticker.btc')).json.last_id;
  const env = await subscribe(b.base, '/sse?topic=ticker.btc&envelope=1');
  await env.waitMessages(1, W);
  const e0 = JSON.parse(env.messages[0].data);
  eq([e0.id, e0.data, e0.latest], [lastId, { p: 102 }, true], 'SSE envelope');
  const plain = await subscribe(b.base, '/sub/ticker.btc');
  await plain.waitMessages(1, W);
  eq([plain.messages[0].id, plain.messages[0].data], [lastId, '{"p":102}'], 'SSE plain: the latest, its id');
  const ws = await wsUser(c, b, 'u3', { sub: ['>'], pub: [] });
  eq((await ws.send({ op: 'sub', topic: 'ticker.btc' })).type, 'ok');
  await waitFor(() => ws.of('msg').length === 1, W, 'rt.v1 latest');
  eq([ws.of('msg')[0].data, ws.of('msg')[0].latest], [{ p: 102 }, true], 'rt.v1');
  const lp = await poll(b.base, { topic: 'ticker.btc', timeout: 5 });
  eq(lp.json.messages.map((m) => [m.data, m.latest]), [[{ p: 102 }, true]], `long-poll: ${lp.text}`);
  assert(lp.ms < 3000, 'answered at once');
  const nd = await ndjson(c, b.base, '/sub/ticker.btc');
  await waitFor(() => nd.lines.some((l) => l.latest), W, 'NDJSON latest');
  eq(nd.lines.find((l) => l.latest).data, { p: 102 });
  await apiPub(b, 'ticker.btc', { p: 103 });
  await env.waitMessages(2, W);
  const e1 = JSON.parse(env.messages[1].data);
  eq([e1.data, e1.latest], [{ p: 103 }, undefined], 'live messages follow, unmarked');
  const next = await poll(b.base, { topic: 'ticker.btc', cursor: lp.json.cursor, timeout: 0 });
  eq(next.json.messages.map((m) => m.data), [{ p: 103 }], 'the cursor of the first answer continues the stream');
  const resumed = await subscribe(b.base, '/sse?topic=ticker.btc&envelope=1', { headers: { 'Last-Event-ID': lastId } });
  await resumed.waitMessages(1, W);
  eq(JSON.parse(resumed.messages[0].data).data, { p: 103 }, 'with a resume point: the stream after it, no latest');
  await sleep(100);
  eq(resumed.messages.length, 1);
  const empty = await subscribe(b.base, '/sse?topic=ticker.none&envelope=1');
  await sleep(200);
  eq(empty.messages.length, 0, 'nothing retained: nothing first');
});

t.test('recover: none ignores the resume point (no replay, no gap); other topics of the request still resume', async (c) => {
  const b = await nsBroker(c);
  const first = (await apiPub(b, 'feed.a', 1)).json.results[0].id;
  await apiPub(b, 'feed.a', 2);
  await apiPub(b, 'chat.b', 3);
  const s = await subscribe(b.base, '/sse?topic=feed.a&topic=chat.b&envelope=1', { headers: { 'Last-Event-ID': first } });
  await s.waitMessages(1, W);
  await sleep(200);
  eq(s.messages.map((m) => JSON.parse(m.data).topic), ['chat.b'], 'chat.b resumed, feed.a not');
  eq(s.events.filter((e) => e.event === 'rt.gap').length, 0, 'no gap');
  await apiPub(b, 'feed.a', 4);
  await s.waitMessages(2, W);
  eq(JSON.parse(s.messages[1].data).data, 4, 'feed.a live');
});

t.test('configuration errors name the entry and line', async () => {
  const dir = mkTemp('rtb-ns-');
  const cases = [
    ['topics:\n  - pattern: "a.>"\n    recover: sometimes\n', /recover: "sometimes" is not stream, latest or none \(.* line 3\)/],
    ['topics:\n  - pattern: "a..b"\n', /pattern: "a..b" is not a topic or pattern/],
    ['topics:\n  - history: {max_messages: 5}\n', /an entry needs a pattern/],
    ['topics:\n  - pattern: a\n    colour: red\n', /unknown key "colour"/],
    ['topics:\n  - pattern: a\n    history: {max_messages: 0}\n', /history.max_messages: "0"/],
    ['topics:\n  - pattern: a\n    publish: anyone\n', /publish: "anyone" is not clients or server/],
  ];
  for (const [yaml, re] of cases) {
    const f = path.join(dir, 'c.yaml');
    fs.writeFileSync(f, yaml);
    const r = runBrokerSync(['-c', f, '--check-config']);
    eq(r.code, 2, `exit code for ${JSON.stringify(yaml)}: ${r.stderr}`);
    assert(re.test(r.stderr), `${trunc(r.stderr)} should match ${re}`);
  }
});

await t.run();

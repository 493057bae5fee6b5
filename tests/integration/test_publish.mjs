// POST /pub/{topic}: ids, validation, limits, auth, payload encodings, idempotency.
import {
  suite, assert, eq, expectError, publish, publishOk, poll, rawRequest, request,
  parseId, seqOf, epochOf, trunc, subscribe, curl, mkTemp, sleep,
} from './lib.mjs';
import fs from 'node:fs';
import path from 'node:path';

const t = suite(import.meta.url);

t.test('publish returns 200 JSON {id:"EPOCH:SEQ",topic} and ids increase across topics', async (c) => {
  const b = await c.broker();
  const r = await publish(b.base, 'chat.room1', 'hello');
  assert(r.status === 200, `expected 200, got ${r.status} ${r.text}`);
  assert(/^application\/json/.test(r.headers.get('content-type') || ''), `content-type ${r.headers.get('content-type')}`);
  eq(r.json.topic, 'chat.room1', 'topic in reply');
  const first = parseId(r.json.id);
  const ids = [r.json.id];
  const topics = ['chat.room1', 'chat.room2', 'news.sports.live', 'a', 'A_b-c.D-9'];
  for (let i = 0; i < 25; i++) {
    const tp = topics[i % topics.length];
    const r2 = await publish(b.base, tp, `m${i}`);
    assert(r2.status === 200, `publish ${tp}: ${r2.status} ${r2.text}`);
    eq(r2.json.topic, tp, 'topic in reply');
    ids.push(r2.json.id);
  }
  for (let i = 1; i < ids.length; i++) {
    assert(epochOf(ids[i]) === first.epoch, `epoch changed: ${ids[0]} vs ${ids[i]}`);
    assert(seqOf(ids[i]) > seqOf(ids[i - 1]), `ids not increasing: ${ids[i - 1]} then ${ids[i]}`);
  }
  // concurrent publishes: all ids unique
  const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => publish(b.base, `par.t${i % 4}`, `p${i}`)));
  const set = new Set();
  for (const x of rs) { assert(x.status === 200, `parallel publish: ${x.status} ${x.text}`); set.add(x.json.id); }
  eq(set.size, 40, 'distinct ids for 40 concurrent publishes');
  for (const id of set) assert(seqOf(id) > seqOf(ids[ids.length - 1]), `concurrent id ${id} not after ${ids[ids.length - 1]}`);
});

t.test('topic boundary: 255 bytes accepted, 256 rejected', async (c) => {
  const b = await c.broker();
  const t255 = 'a'.repeat(100) + '.' + 'b'.repeat(154); // 255 bytes
  eq(t255.length, 255);
  const ok = await publish(b.base, t255, 'x');
  assert(ok.status === 200, `255-byte topic: expected 200, got ${ok.status} ${trunc(ok.text)}`);
  eq(ok.json.topic, t255, 'topic echoed');
  expectError(await publish(b.base, t255 + 'c', 'x'), 400, 'invalid_topic', '256-byte topic');
  expectError(await publish(b.base, 'a'.repeat(300), 'x'), 400, 'invalid_topic', '300-byte topic');
});

t.test('invalid topics → 400 invalid_topic', async (c) => {
  const b = await c.broker();
  const bad = [
    ['chat room', 'chat%20room'],
    ['chat$', 'chat$'],
    ['chat..room', 'chat..room'],
    ['.chat', '.chat'],
    ['chat.', 'chat.'],
    ['ch\u00e9', 'ch%C3%A9'],
    ['chat+x', 'chat+x'],
    ['bad percent-encoding', 'chat%zz'],
    ['chat,x', 'chat,x'],
    ['chat:x', 'chat:x'],
  ];
  for (const [label, raw] of bad) {
    const r = await rawRequest(b.base, 'POST', `/pub/${raw}`, { body: 'x' });
    expectError(r, 400, 'invalid_topic', `POST /pub/${raw} (${label})`);
  }
  // empty topic
  expectError(await rawRequest(b.base, 'POST', '/pub/', { body: 'x' }), 400, 'invalid_topic', 'POST /pub/ (empty topic)');
});

t.test('publishing to a wildcard → 400 invalid_topic', async (c) => {
  const b = await c.broker();
  expectError(await publish(b.base, 'chat.*', 'x'), 400, 'invalid_topic', 'POST /pub/chat.*');
  expectError(await publish(b.base, 'chat.>', 'x'), 400, 'invalid_topic', 'POST /pub/chat.%3E');
  expectError(await rawRequest(b.base, 'POST', '/pub/chat.>', { body: 'x' }), 400, 'invalid_topic', 'POST /pub/chat.> (raw)');
  expectError(await publish(b.base, '*', 'x'), 400, 'invalid_topic', 'POST /pub/*');
  expectError(await publish(b.base, '>', 'x'), 400, 'invalid_topic', 'POST /pub/>');
  // nothing was published: a subscriber of chat.> replaying from the epoch start sees nothing
  const id = await publishOk(b.base, 'other', 'marker');
  const r = await poll(b.base, { topic: 'chat.>', cursor: `${epochOf(id)}:0`, timeout: 1 });
  assert(r.status === 200, `poll chat.> from 0: ${r.status} ${r.text}`);
  eq(r.json.messages.length, 0, `messages on chat.> after refused wildcard publishes (${trunc(r.text)})`);
});

t.test('event names: valid accepted and delivered; invalid → 400 invalid_event', async (c) => {
  const b = await c.broker();
  const id0 = await publishOk(b.base, 'ev.t', 'zero');
  const okH = await publish(b.base, 'ev.t', 'h', { headers: { 'X-Event': 'my.event-1_X' } });
  assert(okH.status === 200, `X-Event my.event-1_X: ${okH.status} ${okH.text}`);
  const okQ = await publish(b.base, 'ev.t', 'q', { query: 'event=' + 'e'.repeat(64) });
  assert(okQ.status === 200, `?event= 64 chars: ${okQ.status} ${okQ.text}`);
  const bads = [
    [{ headers: { 'X-Event': 'bad name' } }, 'X-Event "bad name"'],
    [{ headers: { 'X-Event': 'bad/name' } }, 'X-Event "bad/name"'],
    [{ headers: { 'X-Event': 'e'.repeat(65) } }, 'X-Event 65 chars'],
    [{ headers: { 'X-Event': 'bad:x' } }, 'X-Event "bad:x"'],
    [{ query: 'event=bad%20name' }, '?event=bad%20name'],
    [{ query: 'event=' + 'e'.repeat(65) }, '?event= 65 chars'],
    [{ query: 'event=a%0Adata:%20x' }, '?event= with newline'],
    [{ query: 'event=' }, '?event= (empty)'],
  ];
  for (const [opts, label] of bads) expectError(await publish(b.base, 'ev.t', 'bad', opts), 400, 'invalid_event', label);
  // the refused ones published nothing; the good ones carry their event names
  const r = await poll(b.base, { topic: 'ev.t', cursor: id0, timeout: 1 });
  assert(r.status === 200, `poll: ${r.status} ${r.text}`);
  const got = r.json.messages.map((m) => [m.data, m.event]);
  eq(got, [['h', 'my.event-1_X'], ['q', 'e'.repeat(64)]], 'messages after refused event names');
});

t.test('body over limits.max_message_bytes → 413 too_large (configured 1024 and default 65536)', async (c) => {
  const b = await c.broker({ config: { limits: { max_message_bytes: 1024 } } });
  const id0 = await publishOk(b.base, 'big.t', 'zero');
  const ok = await publish(b.base, 'big.t', 'x'.repeat(1024));
  assert(ok.status === 200, `1024-byte body with limit 1024: expected 200, got ${ok.status} ${trunc(ok.text)}`);
  expectError(await publish(b.base, 'big.t', 'y'.repeat(1025)), 413, 'too_large', '1025-byte body, limit 1024');
  expectError(await publish(b.base, 'big.t', 'z'.repeat(20000)), 413, 'too_large', '20000-byte body, limit 1024');
  const r = await poll(b.base, { topic: 'big.t', cursor: id0, timeout: 1 });
  eq(r.json && r.json.messages.map((m) => m.data.length), [1024], 'only the 1024-byte message was published');
  // the server still works on the same broker
  await publishOk(b.base, 'big.t', 'after');

  const d = await c.broker();
  const okD = await publish(d.base, 'big.t', 'x'.repeat(65536));
  assert(okD.status === 200, `65536-byte body with default limit: expected 200, got ${okD.status} ${trunc(okD.text)}`);
  expectError(await publish(d.base, 'big.t', 'x'.repeat(65537)), 413, 'too_large', '65537-byte body, default limit');
});

t.test('wrong method on /pub → 405 method_not_allowed', async (c) => {
  const b = await c.broker();
  expectError(await request(b.base, 'GET', '/pub/x'), 405, 'method_not_allowed', 'GET /pub/x');
  expectError(await request(b.base, 'PUT', '/pub/x', { body: 'a' }), 405, 'method_not_allowed', 'PUT /pub/x');
  expectError(await request(b.base, 'DELETE', '/pub/x'), 405, 'method_not_allowed', 'DELETE /pub/x');
});

t.test('anonymous publish refused when auth.anonymous.publish is empty / does not match → 401 unauthorized', async (c) => {
  const b = await c.broker({ config: { auth: { anonymous: { subscribe: ['>'], publish: [] } } } });
  expectError(await publish(b.base, 'chat.x', 'no'), 401, 'unauthorized', 'publish with empty anonymous.publish');
  const b2 = await c.broker({ config: { auth: { anonymous: { subscribe: ['>'], publish: ['chat.>'] } } } });
  const ok = await publish(b2.base, 'chat.room1', 'yes');
  assert(ok.status === 200, `publish chat.room1 with anonymous.publish [chat.>]: ${ok.status} ${ok.text}`);
  expectError(await publish(b2.base, 'news.x', 'no'), 401, 'unauthorized', 'publish news.x with anonymous.publish [chat.>]');
  expectError(await publish(b2.base, 'chat', 'no'), 401, 'unauthorized', 'publish "chat" with anonymous.publish [chat.>] (> needs ≥1 segment)');
  // and without any auth section at all (defaults: nothing open)
  const b3 = await c.broker({ config: { auth: undefined } });
  expectError(await publish(b3.base, 'chat.x', 'no'), 401, 'unauthorized', 'publish with default auth config');
});

t.test('payload encodings in envelopes: JSON value, UTF-8 string, base64 for invalid UTF-8', async (c) => {
  const b = await c.broker();
  const sse = await subscribe(b.base, '/sub/enc.t?envelope=1');
  c.defer(() => sse.close());
  const id0 = await publishOk(b.base, 'enc.t', 'marker');
  const jsonBody = '{"a":1,"b":[true,null,"x"],"c":{"d":"é"}}';
  await publishOk(b.base, 'enc.t', jsonBody, { headers: { 'Content-Type': 'application/json' } });
  await publishOk(b.base, 'enc.t', '{"not":"json"', { headers: { 'Content-Type': 'application/json' } }); // invalid JSON → string
  await publishOk(b.base, 'enc.t', jsonBody, { headers: { 'Content-Type': 'text/plain' } }); // text → string
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3]);
  await publishOk(b.base, 'enc.t', bin, { headers: { 'Content-Type': 'application/octet-stream' } });
  await publishOk(b.base, 'enc.t', 'héllo ✓', { headers: { 'Content-Type': 'text/plain; charset=utf-8' } });

  const checkList = (msgs, where) => {
    eq(msgs.length, 5, `${where}: message count`);
    eq(msgs[0].data, { a: 1, b: [true, null, 'x'], c: { d: 'é' } }, `${where}: application/json body as JSON value`);
    assert(msgs[0].encoding === undefined || msgs[0].encoding === null, `${where}: JSON message has encoding ${msgs[0].encoding}`);
    eq(msgs[1].data, '{"not":"json"', `${where}: invalid JSON with application/json → string`);
    eq(msgs[2].data, jsonBody, `${where}: text/plain JSON-looking body → string`);
    eq(msgs[3].encoding, 'base64', `${where}: invalid UTF-8 → "encoding":"base64" (msg ${JSON.stringify(msgs[3])})`);
    eq(msgs[3].data, bin.toString('base64'), `${where}: base64 data`);
    eq(msgs[4].data, 'héllo ✓', `${where}: UTF-8 text`);
    for (const m of msgs) eq(m.topic, 'enc.t', `${where}: topic`);
  };
  // long-poll envelopes
  const r = await poll(b.base, { topic: 'enc.t', cursor: id0, timeout: 1 });
  assert(r.status === 200, `poll: ${r.status} ${r.text}`);
  checkList(r.json.messages, 'long-poll');
  // SSE envelope=1
  await sse.waitMessages(6, 5000);
  const msgs = sse.messages.slice(1).map((e) => JSON.parse(e.data));
  checkList(msgs, 'SSE ?envelope=1');
  // SSE envelope id equals the SSE id line
  for (const e of sse.messages) eq(JSON.parse(e.data).id, e.id, 'envelope id equals SSE id');
});

t.test('Idempotency-Key: retry returns the same id and publishes nothing new', async (c) => {
  const b = await c.broker();
  const id0 = await publishOk(b.base, 'idem.t', 'zero');
  const k = { headers: { 'Idempotency-Key': 'order-42/retry#1' } };
  const a = await publish(b.base, 'idem.t', 'once', k);
  assert(a.status === 200, `first keyed publish: ${a.status} ${a.text}`);
  const a2 = await publish(b.base, 'idem.t', 'once', k);
  assert(a2.status === 200, `retry keyed publish: ${a2.status} ${a2.text}`);
  eq(a2.json.id, a.json.id, 'retry returns the first publish id');
  const a3 = await publish(b.base, 'idem.t', 'once', k);
  eq(a3.json && a3.json.id, a.json.id, 'second retry returns the first publish id');
  // same key, other topic: independent
  const o = await publish(b.base, 'idem.other', 'once', k);
  assert(o.status === 200 && o.json.id !== a.json.id, `same key on another topic must publish anew: ${o.status} ${o.text} vs ${a.json.id}`);
  const idn = await publishOk(b.base, 'idem.t', 'next');
  const r = await poll(b.base, { topic: 'idem.t', cursor: id0, timeout: 1 });
  eq(r.json && r.json.messages.map((m) => [m.id, m.data]), [[a.json.id, 'once'], [idn, 'next']], 'messages after id0');
  // invalid keys
  const bad = await publish(b.base, 'idem.t', 'x', { headers: { 'Idempotency-Key': 'k'.repeat(65) } });
  assert(bad.status === 400, `Idempotency-Key of 65 chars (API: 1–64 printable chars): expected 400, got ${bad.status} ${bad.text}`);
});

t.test('Idempotency-Key: concurrent retries publish once; the key expires after publish.dedup_window', async (c) => {
  const b = await c.broker({ config: { publish: { dedup_window: '1s' } } });
  const id0 = await publishOk(b.base, 'idem.c', 'zero');
  const rs = await Promise.all(Array.from({ length: 10 }, () => publish(b.base, 'idem.c', 'same', { headers: { 'Idempotency-Key': 'k-concurrent' } })));
  for (const r of rs) assert(r.status === 200, `concurrent keyed publish: ${r.status} ${r.text}`);
  const ids = new Set(rs.map((r) => r.json.id));
  eq(ids.size, 1, `10 concurrent publishes with one key must share one id, got ${[...ids]}`);
  const r = await poll(b.base, { topic: 'idem.c', cursor: id0, timeout: 1 });
  eq(r.json.messages.length, 1, `messages published by 10 concurrent keyed retries (${trunc(r.text)})`);
  const first = [...ids][0];
  await sleep(1600);
  const later = await publish(b.base, 'idem.c', 'same', { headers: { 'Idempotency-Key': 'k-concurrent' } });
  assert(later.status === 200, `keyed publish after the window: ${later.status} ${later.text}`);
  assert(later.json.id !== first && seqOf(later.json.id) > seqOf(first), `after dedup_window 1s the same key must publish anew: got ${later.json.id}, first ${first}`);
});

t.test('publish over h2c (curl --http2-prior-knowledge): 200, and 413 too_large JSON over the limit', async (c) => {
  const b = await c.broker({ config: { limits: { max_message_bytes: 4096 } } });
  const dir = mkTemp('rtb-h2pub-');
  const small = path.join(dir, 'small'); const big = path.join(dir, 'big');
  fs.writeFileSync(small, 'over h2');
  fs.writeFileSync(big, 'b'.repeat(100000));
  const args = (file) => ['-sS', '--http2-prior-knowledge', '-X', 'POST', '--data-binary', `@${file}`, '-H', 'Content-Type: text/plain',
    '-w', '\n%{http_code} %{http_version}', `${b.base}/pub/h2.t`];
  const ok = await curl(args(small));
  const okLines = ok.stdout.split('\n');
  const okStatus = okLines.pop();
  const okBody = okLines.join('\n');
  eq(okStatus, '200 2', `h2c publish status/version (stderr ${ok.stderr.trim()})`);
  const j = JSON.parse(okBody);
  eq(j.topic, 'h2.t', 'topic');
  parseId(j.id);
  const tooBig = await curl(args(big));
  const lines = tooBig.stdout.split('\n');
  const status = lines.pop();
  const text = lines.join('\n');
  let json = null; try { json = JSON.parse(text); } catch {}
  assert(status.startsWith('413'), `h2c publish of 100000 bytes with limit 4096: expected 413 too_large, got status "${status}" body ${trunc(JSON.stringify(text))} curl exit ${tooBig.code} stderr ${JSON.stringify(tooBig.stderr.trim())}`);
  eq(json && json.error, 'too_large', `h2c 413 body ${trunc(text)}`);
  // still serving h2 after that
  const again = await curl(args(small));
  assert(again.stdout.endsWith('200 2'), `h2c publish after the 413: ${trunc(again.stdout)} ${again.stderr}`);
});

await t.run();

// NATS bus, interop with plain NATS clients (tests/tools/nats_client.c) and idempotent publishing:
// - a message published to subject rt.<topic> by a NATS client (JetStream or core publish, headers
//   Rt-Event / Content-Type) reaches SSE and rt.v1 subscribers of <topic> with a proper id (SEQ = the
//   stream sequence) and the event name;
// - what browsers publish (POST /pub with X-Event, rt.v1 pub) is seen by a plain NATS subscriber of
//   rt.<topic>, with the Rt-Event and Content-Type headers;
// - Idempotency-Key → Nats-Msg-Id: a retry through another node returns the first id and stores nothing.
import {
  suite, assert, eq, publishOk, publish, subscribe, waitFor, sleep, epochOf, trunc,
} from './lib.mjs';
import {
  startNats, natsBroker, wsV1, natsClient, natsSub, requireNatsClient, seqNum,
} from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 120000 });

t.test('nats_client publishes to rt.chat.room1 (JetStream and core, with Rt-Event / Content-Type) → SSE and rt.v1 subscribers get it with a proper id', async (c) => {
  requireNatsClient();
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const first = await publishOk(A.base, 'chat.room1', 'from the broker');
  const epoch = epochOf(first);
  const sse = await subscribe(B.base, '/sub/chat.room1');
  const env = await subscribe(A.base, '/sse?topic=chat.*&envelope=1');
  c.defer(() => { sse.close(); env.close(); });
  const v1 = await wsV1(c, A.base, 'chat.room1');
  // JetStream publish with an event name
  const p1 = await natsClient(['pub', nats.url, 'rt.chat.room1', 'hello from nats', 'typing']);
  eq(p1.code, 0, `nats_client pub: ${p1.stderr}`);
  const seq1 = Number(/seq=(\d+)/.exec(p1.stdout)[1]);
  // JetStream publish with Content-Type application/json
  const p2 = await natsClient(['pub', nats.url, 'rt.chat.room1', '{"n":2,"ok":true}', '-', 'application/json']);
  eq(p2.code, 0, `nats_client pub (json): ${p2.stderr}`);
  const seq2 = Number(/seq=(\d+)/.exec(p2.stdout)[1]);
  // core NATS publish: the stream captures it too
  const p3 = await natsClient(['cpub', nats.url, 'rt.chat.room1', 'core publish', 'note']);
  eq(p3.code, 0, `nats_client cpub: ${p3.stderr}`);
  await sse.waitMessages(3, 5000, 'the three NATS-published messages on SSE (B)');
  await env.waitMessages(3, 5000);
  await waitFor(() => v1.msgs().length >= 3, 5000, 'the three NATS-published messages on rt.v1 (A)');
  await sleep(200);
  const m = sse.messages;
  eq(m.length, 3, 'SSE messages');
  eq(m.map((x) => x.id), [`${epoch}:${seq1}`, `${epoch}:${seq2}`, `${epoch}:${seq2 + 1}`], 'SSE ids: EPOCH:stream sequence');
  eq(m.map((x) => x.event), ['typing', null, 'note'], 'SSE event names from Rt-Event');
  eq(m.map((x) => x.data), ['hello from nats', '{"n":2,"ok":true}', 'core publish'], 'SSE payloads');
  const e = env.messages.map((x) => JSON.parse(x.data));
  eq(e.map((x) => x.id), m.map((x) => x.id), 'envelope ids (A) = SSE ids (B)');
  eq(e[1].data, { n: 2, ok: true }, 'envelope data of the JSON message (Content-Type kept)');
  eq(e[1].content_type, 'application/json', 'envelope content_type from the NATS Content-Type header');
  eq(e.map((x) => x.topic), ['chat.room1', 'chat.room1', 'chat.room1'], 'envelope topics');
  eq(v1.msgs().map((x) => [x.id, x.event ?? null]), m.map((x) => [x.id, x.event]), 'rt.v1 ids and events');
  // and it is history like any other message: resume from the first id on another node
  const r = await subscribe(A.base, '/sub/chat.room1', { headers: { 'Last-Event-ID': first } });
  c.defer(() => r.close());
  await r.waitMessages(3, 5000);
  eq(r.messages.map((x) => x.id), m.map((x) => x.id), 'replay of the NATS-published messages');
}, { timeout: 30000 });

t.test('an Rt-Event from a NATS client that is not an event name (CR, fields, non-ASCII) reaches SSE without its event, never as fields of its own', async (c) => {
  requireNatsClient();
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const sse = await subscribe(A.base, '/sub/chat.room4');
  c.defer(() => sse.close());
  const p1 = await natsClient(['pub', nats.url, 'rt.chat.room4', 'the payload', 'x\rdata: injected\rid: e0:1']);
  eq(p1.code, 0, `nats_client pub: ${p1.stderr}`);
  const p2 = await natsClient(['cpub', nats.url, 'rt_eph.chat.room4', 'ephemeral', 'caf\u00e9']);
  eq(p2.code, 0, `nats_client cpub: ${p2.stderr}`);
  const p3 = await natsClient(['pub', nats.url, 'rt.chat.room4', 'still named', 'ok.name-1']);
  eq(p3.code, 0, `nats_client pub: ${p3.stderr}`);
  await sse.waitMessages(3, 5000, 'the three NATS-published messages on SSE');
  await sleep(200);
  eq(sse.messages.map((x) => [x.event, x.data]), [[null, 'the payload'], [null, 'ephemeral'], ['ok.name-1', 'still named']],
    'events and payloads on SSE');
  assert(/^[^:]+:\d+$/.test(sse.messages[0].id) && !sse.messages[0].id.startsWith('e0:'), `the stream's id, not one from the header: ${sse.messages[0].id}`);
}, { timeout: 30000 });

t.test('POST /pub (X-Event, Content-Type) and rt.v1 pub are seen by a plain NATS subscriber of rt.chat.room2', async (c) => {
  requireNatsClient();
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const sub = await natsSub(c, nats.url, 'rt.chat.room2', 4, 10000);
  const ids = [];
  ids.push(await publishOk(A.base, 'chat.room2', 'browser says hi', { headers: { 'X-Event': 'alert', 'Content-Type': 'text/plain' } }));
  ids.push(await publishOk(A.base, 'chat.room2', '{"k":1}', { headers: { 'Content-Type': 'application/json' } }));
  ids.push(await publishOk(A.base, 'chat.room2', 'query event', { query: 'event=ping.v2' }));
  const v1 = await wsV1(c, A.base, 'other.t');
  const ack = await v1.send({ op: 'pub', topic: 'chat.room2', data: 'over websocket', event: 'wsev' });
  eq(ack.type, 'ok', `rt.v1 pub ack: ${JSON.stringify(ack)}`);
  const res = await sub.exit;
  const lines = sub.lines();
  eq(res.code, 0, `nats_client sub exit (${sub.stderr()}); got ${JSON.stringify(lines)}`);
  eq(lines.map((l) => l.data), ['browser says hi', '{"k":1}', 'query event', 'over websocket'], 'payloads seen by the NATS subscriber');
  eq(lines.map((l) => l.event), ['alert', null, 'ping.v2', 'wsev'], 'Rt-Event headers seen by the NATS subscriber');
  eq(lines[0].ctype, 'text/plain', 'Content-Type header of the text publish');
  eq(lines[1].ctype, 'application/json', 'Content-Type header of the JSON publish');
  // and the stream holds them under those sequences
  const g = await natsClient(['get', nats.url, 'RT', String(seqNum(ids[0]))]);
  assert(/subject=rt\.chat\.room2 event=alert/.test(g.stdout) && g.stdout.includes('browser says hi'), `stream message ${seqNum(ids[0])}: ${g.stdout}`);
}, { timeout: 30000 });

t.test('Idempotency-Key retried through another node returns the first id; one message stored and delivered', async (c) => {
  const nats = await startNats(c);
  const cfg = { publish: { dedup_window: '2s' } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const C = await natsBroker(c, nats.url, cfg);
  const sse = await subscribe(C.base, '/sub/orders.*');
  c.defer(() => sse.close());
  const key = { 'Idempotency-Key': 'order-42' };
  const r1 = await publish(A.base, 'orders.42', 'paid', { headers: key });
  eq(r1.status, 200, `first publish: ${trunc(r1.text)}`);
  const id1 = r1.json.id;
  const r2 = await publish(B.base, 'orders.42', 'paid (retry via B)', { headers: key });
  eq(r2.status, 200, `retry via B: ${trunc(r2.text)}`);
  eq(r2.json.id, id1, 'retry via B returns the first id');
  const r3 = await publish(A.base, 'orders.42', 'paid (retry via A)', { headers: key });
  eq(r3.json?.id, id1, 'retry via A returns the first id');
  // concurrent retries through all three nodes
  const rs = await Promise.all([A, B, C, A, B, C].map((b) => publish(b.base, 'orders.42', 'burst', { headers: key })));
  eq(rs.map((r) => r.json?.id), rs.map(() => id1), 'concurrent retries through A, B, C');
  // the same key on another topic is another message
  const other = await publishOk(B.base, 'orders.43', 'other topic', { headers: key });
  assert(other !== id1, 'the same Idempotency-Key on another topic must publish a new message');
  const sentinel = await publishOk(A.base, 'orders.42', 'sentinel');
  await sse.waitFor((x) => x.messages.some((m) => m.id === sentinel), 5000, 'the sentinel on C');
  await sleep(200);
  eq(sse.messages.map((m) => [m.id, m.data]), [[id1, 'paid'], [other, 'other topic'], [sentinel, 'sentinel']], 'deliveries on C: the keyed message once');
  eq(seqNum(sentinel) - seqNum(id1), 2, 'stream sequences: nothing stored for the retries');
  // after publish.dedup_window the key is free again
  await sleep(4500);
  const late = await publishOk(B.base, 'orders.42', 'paid again, much later', { headers: key });
  assert(late !== id1, `the same key after publish.dedup_window (2s) should publish anew, got the first id ${id1}`);
  c.info(`Idempotency-Key: 9 retries through 3 nodes answered ${id1}; after the 2 s window a new id ${late}`);
}, { timeout: 40000 });

await t.run();

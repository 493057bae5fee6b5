// Ephemeral messages on the NATS bus (two brokers, one nats-server): delivered live to SSE (plain
// and envelope), raw and rt.v1 WebSocket and long-poll subscribers on both nodes, with no id, over
// core NATS (`rt_eph.<topic>`), and never stored: the stream's message count and last SEQ (read from
// the nats-server monitoring endpoint) do not move, while ordinary publishes do move them.
// Not replayed on resume or in /history on the other node; a bus that is down refuses them (503).
import {
  suite, assert, eq, expectError, publish, publishOk, poll, request, subscribe, sleep, waitFor, trunc, SLOW,
} from './lib.mjs';
import {
  startNats, natsBroker, wsRaw, wsV1, natsSub, metrics, metricValue, haveNatsClient, seqNum,
} from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 110000 });
const W = 5000 * SLOW;

/** The RT stream's state from the monitoring endpoint: {messages, last_seq}. */
async function streamState(nats, name = 'RT') {
  const j = await nats.monitor('/jsz?streams=true');
  const s = (j.account_details || []).flatMap((a) => a.stream_detail || []).find((x) => x.name === name);
  assert(s, `stream ${name} not in /jsz: ${trunc(JSON.stringify(j), 300)}`);
  return { messages: s.state.messages, last_seq: s.state.last_seq };
}

async function ephemeral(base, topic, body, how = 'header') {
  const r = await publish(base, topic, body, how === 'header' ? { headers: { 'X-Ephemeral': '1' } } : { query: 'ephemeral=1' });
  eq([r.status, r.json], [200, { id: null, topic }], `ephemeral publish of ${JSON.stringify(body)} (${how}): ${trunc(r.text)}`);
}

/** Every kind of subscriber on one node. */
async function subscribers(c, b, topic) {
  const s = {
    sse: await subscribe(b.base, `/sub/${topic}`),
    env: await subscribe(b.base, `/sse?topic=${topic}&envelope=1`),
    raw: await wsRaw(c, b.base, topic),
    v1: await wsV1(c, b.base, topic),
  };
  c.defer(() => { s.sse.close(); s.env.close(); });
  s.counts = () => [s.sse.messages.length, s.env.messages.length, s.raw.data.length, s.v1.msgs().length];
  return s;
}

t.test('ephemeral publishes reach SSE and WebSocket subscribers on both nodes without ids; the stream does not grow', async (c) => {
  const nats = await startNats(c, { monitor: true });
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const topic = 'eph.room';
  const nodes = { A: await subscribers(c, A, topic), B: await subscribers(c, B, topic) };
  const all = Object.values(nodes);
  // a stored warm-up message: once everyone has it, every subscription is live
  const w = await publishOk(A.base, topic, 'warm-up');
  await waitFor(() => all.every((s) => s.counts().every((n) => n >= 1)), W, 'the warm-up everywhere',
    () => JSON.stringify(all.map((s) => s.counts())));
  const before = await streamState(nats);
  eq(before.last_seq, seqNum(w), 'stream last_seq = the warm-up SEQ');
  const seqBefore = [metricValue(await metrics(A.base), 'rtbroker_bus_seq'), metricValue(await metrics(B.base), 'rtbroker_bus_seq')];
  const core = haveNatsClient() ? await natsSub(c, nats.url, `rt_eph.${topic}`, 4, 10000) : null;
  const held = poll(B.base, { topic, cursor: w, timeout: 10 });
  await sleep(300);

  // from both nodes, each awaited everywhere before the next (two nodes' core NATS publishes have no common order)
  const want = ['e1', 'e2', '{"typing":"alice"}', 'e4'];
  const sends = [
    () => ephemeral(A.base, topic, want[0]),
    () => ephemeral(B.base, topic, want[1], 'query'),
    () => ephemeral(A.base, topic, want[2]),
    async () => {
      const ack = await nodes.B.v1.send({ op: 'pub', topic, data: want[3], ephemeral: true });
      eq([ack.type, ack.id], ['ok', null], 'rt.v1 ephemeral pub acked with id null');
    },
  ];
  for (let i = 0; i < sends.length; i++) {
    await sends[i]();
    await waitFor(() => all.every((s) => s.counts().every((n) => n >= 2 + i)), W, `ephemeral message ${i + 1} everywhere`,
      () => JSON.stringify(all.map((s) => s.counts())));
  }
  await sleep(300); // duplicates would show now
  for (const [name, s] of Object.entries(nodes)) {
    const sse = s.sse.messages.slice(1);
    eq(sse.map((m) => [m.data, m.hasId]), want.map((d) => [d, false]), `SSE on ${name}: payloads without id lines`);
    const env = s.env.messages.slice(1).map((m) => JSON.parse(m.data));
    eq(env.map((e) => [e.id, e.topic, e.data]), want.map((d) => [null, topic, d]), `SSE envelopes on ${name}: "id": null`);
    eq(s.raw.data.slice(1), want, `raw WebSocket on ${name}`);
    eq(s.v1.msgs().slice(1).map((m) => [m.id, m.data]), want.map((d) => [null, d]), `rt.v1 on ${name}: id null`);
  }
  const lp = await held;
  eq([lp.status, lp.json.messages[0]?.id, lp.json.messages[0]?.data, lp.json.cursor], [200, null, 'e1', w],
    `held long-poll on B gets an ephemeral entry, cursor unchanged (${trunc(lp.text)})`);
  if (core) {
    await core.exit;
    eq(core.lines().map((l) => l.data), want, `core NATS subject rt_eph.${topic}`);
  } else c.info('build/tools/nats_client missing: core NATS subject not checked');

  await sleep(200);
  eq(await streamState(nats), before, 'the stream (messages, last_seq) after 4 ephemeral publishes');
  eq([metricValue(await metrics(A.base), 'rtbroker_bus_seq'), metricValue(await metrics(B.base), 'rtbroker_bus_seq')], seqBefore,
    'rtbroker_bus_seq on both nodes');
  eq(metricValue(await metrics(A.base), 'rtbroker_ephemeral_messages_total'), 2, 'ephemeral counter on A');

  // ordinary publishes do grow it: the check above can fail
  const ids = [await publishOk(A.base, topic, 's1'), await publishOk(B.base, topic, 's2')];
  await waitFor(async () => (await streamState(nats)).messages === before.messages + 2, W, 'the stream to hold 2 more messages');
  eq((await streamState(nats)).last_seq, seqNum(ids[1]), 'last_seq = the last stored publish');
  await waitFor(() => all.every((s) => s.sse.messages.length >= 1 + want.length + 2), W, 'stored messages everywhere');
  eq(nodes.B.sse.messages.slice(-2).map((m) => m.id), ids, 'stored messages keep their ids');
});

t.test('ephemeral messages are not replayed: resume, long-poll cursor and /history on the other node skip them', async (c) => {
  const nats = await startNats(c, { monitor: true });
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const topic = 'eph.replay';
  const live = await subscribe(B.base, `/sub/${topic}`);
  c.defer(() => live.close());
  // stored and ephemeral messages travel apart (JetStream, core NATS): each is awaited on B before the next
  const id1 = await publishOk(A.base, topic, 'one');
  await live.waitMessages(1, W);
  await ephemeral(A.base, topic, 'ghost');
  await live.waitMessages(2, W);
  const id2 = await publishOk(A.base, topic, 'two');
  await live.waitMessages(3, W);
  eq(live.messages.map((m) => [m.data, m.id ?? null]), [['one', id1], ['ghost', null], ['two', id2]], 'live on B, ghost without id');
  const r = await subscribe(B.base, `/sub/${topic}`, { headers: { 'Last-Event-ID': id1 } });
  c.defer(() => r.close());
  await r.waitMessages(1, W);
  await sleep(300);
  eq(r.messages.map((m) => [m.id, m.data]), [[id2, 'two']], 'resume on B from id1');
  const p = await poll(B.base, { topic, cursor: id1, timeout: 1 });
  eq(p.json.messages.map((m) => m.data), ['two'], 'long-poll on B from id1');
  const h = await request(B.base, 'GET', `/history/${topic}`);
  eq(h.json.messages.map((m) => m.data), ['one', 'two'], '/history on B');
  eq((await streamState(nats)).messages, 2, 'the stream holds the two stored messages only');
});

t.test('ephemeral publish while the bus is down: 503 unavailable, nothing delivered later', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const s = await subscribe(A.base, '/sub/eph.down');
  c.defer(() => s.close());
  await nats.stop('SIGKILL');
  await waitFor(async () => (await request(A.base, 'GET', '/readyz')).status === 503, W, '/readyz 503 after the nats-server died');
  const r = await publish(A.base, 'eph.down', 'lost', { headers: { 'X-Ephemeral': '1' } });
  expectError(r, 503, 'unavailable', 'ephemeral publish with the bus down');
  await nats.start();
  await waitFor(async () => (await request(A.base, 'GET', '/readyz')).status === 200, 15000 * SLOW, '/readyz 200 after the restart');
  await ephemeral(A.base, 'eph.down', 'after');
  await s.waitMessages(1, W);
  await sleep(300);
  eq(s.messages.map((m) => m.data), ['after'], 'only the message published with the bus up arrives');
});

await t.run();

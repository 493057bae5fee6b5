// NATS bus, cross-node fan-out: three brokers on one nats-server (JetStream). A publish on node A
// reaches SSE, raw and rt.v1 WebSocket and long-poll subscribers on nodes B and C exactly once,
// in order, with the id A answered. Rough figures: publish→deliver latency across nodes (p50/p99)
// and throughput through the bus to one subscriber.
import {
  suite, assert, eq, publishOk, subscribe, waitFor, sleep, parseId, trunc,
} from './lib.mjs';
import {
  startNats, natsBroker, wsRaw, wsV1, longPoller, metrics, metricValue, sameIds, percentile, timedSubscribe, seqNum,
  tryPublish,
} from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 140000 });

t.test('publish on A → SSE, WebSocket (raw, rt.v1) and long-poll subscribers on B and C: once each, in order, same ids', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 1000 } };
  const [A, B, C] = [await natsBroker(c, nats.url, cfg), await natsBroker(c, nats.url, cfg), await natsBroker(c, nats.url, cfg)];
  const topic = 'fan.room1';
  const nodes = { B, C };
  const subs = {};
  for (const [name, b] of Object.entries(nodes)) {
    subs[name] = {
      sse: await subscribe(b.base, `/sub/${topic}`),
      sseEnv: await subscribe(b.base, `/sse?topic=${topic}&envelope=1`),
      raw: await wsRaw(c, b.base, topic),
      v1: await wsV1(c, b.base, topic),
    };
    c.defer(() => { subs[name].sse.close(); subs[name].sseEnv.close(); });
  }
  const sseA = await subscribe(A.base, `/sub/${topic}`);
  c.defer(() => sseA.close());
  // a first message: once every subscriber has it, every subscription is live; pollers start from its id
  const w = await publishOk(A.base, topic, 'warm-up');
  const all = Object.values(subs);
  await waitFor(() => all.every((s) => s.sse.messages.length >= 1 && s.sseEnv.messages.length >= 1 && s.raw.data.length >= 1 && s.v1.msgs().length >= 1),
    10000, 'the warm-up message on every subscriber of B and C',
    () => JSON.stringify(Object.fromEntries(Object.entries(subs).map(([n, s]) => [n, [s.sse.messages.length, s.sseEnv.messages.length, s.raw.data.length, s.v1.msgs().length]]))));
  const pollers = { B: longPoller([B.base], topic, w, { timeout: 5 }), C: longPoller([C.base], topic, w, { timeout: 5 }) };
  c.defer(() => Object.values(pollers).forEach((p) => { p.stopped = true; }));

  // 30 messages: plain text, some with an event name, some JSON
  const sent = [];
  for (let i = 0; i < 30; i++) {
    const headers = {};
    let body = `msg ${i}`;
    let event = null; let json = false;
    if (i % 3 === 1) { headers['X-Event'] = 'typing'; event = 'typing'; }
    if (i % 5 === 2) { headers['Content-Type'] = 'application/json'; body = JSON.stringify({ n: i, text: `msg ${i}` }); json = true; }
    const id = await publishOk(A.base, topic, body, { headers });
    sent.push({ id, body, event, json });
  }
  const ids = [w, ...sent.map((m) => m.id)];
  const epoch = parseId(w).epoch;
  for (const id of ids) eq(parseId(id).epoch, epoch, 'every id has the same EPOCH');
  for (let i = 1; i < ids.length; i++) assert(seqNum(ids[i]) > seqNum(ids[i - 1]), `ids not increasing: ${ids[i - 1]} then ${ids[i]}`);

  const n = ids.length;
  await waitFor(() => all.every((s) => s.sse.messages.length >= n && s.sseEnv.messages.length >= n && s.raw.data.length >= n && s.v1.msgs().length >= n)
    && Object.values(pollers).every((p) => p.got.length >= n - 1) && sseA.messages.length >= n,
  15000, `all ${n} messages on every subscriber`,
  () => JSON.stringify({
    A: sseA.messages.length,
    ...Object.fromEntries(Object.entries(subs).map(([k, s]) => [k, { sse: s.sse.messages.length, env: s.sseEnv.messages.length, raw: s.raw.data.length, v1: s.v1.msgs().length, poll: pollers[k].got.length, pollErr: pollers[k].errors.slice(-2) }])),
  }));
  await sleep(500); // duplicates would show up now
  for (const p of Object.values(pollers)) await p.stop();

  sameIds(sseA.messages.map((m) => m.id), ids, 'SSE on A (the publishing node)');
  for (const [name, s] of Object.entries(subs)) {
    sameIds(s.sse.messages.map((m) => m.id), ids, `SSE on ${name}`);
    eq(s.sse.messages.slice(1).map((m) => m.data), sent.map((m) => m.body), `SSE payloads on ${name}`);
    eq(s.sse.messages.slice(1).map((m) => m.event), sent.map((m) => m.event), `SSE event names on ${name}`);
    // envelopes
    const env = s.sseEnv.messages.map((m) => JSON.parse(m.data));
    sameIds(env.map((e) => e.id), ids, `SSE envelope=1 on ${name}`);
    env.slice(1).forEach((e, i) => {
      const m = sent[i];
      eq(e.topic, topic, `envelope topic on ${name}`);
      eq(e.event ?? null, m.event, `envelope event of message ${i} on ${name}`);
      eq(e.data, m.json ? JSON.parse(m.body) : m.body, `envelope data of message ${i} on ${name}`);
      if (m.json) eq(e.content_type, 'application/json', `envelope content_type of message ${i} on ${name}`);
    });
    // raw WebSocket: payloads verbatim, in order, once
    eq(s.raw.data, ['warm-up', ...sent.map((m) => m.body)], `raw WebSocket payloads on ${name}`);
    // rt.v1
    const v = s.v1.msgs();
    sameIds(v.map((m) => m.id), ids, `rt.v1 WebSocket on ${name}`);
    v.slice(1).forEach((f, i) => {
      eq(f.data, sent[i].json ? JSON.parse(sent[i].body) : sent[i].body, `rt.v1 data of message ${i} on ${name}`);
      eq(f.event ?? null, sent[i].event, `rt.v1 event of message ${i} on ${name}`);
    });
    assert(!s.sse.ended && !s.raw.closed && !s.v1.closed, `a subscriber on ${name} was closed`);
    // long-poll
    const p = pollers[name];
    sameIds(p.got.map((m) => m.id), ids.slice(1), `long-poll on ${name}`);
    eq(p.got.map((m) => m.data), sent.map((m) => (m.json ? JSON.parse(m.body) : m.body)), `long-poll data on ${name}`);
    eq(p.gaps, 0, `long-poll gaps on ${name}`);
  }
  // metrics
  for (const [name, b] of Object.entries({ A, B, C })) {
    const m = await metrics(b.base);
    eq(metricValue(m, 'rtbroker_bus_up{bus="nats"}'), 1, `rtbroker_bus_up{bus="nats"} on ${name}`);
    assert(/^rtbroker_nats_consumer_lag(\{[^}]*\})? \d/m.test(m), `rtbroker_nats_consumer_lag missing on ${name}: ${trunc(m.split('\n').filter((l) => l.includes('nats')).join(' | '), 600)}`);
  }
  const mA = await metrics(A.base);
  const cnt = metricValue(mA, 'rtbroker_nats_publish_latency_seconds_count');
  assert(cnt >= 31, `rtbroker_nats_publish_latency_seconds_count on A: expected >= 31 after 31 publishes, got ${cnt}`);
  assert(metricValue(mA, 'rtbroker_nats_publish_latency_seconds_sum') > 0, 'rtbroker_nats_publish_latency_seconds_sum on A should be > 0');
}, { timeout: 60000 });

t.test('figures: publish→deliver latency across nodes (200 messages), throughput through the bus to one subscriber', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 5000 } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  // latency: serial publishes on A, an SSE subscriber on B
  const sse = await timedSubscribe(B.base, '/sub/lat.t');
  c.defer(() => sse.close());
  const starts = []; const acks = []; const ids = [];
  for (let i = 0; i < 200; i++) {
    starts.push(performance.now());
    ids.push(await publishOk(A.base, 'lat.t', `l${i}`));
    acks.push(performance.now());
    await sleep(2);
  }
  await sse.waitMessages(200, 15000);
  await sleep(200);
  sameIds(sse.messages.map((m) => m.id), ids, 'latency subscriber on B');
  const lat = sse.arrivals.map((a, i) => a - starts[i]);
  const ackLat = acks.map((a, i) => a - starts[i]);
  c.info(`publish on A → SSE on B latency over 200 messages: p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms, max ${Math.max(...lat).toFixed(2)} ms; ` +
    `publish 200 (JetStream ack) p50 ${percentile(ackLat, 50).toFixed(2)} ms, p99 ${percentile(ackLat, 99).toFixed(2)} ms`);

  // throughput: 2,000 messages from 16 concurrent publishers on A, one SSE subscriber on B
  const sub = await subscribe(B.base, '/sub/tp.t');
  c.defer(() => sub.close());
  const N = 2000; const P = 16;
  const pubIds = [];
  let next = 0; let failures = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: P }, async () => {
    while (next < N) {
      const i = next++;
      const r = await tryPublish(A.base, 'tp.t', `t${i}`);
      if (r.status === 200) pubIds.push(r.id); else failures.push(`${r.status} ${trunc(r.text, 100)}`);
    }
  }));
  const tPub = performance.now();
  assert(failures.length === 0, `${failures.length} publishes failed: ${failures.slice(0, 3).join('; ')}`);
  await sub.waitMessages(N, 30000);
  const tEnd = performance.now();
  await sleep(300);
  const got = sub.messages.map((m) => m.id);
  pubIds.sort((a, b) => seqNum(a) - seqNum(b));
  sameIds(got, pubIds, 'throughput subscriber on B (stream order)');
  c.info(`throughput: ${N} publishes (${P} concurrent) on A in ${((tPub - t0) / 1000).toFixed(2)} s = ${Math.round(N / ((tPub - t0) / 1000))} pub/s; ` +
    `all delivered to one SSE subscriber on B after ${((tEnd - t0) / 1000).toFixed(2)} s = ${Math.round(N / ((tEnd - t0) / 1000))} msg/s through the bus`);
  const m = await metrics(B.base);
  c.info(`B: rtbroker_nats_consumer_lag ${metricValue(m, 'rtbroker_nats_consumer_lag')} after the burst`);
}, { timeout: 70000 });

await t.run();

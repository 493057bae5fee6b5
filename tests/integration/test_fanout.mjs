// Fan-out: 200 SSE subscribers over 20 topics, 4 concurrent publishers, exactly-once in order.
import {
  suite, assert, eq, publishOk, subscribe, openSSE, waitFor, seqOf, sleep, request, h2session, openSSEh2,
} from './lib.mjs';

const t = suite(import.meta.url);

const TOPICS = 20;
const PER_TOPIC_SUBS = 10;
const MSGS_PER_TOPIC = 100;
const PUBLISHERS = 4;

t.test(`${TOPICS * PER_TOPIC_SUBS} SSE subscribers, ${TOPICS} topics, ${PUBLISHERS} publishers × ${MSGS_PER_TOPIC} msgs/topic`, async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 1000 } } });
  const topic = (k) => `fan.t${k}`;
  const subs = [];
  c.defer(() => subs.forEach((s) => s.close()));
  // open in batches of 20 to avoid a SYN storm on a small machine
  for (let k = 0; k < TOPICS * PER_TOPIC_SUBS; k += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => {
      const idx = k + j;
      const tp = topic(idx % TOPICS);
      return subscribe(b.base, `/sub/${tp}`, { okTimeout: 15000 }).then((s) => { s.topic = tp; return s; });
    }));
    subs.push(...batch);
  }
  eq(subs.length, TOPICS * PER_TOPIC_SUBS, 'subscribers open');
  // 4 publishers; publisher p handles topics p, p+4, ... interleaving them
  const published = {}; // topic -> [ids] in publish order
  for (let k = 0; k < TOPICS; k++) published[topic(k)] = [];
  const t0 = Date.now();
  let pubErr = null;
  await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => (async () => {
    const mine = Array.from({ length: TOPICS }, (_, k) => k).filter((k) => k % PUBLISHERS === p);
    try {
      for (let i = 0; i < MSGS_PER_TOPIC; i++) {
        for (const k of mine) {
          const tp = topic(k);
          published[tp].push(await publishOk(b.base, tp, `${tp}#${i}`));
        }
      }
    } catch (e) { pubErr ||= e; }
  })()));
  if (pubErr) throw pubErr;
  const pubMs = Date.now() - t0;
  const expected = TOPICS * PER_TOPIC_SUBS * MSGS_PER_TOPIC;
  const count = () => subs.reduce((n, s) => n + s.messages.length, 0);
  await waitFor(() => count() >= expected, 30000, `${expected} deliveries`,
    () => `got ${count()}; short subscribers: ${subs.filter((s) => s.messages.length < MSGS_PER_TOPIC).slice(0, 5).map((s) => `${s.topic}:${s.messages.length}${s.ended ? '(ended)' : ''}`).join(', ')}`);
  const T = (Date.now() - t0) / 1000;
  await sleep(300); // anything extra (duplicates) would show up now
  let total = 0;
  for (const s of subs) {
    const ids = s.messages.map((m) => m.id);
    const data = s.messages.map((m) => m.data);
    total += ids.length;
    eq(ids.length, MSGS_PER_TOPIC, `deliveries to a ${s.topic} subscriber`);
    eq(ids, published[s.topic], `ids on a ${s.topic} subscriber (order, exactly once)`);
    eq(data, Array.from({ length: MSGS_PER_TOPIC }, (_, i) => `${s.topic}#${i}`), `payloads on a ${s.topic} subscriber`);
    for (let i = 1; i < ids.length; i++) assert(seqOf(ids[i]) > seqOf(ids[i - 1]), `${s.topic}: out of order ${ids[i - 1]} then ${ids[i]}`);
    assert(!s.ended, `a ${s.topic} subscriber stream ended early`);
  }
  eq(total, expected, 'total deliveries');
  console.log(`INFO fanout: ${total} deliveries in ${T.toFixed(2)} s (rough ${Math.round(total / T)} msg/s); ` +
    `${TOPICS * MSGS_PER_TOPIC} publishes took ${(pubMs / 1000).toFixed(2)} s (${Math.round(TOPICS * MSGS_PER_TOPIC / (pubMs / 1000))} pub/s)`);
}, { timeout: 80000 });

t.test('h2c: 40 SSE streams multiplexed on 2 connections, bursts with 60 KB payloads (flow control)', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 1000 } } });
  const sessions = [h2session(b.base), h2session(b.base)];
  c.defer(() => sessions.forEach((x) => x.destroy()));
  const streams = [];
  for (let i = 0; i < 40; i++) {
    const tp = `h2fan.t${i % 4}`;
    const st = await openSSEh2(sessions[i % 2], `/sub/${tp}`);
    eq(st.status, 200, `h2 SSE status on ${tp}`);
    st.topic = tp;
    streams.push(st);
  }
  await Promise.all(streams.map((st) => st.waitOk(8000)));
  const published = {};
  const big = (i) => `big${i}:` + 'x'.repeat(60000);
  await Promise.all([0, 1, 2, 3].map(async (k) => {
    const tp = `h2fan.t${k}`;
    published[tp] = [];
    for (let i = 0; i < 75; i++) {
      const body = i % 15 === 7 ? big(i) : `${tp}#${i}`;
      published[tp].push([await publishOk(b.base, tp, body), body]);
    }
  }));
  await waitFor(() => streams.every((st) => st.messages.length >= 75), 20000, '75 messages on every h2 stream',
    () => streams.map((st) => st.messages.length).join(','));
  await sleep(300);
  for (const st of streams) {
    eq(st.messages.length, 75, `h2 stream on ${st.topic}: count`);
    const got = st.messages.map((m) => [m.id, m.data]);
    const want = published[st.topic];
    for (let i = 0; i < 75; i++) {
      assert(got[i][0] === want[i][0] && got[i][1] === want[i][1],
        `h2 stream on ${st.topic}: message ${i} expected id ${want[i][0]} (${want[i][1].length} bytes), got ${got[i][0]} (${got[i][1].length} bytes)`);
    }
  }
  assert(streams.every((st) => !st.ended), 'an h2 stream ended early');
}, { timeout: 50000 });

t.test('a subscriber that stops reading is cut off at limits.max_queue_bytes; others get everything', async (c) => {
  const b = await c.broker({ config: { limits: { max_queue_bytes: 262144 } } });
  const slow = await openSSE(b.base, '/sub/slow.t');
  c.defer(() => slow.close());
  await slow.waitOk();
  slow.res.pause();
  slow.res.socket.pause();
  const fast = await subscribe(b.base, '/sub/slow.t');
  c.defer(() => fast.close());
  const metric = async () => {
    const m = await request(b.base, 'GET', '/metrics');
    return m.text.split('\n').filter((l) => /^\w*slow\w*(\{[^}]*\})? /.test(l)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
  };
  const slow0 = await metric();
  const body = (i) => `s${i}:` + 'y'.repeat(64000);
  const ids = [];
  let closedAt = -1;
  // loopback socket buffers absorb several MB: publish up to ~48 MB until the broker gives up on the slow reader
  for (let i = 0; i < 750; i++) {
    ids.push(await publishOk(b.base, 'slow.t', body(i)));
    if (i % 25 === 24 && (await metric()) > slow0) { closedAt = i; break; }
  }
  await fast.waitFor((x) => x.messages.length >= ids.length, 20000, `fast subscriber gets all ${ids.length}`);
  const fastIds = fast.messages.map((m) => m.id);
  eq(fastIds.length, ids.length, 'fast subscriber count');
  assert(fastIds.every((id, i) => id === ids[i]), 'fast subscriber: ids in publish order');
  assert(closedAt >= 0, `no slow-consumer close after ${ids.length} × 64 KB to a client that reads nothing (max_queue_bytes 256 KiB)`);
  // the slow reader: what it gets is a prefix of the stream, then the end — never a silent hole
  slow.res.socket.resume();
  slow.res.resume();
  await slow.waitFor((x) => x.ended, 15000, 'the slow subscriber stream to be closed by the broker');
  const got = slow.messages.map((m) => m.id);
  assert(got.length < ids.length, `slow subscriber received all ${ids.length} messages although it was reported closed`);
  for (let i = 0; i < got.length; i++) assert(got[i] === ids[i], `slow subscriber: message ${i} is ${got[i]}, expected ${ids[i]} (a silent hole)`);
  const lastData = slow.messages.length ? slow.messages[slow.messages.length - 1].data : '';
  assert(!lastData || lastData === body(got.length - 1), 'slow subscriber: last message truncated or corrupted');
  c.info(`slow consumer closed after ${ids.length} publishes (${(ids.length * 64000 / 1048576).toFixed(1)} MiB); it had received ${got.length}; other events: ${JSON.stringify(slow.events.filter((e) => e.event && e.event.startsWith('rt.')).map((e) => e.event))}`);
  // the broker can resume from the slow reader's last id, as a reconnecting EventSource would
  const again = await subscribe(b.base, '/sub/slow.t', { headers: { 'Last-Event-ID': got[got.length - 1] || ids[0] } });
  c.defer(() => again.close());
  await again.waitFor((x) => x.events.length >= 1, 5000, 'resume after slow close');
}, { timeout: 60000 });

await t.run();

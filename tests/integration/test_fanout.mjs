// Fan-out: 200 SSE subscribers over 20 topics, 4 concurrent publishers, exactly-once in order.
import { suite, assert, eq, publishOk, subscribe, waitFor, seqOf, sleep } from './lib.mjs';

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

await t.run();

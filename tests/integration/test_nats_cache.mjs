// NATS bus, the per-node history cache (history.cache_bytes, issue 18):
// - repeated resumes of a topic are answered from the cache (rtbroker_history_cache_hits_total), a resume
//   after new messages gets exactly them, and /history, long-poll cursors and live-fed topics use it too;
// - past the byte bound the least recently used topics go (evictions) and resumes stay exact after it;
// - what the stream no longer retains is not served from the cache: the resume gets what the stream has and the
//   gap notice.
import { suite, assert, eq, sleep, subscribe, request, poll, trunc, epochOf } from './lib.mjs';
import { publishN, sseResume, startNats, natsBroker, sameIds, metrics, metricValue } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });


async function cacheStats(base) {
  const m = await metrics(base);
  const v = (k) => metricValue(m, `rtbroker_history_cache_${k}`);
  return { hits: v('hits_total'), misses: v('misses_total'), evictions: v('evictions_total'), bytes: v('bytes'), topics: v('topics') };
}


t.test('repeated resumes hit the cache; a resume after a new message gets exactly it; /history and long-poll use it', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const ids = await publishN(A.base, 'cache.a', 30);
  const zero = `${epochOf(ids[0])}:0`;
  const s0 = await cacheStats(B.base);
  assert(Number.isFinite(s0.hits) && Number.isFinite(s0.misses), 'rtbroker_history_cache_* metrics missing');
  await sseResume(B.base, 'cache.a', zero, ids, 'first resume on B (from JetStream)');
  const s1 = await cacheStats(B.base);
  assert(s1.misses > s0.misses, `the first resume is a miss (${JSON.stringify(s0)} -> ${JSON.stringify(s1)})`);
  await sseResume(B.base, 'cache.a', zero, ids, 'second resume on B from 0');
  await sseResume(B.base, 'cache.a', ids[9], ids.slice(10), `resume on B from ${ids[9]}`);
  const s2 = await cacheStats(B.base);
  eq(s2.hits - s1.hits, 2, `cache hits of 2 repeated resumes (${JSON.stringify(s1)} -> ${JSON.stringify(s2)})`);
  await sseResume(B.base, 'cache.a', ids[29], [], `resume on B from the last id ${ids[29]}`); // nothing to read
  eq(s2.misses, s1.misses, 'no miss on repeated resumes');
  assert(s2.bytes > 0 && s2.topics >= 1, `cache bytes / topics after resumes: ${JSON.stringify(s2)}`);
  // one new message right after what the cache holds: not covered, read from JetStream, exact
  const [next] = await publishN(A.base, 'cache.a', 1, () => 'next');
  await sseResume(B.base, 'cache.a', ids[29], [next], `resume on B from ${ids[29]} after one more message`);
  await sseResume(B.base, 'cache.a', zero, [...ids, next], 'resume on B from 0 after one more message');
  // /history and long-poll cursors on the same topic
  const h = await request(B.base, 'GET', '/history/cache.a?limit=5');
  eq(h.status, 200, `/history on B: ${trunc(h.text, 200)}`);
  sameIds(h.json.messages.map((m) => m.id), [...ids, next].slice(-5), '/history/cache.a?limit=5 on B');
  const p = await poll(B.base, { topic: 'cache.a', cursor: ids[25], timeout: 1 });
  eq(p.status, 200, `long-poll on B: ${trunc(p.text, 200)}`);
  sameIds(p.json.messages.map((m) => m.id), [...ids.slice(26), next], `long-poll on B from ${ids[25]}`);
  const s3 = await cacheStats(B.base);
  assert(s3.hits - s2.hits >= 3, `hits for the resume from 0, /history and long-poll (${JSON.stringify(s2)} -> ${JSON.stringify(s3)})`);
  c.info(`cache on B: ${JSON.stringify(s3)}`);
});

t.test('live delivery keeps the cache: a resume beside a live subscriber is a hit, and exact', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const live = await subscribe(B.base, '/sub/cache.live');
  c.defer(() => live.close());
  await sleep(200);
  const ids = await publishN(A.base, 'cache.live', 10);
  await live.waitMessages(10, 5000, 'B\'s live subscriber');
  const s0 = await cacheStats(B.base);
  await sseResume(B.base, 'cache.live', ids[3], ids.slice(4), `resume on B from ${ids[3]} beside a live subscriber`);
  const s1 = await cacheStats(B.base);
  eq(s1.hits - s0.hits, 1, `a hit (${JSON.stringify(s0)} -> ${JSON.stringify(s1)})`);
  eq(s1.misses, s0.misses, 'no miss');
});

t.test('eviction at the byte bound: least recently used topics go, resumes stay exact after it', async (c) => {
  const nats = await startNats(c);
  const bound = 16384;
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url, { history: { cache_bytes: bound } });
  const body = (i) => `${i}:${'x'.repeat(500)}`;
  const topics = {};
  for (let k = 0; k < 8; k++) topics[`ev.t${k}`] = await publishN(A.base, `ev.t${k}`, 8, body);
  const zero = `${epochOf(topics['ev.t0'][0])}:0`;
  for (const [topic, ids] of Object.entries(topics)) await sseResume(B.base, topic, zero, ids, `first resume of ${topic} on B`);
  const s1 = await cacheStats(B.base);
  assert(s1.evictions > 0, `evictions past ${bound} bytes: ${JSON.stringify(s1)}`);
  assert(s1.bytes <= bound && s1.bytes > 0, `cache bytes within ${bound}: ${JSON.stringify(s1)}`);
  // after the evictions: every topic again, exact (the evicted ones from JetStream, the last one from the cache)
  for (const [topic, ids] of Object.entries(topics)) await sseResume(B.base, topic, ids[2], ids.slice(3), `resume of ${topic} on B after evictions`);
  const s2 = await cacheStats(B.base);
  assert(s2.misses > s1.misses, `evicted topics are misses again (${JSON.stringify(s1)} -> ${JSON.stringify(s2)})`);
  assert(s2.bytes <= bound, `cache bytes within ${bound}: ${JSON.stringify(s2)}`);
  const last = topics['ev.t7'];
  await sseResume(B.base, 'ev.t7', last[4], last.slice(5), 'resume of the most recently read topic, within what it read');
  const s3 = await cacheStats(B.base);
  eq(s3.hits - s2.hits, 1, `the most recently read topic is a hit (${JSON.stringify(s2)} -> ${JSON.stringify(s3)})`);
  c.info(`cache bounded at ${bound} B: ${JSON.stringify(s3)}`);
});

t.test('the stream dropped what the cache still holds: the resume gets what the stream retains, with the gap notice', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 5 } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const old = await publishN(A.base, 'drop.a', 5);
  await sseResume(B.base, 'drop.a', old[0], old.slice(1), `first resume on B from ${old[0]}`);
  const fresh = await publishN(A.base, 'drop.a', 5, (i) => `n${i}`); // the stream keeps these 5 only
  const sse = await subscribe(B.base, '/sub/drop.a', { headers: { 'Last-Event-ID': old[1] } });
  try {
    await sse.waitFor((x) => x.messages.length >= fresh.length, 5000, `resume on B from ${old[1]}`).catch(() => {});
    await sleep(100);
    sameIds(sse.messages.map((m) => m.id), fresh, `resume on B from ${old[1]} after the stream dropped what B's cache holds`);
    assert(sse.events.some((e) => e.event === 'rt.gap'), `no gap notice resuming from ${old[1]}: ${JSON.stringify(sse.events.map((e) => e.event))}`);
  } finally { sse.close(); }
});

await t.run();

// NATS bus: a node's in-memory history (fed from the stream) keeps to history.max_topics and history.max_bytes,
// with a gap for resumes past them and the same metrics as the memory bus; a second node keeps its own.
import { suite, assert, eq, publishOk, request, trunc, waitFor } from './lib.mjs';
import { startNats, natsBroker, metrics, metricValue } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });

async function history(base, q) {
  const r = await request(base, 'GET', `/history/${q}`);
  assert(r.status === 200, `GET /history/${q}: ${r.status} ${trunc(r.text)}`);
  return r.json;
}

t.test('history.max_topics and history.max_bytes bound each node\'s history; resumes past them get a gap', async (c) => {
  const nats = await startNats(c);
  const caps = { history: { max_topics: 3, max_bytes: '1MiB' } };
  const A = await natsBroker(c, nats.url, caps);
  const B = await natsBroker(c, nats.url, { history: { max_topics: 100, max_bytes: '1MiB' } });
  const first = await publishOk(A.base, 'nc.t0', 'a');
  await publishOk(A.base, 'nc.t0', 'b');
  for (let i = 1; i <= 3; i++) await publishOk(A.base, `nc.t${i}`, `x${i}`);
  await waitFor(async () => metricValue(await metrics(B.base), 'rtbroker_history_messages') === 5, 5000, 'B consumed the 5 messages');
  await waitFor(async () => metricValue(await metrics(A.base), 'rtbroker_bus_seq') >= 5, 5000, 'A consumed the 5 messages');
  const mA = await metrics(A.base);
  eq([metricValue(mA, 'rtbroker_history_topics'), metricValue(mA, 'rtbroker_history_topics_evicted_total'),
    metricValue(mA, 'rtbroker_history_evicted_total{cause="max_topics"}')], [3, 1, 2], 'A: topics, topics evicted, messages evicted');
  eq(metricValue(await metrics(B.base), 'rtbroker_history_topics'), 4, 'B, with a higher cap, keeps all 4 topics');
  const gone = await history(A.base, `nc.t0?since=${encodeURIComponent(first)}`);
  eq(gone.gap, true, 'A: a resume from before the evicted topic gets a gap');
  const body = Buffer.alloc(65536, 0x62);
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push(await publishOk(A.base, 'nc.big', body));
  await waitFor(async () => metricValue(await metrics(A.base), 'rtbroker_bus_seq') >= 35, 5000, 'A consumed the large messages');
  const m = await metrics(A.base);
  const bytes = metricValue(m, 'rtbroker_history_bytes');
  assert(bytes <= 1048576, `A: rtbroker_history_bytes ${bytes} over history.max_bytes`);
  assert(metricValue(m, 'rtbroker_history_evicted_total{cause="max_bytes"}') >= 10, `A: evictions for max_bytes: ${trunc(m.split('\n').filter((l) => l.includes('evicted')).join(' '))}`);
  const h = await history(A.base, `nc.big?since=${encodeURIComponent(ids[0])}&limit=100`);
  eq(h.gap, true, 'A: a resume from an evicted large message gets a gap');
  assert(h.messages.length >= 1 && h.messages[0].id !== ids[1], `A: the oldest large ones went first: ${h.messages.length} returned`);
});

t.run();

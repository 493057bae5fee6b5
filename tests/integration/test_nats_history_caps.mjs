// NATS bus: a node keeps no copy of the history (it reads the stream on demand), so the memory bus's caps
// history.max_topics and history.max_bytes have nothing to bound there: a node with tiny caps still resumes every
// topic from the stream without a gap and reports no in-memory history; what bounds a node's memory for a read is
// limits.max_queue_bytes, the most one /history answer holds, with a cursor to continue from.
import { suite, assert, eq, publishOk, request, trunc } from './lib.mjs';
import { startNats, natsBroker, metrics, metricValue } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 90000 });

async function history(base, q) {
  const r = await request(base, 'GET', `/history/${q}`);
  assert(r.status === 200, `GET /history/${q}: ${r.status} ${trunc(r.text)}`);
  assert(r.buf.length <= 1048576 + 400 * 1024, `GET /history/${q}: an answer of ${r.buf.length} bytes (limits.max_queue_bytes 1 MiB)`);
  return r.json;
}

t.test('history.max_topics / max_bytes do not cut the stream\'s history; /history answers hold at most limits.max_queue_bytes', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, { history: { max_topics: 3, max_bytes: '1MiB' }, limits: { max_queue_bytes: '1MiB' } });
  const first = await publishOk(A.base, 'nc.t0', 'a');
  await publishOk(A.base, 'nc.t0', 'b');
  for (let i = 1; i <= 3; i++) await publishOk(A.base, `nc.t${i}`, `x${i}`);
  const t0 = await history(A.base, `nc.t0?since=${encodeURIComponent(first)}`);
  eq([t0.gap, t0.messages.map((m) => m.data)], [false, ['b']], 'A: nc.t0, the least recent of 4 topics (max_topics 3), resumes from the stream whole');
  const body = Buffer.alloc(65536, 0x62);
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push(await publishOk(A.base, 'nc.big', body));
  const m = await metrics(A.base);
  assert(Number.isNaN(metricValue(m, 'rtbroker_history_bytes')), `A reports an in-memory history: ${trunc(m.split('\n').filter((l) => l.startsWith('rtbroker_history')).join(' '))}`);
  const got = [];
  let cursor = ids[0], pages = 0;
  for (; pages < 40 && got.length < ids.length - 1; pages++) {
    const h = await history(A.base, `nc.big?since=${encodeURIComponent(cursor)}&limit=100`);
    eq(h.gap, false, `page ${pages}: 30 × 64 KiB (past max_bytes 1 MiB) are all in the stream, no gap`);
    assert(h.messages.length > 0, `page ${pages}: nothing after ${cursor}`);
    got.push(...h.messages.map((x) => x.id));
    cursor = h.cursor;
  }
  eq(got, ids.slice(1), 'every large message once, in order, over several answers');
  assert(pages > 1, `one answer held all ${got.length} messages of 64 KiB (limits.max_queue_bytes 1 MiB)`);
});

t.run();

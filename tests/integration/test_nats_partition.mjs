// NATS bus, partial partition: node C reaches nats-server through a fault proxy that cuts its
// connections (1.5 s, several times) while node A publishes a steady stream to a topic C's SSE
// subscriber is on. Every publish A answered 200 must reach C's subscriber and C's /history once,
// in order (issue 17 item 12: C used to advance past a message it never stored).
import path from 'node:path';
import { suite, assert, sleep, subscribe, request, trunc, HERE } from './lib.mjs';
import { startNats, natsBroker, sameIds, tryPublish, waitReady } from './natslib.mjs';

const { startFaultProxy } = await import(path.join(HERE, '..', 'chaos', 'faultproxy.mjs'));
const t = suite(import.meta.url, { hardTimeoutMs: 60000 });

t.test('C\'s link to NATS frozen then cut 3 times while A publishes: C\'s SSE subscriber and /history get every 200 once, in order', async (c) => {
  const nats = await startNats(c);
  const proxy = await startFaultProxy({ target: nats.port });
  c.defer(() => proxy.close());
  const cfg = { history: { max_messages: 5000 } };
  const A = await natsBroker(c, nats.url, cfg);
  const C = await natsBroker(c, proxy.url, cfg);
  const topic = 'part.flap';
  const sse = await subscribe(C.base, `/sub/${topic}`);
  c.defer(() => sse.close());

  const ids = []; const failures = [];
  let stop = false;
  c.defer(() => { stop = true; });
  const publisher = (async () => {
    for (let i = 0; !stop && i < 220; i++) { // 20 per second for 11 s
      const t0 = Date.now();
      const r = await tryPublish(A.base, topic, `p${i}`);
      if (r.status === 200) ids.push(r.id); else failures.push(`${r.status} ${trunc(r.text, 100)}`);
      await sleep(Math.max(0, 50 - (Date.now() - t0)));
    }
  })();
  // each round: the link goes silent (bytes held: what NATS pushes meanwhile is in flight), then is
  // cut (the held bytes are lost), stays down, and heals
  for (let k = 0; k < 3; k++) {
    await sleep(800);
    proxy.freeze();
    await sleep(1500);
    proxy.cut();
    await sleep(1000);
    proxy.restore();
  }
  await publisher;
  assert(failures.length === 0, `publishes via A failed: ${failures.slice(0, 3).join('; ')}`);
  await waitReady(C, 15000, 'C ready after the last cut');
  // C has caught up when it holds the last id (or it never will)
  const last = ids[ids.length - 1];
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline && !sse.messages.some((m) => m.id === last)) await sleep(50);
  await sleep(300);
  const h = await request(C.base, 'GET', `/history/${topic}?limit=5000`);
  assert(h.status === 200, `GET /history on C: ${h.status} ${trunc(h.text)}`);
  const got = sse.messages.map((m) => m.id);
  const missing = ids.filter((id) => !got.includes(id));
  c.info(`${ids.length} publishes answered 200 via A; ${proxy.stats.cut} connections cut; C's subscriber got ${got.length}` +
    (missing.length ? `, missing ${JSON.stringify(missing)}` : ''));
  assert(!sse.events.some((e) => e.event === 'rt.gap'), `C's subscriber got a gap notice: ${JSON.stringify(sse.events.filter((e) => e.event === 'rt.gap'))}`);
  sameIds(got, ids, 'C\'s SSE subscriber');
  sameIds(h.json.messages.map((m) => m.id), ids, 'C\'s /history');
}, { timeout: 50000 });

await t.run();

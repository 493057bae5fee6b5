// NATS bus, interest-based delivery and history on demand (issue 18):
// - a node receives from NATS only the stored messages of the topics its clients subscribe to
//   (rtbroker_bus_messages_in_total), and nothing once they are gone;
// - a wildcard resume on a node that never saw its topics, made while another node publishes,
//   joins live delivery with no gap and no double at the seam.
import { suite, assert, eq, sleep, subscribe, trunc } from './lib.mjs';
import { startNats, natsBroker, sameIds, tryPublish, metrics, metricValue } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });

async function publishMany(base, list) {
  const ids = [];
  for (const [topic, body] of list) {
    const r = await tryPublish(base, topic, body);
    assert(r.status === 200, `publish ${topic}: ${r.status} ${trunc(r.text, 200)}`);
    ids.push(r.id);
  }
  return ids;
}

t.test('a node receives only its clients\' topics: 20 of 400 stored messages, then none once its subscriber left', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const sse = await subscribe(B.base, '/sub/int.mine');
  const before = metricValue(await metrics(B.base), 'rtbroker_bus_messages_in_total');
  assert(Number.isFinite(before), 'rtbroker_bus_messages_in_total missing on B');
  const list = [];
  for (let i = 0; i < 400; i++) list.push(i % 20 === 0 ? ['int.mine', `m${i}`] : [`int.other${i % 19}`, `o${i}`]);
  const ids = await publishMany(A.base, list);
  const mine = ids.filter((_, i) => i % 20 === 0);
  await sse.waitMessages(mine.length, 5000, 'B\'s subscriber gets its 20');
  sameIds(sse.messages.map((m) => m.id), mine, 'B\'s SSE subscriber');
  const got = metricValue(await metrics(B.base), 'rtbroker_bus_messages_in_total') - before;
  eq(got, mine.length, `stored messages B received from NATS (of ${ids.length} published, ${mine.length} on its topic)`);
  sse.close();
  await sleep(300); // the unsubscribe reaches NATS
  await publishMany(A.base, [['int.mine', 'after'], ['int.other1', 'after']]);
  await sleep(300);
  const after = metricValue(await metrics(B.base), 'rtbroker_bus_messages_in_total') - before;
  eq(after, mine.length, 'stored messages B received after its last subscriber left');
  c.info(`B received ${got} of ${ids.length} stored messages (its subscriber's topic only)`);
});

t.test('wildcard resume on a node that never saw the topics, while another node publishes: no gap, no double at the seam', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const ids = [];
  let stop = false;
  c.defer(() => { stop = true; });
  const publisher = (async () => {
    for (let i = 0; !stop && i < 300; i++) {
      const r = await tryPublish(A.base, `seam.t${i % 3}`, `p${i}`);
      if (r.status === 200) ids.push(r.id);
    }
  })();
  while (ids.length < 60) await sleep(5);
  const from = ids[29];
  const subs = [];
  for (let k = 0; k < 3; k++) { // resumes at different points of the stream, while it grows
    subs.push({ from: ids[29 + k * 10], sse: await subscribe(B.base, '/sub/seam.*', { headers: { 'Last-Event-ID': ids[29 + k * 10] } }) });
    await sleep(30);
  }
  await publisher;
  for (const s of subs) {
    const want = ids.slice(ids.indexOf(s.from) + 1);
    await s.sse.waitFor((x) => x.messages.length >= want.length, 8000, `resume from ${s.from}`).catch(() => {});
    assert(!s.sse.events.some((e) => e.event === 'rt.gap'), `a gap notice resuming from ${s.from}`);
    sameIds(s.sse.messages.map((m) => m.id), want, `SSE seam.* on B resumed from ${s.from}`);
    s.sse.close();
  }
  c.info(`${ids.length} publishes on A; 3 wildcard resumes on B from ${from} on, each exact`);
});

await t.run();

// NATS bus, stateless long-poll across nodes: clients alternating their polls between nodes A
// and B lose nothing and get nothing twice while 2,000 messages are published to both nodes
// concurrently (no sticky sessions); a held poll whose batch is full never hands back a cursor past what it
// left out.
import { suite, assert, eq, publishOk, waitFor, sleep, trunc, poll, pipelinedPublish } from './lib.mjs';
import { startNats, natsBroker, longPoller, sameIds, tryPublish, seqNum } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 140000 });

t.test('long-polls alternating between A and B lose nothing while 2,000 messages are published to both concurrently', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 5000 } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const C = await natsBroker(c, nats.url, cfg);
  // the starting cursor: a first message, known to both nodes
  const w = await publishOk(A.base, 'lp.t', 'warm-up');
  // p1: one topic, A,B,A,B…; p2: a wildcard, B,A,B,A…; p3: all three nodes in turn, via /sub (negotiated long-poll)
  const p1 = longPoller([A.base, B.base], 'lp.t', w, { timeout: 5 });
  const p2 = longPoller([B.base, A.base], 'lp.*', w, { timeout: 5 });
  const p3 = longPoller([A.base, B.base, C.base], 'lp.*', w, { timeout: 5, path: '/sub' });
  c.defer(() => { p1.stopped = p2.stopped = p3.stopped = true; });

  const N = 2000; const PER_NODE = 4;
  const pubs = []; // {id, topic}
  const failures = [];
  let next = 0;
  const t0 = Date.now();
  await Promise.all([A, B].flatMap((b) => Array.from({ length: PER_NODE }, async () => {
    while (next < N) {
      const i = next++;
      const topic = i % 2 ? 'lp.u' : 'lp.t';
      const r = await tryPublish(b.base, topic, `m${i}`);
      if (r.status === 200) pubs.push({ id: r.id, topic, body: `m${i}` });
      else failures.push(`${r.status} ${trunc(r.text, 100)}`);
    }
  })));
  const pubMs = Date.now() - t0;
  assert(failures.length === 0, `${failures.length} of ${N} publishes failed: ${failures.slice(0, 3).join('; ')}`);
  pubs.sort((a, b) => seqNum(a.id) - seqNum(b.id));
  const wantT = pubs.filter((m) => m.topic === 'lp.t');
  await waitFor(() => p1.got.length >= wantT.length && p2.got.length >= N && p3.got.length >= N, 40000, 'every poller to catch up',
    () => `p1 ${p1.got.length}/${wantT.length}, p2 ${p2.got.length}/${N}, p3 ${p3.got.length}/${N}; errors ${JSON.stringify([...p1.errors, ...p2.errors, ...p3.errors].slice(-3))}`);
  const doneMs = Date.now() - t0;
  await sleep(500);
  await Promise.all([p1.stop(), p2.stop(), p3.stop()]);
  for (const [name, p, want] of [['p1 (lp.t, A/B)', p1, wantT], ['p2 (lp.*, B/A)', p2, pubs], ['p3 (lp.*, A/B/C via /sub)', p3, pubs]]) {
    sameIds(p.got.map((m) => m.id), want.map((m) => m.id), `long-poller ${name}`);
    eq(p.got.map((m) => m.data), want.map((m) => m.body), `long-poller ${name}: payloads`);
    eq(p.gaps, 0, `long-poller ${name}: gap flags`);
    eq(p.errors, [], `long-poller ${name}: failed polls`);
  }
  // both nodes answered polls (otherwise the alternation proved nothing)
  for (const [name, p] of [['p1', p1], ['p2', p2]]) {
    assert((p.byNode[A.base] || 0) > 0 && (p.byNode[B.base] || 0) > 0, `${name}: polls answered per node ${JSON.stringify(p.byNode)}`);
  }
  c.info(`${N} publishes on A and B (${2 * PER_NODE} concurrent) in ${(pubMs / 1000).toFixed(2)} s; pollers complete after ${(doneMs / 1000).toFixed(2)} s; ` +
    `polls: p1 ${p1.polls}, p2 ${p2.polls}, p3 ${p3.polls}`);
}, { timeout: 90000 });

t.test('a held wildcard poll at longpoll.max_messages never skips when the consumer brings a burst', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, { workers: 1, longpoll: { max_messages: 3 } });
  // 20 publishes on 20 connections at once: their messages reach the held poll from the stream in bursts
  // (whether one burst fills the batch is up to timing: rounds until two did, at most 8)
  const lost = []; let full = 0;
  for (let round = 0; round < 8 && full < 2; round++) {
    const cursor = await publishOk(A.base, 'bl.a', 'start');
    const held = poll(A.base, { topic: 'bl.*', cursor, timeout: 5 });
    await sleep(300);
    const pubs = Array.from({ length: 20 }, (_, i) => [{ topic: i % 2 ? 'bl.b' : 'bl.a', body: `r${round}m${i}` }]);
    const ids = (await Promise.all(pubs.map((p) => pipelinedPublish(A.port, p)))).map(([a]) => a.json && a.json.id);
    assert(ids.every(Boolean), `round ${round}: publishes failed`);
    const got = []; let j = (await held).json;
    if (j && j.messages && j.messages.length === 3) full++;
    for (let polls = 0; polls < 15; polls++) {
      assert(j && Array.isArray(j.messages), `round ${round}: poll answer ${trunc(JSON.stringify(j))}`);
      got.push(...j.messages.map((m) => m.id));
      if (j.messages.length === 0 || ids.every((id) => got.includes(id))) break;
      j = (await poll(A.base, { topic: 'bl.*', cursor: j.cursor, timeout: 1 })).json;
    }
    lost.push(ids.filter((id) => !got.includes(id)).length);
    sameIds(got, ids.sort((x, y) => seqNum(x) - seqNum(y)), `round ${round}: messages lost ${lost.join(', ')} of 20 per round`);
  }
  c.info(`${lost.length} rounds, ${full} of them with a held answer at the batch limit`);
}, { timeout: 40000 });

await t.run();

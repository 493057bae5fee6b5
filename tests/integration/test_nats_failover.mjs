// NATS bus, failures mid-stream:
// - a node killed with SIGKILL while a publisher publishes via another node: its SSE and rt.v1
//   clients reconnect to another node with their last id and get everything, in order, once;
// - the nats-server stopped (SIGTERM) for 5 s and restarted on the same storage: subscribers on two
//   nodes stay connected, every publish that got 200 (through either node) reaches every subscriber
//   exactly once, publishes during the outage get 503 with Retry-After, and everything recovers.
import {
  suite, assert, eq, waitFor, sleep, subscribe, request, trunc, parseId,
} from './lib.mjs';
import {
  startNats, natsBroker, killBroker, wsV1, natsClient, sameIds, tryPublish, seqNum, metrics, metricValue, longPoller,
} from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 145000 });

t.test('node A killed with SIGKILL mid-stream: its SSE and rt.v1 clients resume on B with their last id, nothing lost or doubled', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 5000 } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const topic = 'fo.kill';
  const sse1 = await subscribe(A.base, `/sub/${topic}`);
  const ws1 = await wsV1(c, A.base, topic);
  c.defer(() => sse1.close());
  // publisher via B: a steady stream of ~600 messages
  const ids = []; const failures = [];
  let stop = false;
  const publisher = (async () => {
    for (let i = 0; i < 600 && !stop; i++) {
      const r = await tryPublish(B.base, topic, `k${i}`);
      if (r.status === 200) ids.push(r.id); else failures.push(`${r.status} ${trunc(r.text, 100)}`);
      await sleep(4);
    }
  })();
  c.defer(() => { stop = true; });
  await sse1.waitFor((s) => s.messages.length >= 100, 15000, '100 messages on A before the kill');
  await killBroker(A, 'SIGKILL');
  const tKill = Date.now();
  await sse1.waitFor((s) => s.ended, 5000, 'the SSE stream on A to end after SIGKILL');
  await waitFor(() => ws1.closed, 5000, 'the rt.v1 WebSocket on A to close after SIGKILL');
  const lastSse = sse1.parser.lastEventId;
  const v1msgs = ws1.msgs();
  const lastWs = v1msgs[v1msgs.length - 1].id;
  // reconnect to B, as EventSource would, with Last-Event-ID; rt.v1 with since
  const sse2 = await subscribe(B.base, `/sub/${topic}`, { headers: { 'Last-Event-ID': lastSse } });
  c.defer(() => sse2.close());
  const ws2 = await wsV1(c, B.base, topic, { since: lastWs });
  const reconnectMs = Date.now() - tKill;
  const publishedAtReconnect = ids.length;
  await publisher;
  assert(failures.length === 0, `publishes via B failed while A died: ${failures.slice(0, 3).join('; ')}`);
  assert(ids.length === 600, `publisher: ${ids.length} ids`);
  const before = sse1.messages.length;
  await waitFor(() => before + sse2.messages.length >= ids.length && v1msgs.length + ws2.msgs().length >= ids.length, 15000,
    'everything on the resumed clients', () => `sse ${before}+${sse2.messages.length}, ws ${v1msgs.length}+${ws2.msgs().length} of ${ids.length}`);
  await sleep(300);
  assert(!sse2.events.some((e) => e.event === 'rt.gap'), `resumed SSE on B got a gap notice: ${JSON.stringify(sse2.events.filter((e) => e.event === 'rt.gap'))}`);
  eq(ws2.gaps(), [], 'gap notices on the resumed rt.v1 connection');
  sameIds([...sse1.messages, ...sse2.messages].map((m) => m.id), ids, 'SSE: messages on A then on B after Last-Event-ID');
  eq([...sse1.messages, ...sse2.messages].map((m) => m.data), ids.map((_, i) => `k${i}`), 'SSE payloads across the kill');
  sameIds([...v1msgs, ...ws2.msgs()].map((m) => m.id), ids, 'rt.v1: messages on A then on B after since');
  c.info(`SIGKILL of A after ${before} of 600 messages (SSE) / ${v1msgs.length} (rt.v1); clients back on B after ${reconnectMs} ms; ` +
    `about ${publishedAtReconnect - before} messages published meanwhile were replayed by B, then ${ids.length - publishedAtReconnect} more live; 0 publishes via B failed`);
}, { timeout: 45000 });

t.test('nats-server stopped for 5 s and restarted (same storage): every 200 delivered once to SSE on both nodes, 503s during the outage, recovery', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 5000 }, nats: { publish_timeout: '2s' } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const topic = 'fo.nats';
  const subs = { A: await subscribe(A.base, `/sub/${topic}`), B: await subscribe(B.base, `/sub/${topic}`) };
  c.defer(() => Object.values(subs).forEach((s) => s.close()));
  const v1 = await wsV1(c, B.base, topic);
  // two publishers, one per node, ~one publish per 20 ms each
  const results = []; // {node, status, id, body, t0, t1, retryAfter}
  let stop = false; let k = 0;
  c.defer(() => { stop = true; });
  const pubLoop = (name, b) => (async () => {
    while (!stop) {
      const body = `${name}${k++}`;
      const t0 = Date.now();
      const r = await tryPublish(b.base, topic, body, { timeout: 10000 });
      results.push({ node: name, status: r.status, id: r.id, body, t0, t1: Date.now(), retryAfter: r.retryAfter, text: r.text });
      await sleep(r.status === 200 ? 20 : 100);
    }
  })();
  const loops = [pubLoop('A', A), pubLoop('B', B)];
  await sleep(1500);
  eq(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.text}`), [], 'publishes before the outage');

  const tStop = Date.now();
  await nats.stop('SIGTERM');
  const tDown = Date.now();
  await sleep(2000);
  // during the outage: not ready, bus down, publishes 503
  const ready = {}; const up = {};
  for (const [n, b] of Object.entries({ A, B })) {
    ready[n] = (await request(b.base, 'GET', '/readyz', { timeout: 3000 })).status;
    up[n] = metricValue(await metrics(b.base), 'rtbroker_bus_up{bus="nats"}');
  }
  await sleep(Math.max(0, 5000 - (Date.now() - tDown)));
  await nats.start();
  const tUp = Date.now();
  // recovery: a 200 on each node after the restart
  const firstOk = {};
  await waitFor(() => {
    for (const n of ['A', 'B']) if (!firstOk[n]) { const r = results.find((x) => x.node === n && x.status === 200 && x.t0 >= tUp); if (r) firstOk[n] = r.t1 - tUp; }
    return firstOk.A !== undefined && firstOk.B !== undefined;
  }, 20000, 'a 200 publish on both nodes after nats-server restarted',
  () => `last results ${JSON.stringify(results.slice(-4).map((r) => [r.node, r.status, trunc(r.text, 80)]))}\nA log:\n${A.log()}`);
  const readyMs = {};
  for (const [n, b] of Object.entries({ A, B })) {
    const t0 = Date.now();
    await waitFor(async () => (await request(b.base, 'GET', '/readyz', { timeout: 3000 })).status === 200, 10000, `readyz 200 on ${n} after the restart`);
    readyMs[n] = Date.now() - tUp;
    void t0;
  }
  await sleep(1500);
  stop = true;
  await Promise.all(loops);

  const oks = results.filter((r) => r.status === 200);
  const fails = results.filter((r) => r.status !== 200);
  oks.sort((a, b) => seqNum(a.id) - seqNum(b.id));
  const want = oks.map((r) => r.id);
  const okBodies = new Set(oks.map((r) => r.body));
  const okCount = (arr) => arr.filter((d) => okBodies.has(d)).length;
  await waitFor(() => okCount(subs.A.messages.map((m) => m.data)) >= want.length && okCount(subs.B.messages.map((m) => m.data)) >= want.length
    && okCount(v1.msgs().map((m) => m.data)) >= want.length, 20000,
    `all ${want.length} acknowledged publishes on every subscriber`,
    () => `A ${subs.A.messages.length}, B ${subs.B.messages.length}, rt.v1 on B ${v1.msgs().length}; ended A ${subs.A.ended} B ${subs.B.ended}`);
  await sleep(500);

  c.info(`nats-server down ${((tUp - tDown) / 1000).toFixed(1)} s (SIGTERM took ${tDown - tStop} ms): ${results.length} publishes, ${oks.length} × 200, ${fails.length} failed ` +
    `(${JSON.stringify(countBy(fails, (r) => `${r.node}:${r.status}`))}); during the outage readyz ${JSON.stringify(ready)}, bus_up ${JSON.stringify(up)}; ` +
    `first 200 after restart: A +${firstOk.A} ms, B +${firstOk.B} ms; readyz 200: A +${readyMs.A} ms, B +${readyMs.B} ms`);
  // every failure is a 503 with Retry-After, and there was at least one
  assert(fails.length >= 1, 'no publish failed during a 5 s nats-server outage');
  for (const f of fails) {
    assert(f.status === 503, `a publish during the outage got ${f.status} ${trunc(f.text, 200)} (expected 503 unavailable)`);
    assert(f.retryAfter, `a 503 publish without Retry-After: ${trunc(f.text, 200)}`);
  }
  eq(ready, { A: 503, B: 503 }, '/readyz while nats-server is down');
  eq(up, { A: 0, B: 0 }, 'rtbroker_bus_up{bus="nats"} while nats-server is down');
  // A 503 must not be delivered anyway ("a failed publish is never half-delivered"), except a
  // publish in flight at the moment nats-server went down: stored, its ack lost — ambiguous, allowed.
  const byBody = new Map(results.map((r) => [r.body, r]));
  const ambiguous = new Set();
  const classify = (s, where) => {
    for (const m of s) {
      const r = byBody.get(m.data);
      assert(r, `${where}: delivered a message nobody published: ${m.id} ${trunc(m.data, 80)}`);
      if (r.status === 200) { eq(m.id, r.id, `${where}: id of ${r.body} (the 200 said ${r.id})`); continue; }
      const inFlight = r.t0 <= tStop + 50;
      assert(inFlight, `${where}: ${r.node} ${r.body} got ${r.status} (sent +${r.t0 - tDown} ms after nats-server stopped, answered +${r.t1 - tDown} ms) ` +
        `but was delivered as ${m.id} after it came back: a failed publish was delivered (buffered by the client library and sent on reconnect?)`);
      ambiguous.add(r.body);
    }
  };
  classify(subs.A.messages, 'SSE on A');
  classify(subs.B.messages, 'SSE on B');
  classify(v1.msgs().map((f) => ({ id: f.id, data: f.data })), 'rt.v1 on B');
  // when was such a message stored? after the 503 was answered means the client library kept it and sent it on
  // reconnect: the publisher was told "nothing was published", and it was published anyway
  const idOf = new Map(subs.A.messages.map((m) => [m.data, m.id]));
  for (const b of ambiguous) {
    const r = byBody.get(b);
    const g = await natsClient(['get', nats.url, 'RT', String(seqNum(idOf.get(b)))]);
    const m = /time_ns=(\d+)/.exec(g.stdout);
    const storedAt = m ? Number(BigInt(m[1]) / 1000000n) : NaN;
    const desc = `${r.node} ${b} sent ${r.t0 - tStop} ms after nats-server's SIGTERM, answered 503 at +${r.t1 - tStop} ms, ` +
      `stored as ${idOf.get(b)} at +${storedAt - tStop} ms (nats-server back at +${tUp - tStop} ms)`;
    c.info(`a publish in flight when nats-server stopped answered 503 but was delivered: ${desc}`);
    if (!/nothing was published/.test(r.text || '')) continue; /* a 503 "outcome unknown" may be stored: it says so */
    assert(!(storedAt > r.t1), `a publish answered 503 was stored ${storedAt - r.t1} ms after the 503 and delivered (half-delivered; ` +
      `the NATS client's reconnect buffer kept it and sent it on reconnect?): ${desc}`);
  }
  // subscribers stayed connected and got every acknowledged publish once, in stream order, the same ids everywhere
  const streamIds = subs.A.messages.map((m) => m.id);
  sameIds(streamIds.filter((id, i) => !ambiguous.has(subs.A.messages[i].data)), want, 'SSE subscriber on A (acknowledged publishes)');
  for (const [n, s] of Object.entries(subs)) {
    assert(!s.ended, `the SSE subscriber on ${n} was disconnected by the outage`);
    sameIds(s.messages.map((m) => m.id), streamIds, `SSE subscriber on ${n} vs SSE subscriber on A`);
  }
  assert(!v1.closed, `the rt.v1 subscriber on B was closed: ${JSON.stringify(v1.closed)}`);
  sameIds(v1.msgs().map((m) => m.id), streamIds, 'rt.v1 subscriber on B vs SSE subscriber on A');
  for (let i = 1; i < streamIds.length; i++) assert(seqNum(streamIds[i]) > seqNum(streamIds[i - 1]), `ids not increasing: ${streamIds[i - 1]} then ${streamIds[i]}`);
  for (const id of streamIds) eq(parseId(id).epoch, parseId(streamIds[0]).epoch, 'EPOCH unchanged across the nats-server restart');
}, { timeout: 70000 });

t.test('publishes in flight when nats-server goes down: a 503 is never stored later (16 concurrent publishers)', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url, { nats: { publish_timeout: '2s' }, history: { max_messages: 20000 } });
  const s = await subscribe(A.base, '/sub/fo.inflight');
  c.defer(() => s.close());
  const res = []; let stop = false; let k = 0;
  c.defer(() => { stop = true; });
  const loops = Array.from({ length: 16 }, async () => {
    while (!stop) {
      const body = `m${k++}`; const t0 = Date.now();
      const r = await tryPublish(A.base, 'fo.inflight', body, { timeout: 10000 });
      res.push({ body, t0, t1: Date.now(), status: r.status, id: r.id, text: r.text });
      if (r.status !== 200) await sleep(50);
    }
  });
  await sleep(800);
  const tStop = Date.now();
  await nats.stop('SIGTERM');
  await sleep(4000);
  await nats.start();
  const tUp = Date.now();
  await waitFor(() => res.some((r) => r.status === 200 && r.t0 > tUp), 15000, 'a 200 after nats-server restarted');
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  const oks = res.filter((r) => r.status === 200);
  const fails = res.filter((r) => r.status !== 200);
  await s.waitFor((x) => x.messages.length >= oks.length, 15000, `the ${oks.length} acknowledged messages`);
  await sleep(500);
  for (const f of fails) assert(f.status === 503, `a publish got ${f.status} ${trunc(f.text, 200)} (expected 200 or 503)`);
  const failed = new Map(fails.map((r) => [r.body, r]));
  const okIds = new Set(oks.map((r) => r.id));
  const late = [];
  for (const m of s.messages) {
    const r = failed.get(m.data);
    if (!r) { assert(okIds.has(m.id), `delivered ${m.id} ${trunc(m.data, 60)}, which no 200 announced`); continue; }
    const g = await natsClient(['get', nats.url, 'RT', String(seqNum(m.id))]);
    const mm = /time_ns=(\d+)/.exec(g.stdout);
    const storedAt = mm ? Number(BigInt(mm[1]) / 1000000n) : NaN;
    const d = `${r.body} sent +${r.t0 - tStop} ms after nats-server's SIGTERM, 503 at +${r.t1 - tStop} ms, stored as ${m.id} at +${storedAt - tStop} ms (nats-server back at +${tUp - tStop} ms)`;
    // the contract: a 503 that says "nothing was published" is never stored; one that says the outcome is unknown
    // (its ack did not come in time) may be, and says so — the client retries it with an Idempotency-Key
    if (!/nothing was published/.test(r.text)) { c.info(`503 "outcome unknown", stored (allowed, announced): ${d}`); continue; }
    if (storedAt > r.t1) late.push(d); else c.info(`stored just before its 503 (ack lost; ambiguous, allowed): ${d}`);
  }
  sameIds(s.messages.filter((m) => !failed.has(m.data)).map((m) => m.id), oks.map((r) => r.id).sort((a, b) => seqNum(a) - seqNum(b)), 'acknowledged publishes on the subscriber');
  c.info(`${res.length} publishes, ${oks.length} × 200, ${fails.length} × 503, ${late.length} answered 503 and stored afterwards`);
  assert(late.length === 0, `${late.length} publishes were answered 503 and stored (and delivered) afterwards, when nats-server came back — ` +
    `half-delivered, a client retry duplicates them (nats.c's reconnect buffer resends what was written before the disconnect?): ${late.slice(0, 3).join('; ')}`);
}, { timeout: 45000 });

function countBy(xs, f) { const o = {}; for (const x of xs) { const k = f(x); o[k] = (o[k] || 0) + 1; } return o; }

await t.run();

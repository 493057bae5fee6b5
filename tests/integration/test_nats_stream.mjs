// NATS bus, start-up and the stream:
// - nats-server down at start: the broker starts anyway (readyz 503, publishes 503 + Retry-After,
//   subscribers may connect) and recovers by itself when nats-server comes up;
// - the stream's settings come from the config (history → max msgs per subject / max age,
//   publish.dedup_window → duplicate window); a stream with conflicting settings stops the broker;
// - EPOCH comes from the stream: the same on every node and across broker restarts, new when the
//   stream is deleted and recreated, and an id from the old stream gets the gap notice.
import {
  suite, assert, eq, publishOk, publish, subscribe, waitFor, sleep, request, poll, expectError, parseId, epochOf, trunc,
} from './lib.mjs';
import {
  startNats, natsBroker, natsConfig, waitReady, wsV1, metrics, metricValue, natsClient, tryPublish, seqNum,
} from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 145000 });

t.test('nats-server down at start: broker starts, readyz 503, publish 503 + Retry-After, subscribers connect; all recovers when it comes up', async (c) => {
  const nats = await startNats(c, { start: false }); // a free port and storage dir, nothing listening yet
  const A = await natsBroker(c, nats.url, {}, { ready: false });
  const B = await natsBroker(c, nats.url, {}, { ready: false });
  const rz = await request(A.base, 'GET', '/readyz');
  eq(rz.status, 503, `/readyz with nats-server down (${trunc(rz.text, 200)})`);
  const p = await publish(A.base, 'st.down', 'too early');
  expectError(p, 503, 'unavailable', 'publish with nats-server down');
  assert(p.headers.get('retry-after'), `503 publish without Retry-After (headers ${JSON.stringify([...p.headers])})`);
  const ws = await (async () => {
    const r = await new Promise((resolve) => {
      wsV1(c, A.base, 'st.down').then((h) => resolve(h), (e) => resolve({ err: e }));
    });
    return r;
  })();
  const wsPub = ws.err ? null : await ws.send({ op: 'pub', topic: 'st.down', data: 'ws too early' });
  eq(metricValue(await metrics(A.base), 'rtbroker_bus_up{bus="nats"}'), 0, 'rtbroker_bus_up{bus="nats"} with nats-server down');
  // subscribers connect during the outage, on both nodes
  const sA = await subscribe(A.base, '/sub/st.down');
  const sB = await subscribe(B.base, '/sub/st.down');
  c.defer(() => { sA.close(); sB.close(); });
  const held = poll(B.base, { topic: 'st.down', timeout: 20 }, { timeout: 30000 }); // a long-poll held across the outage
  await sleep(1500);
  // nats-server comes up on that port
  await nats.start();
  const t0 = Date.now();
  const readyA = await waitReady(A, 10000, 'readyz 200 after nats-server came up');
  await waitReady(B, 10000, 'readyz 200 after nats-server came up');
  const readyMs = Date.now() - t0;
  let first = null; let n503 = 0;
  await waitFor(async () => {
    const r = await tryPublish(A.base, 'st.down', 'hello after the outage');
    if (r.status === 200) { first = r; return true; }
    n503++; return false;
  }, 10000, 'a 200 publish after nats-server came up');
  const pubMs = Date.now() - t0;
  await sA.waitMessages(1, 5000, 'the first message on the SSE subscriber of A that connected during the outage');
  await sB.waitMessages(1, 5000, 'the first message on the SSE subscriber of B that connected during the outage');
  eq(sA.messages.map((m) => [m.id, m.data]), [[first.id, 'hello after the outage']], 'SSE subscriber on A');
  eq(sB.messages.map((m) => [m.id, m.data]), [[first.id, 'hello after the outage']], 'SSE subscriber on B');
  const h = await held;
  eq(h.status, 200, `held long-poll on B: ${trunc(h.text, 200)}`);
  eq(h.json.messages.map((m) => m.id), [first.id], 'held long-poll on B');
  if (!ws.err) {
    eq(wsPub.type, 'error', `rt.v1 pub with nats-server down: ${JSON.stringify(wsPub)}`);
    eq(wsPub.code, 'unavailable', `rt.v1 pub error code with nats-server down: ${JSON.stringify(wsPub)}`);
    await waitFor(() => ws.msgs().length >= 1, 5000, 'the message on the rt.v1 subscriber that connected during the outage');
    eq(ws.msgs().map((m) => m.id), [first.id], 'rt.v1 subscriber on A');
  } else {
    throw new Error(`an rt.v1 subscriber could not connect during the outage: ${ws.err.message}`);
  }
  eq(metricValue(await metrics(A.base), 'rtbroker_bus_up{bus="nats"}'), 1, 'rtbroker_bus_up{bus="nats"} after recovery');
  c.info(`nats-server down at start: readyz 503, publish 503 (Retry-After ${p.headers.get('retry-after')}); after nats-server came up: ` +
    `readyz 200 on A in ${readyA} ms (both ${readyMs} ms), first publish 200 after ${pubMs} ms (${n503} more 503s), delivered to subscribers connected during the outage`);
}, { timeout: 45000 });

t.test('the stream follows the config (max msgs per subject, max age, duplicate window); a conflicting stream stops the broker', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 321, max_age: '30m' }, publish: { dedup_window: '90s' }, nats: { subject_prefix: 'rtq' } };
  const A = await natsBroker(c, nats.url, cfg);
  const info = await natsClient(['info', nats.url, 'RTQ']);
  eq(info.code, 0, `nats_client info RTQ (the stream name derived from subject_prefix rtq): ${info.stderr}`);
  const kv = Object.fromEntries(info.stdout.trim().split('\n').map((l) => l.split('=')));
  eq(kv.subjects, 'rtq.>', 'stream subjects');
  eq(kv.max_msgs_per_subject, '321', 'stream max_msgs_per_subject (history.max_messages)');
  eq(kv.max_age_ns, String(30 * 60 * 1e9), 'stream max_age (history.max_age)');
  eq(kv.duplicates_ns, String(90 * 1e9), 'stream duplicate window (publish.dedup_window)');
  eq(kv.replicas, '1', 'stream replicas');
  eq(kv.storage, 'file', 'stream storage');
  // topic chat.x <-> subject rtq.chat.x: the stream's last message is the one published
  const id = await publishOk(A.base, 'chat.x', 'prefixed');
  const g = await natsClient(['get', nats.url, 'RTQ', String(seqNum(id))]);
  assert(/subject=rtq\.chat\.x\b/.test(g.stdout) && g.stdout.trim().endsWith('prefixed'), `stream message ${seqNum(id)}: ${g.stdout} ${g.stderr}`);
  // nats.stream names the stream explicitly
  const B = await natsBroker(c, nats.url, { nats: { subject_prefix: 'other', stream: 'MYSTREAM' } });
  const id2 = await publishOk(B.base, 'chat.y', 'named');
  const g2 = await natsClient(['get', nats.url, 'MYSTREAM', String(seqNum(id2))]);
  assert(/subject=other\.chat\.y\b/.test(g2.stdout), `nats.stream MYSTREAM, message ${seqNum(id2)}: ${g2.stdout} ${g2.stderr}`);

  // conflicting streams: the broker exits non-zero naming the setting
  const conflicts = [
    { what: 'subjects', args: ['CONF1', 'elsewhere.>', '100'], cfg: { nats: { subject_prefix: 'conf1', stream: 'CONF1' } }, re: /subject/i },
    { what: 'max msgs per subject', args: ['RTC', 'rtc.>', '7'], cfg: { nats: { subject_prefix: 'rtc' } }, re: /max_messages|max_msgs_per_subject|max msgs/i },
  ];
  for (const k of conflicts) {
    const r = await natsClient(['addstream', nats.url, ...k.args]);
    eq(r.code, 0, `nats_client addstream ${k.args.join(' ')}: ${r.stderr}`);
    let started = null; let err = null;
    try { started = await c.broker({ config: natsConfig(nats.url, k.cfg) }); } catch (e) { err = e; }
    if (started) {
      await sleep(1000);
      if (started.alive()) throw new Error(`the broker started on a stream with conflicting ${k.what} (${k.args.join(' ')}); log:\n${started.log()}`);
      err = new Error(`exited (code ${started.exited.code})\n${started.log()}`);
      started.stopping = true;
    }
    assert(/code [1-9]/.test(err.message) && !/code 0/.test(err.message), `conflicting ${k.what}: expected a non-zero exit, got: ${trunc(err.message, 600)}`);
    assert(k.re.test(err.message.split('\n').slice(1).join('\n')), `conflicting ${k.what}: the error does not name the setting (${k.re}):\n${trunc(err.message, 1200)}`);
    c.info(`stream with conflicting ${k.what}: broker exited with: ${(err.message.split('\n').find((l) => /conflict|exists|stream/i.test(l) && /error|fatal|nats/i.test(l)) || '').trim()}`);
  }
}, { timeout: 40000 });

t.test('EPOCH: the same on every node and across broker restarts; new after the stream is deleted and recreated; stale ids get the gap notice', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 500 } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const ids = [await publishOk(A.base, 'ep.t', 'one'), await publishOk(B.base, 'ep.t', 'two'), await publishOk(A.base, 'ep.t', 'three')];
  const E1 = epochOf(ids[0]);
  for (const id of ids) eq(epochOf(id), E1, 'EPOCH of publishes through A and B');
  eq(ids.map(seqNum), [1, 2, 3], 'SEQ = stream sequence');
  // resume on B from an id A gave
  const r1 = await subscribe(B.base, `/sse?topic=ep.t&since=${encodeURIComponent(ids[0])}`);
  await r1.waitMessages(2, 5000);
  r1.close();
  eq(r1.messages.map((m) => m.id), ids.slice(1), 'resume on B from an id of A');
  assert(!r1.events.some((e) => e.event === 'rt.gap'), 'no gap on a cross-node resume');
  // restarting a broker keeps the epoch (it comes from the stream), and its history is there
  await A.stop();
  const A2 = await natsBroker(c, nats.url, cfg);
  const id4 = await publishOk(A2.base, 'ep.t', 'four');
  eq(epochOf(id4), E1, 'EPOCH after a broker restart');
  eq(seqNum(id4), 4, 'SEQ after a broker restart');
  const r2 = await subscribe(A2.base, '/sub/ep.t', { headers: { 'Last-Event-ID': ids[0] } });
  await r2.waitMessages(3, 5000);
  r2.close();
  eq(r2.messages.map((m) => m.id), [...ids.slice(1), id4], 'resume on the restarted node from an id it gave before');
  assert(!r2.events.some((e) => e.event === 'rt.gap'), 'no gap on the restarted node');

  // delete the stream (brokers stopped), start again: a new EPOCH, old ids get the gap notice
  await A2.stop(); await B.stop();
  const d = await natsClient(['delstream', nats.url, 'RT']);
  eq(d.code, 0, `nats_client delstream RT: ${d.stderr}`);
  const A3 = await natsBroker(c, nats.url, cfg);
  const B3 = await natsBroker(c, nats.url, cfg);
  const n1 = await publishOk(A3.base, 'ep.t', 'new one');
  const E2 = epochOf(n1);
  assert(E2 !== E1, `EPOCH unchanged (${E1}) after the stream was deleted and recreated`);
  eq(seqNum(n1), 1, 'SEQ of the first message of the recreated stream');
  const s = await subscribe(B3.base, '/sub/ep.t', { headers: { 'Last-Event-ID': id4 } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.messages.length >= 1, 5000, 'the retained message after the gap');
  const first = s.events[0];
  eq(first.event, 'rt.gap', `first SSE event after resuming from a stale id ${id4}: ${JSON.stringify(first)}`);
  assert(!first.hasId, 'the rt.gap event has no id: line');
  eq(JSON.parse(first.data), { from: id4 }, 'rt.gap data');
  eq(s.messages.map((m) => m.id), [n1], 'SSE after the gap notice');
  const lp = await poll(A3.base, { topic: 'ep.t', cursor: id4, timeout: 2 });
  eq(lp.status, 200, `long-poll with a stale cursor: ${trunc(lp.text, 200)}`);
  eq(lp.json.gap, true, `long-poll "gap" with a stale cursor: ${trunc(lp.text, 300)}`);
  eq(lp.json.messages.map((m) => m.id), [n1], 'long-poll messages after the gap');
  const w = await wsV1(c, B3.base, 'ep.t', { since: id4 });
  const frames = w.frames.filter((f) => f.type !== 'ok');
  eq(frames.map((f) => f.type), ['gap', 'msg'], `rt.v1 frames after since=${id4}: ${trunc(JSON.stringify(w.frames), 400)}`);
  eq(frames[0].from, id4, 'rt.v1 gap "from"');
  eq(frames[1].id, n1, 'rt.v1 message after the gap');
  c.info(`EPOCH ${E1} → ${E2} after the stream was recreated; SSE rt.gap, long-poll gap:true and rt.v1 gap seen for ${id4}`);
}, { timeout: 40000 });

t.test('stream deleted and recreated while brokers run: no id of the old stream is reused, live subscribers get the new messages, stale ids get the gap notice', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: 100, max_age: '1h' }, publish: { dedup_window: '2m' } };
  const A = await natsBroker(c, nats.url, cfg);
  const B = await natsBroker(c, nats.url, cfg);
  const live = await subscribe(B.base, '/sub/rc.t');
  c.defer(() => live.close());
  const old = [];
  for (let i = 0; i < 5; i++) old.push(await publishOk(i % 2 ? B.base : A.base, 'rc.t', `old${i}`));
  await live.waitMessages(5, 5000);
  const E1 = epochOf(old[0]);
  const d = await natsClient(['delstream', nats.url, 'RT']);
  eq(d.code, 0, `nats_client delstream RT: ${d.stderr}`);
  await sleep(300);
  // an operator recreates it (the same settings the brokers use, re-publish and direct get included)
  const a = await natsClient(['addstream', nats.url, 'RT', 'rt.>', '100', '1', '3600', '120', 'rt_live.>']);
  // (the brokers may have recreated it already themselves: "already in use" is fine)
  assert(a.code === 0 || /in use|exists/i.test(a.stderr), `nats_client addstream RT: ${a.stderr}`);
  const t0 = Date.now();
  const got = {}; const seen = {};
  await waitFor(async () => {
    for (const [n, b] of Object.entries({ A, B })) {
      if (got[n]) continue;
      const r = await tryPublish(b.base, 'rc.t', `new via ${n}`);
      seen[n] = `${r.status} ${trunc(r.text, 120)}`;
      if (r.status === 200) got[n] = { id: r.id, ms: Date.now() - t0 };
    }
    return got.A && got.B;
  }, 20000, 'a 200 publish through each broker after the stream was recreated', () => `last answers ${JSON.stringify(seen)}\nA log:\n${A.log()}`);
  const fresh = [got.A.id, got.B.id];
  for (let i = 0; i < 6; i++) fresh.push(await publishOk(A.base, 'rc.t', `new${i}`));
  fresh.sort((x, y) => seqNum(x) - seqNum(y));
  await live.waitFor((x) => x.messages.length >= 5 + fresh.length, 3000, 'new messages on the live subscriber').catch(() => {});
  const problems = [];
  const liveNew = live.messages.slice(5).map((m) => m.id);
  if (JSON.stringify(liveNew) !== JSON.stringify(fresh)) {
    problems.push(`the SSE subscriber on B connected across the recreation got ${JSON.stringify(liveNew)} of the recreated stream's ${JSON.stringify(fresh)}`);
  }
  for (const [n, g] of Object.entries(got)) {
    if (old.includes(g.id)) problems.push(`${n} answered ${g.id} for a message of the recreated stream: the id of ${JSON.stringify(live.messages[old.indexOf(g.id)]?.data)} in the old stream, reused`);
    else if (epochOf(g.id) === E1) problems.push(`${n}: EPOCH unchanged (${E1}) after the stream was deleted and recreated (${g.id})`);
  }
  const stale = old[old.length - 1];
  const s = await subscribe(A.base, '/sub/rc.t', { headers: { 'Last-Event-ID': stale } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.events.length >= 1, 3000, 'an event after resuming from a stale id').catch(() => {});
  if (!s.events.length || s.events[0].event !== 'rt.gap') {
    problems.push(`resuming on A from ${stale} (the old stream) gave no rt.gap first but ${trunc(JSON.stringify(s.events.slice(0, 3).map((e) => [e.event, e.id, e.data])), 300)}`);
  }
  assert(problems.length === 0, `after the stream RT was deleted and recreated under running brokers:\n  - ${problems.join('\n  - ')}`);
  c.info(`stream recreated under running brokers: first 200 via A after ${got.A.ms} ms (${got.A.id}), via B after ${got.B.ms} ms (${got.B.id}); old EPOCH ${E1}`);
}, { timeout: 40000 });

t.test('nats-server restarted with empty storage under running brokers: a new EPOCH, live subscribers continue, stale ids get the gap notice', async (c) => {
  const nats = await startNats(c);
  const A = await natsBroker(c, nats.url);
  const B = await natsBroker(c, nats.url);
  const live = await subscribe(B.base, '/sub/fr.t');
  c.defer(() => live.close());
  const old = [];
  for (let i = 0; i < 4; i++) old.push(await publishOk(A.base, 'fr.t', `old${i}`));
  await live.waitMessages(4, 5000);
  const E1 = epochOf(old[0]);
  await nats.stop();
  const fresh = await startNats(c, { port: nats.port }); // same port, new storage dir
  const t0 = Date.now();
  let first = null;
  await waitFor(async () => { const r = await tryPublish(A.base, 'fr.t', 'new0'); if (r.status === 200) first = r.id; return first; },
    15000, 'a 200 publish after nats-server came back with empty storage', () => A.log());
  const ms = Date.now() - t0;
  const ids = [first];
  let viaB = null;
  await waitFor(async () => { const r = await tryPublish(B.base, 'fr.t', 'new1'); if (r.status === 200) viaB = r.id; return viaB; },
    15000, 'a 200 publish through B after nats-server came back with empty storage', () => B.log());
  const msB = Date.now() - t0;
  ids.push(viaB);
  for (let i = 2; i < 8; i++) ids.push(await publishOk(i % 2 ? B.base : A.base, 'fr.t', `new${i}`));
  assert(epochOf(first) !== E1, `EPOCH unchanged (${E1}) after nats-server lost its storage: ${first} reuses the id of ${JSON.stringify(live.messages.find((m) => m.id === first)?.data)}`);
  await live.waitFor((x) => x.messages.length >= 12, 4000, 'the new messages on the SSE subscriber connected across the restart').catch(() => {});
  eq(live.messages.slice(4).map((m) => m.id), ids, 'new messages on the SSE subscriber of B connected across the restart (4 of the old EPOCH before them)');
  const s = await subscribe(A.base, '/sub/fr.t', { headers: { 'Last-Event-ID': old[3] } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.messages.length >= 8, 5000, 'messages after resuming from a stale id');
  eq(s.events[0].event, 'rt.gap', `first event after resuming from ${old[3]}: ${JSON.stringify(s.events[0])}`);
  eq(s.messages.map((m) => m.id), ids, 'messages after the gap notice');
  c.info(`nats-server back with empty storage: EPOCH ${E1} → ${epochOf(first)}, first 200 via A after ${ms} ms, via B after ${msB} ms`);
  // stop the brokers while nats-server is up (the cleanup would stop it first)
  await Promise.all([A.stop(), B.stop()]);
  void fresh;
}, { timeout: 40000 });

await t.run();

// Long-poll transport: held requests, timeouts, cursor following under load, gaps, bad params.
import {
  suite, assert, eq, expectError, publishOk, poll, request, sleep, seqOf, epochOf, trunc, curl, subscribe, pipelinedPublish,
} from './lib.mjs';

const t = suite(import.meta.url);

function checkShape(r, what) {
  assert(r.status === 200, `${what}: expected 200, got ${r.status} ${trunc(r.text)}`);
  assert(/^application\/json/.test(r.headers.get('content-type') || ''), `${what}: content-type ${r.headers.get('content-type')}`);
  const j = r.json;
  assert(j && typeof j.cursor === 'string' && typeof j.gap === 'boolean' && Array.isArray(j.messages),
    `${what}: expected {"cursor","gap","messages"}, got ${trunc(r.text)}`);
  return j;
}

t.test('no cursor: the request is held, then answered by a publish', async (c) => {
  const b = await c.broker();
  await publishOk(b.base, 'lp.t', 'old'); // must NOT be returned: no cursor = start now
  let done = false;
  const p = poll(b.base, { topic: 'lp.t', timeout: 15 }).then((r) => { done = true; return r; });
  await sleep(1000);
  assert(!done, 'poll without cursor returned before anything was published');
  const t0 = Date.now();
  const id = await publishOk(b.base, 'lp.t', 'new', { headers: { 'X-Event': 'ping' } });
  const r = await p;
  const lat = Date.now() - t0;
  const j = checkShape(r, 'held poll');
  eq(j.messages.map((m) => [m.id, m.topic, m.event, m.data]), [[id, 'lp.t', 'ping', 'new']], 'held poll messages');
  eq(j.cursor, id, 'cursor = last message id');
  eq(j.gap, false, 'gap');
  assert(lat < 3000, `held poll answered ${lat} ms after the publish`);
  c.info(`held poll answered ${lat} ms after publish`);
});

t.test('timeout=1 with nothing → empty messages and a cursor; next poll with that cursor gets what follows', async (c) => {
  const b = await c.broker();
  const r = await poll(b.base, { topic: 'to.t', timeout: 1 });
  const j = checkShape(r, 'timeout poll');
  eq(j.messages, [], 'messages after timeout');
  assert(r.ms >= 800 && r.ms < 5000, `timeout=1 answered after ${r.ms} ms`);
  const id = await publishOk(b.base, 'to.t', 'after');
  const r2 = await poll(b.base, { topic: 'to.t', cursor: j.cursor, timeout: 10 });
  const j2 = checkShape(r2, 'poll with returned cursor');
  eq(j2.messages.map((m) => m.id), [id], 'nothing lost between polls');
  assert(r2.ms < 2000, `retained messages must come at once, took ${r2.ms} ms`);
  // cursor from the timeout poll on a topic with history
  const r3 = await poll(b.base, { topic: 'to.t', timeout: 1 });
  const j3 = checkShape(r3, 'timeout poll 2');
  eq(j3.messages, [], 'no-cursor poll does not replay history');
  const id2 = await publishOk(b.base, 'to.t', 'after2');
  const j4 = checkShape(await poll(b.base, { topic: 'to.t', cursor: j3.cursor, timeout: 5 }), 'poll 4');
  eq(j4.messages.map((m) => m.id), [id2], 'only the message after the second timeout cursor');
});

t.test('cursor follow: 2000 messages from 4 concurrent publishers, each exactly once and in order', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 5000 } } });
  const topic = 'follow.t';
  const start = checkShape(await poll(b.base, { topic, timeout: 1 }), 'initial poll').cursor;
  const pubIds = [[], [], [], []];
  let pubErr = null;
  const publishers = pubIds.map((arr, k) => (async () => {
    try {
      for (let i = 0; i < 500; i++) arr.push(await publishOk(b.base, topic, `p${k}-${i}`));
    } catch (e) { pubErr ||= e; }
  })());
  const got = [];
  let cursor = start; let polls = 0; let maxBatch = 0;
  const deadline = Date.now() + 25000;
  while (got.length < 2000 && Date.now() < deadline && !pubErr) {
    const r = await poll(b.base, { topic, cursor, timeout: 5 });
    const j = checkShape(r, `poll #${polls}`);
    polls++;
    eq(j.gap, false, `gap on poll #${polls} with cursor ${cursor}`);
    if (j.messages.length) eq(j.cursor, j.messages[j.messages.length - 1].id, 'cursor = last message id');
    maxBatch = Math.max(maxBatch, j.messages.length);
    got.push(...j.messages);
    cursor = j.cursor;
  }
  await Promise.all(publishers);
  if (pubErr) throw pubErr;
  // one more poll: nothing beyond the 2000
  const tail = checkShape(await poll(b.base, { topic, cursor, timeout: 1 }), 'final poll');
  got.push(...tail.messages);
  const ids = got.map((m) => m.id);
  const dups = ids.filter((id, i) => ids.indexOf(id) !== i);
  assert(dups.length === 0, `${dups.length} duplicate deliveries, e.g. ${dups.slice(0, 3)}`);
  const all = new Set(pubIds.flat());
  const missing = [...all].filter((id) => !ids.includes(id));
  assert(missing.length === 0, `${missing.length} messages never delivered, e.g. ${missing.slice(0, 3)}`);
  eq(got.length, 2000, 'delivered count');
  for (let i = 1; i < ids.length; i++) assert(seqOf(ids[i]) > seqOf(ids[i - 1]), `out of order at ${i}: ${ids[i - 1]} then ${ids[i]}`);
  for (let k = 0; k < 4; k++) {
    const mine = got.filter((m) => m.data.startsWith(`p${k}-`)).map((m) => m.data);
    eq(mine, Array.from({ length: 500 }, (_, i) => `p${k}-${i}`), `publisher ${k} payload order`);
    eq(got.filter((m) => m.data.startsWith(`p${k}-`)).map((m) => m.id), pubIds[k], `publisher ${k} ids`);
  }
  c.info(`cursor follow: 2000 messages in ${polls} polls (largest batch ${maxBatch})`);
}, { timeout: 50000 });

t.test('longpoll.max_messages caps a response; the cursor continues from there', async (c) => {
  const b = await c.broker({ config: { longpoll: { max_messages: 10 } } });
  const ids = [];
  const id0 = await publishOk(b.base, 'cap.t', 'zero');
  for (let i = 0; i < 25; i++) ids.push(await publishOk(b.base, 'cap.t', `c${i}`));
  const j1 = checkShape(await poll(b.base, { topic: 'cap.t', cursor: id0, timeout: 1 }), 'poll 1');
  eq(j1.messages.map((m) => m.id), ids.slice(0, 10), 'first 10');
  eq(j1.cursor, ids[9], 'cursor after first batch');
  const j2 = checkShape(await poll(b.base, { topic: 'cap.t', cursor: j1.cursor, timeout: 1 }), 'poll 2');
  eq(j2.messages.map((m) => m.id), ids.slice(10, 20), 'next 10');
  const j3 = checkShape(await poll(b.base, { topic: 'cap.t', cursor: j2.cursor, timeout: 1 }), 'poll 3');
  eq(j3.messages.map((m) => m.id), ids.slice(20), 'last 5');
});

t.test('gap: true for a foreign epoch and for a cursor older than retention', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 10 } } });
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await publishOk(b.base, 'gap.a', `a${i}`));
  const j = checkShape(await poll(b.base, { topic: 'gap.a', cursor: 'zzzz:5', timeout: 2 }), 'foreign epoch poll');
  eq(j.gap, true, `gap for cursor zzzz:5 (${trunc(JSON.stringify(j))})`);
  eq(j.messages.filter((m) => !m.type || m.type === 'msg').map((m) => m.id), ids, 'retained messages after a foreign-epoch cursor');
  assert(epochOf(j.cursor) === epochOf(ids[0]), `cursor must be in the broker's epoch: ${j.cursor}`);
  const old = [];
  for (let i = 0; i < 30; i++) old.push(await publishOk(b.base, 'gap.b', `b${i}`));
  const k = checkShape(await poll(b.base, { topic: 'gap.b', cursor: old[0], timeout: 2 }), 'old cursor poll');
  eq(k.gap, true, 'gap for a cursor older than retention');
  eq(k.messages.map((m) => m.id), old.slice(20), 'the 10 retained messages');
  const l = checkShape(await poll(b.base, { topic: 'gap.b', cursor: old[25], timeout: 1 }), 'retained cursor poll');
  eq(l.gap, false, 'no gap for a retained cursor');
  eq(l.messages.map((m) => m.id), old.slice(26), 'messages after a retained cursor');
});

t.test('bad parameters → 400 (timeout=abc invalid_parameter, bad cursor invalid_id, no topic)', async (c) => {
  const b = await c.broker();
  expectError(await poll(b.base, { topic: 'bp.t', timeout: 'abc' }), 400, 'invalid_parameter', 'timeout=abc');
  expectError(await poll(b.base, { topic: 'bp.t', timeout: '-3' }), 400, 'invalid_parameter', 'timeout=-3');
  expectError(await poll(b.base, { topic: 'bp.t', cursor: 'garbage', timeout: 1 }), 400, 'invalid_id', 'cursor=garbage');
  expectError(await poll(b.base, { topic: 'bp.t', cursor: 'e:12x', timeout: 1 }), 400, 'invalid_id', 'cursor=e:12x');
  expectError(await poll(b.base, { topic: 'bp..t', timeout: 1 }), 400, 'invalid_topic', 'topic=bp..t');
  const r = await poll(b.base, { timeout: 1 });
  assert(r.status === 400, `/poll without topic: expected 400, got ${r.status} ${r.text}`);
});

t.test('timeout above longpoll.max_timeout is capped', async (c) => {
  const b = await c.broker({ config: { longpoll: { max_timeout: '2s' } } });
  const r = await poll(b.base, { topic: 'cap.t', timeout: 30 });
  const j = checkShape(r, 'capped poll');
  eq(j.messages, [], 'messages');
  assert(r.ms >= 1500 && r.ms < 6000, `timeout=30 with max_timeout 2s answered after ${r.ms} ms`);
});

t.test('/sub/{topic} without SSE Accept is long-poll; Last-Event-ID header works as cursor', async (c) => {
  const b = await c.broker();
  let done = false;
  const p = request(b.base, 'GET', '/sub/sub.lp?timeout=15', { headers: { Accept: 'application/json' } })
    .then((r) => { done = true; return r; });
  await sleep(800);
  assert(!done, '/sub/sub.lp (Accept: application/json) returned before a publish');
  const id = await publishOk(b.base, 'sub.lp', 'hi');
  const j = checkShape(await p, '/sub long-poll');
  eq(j.messages.map((m) => [m.id, m.data]), [[id, 'hi']], '/sub long-poll messages');
  const id2 = await publishOk(b.base, 'sub.lp', 'two');
  const r2 = await request(b.base, 'GET', `/sub/sub.lp?cursor=${encodeURIComponent(id)}&timeout=5`, { headers: { Accept: '*/*' } });
  eq(checkShape(r2, '/sub cursor').messages.map((m) => m.id), [id2], '/sub with cursor');
  const r3 = await request(b.base, 'GET', '/poll?topic=sub.lp&timeout=5', { headers: { 'Last-Event-ID': id } });
  eq(checkShape(r3, '/poll Last-Event-ID').messages.map((m) => m.id), [id2], '/poll with Last-Event-ID header');
  const r4 = await request(b.base, 'GET', `/poll?topic=sub.lp&since=${encodeURIComponent(id)}&timeout=5`);
  eq(checkShape(r4, '/poll since=').messages.map((m) => m.id), [id2], '/poll with since=');
  // multi-topic long-poll
  const a = await publishOk(b.base, 'mlp.a', 'A');
  const x = await publishOk(b.base, 'mlp.x', 'X');
  const bb = await publishOk(b.base, 'mlp.b', 'B');
  const r5 = await poll(b.base, { topic: ['mlp.a', 'mlp.b'], cursor: id2, timeout: 1 });
  eq(checkShape(r5, 'multi-topic poll').messages.map((m) => [m.id, m.topic]), [[a, 'mlp.a'], [bb, 'mlp.b']], 'multi-topic poll');
  void x;
});

t.test('history.max_age: aged-out messages are not replayed, and a cursor before them gets gap: true', async (c) => {
  const b = await c.broker({ config: { history: { max_age: '1s' } } });
  const old = [];
  for (let i = 0; i < 3; i++) old.push(await publishOk(b.base, 'age.t', `old${i}`));
  await sleep(1700);
  const fresh = await publishOk(b.base, 'age.t', 'fresh');
  const j = checkShape(await poll(b.base, { topic: 'age.t', cursor: old[0], timeout: 1 }), 'poll from an aged-out cursor');
  eq(j.messages.map((m) => m.data), ['fresh'], 'only the message younger than max_age');
  eq(j.gap, true, 'gap: old1 and old2 aged out after the cursor');
  const s = await subscribe(b.base, '/sub/age.t', { headers: { 'Last-Event-ID': old[0] } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.events.length >= 2, 5000, 'SSE gap + fresh');
  await sleep(200);
  eq(s.events.map((e) => e.event === 'rt.gap' ? 'GAP' : e.data), ['GAP', 'fresh'], 'SSE resume across aged-out messages');
  void fresh;
});

t.test('long-poll over h2c (curl --http2-prior-knowledge): held, then answered by a publish', async (c) => {
  const b = await c.broker();
  const id0 = await publishOk(b.base, 'h2lp.t', 'zero');
  const held = curl(['-sS', '--http2-prior-knowledge', '-w', '\n%{http_code} %{http_version}',
    `${b.base}/poll?topic=h2lp.t&cursor=${encodeURIComponent(id0)}&timeout=15`], { timeout: 20000 });
  await sleep(800);
  const id1 = await publishOk(b.base, 'h2lp.t', 'one');
  const r = await held;
  const lines = r.stdout.split('\n');
  const status = lines.pop();
  eq(status, '200 2', `h2c long-poll status/version (stderr ${r.stderr.trim()})`);
  const j = JSON.parse(lines.join('\n'));
  eq([j.cursor, j.messages.map((m) => m.id)], [id1, [id1]], 'h2c long-poll answer');
});

/** Polls on from `cursor` until an empty answer; returns every answer (the held one first when given). */
async function follow(base, topic, cursor, first) {
  const answers = first ? [first] : [];
  while (answers.length < 20) {
    const last = answers[answers.length - 1];
    if (last && last.messages.length === 0) break;
    answers.push(checkShape(await poll(base, { topic, cursor: last ? last.cursor : cursor, timeout: 1 }), `poll ${answers.length}`));
  }
  return answers;
}

function lostOf(answers, want, what) {
  const got = answers.flatMap((j) => j.messages.map((m) => m.id));
  const lost = want.filter((id) => !got.includes(id));
  assert(lost.length === 0, `${what}: ${lost.length} of ${want.length} messages never delivered (cursors ${answers.map((j) => `${j.cursor}/${j.messages.length}`).join(' ')})`);
  eq(got, want, `${what}: every message once, in order`);
}

t.test('a held poll at longpoll.max_messages never skips: 10 publishes in one TCP write, exact and wildcard polls', async (c) => {
  // one worker: the publishes and both polls share a loop, so the 10 messages reach the polls in one batch
  const b = await c.broker({ workers: 1, config: { longpoll: { max_messages: 3 } } });
  const id0 = await publishOk(b.base, 'pl.a', 'zero');
  const exact = poll(b.base, { topic: 'pl.a', cursor: id0, timeout: 10 });
  const wild = poll(b.base, { topic: 'pl.*', cursor: id0, timeout: 10 });
  await sleep(300);
  const pubs = Array.from({ length: 10 }, (_, i) => ({ topic: i % 2 ? 'pl.b' : 'pl.a', body: `m${i}` }));
  const ids = (await pipelinedPublish(b.port, pubs)).map((a, i) => { eq(a.status, 200, `publish ${i}`); return a.json.id; });
  for (const [what, held, want] of [['pl.*', wild, ids], ['pl.a', exact, ids.filter((_, i) => i % 2 === 0)]]) {
    const first = checkShape(await held, `held ${what} poll`);
    lostOf(await follow(b.base, what, null, first), want, `${what} poll following its cursors`);
    eq(first.messages.length, 3, `held ${what} poll: a full batch`);
    eq(first.cursor, first.messages[2].id, `held ${what} poll: the cursor is the last message in the answer`);
  }
});

t.test('a held batch filled by ephemeral messages hands back the cursor it started from, not one past stored messages', async (c) => {
  const b = await c.broker({ workers: 1, config: { longpoll: { max_messages: 3 } } });
  const id0 = await publishOk(b.base, 'pe.t', 'zero');
  const held = poll(b.base, { topic: 'pe.t', cursor: id0, timeout: 10 });
  await sleep(300);
  const pubs = [0, 1, 2].map((i) => ({ topic: 'pe.t', body: `e${i}`, headers: { 'X-Ephemeral': '1' } }))
    .concat([0, 1, 2, 3].map((i) => ({ topic: 'pe.t', body: `s${i}` })));
  const ids = (await pipelinedPublish(b.port, pubs)).slice(3).map((a) => a.json.id);
  const first = checkShape(await held, 'held poll');
  eq(first.messages.map((m) => m.data), ['e0', 'e1', 'e2'], 'held poll: the ephemeral messages');
  eq(first.cursor, id0, 'held poll: the cursor it started from');
  lostOf(await follow(b.base, 'pe.t', first.cursor), ids, 'stored messages after the ephemeral batch');
});

await t.run();

// A publish that JetStream refuses is never answered 200 (NATS bus): the broker answers 503 with a JSON reason and
// nothing is stored. Two refusals: a message over the stream's max_msg_size (a negative ack with a JetStream error
// code), and the stream deleted under running brokers (nobody answers the publish). Every 200 that comes back
// names a stored message (EPOCH:SEQ, SEQ >= 1: lib.mjs checkPublished).
import { assert, eq, suite, publish, publishOk, poll, sleep, trunc } from './lib.mjs';
import { startNats, natsBroker, natsClient, tryPublish, seqNum } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });
// the brokers' stream settings, so that a stream made beforehand is accepted as theirs
const CFG = { history: { max_messages: 100, max_age: '1h' }, publish: { dedup_window: '2m' } };

function refusedWithReason(r, what) {
  assert(r.status === 503 || r.status === 502, `${what}: JetStream refused the message, expected 503 (or 502), got ${r.status} ${trunc(r.text)}`);
  assert(r.json && typeof r.json.error === 'string' && typeof r.json.message === 'string' && r.json.message.length > 0,
    `${what}: expected a JSON reason, got ${trunc(r.text)}`);
}

t.test('a message over the stream\'s max_msg_size: JetStream\'s negative ack gives 503 with a reason, nothing stored', async (c) => {
  const nats = await startNats(c);
  const mk = await natsClient(['addstream', nats.url, 'RT', 'rt.>', '100', '1', '3600', '120', 'rt_live.>', '1024']);
  eq(mk.code, 0, `nats_client addstream RT with max_msg_size 1024: ${mk.stderr}`);
  const b = await natsBroker(c, nats.url, { ...CFG, nats: { publish_timeout: '5s' } });
  const first = await publishOk(b.base, 'ms.t', 'small');
  const t0 = Date.now();
  const big = await publish(b.base, 'ms.t', 'x'.repeat(4000));
  const ms = Date.now() - t0;
  refusedWithReason(big, 'a 4000-byte publish to a stream with max_msg_size 1024');
  assert(ms < 4000, `the refusal took ${ms} ms: it came from nats.publish_timeout (5 s), not from JetStream's answer`);
  const next = await publishOk(b.base, 'ms.t', 'after');
  eq(seqNum(next), seqNum(first) + 1, 'SEQ after the refused publish: nothing was stored for it');
  const r = await poll(b.base, { topic: 'ms.t', cursor: first, timeout: 2 });
  eq(r.json.messages.map((m) => m.data), ['after'], 'history after the first message');
  c.info(`4000 bytes to a stream with max_msg_size 1024: ${big.status} in ${ms} ms: ${trunc(big.json.message, 120)}`);
});

t.test('the stream deleted under a running broker: publishes get 503 with a reason or a 200 naming a stored message, never a 200 for nothing', async (c) => {
  const nats = await startNats(c);
  const b = await natsBroker(c, nats.url, { ...CFG, nats: { publish_timeout: '5s' } });
  await publishOk(b.base, 'del.t', 'before');
  const d = await natsClient(['delstream', nats.url, 'RT']);
  eq(d.code, 0, `nats_client delstream RT: ${d.stderr}`);
  const answers = {};
  const ok = [];
  let refused = 0;
  const until = Date.now() + 1500;
  for (let i = 0; Date.now() < until; i++) {
    const r = await tryPublish(b.base, 'del.t', `during ${i}`, { timeout: 8000 });
    answers[r.status] = (answers[r.status] || 0) + 1;
    if (r.status === 200) ok.push(r.id); // (the broker may have recreated the stream by now)
    else { refusedWithReason(r, `publish ${i} after the stream was deleted`); refused++; }
    await sleep(50);
  }
  assert(refused > 0, `no publish was refused after the stream was deleted: ${JSON.stringify(answers)}`);
  for (const id of ok) {
    const g = await natsClient(['get', nats.url, 'RT', String(seqNum(id))]);
    assert(g.code === 0 && /during \d+/.test(g.stdout), `a 200 (${id}) after the stream was deleted, but the stream has no such message: ${g.stderr || g.stdout}`);
  }
  c.info(`publishes for 1.5 s after the stream was deleted: ${JSON.stringify(answers)}`);
});

await t.run();

// Crash safety on the NATS bus: publishers POST to broker A (4 at a time) while a second node C
// serves a live SSE subscriber; A is killed with SIGKILL mid-stream. A publish whose answer was lost
// in the crash is retried on C with the same Idempotency-Key. Then a fresh broker B starts on the same
// stream, and:
// - every publish answered 200 (by A before the crash, or by C) is in the stream, with its body, once;
// - nothing is in the stream twice (the retries were de-duplicated) and nothing is there that no
//   publisher sent;
// - B replays all of it from the start (GET /history paging, and SSE resume), and C's live subscriber
//   got exactly the stream, in order.
// The second case kills the nats-server itself (SIGKILL) and restarts it on the same storage.
import { suite, assert, eq, subscribe, waitFor, sleep, trunc, request } from './lib.mjs';
import { startNats, natsBroker, killBroker, tryPublish, seqNum } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 170000 });
const HISTORY = 20000;

/** Every message of topic in B's history, oldest first, through GET /history?since= paging. */
async function wholeHistory(base, topic, epoch) {
  const out = [];
  let since = `${epoch}:0`;
  for (;;) {
    const r = await request(base, 'GET', `/history/${topic}?since=${encodeURIComponent(since)}&limit=1000`);
    assert(r.status === 200, `GET /history: ${r.status} ${trunc(r.text)}`);
    if (r.json.messages.length === 0) return out;
    out.push(...r.json.messages);
    since = r.json.cursor;
  }
}

/** Publishers: each sends `${name}-${i}` with Idempotency-Key of the same name; a failed or unanswered publish is
 * retried (same key) on the next target. targets(): the bases to use, in order of preference. */
function publishers(n, topic, targets, { until }) {
  const acked = new Map(); // body -> {id, via}
  const unknown = [];      // bodies whose first answer was lost (retried)
  const errors = [];
  let stop = false;
  const one = async (p) => {
    for (let i = 0; !stop && !until(acked); i++) {
      const body = `p${p}-${i}`;
      for (let attempt = 0; attempt < 20; attempt++) {
        const base = targets()[attempt % targets().length];
        const r = await tryPublish(base, topic, body, { headers: { 'Idempotency-Key': body }, timeout: 5000 });
        if (r.status === 200) { acked.set(body, { id: r.id, via: base }); break; }
        if (attempt === 0) unknown.push(body);
        errors.push(`${body} via ${base}: ${r.status} ${trunc(r.text, 80)}`);
        await sleep(50);
      }
    }
  };
  const done = Promise.all(Array.from({ length: n }, (_, p) => one(p)));
  return { acked, unknown, errors, done, stop: () => { stop = true; return done; } };
}

function checkStream(stream, acked, what) {
  const bodies = stream.map((m) => m.data);
  const seen = new Map();
  for (const b of bodies) seen.set(b, (seen.get(b) || 0) + 1);
  const dups = [...seen].filter(([, k]) => k > 1).map(([b]) => b);
  const missing = [...acked].filter(([b, a]) => !stream.some((m) => m.data === b && m.id === a.id)).map(([b, a]) => `${b}=${a.id}`);
  const foreign = bodies.filter((b) => !/^p\d+-\d+$/.test(b));
  assert(missing.length === 0, `${what}: ${missing.length} of ${acked.size} publishes answered 200 are missing (or under another id): ${trunc(JSON.stringify(missing.slice(0, 10)))}`);
  assert(dups.length === 0, `${what}: ${dups.length} bodies stored twice: ${trunc(JSON.stringify(dups.slice(0, 10)))}`);
  assert(foreign.length === 0, `${what}: unexpected messages ${trunc(JSON.stringify(foreign.slice(0, 5)))}`);
  const seqs = stream.map((m) => seqNum(m.id));
  assert(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `${what}: ids not increasing`);
  return { stored: stream.length, unanswered: stream.length - acked.size };
}

t.test('broker SIGKILLed mid-stream: every publish answered 200 is in the stream once; a fresh broker and a second node replay all of it', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: HISTORY } };
  const A = await natsBroker(c, nats.url, cfg);
  const C = await natsBroker(c, nats.url, cfg);
  const topic = 'crash.t';
  const live = await subscribe(C.base, `/sub/${topic}`);
  c.defer(() => live.close());
  let dead = false;
  const pubs = publishers(4, topic, () => (dead ? [C.base] : [A.base, C.base]), { until: (acked) => acked.size >= 1200 });
  c.defer(() => pubs.stop());
  await waitFor(() => pubs.acked.size >= 500, 30000, '500 publishes answered by A');
  const ackedByA = pubs.acked.size;
  await killBroker(A, 'SIGKILL');
  dead = true;
  await pubs.done;
  assert(pubs.acked.size >= 1200, `only ${pubs.acked.size} publishes answered`);
  const viaA = [...pubs.acked.values()].filter((a) => a.via === A.base).length;
  // a fresh broker on the same stream
  const B = await natsBroker(c, nats.url, cfg);
  const epoch = [...pubs.acked.values()][0].id.split(':')[0];
  const stream = await wholeHistory(B.base, topic, epoch);
  const figures = checkStream(stream, pubs.acked, 'GET /history on the fresh broker');
  // SSE resume on the fresh broker from the start: the same messages
  const resumed = await subscribe(B.base, `/sub/${topic}`, { headers: { 'Last-Event-ID': `${epoch}:0` } });
  c.defer(() => resumed.close());
  await resumed.waitFor((s) => s.messages.length >= stream.length, 15000, `SSE resume on B: ${stream.length} messages`);
  eq(resumed.messages.map((m) => m.id), stream.map((m) => m.id), 'SSE resume from the start on the fresh broker');
  assert(!resumed.events.some((e) => e.event === 'rt.gap'), 'SSE resume on the fresh broker got a gap notice');
  // the second node's live subscriber: exactly the stream
  await live.waitFor((s) => s.messages.length >= stream.length, 15000, `C's live subscriber: ${stream.length} messages`);
  await sleep(300);
  eq(live.messages.map((m) => m.id), stream.map((m) => m.id), "C's live SSE subscriber across A's death");
  c.info(`${pubs.acked.size} publishes answered 200 (${viaA} by A, ${ackedByA} before the SIGKILL, the rest by C); ` +
    `${pubs.unknown.length} lost answers retried with their Idempotency-Key; stream: ${figures.stored} messages, ` +
    `0 missing, 0 twice; fresh broker replayed ${stream.length} (history) and ${resumed.messages.length} (SSE resume)`);
}, { timeout: 90000 });

t.test('nats-server SIGKILLed mid-stream and restarted on its storage: every publish answered 200 survives', async (c) => {
  const nats = await startNats(c);
  const cfg = { history: { max_messages: HISTORY }, nats: { publish_timeout: '3s' } };
  const A = await natsBroker(c, nats.url, cfg);
  const topic = 'crash.n';
  const pubs = publishers(4, topic, () => [A.base], { until: (acked) => acked.size >= 800 });
  c.defer(() => pubs.stop());
  await waitFor(() => pubs.acked.size >= 300, 30000, '300 publishes answered');
  const before = pubs.acked.size;
  await nats.stop('SIGKILL');
  await sleep(1000);
  await nats.start();
  await pubs.done;
  const B = await natsBroker(c, nats.url, cfg);
  const epoch = [...pubs.acked.values()][0].id.split(':')[0];
  const stream = await wholeHistory(B.base, topic, epoch);
  const figures = checkStream(stream, pubs.acked, 'GET /history after the nats-server restart');
  const epochs = new Set([...pubs.acked.values()].map((a) => a.id.split(':')[0]));
  eq([...epochs], [epoch], 'one epoch (the stream survived the restart)');
  c.info(`${pubs.acked.size} publishes answered 200 (${before} before the nats-server SIGKILL); ${pubs.unknown.length} failed or unanswered and retried; ` +
    `stream after the restart: ${figures.stored} messages, 0 missing, 0 twice`);
}, { timeout: 70000 });

await t.run();

// Webhooks across two brokers on one nats-server (bus: nats), with a real receiver that checks every signature:
// each event is delivered once in the cluster whichever node saw it, per-topic order kept across nodes; the node
// sending an event SIGKILLed while the receiver fails: the other node delivers it once the receiver recovers;
// topic.occupied/vacated follow the subscribers of both nodes (once each, a reload across nodes fires nothing,
// a SIGKILLed node's subscribers stop counting after presence.ttl).
import {
  suite, assert, eq, publishOk, subscribe, sleep, waitFor, SLOW,
} from './lib.mjs';
import { startNats, natsBroker, killBroker, metrics, metricValue } from './natslib.mjs';
import { webhookReceiver, duplicates } from './webhooklib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });
const W = 8000 * SLOW;

const cfg = (rx, extra = {}) => ({
  webhooks: {
    vacated_delay: '500ms', retry_delay: '200ms', retry_max_delay: '1s', timeout: '1s', ...extra,
    endpoints: [{ url: rx.url('/c'), events: ['message.published', 'topic.occupied', 'topic.vacated'], secret: 'kc', max_attempts: 50 }],
  },
});

t.test('each event once in the cluster, whichever node saw it; per-topic order kept across nodes', async (c) => {
  const nats = await startNats(c);
  const rx = await webhookReceiver(c, { '/c': 'kc' });
  const a = await natsBroker(c, nats.url, cfg(rx));
  const b = await natsBroker(c, nats.url, cfg(rx));
  const sent = { 'x.1': [], 'x.2': [] };
  for (let i = 0; i < 30; i++) {
    const topic = i % 3 ? 'x.1' : 'x.2';
    sent[topic].push(await publishOk((i % 2 ? a : b).base, topic, `m${i}`));
  }
  const pubs = () => rx.ok('/c').filter((x) => x.ev.type === 'message.published');
  await waitFor(() => pubs().length >= 30, W, '30 deliveries', () => `${pubs().length}`);
  await sleep(1500);
  const ok = pubs();
  eq(ok.length, 30, 'no more than once');
  eq(duplicates(ok), [], 'no id twice');
  for (const topic of Object.keys(sent)) eq(ok.filter((x) => x.ev.topic === topic).map((x) => x.ev.message_id), sent[topic], `${topic} in order`);
  assert(rx.calls.every((x) => x.sigOk), 'signatures verify');
  eq(new Set(ok.map((x) => x.ev.node)).size, 2, 'events seen by both nodes');
  const senders = new Set(ok.map((x) => x.by));
  c.info(`30 events seen by 2 nodes, delivered by ${senders.size} node(s)`);
  const m = (await Promise.all([a, b].map((x) => metrics(x.base)))).map((x) => metricValue(x, 'rtbroker_webhook_nats_published_total'));
  eq(m[0] + m[1], 30, 'one stored delivery per event');
});

t.test('the node sending an event is SIGKILLed mid-retry: the other node delivers it once the receiver recovers', async (c) => {
  const nats = await startNats(c);
  const rx = await webhookReceiver(c, { '/c': 'kc' });
  rx.mode = 'fail';
  const a = await natsBroker(c, nats.url, cfg(rx));
  const b = await natsBroker(c, nats.url, cfg(rx));
  const id1 = await publishOk(a.base, 'k.1', 'first');
  await waitFor(() => rx.calls.filter((x) => x.ev?.message_id === id1).length >= 2, W, 'two failed attempts');
  const aNode = rx.calls[0].ev.node;
  const last = rx.calls.filter((x) => x.ev?.message_id === id1).pop();
  const [victim, survivor] = last.by === aNode ? [a, b] : [b, a];
  c.info(`killing the ${victim === a ? 'publishing' : 'other'} node (${last.by}) after attempt ${last.attempt}`);
  await killBroker(victim);
  const killedAt = Date.now();
  const id2 = await publishOk(survivor.base, 'k.1', 'second');
  await sleep(500);
  rx.mode = 'ok';
  await waitFor(() => rx.ok('/c').filter((x) => x.ev.type === 'message.published').length >= 2, 15000 * SLOW, 'both delivered',
    () => JSON.stringify(rx.calls.slice(-5).map((x) => [x.ev?.message_id, x.attempt, x.status, x.by])));
  await sleep(1000);
  const ok = rx.ok('/c').filter((x) => x.ev.type === 'message.published');
  eq(ok.map((x) => x.ev.message_id), [id1, id2], 'delivered once each, in order');
  assert(ok.every((x) => x.by !== last.by), `delivered by the survivor: ${ok.map((x) => x.by)}`);
  assert(ok[0].attempt > last.attempt, `the attempts went on counting: ${ok[0].attempt} after ${last.attempt}`);
  c.info(`event ${id1} delivered ${ok[0].at - killedAt} ms after the kill, attempt ${ok[0].attempt}`);
});

t.test('occupied/vacated follow the subscribers spread over both nodes, once each; a dead node stops counting after presence.ttl', async (c) => {
  const nats = await startNats(c);
  const rx = await webhookReceiver(c, { '/c': 'kc' });
  const conf = { ...cfg(rx), presence: { ttl: '3s' } };
  const a = await natsBroker(c, nats.url, conf);
  const b = await natsBroker(c, nats.url, conf);
  const occ = () => rx.ok('/c').filter((x) => x.ev.type.startsWith('topic.')).map((x) => [x.ev.type.slice(6), x.ev.topic]);
  const seen = () => JSON.stringify(rx.ok('/c').map((x) => [x.ev.type, x.ev.topic, x.ev.id, x.by]));
  const sa = await subscribe(a.base, '/sub/room.z');
  await waitFor(() => occ().length === 1, W, 'occupied');
  const sb = await subscribe(b.base, '/sub/room.z');
  await sleep(700);
  sa.close();
  await sleep(1200);
  eq(occ(), [['occupied', 'room.z']], 'a second node subscribing, then the first leaving: nothing');
  sb.close();
  await waitFor(() => occ().length === 2, W, 'vacated');
  // a reload that lands on the other node
  const r1 = await subscribe(a.base, '/sub/room.y');
  await waitFor(() => occ().length === 3, W, 'room.y occupied');
  r1.close();
  await sleep(150);
  const r2 = await subscribe(b.base, '/sub/room.y');
  await sleep(1500);
  eq(occ(), [['occupied', 'room.z'], ['vacated', 'room.z'], ['occupied', 'room.y']], 'reload across nodes: nothing');
  // the only node with subscribers dies
  const d = await subscribe(a.base, '/sub/room.d');
  await waitFor(() => occ().length === 4, W, 'room.d occupied', seen);
  eq(occ()[3], ['occupied', 'room.d'], `room.d occupied: ${seen()}`);
  await sleep(500); // the delivering node's ack reaches NATS (killed before it, the event would come again: at least once)
  await killBroker(a);
  const killed = Date.now();
  d.close();
  await waitFor(() => occ().length === 5, 10000 * SLOW, 'room.d vacated after the node died');
  const took = rx.ok('/c').pop().at - killed;
  eq(occ()[4], ['vacated', 'room.d'], `vacated: ${seen()}`);
  assert(took >= 1500 && took < 8000 * SLOW, `within presence.ttl (3 s) and vacated_delay: ${took} ms`);
  r2.close();
  await waitFor(() => occ().length === 6, W, 'room.y vacated');
  await sleep(800);
  eq(occ().length, 6, 'nothing more');
  eq(duplicates(rx.ok('/c')), [], 'each event once across the two nodes');
  c.info(`dead node's topic vacated ${took} ms after SIGKILL`);
});

t.run();

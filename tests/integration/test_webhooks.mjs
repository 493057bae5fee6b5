// Webhooks on one node (memory bus) with a real receiver in this process that checks every X-Rt-Signature:
// each event type delivered and signed, the events/topics filters, a 500 retried with backoff until it is
// delivered once, max_attempts giving up, a receiver down for seconds getting every event afterwards once per id
// in per-topic order, a reload inside vacated_delay firing nothing, a wildcard subscription's own events, and bad
// config lines refused with the key and the line.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  suite, assert, eq, publishOk, subscribe, sleep, waitFor, runBrokerSync, mkTemp, request, trunc, SLOW,
} from './lib.mjs';
import { metrics, metricValue } from './natslib.mjs';
import { webhookReceiver, duplicates } from './webhooklib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });
const W = 5000 * SLOW;
const JWT_SECRET = 'webhook-test-secret-0123456789abcdef';
const ALL = ['topic.occupied', 'topic.vacated', 'presence.join', 'presence.leave', 'message.published'];

function jwt(user, info) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: user, iat: now, exp: now + 3600, rt: { sub: ['>'], pub: ['>'], info } })}`;
  return `${body}.${crypto.createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`;
}

const config = (endpoints, extra = {}) => ({
  auth: { jwt: { secret: JWT_SECRET } },
  webhooks: { vacated_delay: '300ms', retry_delay: '200ms', retry_max_delay: '1s', ...extra, endpoints },
});

t.test('every event type is delivered, signed, with its fields; events and topics filter what an endpoint gets', async (c) => {
  const rx = await webhookReceiver(c, { '/all': 'secret-all', '/news': 'secret-news' });
  const b = await c.broker({ config: config([
    { url: rx.url('/all'), events: ALL, secret: 'secret-all' },
    { url: rx.url('/news'), events: ['message.published'], topics: ['news.>'], secret: 'secret-news' },
  ]) });
  const t0 = Date.now();
  const s = await subscribe(b.base, '/sub/room.a?presence=1', { headers: { Authorization: `Bearer ${jwt('alice', { name: 'Alice' })}` } });
  await waitFor(() => rx.events('/all', 'presence.join').length, W, 'presence.join');
  const idA = await publishOk(b.base, 'room.a', '{"x":1}', { headers: { 'Content-Type': 'application/json' } });
  const idN = await publishOk(b.base, 'news.today', 'plain text');
  s.close();
  await waitFor(() => rx.events('/all', 'topic.vacated').length && rx.events('/news').length, W, 'vacated and the news',
    () => JSON.stringify(rx.calls.map((x) => [x.path, x.ev?.type])));
  await sleep(300);
  const all = rx.events('/all');
  const by = (type) => all.filter((e) => e.type === type);
  eq(all.map((e) => e.type).filter((x) => x !== 'message.published'),
    ['topic.occupied', 'presence.join', 'presence.leave', 'topic.vacated'], 'room.a: occupied, join, leave, vacated in order');
  for (const e of all) {
    assert(typeof e.id === 'string' && e.id.length > 4 && typeof e.node === 'string' && e.node.length > 0, `id and node: ${JSON.stringify(e)}`);
    assert(Number.isInteger(e.time) && e.time >= t0 - 1000 && e.time <= Date.now() + 1000, `time is UNIX ms: ${e.time}`);
  }
  eq(by('topic.occupied')[0].topic, 'room.a', 'occupied topic');
  const j = by('presence.join')[0];
  eq([j.topic, j.user, j.info, typeof j.client], ['room.a', 'alice', { name: 'Alice' }, 'string'], 'join fields');
  const l = by('presence.leave')[0];
  eq([l.user, l.client], ['alice', j.client], 'leave: the same client');
  const pubs = by('message.published');
  eq(pubs.map((e) => [e.topic, e.message_id, e.data]), [['room.a', idA, { x: 1 }], ['news.today', idN, 'plain text']], 'published: id and data');
  eq(new Set(all.map((e) => e.id)).size, all.length, 'every event has its own id');
  eq(rx.events('/news').map((e) => [e.type, e.topic, e.message_id]), [['message.published', 'news.today', idN]],
    '/news gets only published messages of news.>');
  assert(rx.calls.every((x) => x.sigOk), `every signature verifies: ${JSON.stringify(rx.calls.filter((x) => !x.sigOk).map((x) => x.path))}`);
  const m = await metrics(b.base);
  eq([metricValue(m, 'rtbroker_webhook_deliveries_total{endpoint="0"}'), metricValue(m, 'rtbroker_webhook_deliveries_total{endpoint="1"}')],
    [6, 1], 'deliveries counted per endpoint');
  eq(metricValue(m, 'rtbroker_webhook_queue_depth'), 0, 'nothing left in the queue');
  assert(metricValue(m, 'rtbroker_webhook_delivery_seconds_count') === 7, 'latency histogram counts each delivery');
});

t.test('a 500 is retried with exponential backoff until a 2xx: each event delivered once, in order; max_attempts gives up', async (c) => {
  const rx = await webhookReceiver(c, { '/h': 'k1', '/never': 'k2' });
  rx.mode = (x) => (x.path === '/never' || x.attempt < 3 ? 500 : 200);
  const b = await c.broker({ config: config([
    { url: rx.url('/h'), events: ['message.published'], topics: ['orders.>'], secret: 'k1', max_attempts: 5 },
    { url: rx.url('/never'), events: ['message.published'], topics: ['doom'], secret: 'k2', max_attempts: 2 },
  ]) });
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await publishOk(b.base, 'orders.1', `order ${i}`));
  await publishOk(b.base, 'doom', 'x');
  await waitFor(() => rx.ok('/h').length === 3, 8000 * SLOW, 'three deliveries', () => JSON.stringify(rx.calls.map((x) => [x.path, x.attempt, x.status])));
  await sleep(1500);
  const h = rx.calls.filter((x) => x.path === '/h');
  eq(rx.ok('/h').map((x) => x.ev.message_id), ids, 'each delivered once, in publish order');
  eq(h.map((x) => x.attempt), [1, 2, 3, 1, 2, 3, 1, 2, 3], 'three attempts each, one event at a time');
  const gaps = [h[1].at - h[0].at, h[2].at - h[1].at];
  assert(gaps[0] >= 150 && gaps[1] >= 350 && gaps[1] > gaps[0], `backoff grows (200 ms, then 400 ms): ${gaps}`);
  eq(duplicates(rx.ok('/h')), [], 'no id accepted twice');
  eq(new Set(h.filter((x) => x.ev.message_id === ids[0]).map((x) => x.ev.id)).size, 1, 'a retry keeps the event id');
  eq(rx.calls.filter((x) => x.path === '/never').map((x) => x.attempt), [1, 2], 'max_attempts 2: two attempts, then given up');
  const m = await metrics(b.base);
  eq([metricValue(m, 'rtbroker_webhook_retries_total{endpoint="0"}'), metricValue(m, 'rtbroker_webhook_failures_total{endpoint="1"}')],
    [6, 1], 'retries and failures counted');
  assert(/gave up on event .* \(topic doom\)/.test(fs.readFileSync(b.logPath, 'utf8')), 'the give-up is logged');
});

t.test('a receiver down for seconds gets every event afterwards, once per id, in per-topic order', async (c) => {
  const rx = await webhookReceiver(c, { '/r': 'k' });
  const b = await c.broker({ config: config([{ url: rx.url('/r'), events: ['message.published'], secret: 'k', max_attempts: 100 }]) });
  await rx.down();
  const sent = { 'feed.a': [], 'feed.b': [] };
  for (let i = 0; i < 40; i++) {
    const topic = i % 2 ? 'feed.b' : 'feed.a';
    sent[topic].push(await publishOk(b.base, topic, `m${i}`));
    await sleep(50);
  }
  await sleep(1000);
  const back = Date.now();
  await rx.up();
  await waitFor(() => rx.ok().length >= 40, 10000 * SLOW, 'all 40 after the receiver returned', () => `${rx.ok().length} delivered`);
  const drainMs = Date.now() - back;
  await sleep(500);
  const ok = rx.ok();
  for (const topic of Object.keys(sent)) eq(ok.filter((x) => x.ev.topic === topic).map((x) => x.ev.message_id), sent[topic], `${topic} in order`);
  const dups = duplicates(ok);
  eq(dups, [], 'no id delivered twice');
  c.info(`receiver down ~3 s: 40 events sent, ${ok.length} delivered, ${dups.length} duplicates by id, drained ${drainMs} ms after it returned`);
  eq(metricValue(await metrics(b.base), 'rtbroker_webhook_queue_depth'), 0, 'queue empty again');
});

t.test('reload inside vacated_delay fires nothing; a wildcard subscription is occupied and vacated under its pattern', async (c) => {
  const rx = await webhookReceiver(c, { '/o': 'k' });
  const b = await c.broker({ config: config([{ url: rx.url('/o'), events: ['topic.occupied', 'topic.vacated'], secret: 'k' }], { vacated_delay: '1s' }) });
  let s = await subscribe(b.base, '/sub/room.r');
  await waitFor(() => rx.events('/o').length === 1, W, 'occupied');
  s.close();
  await sleep(200);
  s = await subscribe(b.base, '/sub/room.r'); // a page reload
  const w = await subscribe(b.base, '/sub?topic=room.*');
  await sleep(1500);
  eq(rx.events('/o').map((e) => [e.type, e.topic]), [['topic.occupied', 'room.r'], ['topic.occupied', 'room.*']],
    'the reload fired neither vacated nor occupied; the pattern is its own topic');
  const closed = Date.now();
  s.close();
  w.close();
  await waitFor(() => rx.events('/o').length === 4, 3000 * SLOW, 'both vacated');
  const v = rx.ok('/o').slice(2);
  assert(v.every((x) => x.at - closed >= 900), `vacated only after vacated_delay: ${v.map((x) => x.at - closed)}`);
  eq(v.map((x) => x.ev.topic).sort(), ['room.*', 'room.r'], 'vacated both');
});

/** A test CA, a certificate for 127.0.0.1 signed by it, one for another name, and a self-signed one for 127.0.0.1. */
function pki() {
  const dir = mkTemp('rtb-wh-tls-');
  const f = (n) => path.join(dir, n);
  const ssl = (args) => { const r = spawnSync('openssl', args, { encoding: 'utf8' }); assert(r.status === 0, `openssl: ${r.stderr}`); };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=webhook test CA']);
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  ssl(['req', ...ec, '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=127.0.0.1']);
  ssl(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-set_serial', '0x1234', '-out', f('srv.pem'),
    '-days', '2', '-extfile', f('ext.cnf')]);
  fs.writeFileSync(f('other.cnf'), 'subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n');
  ssl(['req', ...ec, '-keyout', f('other.key'), '-out', f('other.csr'), '-subj', '/CN=other.example']);
  ssl(['x509', '-req', '-in', f('other.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-set_serial', '0x1235', '-out', f('other.pem'),
    '-days', '2', '-extfile', f('other.cnf')]);
  ssl(['req', '-x509', ...ec, '-keyout', f('self.key'), '-out', f('self.pem'), '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1']);
  return { ca: f('ca.pem'), tls: { key: fs.readFileSync(f('srv.key')), cert: fs.readFileSync(f('srv.pem')) },
    untrusted: { key: fs.readFileSync(f('self.key')), cert: fs.readFileSync(f('self.pem')) },
    otherName: { key: fs.readFileSync(f('other.key')), cert: fs.readFileSync(f('other.pem')) } };
}

t.test('https receivers: verified against webhooks.tls_ca; a certificate nobody vouches for gets nothing', async (c) => {
  const p = pki();
  const good = await webhookReceiver(c, { '/s': 'k' }, { tls: p.tls });
  const bad = await webhookReceiver(c, { '/u': 'k' }, { tls: p.untrusted });
  const other = await webhookReceiver(c, { '/o': 'k' }, { tls: p.otherName });
  const b = await c.broker({ config: config([
    { url: good.url('/s'), events: ['message.published'], secret: 'k' },
    { url: bad.url('/u'), events: ['message.published'], secret: 'k', max_attempts: 2 },
    { url: other.url('/o'), events: ['message.published'], secret: 'k', max_attempts: 2 },
  ], { tls_ca: p.ca }) });
  const id = await publishOk(b.base, 'secure.1', '{"a":1}', { headers: { 'Content-Type': 'application/json' } });
  await waitFor(() => good.ok('/s').length === 1, W, 'the https delivery');
  eq([good.ok('/s')[0].ev.message_id, good.ok('/s')[0].sigOk], [id, true], 'delivered over TLS, signed');
  await waitFor(async () => {
    const m = await metrics(b.base);
    return metricValue(m, 'rtbroker_webhook_failures_total{endpoint="1"}') === 1 && metricValue(m, 'rtbroker_webhook_failures_total{endpoint="2"}') === 1;
  }, W, 'the untrusted and the misnamed one given up', () => JSON.stringify(other.calls.map((x) => x.status)));
  eq([bad.calls.length, other.calls.length], [0, 0], 'nothing reached a receiver whose certificate does not verify or names another host');
});

t.test('bad webhook config lines are refused with the key and the line', async () => {
  const dir = mkTemp('rtb-wh-cfg-');
  const cases = [
    ['url: ftp://x/h', 'webhooks.endpoints[0].url', 'not an http:// or https:// URL', 4],
    ['url: http://127.0.0.1:9/h\n      events: [topic.bogus]', 'webhooks.endpoints[0].events', '"topic.bogus" is not an event', 5],
    ['url: http://127.0.0.1:9/h\n      topics: ["a..b"]', 'webhooks.endpoints[0].topics', 'not a topic or pattern', 5],
    ['url: http://127.0.0.1:9/h\n      max_attempts: 0', 'webhooks.endpoints[0].max_attempts', 'from 1 to 1000', 5],
    ['url: http://127.0.0.1:9/h\n      colour: red', 'webhooks.endpoints[0].colour', 'unknown key', 5],
  ];
  const write = (name, body) => { const p = path.join(dir, name); fs.writeFileSync(p, body); return p; };
  for (const [entry, key, msg, line] of cases) {
    const secret = entry.includes('colour') ? '' : '\n      secret: s';
    const events = entry.includes('events') ? '' : '\n      events: [message.published]';
    const p = write('c.yaml', `# a comment\nwebhooks:\n  endpoints:\n    - ${entry}${events}${secret}\n`);
    const r = runBrokerSync(['--check', '-c', p]);
    assert(r.code === 2 && r.stderr.includes(`config: ${key}:`) && r.stderr.includes(msg) && r.stderr.includes(`line ${line})`),
      `${entry}: want "${key}: …${msg}… line ${line}", got code ${r.code}: ${trunc(r.stderr)}`);
  }
  const p = write('s.yaml', 'webhooks:\n  endpoints:\n    - url: http://127.0.0.1:9/ok\n      events: [message.published]\n      secret: s\n'
    + '    - url: http://127.0.0.1:9/h\n      events: [message.published]\n');
  const r = runBrokerSync(['--check', '-c', p]);
  assert(r.code === 2 && /config: webhooks\.endpoints\[1\]\.secret: each endpoint needs a secret.*line 6\)/.test(r.stderr),
    `missing secret names the entry's line: ${trunc(r.stderr)}`);
  const ca = runBrokerSync(['--check', '-c', write('ca.yaml', 'webhooks:\n  tls_ca: /nonexistent/ca.pem\n  endpoints:\n'
    + '    - url: https://127.0.0.1:9/h\n      events: [message.published]\n      secret: s\n')]);
  assert(ca.code === 2 && /config: webhooks\.tls_ca: \/nonexistent\/ca\.pem cannot be read as PEM certificates \(.*line 2\)/.test(ca.stderr),
    `an unreadable tls_ca: ${trunc(ca.stderr)}`);
  const ok = runBrokerSync(['--check', '-c', write('ok.yaml', 'webhooks:\n  vacated_delay: 500ms\n  endpoints:\n    - url: http://127.0.0.1:9/\n'
    + '      events: [topic.occupied]\n      topics: [room.>, "lobby"]\n      secret: env:WH_SECRET\n      max_attempts: 3\n')], { env: { WH_SECRET: 'x' } });
  eq([ok.code, ok.stdout.includes('configuration OK')], [0, true], `a good config passes: ${trunc(ok.stderr)}`);
});

t.run();

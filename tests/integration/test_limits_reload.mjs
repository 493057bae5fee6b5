// SIGHUP re-reads the configuration file: limits (limits.max_connections, limits.connections_per_ip,
// limits.publish_per_subject, …) and http.allowed_origins take effect at once, open connections stay
// (SSE, rt.v1 WebSocket, a held long-poll), keys that need a restart are named in the log; a bad file
// keeps the configuration in use and the log names the key and the line.
import fs from 'node:fs';
import {
  suite, assert, eq, subscribe, waitFor, sleep, trunc, toYaml, poll,
} from './lib.mjs';
import { ATTACKER, httpOnce, httpStatus, rawConn, wsOpen } from './limitslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 150000 });

function config(b, { limits = {}, origins, history = {}, extra = '' } = {}) {
  const cfg = {
    listen: `127.0.0.1:${b ? b.port : 8080}`,
    workers: 2,
    shutdown: { drain: '3s' },
    history: { max_messages: 100, ...history },
    limits: { connections_per_ip: 0, publish_per_subject: 0, publish_per_connection: 0, ...limits },
    auth: { anonymous: { subscribe: ['>'], publish: ['>'] } },
    sse: { heartbeat: '500ms' }, // a client that left is noticed at once
    ...(origins ? { http: { allowed_origins: origins } } : {}),
  };
  return toYaml(cfg) + extra;
}

const logLines = (b) => fs.readFileSync(b.logPath, 'utf8').split('\n');
const outcomes = (b) => logLines(b).filter((l) => /SIGHUP: reloaded|error: SIGHUP: /.test(l)).length;
const sighupLines = (b) => logLines(b).filter((l) => l.includes('SIGHUP: '));

/** Rewrite the broker's config file, SIGHUP it, wait for the outcome in its log; the log's new SIGHUP lines. */
async function reload(b, text) {
  fs.writeFileSync(b.configPath, text);
  const n = outcomes(b);
  const m = sighupLines(b).length;
  process.kill(b.pid, 'SIGHUP');
  await waitFor(() => outcomes(b) > n, 5000, 'the SIGHUP outcome in the log', () => b.log());
  return sighupLines(b).slice(m);
}

/** n publishes in a row (each on a connection of its own) from localAddress; statuses counted. */
async function burst(base, n, localAddress) {
  const by = {};
  for (let i = 0; i < n; i++) {
    const r = await httpOnce(base, 'POST', '/pub/rl.t', { body: `b${i}`, localAddress });
    by[r.status] = (by[r.status] || 0) + 1;
  }
  return by;
}

t.test('SIGHUP applies new limits and allowed origins; SSE, rt.v1 and a held long-poll stay connected', async (c) => {
  const b = await c.broker({ configText: config(null) });
  fs.writeFileSync(b.configPath, config(b));
  const sse = await subscribe(b.base, '/sub/rl.t');
  c.defer(() => sse.close());
  const v1 = await wsOpen(b.base, '/ws', { protocols: ['rt.v1'] });
  c.defer(() => v1.ws.terminate());
  eq((await v1.op({ op: 'sub', topic: 'rl.t' })).type, 'ok', 'rt.v1 sub');
  // before: no limits, any Origin
  eq(await burst(b.base, 20, ATTACKER), { 200: 20 }, '20 publishes in a row before the reload');
  eq((await httpOnce(b.base, 'POST', '/pub/rl.o', { body: 'x', headers: { origin: 'https://evil.example' } })).status, 200, 'a foreign Origin before the reload');
  const held = poll(b.base, { topic: 'rl.held', timeout: 20 }, { timeout: 30000 });

  const lines = await reload(b, config(b, {
    limits: { publish_per_subject: 5, connections_per_ip: 3, max_connections: 8, max_queue_bytes: '64KiB' },
    origins: ['https://good.example'],
    history: { max_messages: 7 },
  }));
  const ok = lines.find((l) => l.includes('SIGHUP: reloaded'));
  assert(ok, `no "SIGHUP: reloaded" line: ${JSON.stringify(lines)}`);
  for (const want of ['limits.max_connections 8', 'limits.max_queue_bytes 65536', 'limits.connections_per_ip 3', 'limits.publish_per_subject 5']) {
    assert(ok.includes(want), `the reload line lacks "${want}": ${ok}`);
  }
  assert(lines.some((l) => /history\.max_messages changed \(.* line \d+\) but takes effect only after a restart/.test(l)),
    `no warning about history.max_messages needing a restart: ${JSON.stringify(lines)}`);

  // the open connections are still there and still served
  const r = await httpOnce(b.base, 'POST', '/pub/rl.t', { body: 'after-reload' });
  eq(r.status, 200, `publish after the reload: ${trunc(r.text)}`);
  await sse.waitFor((s) => s.messages.some((m) => m.data === 'after-reload'), 3000, 'the SSE client opened before the reload gets a message');
  await waitFor(() => v1.msgs().some((m) => m.data === 'after-reload'), 3000, 'the rt.v1 client opened before the reload gets a message');
  assert(!sse.ended && !v1.closed, 'a connection opened before the reload was closed');
  const h = await httpOnce(b.base, 'POST', '/pub/rl.held', { body: 'to-the-held-poll' });
  eq(h.status, 200, 'publish to the held poll');
  const hp = await held;
  eq([hp.status, hp.json && hp.json.messages.map((m) => m.data)], [200, ['to-the-held-poll']], 'the long-poll held across the reload');

  // new max_connections (8): SSE + rt.v1 are 2; 6 more (idle TCP connections) fit, then 503
  const extra = [];
  c.defer(() => extra.forEach((x) => x.destroy()));
  for (let i = 0; i < 6; i++) extra.push(await rawConn(b.port));
  const full = await httpOnce(b.base, 'GET', '/healthz');
  eq([full.status, full.json && full.json.error], [503, 'too_many_connections'], 'the 9th connection after the reload to max_connections 8');
  for (const x of extra) x.destroy();
  await sleep(300);
  eq((await httpOnce(b.base, 'GET', '/healthz')).status, 200, 'a connection once the idle ones left');
  // new rate limits (per address): the attacker is limited, another address is not
  const after = await burst(b.base, 20, ATTACKER);
  assert((after[429] || 0) >= 10 && (after[200] || 0) <= 10, `20 publishes in a row after the reload (publish_per_subject 5): ${JSON.stringify(after)}`);
  const subBy = [];
  for (let i = 0; i < 8; i++) subBy.push((await httpStatus(b.base, '/sub/rl.s', { headers: { accept: 'text/event-stream' }, localAddress: ATTACKER })).status);
  assert(subBy.filter((x) => x === 429).length >= 4, `8 subscribes in a row after the reload (connections_per_ip 3): ${JSON.stringify(subBy)}`);
  // new origins
  const evil = await httpOnce(b.base, 'POST', '/pub/rl.o', { body: 'x', headers: { origin: 'https://evil.example' } });
  eq([evil.status, evil.json && evil.json.error], [403, 'forbidden'], 'a foreign Origin after the reload');
  const good = await httpOnce(b.base, 'POST', '/pub/rl.o', { body: 'x', headers: { origin: 'https://good.example' } });
  eq([good.status, good.headers['access-control-allow-origin']], [200, 'https://good.example'], 'the listed Origin after the reload');
  c.info(`after SIGHUP: publish burst ${JSON.stringify(after)}, subscribe burst ${JSON.stringify(subBy)}, foreign Origin 403, 9th connection 503; the reload line: ${ok.replace(/^.*SIGHUP: /, '')}`);
}, { timeout: 60000 });

t.test('a bad file at SIGHUP keeps the configuration in use and names the key and the line', async (c) => {
  const b = await c.broker({ configText: config(null) });
  const good = config(b, { limits: { publish_per_subject: 5 }, origins: ['https://good.example'] });
  let lines = await reload(b, good);
  assert(lines.some((l) => l.includes('SIGHUP: reloaded')), `the good reload: ${JSON.stringify(lines)}`);
  const badText = good.replace(/publish_per_subject: 5/, 'publish_per_subject: lots');
  const badLine = badText.split('\n').findIndex((l) => l.includes('publish_per_subject: lots')) + 1;
  const cases = [
    ['a value that is not an integer', badText, new RegExp(`config: limits\\.publish_per_subject: "lots" is not an integer \\(${b.configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line ${badLine}\\)`)],
    ['an unknown key', good + 'limits_typo: 3\n', /config: limits_typo: unknown key \(.* line \d+\)/],
    ['an origin that is not one', good.replace('https://good.example', 'ftp://good.example'), /config: http\.allowed_origins: "ftp:\/\/good\.example" is not an origin .*\(line \d+\)/],
    ['broken YAML', good + 'limits: [\n', /config: .* line \d+: /],
    ['a value out of range', good.replace(/publish_per_subject: 5/, 'publish_per_subject: -4'), /config: limits\.publish_per_subject: -4 is out of range .*line \d+/],
  ];
  for (const [name, text, re] of cases) {
    lines = await reload(b, text);
    const err = lines.find((l) => /error: SIGHUP: /.test(l));
    assert(err && re.test(err) && err.includes('keeping the configuration and keys in use'), `${name}: log ${JSON.stringify(lines)}`);
    c.info(`${name}: ${err.replace(/^.*error: /, '')}`);
  }
  // the configuration in use is the last good one: limit 5/s per address, only the listed Origin
  await sleep(1100);
  const by = await burst(b.base, 20, ATTACKER);
  assert((by[429] || 0) >= 10, `publish_per_subject 5 is no longer applied after bad reloads: ${JSON.stringify(by)}`);
  const evil = await httpOnce(b.base, 'POST', '/pub/rl.o', { body: 'x', headers: { origin: 'https://evil.example' } });
  eq(evil.status, 403, 'a foreign Origin after bad reloads');
  // and a good file is still taken afterwards
  lines = await reload(b, config(b));
  assert(lines.some((l) => l.includes('SIGHUP: reloaded')), `a good reload after bad ones: ${JSON.stringify(lines)}`);
  await sleep(1100);
  eq(await burst(b.base, 20, ATTACKER), { 200: 20 }, 'a burst of 20 once the limits are lifted again');
}, { timeout: 60000 });

await t.run();

// Operations: health, readiness, metrics, static files, --check-config, env overrides, --listen.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  suite, assert, eq, expectError, publishOk, publish, poll, request, rawRequest, subscribe,
  runBrokerSync, mkTemp, freePort, ROOT, trunc, sleep, waitFor,
} from './lib.mjs';

const t = suite(import.meta.url);

t.test('/healthz 200 ok, /readyz 200, unknown path 404', async (c) => {
  const b = await c.broker();
  const h = await request(b.base, 'GET', '/healthz');
  eq([h.status, h.text.trim()], [200, 'ok'], '/healthz');
  const r = await request(b.base, 'GET', '/readyz');
  eq(r.status, 200, `/readyz (${trunc(r.text)})`);
  const n = await request(b.base, 'GET', '/definitely-not-here.html');
  eq(n.status, 404, `unknown static path (${trunc(n.text)})`);
});

function parseProm(text) {
  const samples = [];
  const bad = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (line.startsWith('#')) {
      if (!/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*/.test(line) && !/^#/.test(line)) bad.push(line);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?\s+(\S+)(\s+-?\d+)?$/.exec(line);
    if (!m) { bad.push(line); continue; }
    const v = Number(m[3]);
    if (Number.isNaN(v) && !/^(NaN|[+-]?Inf)$/.test(m[3])) { bad.push(line); continue; }
    samples.push({ name: m[1], labels: m[2] || '', value: v, line });
  }
  return { samples, bad };
}
const sum = (samples, re, not) => samples.filter((s) => re.test(s.name) && !(not && not.test(s.name))).reduce((a, s) => a + s.value, 0);

t.test('/metrics is Prometheus text; published and delivered counters increase', async (c) => {
  const b = await c.broker();
  const s = await subscribe(b.base, '/sub/met.t');
  c.defer(() => s.close());
  const m1 = await request(b.base, 'GET', '/metrics');
  eq(m1.status, 200, '/metrics status');
  assert(/^text\/plain/.test(m1.headers.get('content-type') || ''), `/metrics content-type ${m1.headers.get('content-type')}`);
  const p1 = parseProm(m1.text);
  assert(p1.bad.length === 0, `lines that are not Prometheus text format: ${trunc(JSON.stringify(p1.bad.slice(0, 5)))}`);
  assert(/^# TYPE \S+ (counter|gauge)/m.test(m1.text), 'no # TYPE lines');
  const pubRe = /publish/i; const delRe = /deliver/i; const bytesRe = /bytes/i;
  assert(p1.samples.some((x) => pubRe.test(x.name)), `no "published" metric in ${trunc(m1.text, 1500)}`);
  assert(p1.samples.some((x) => delRe.test(x.name)), `no "delivered" metric in ${trunc(m1.text, 1500)}`);
  const sse = p1.samples.filter((x) => /conn/i.test(x.name) && /sse/i.test(x.labels + x.name));
  assert(sse.some((x) => x.value >= 1), `no connections metric for transport sse with value ≥ 1 while an SSE stream is open: ${trunc(JSON.stringify(sse.map((x) => x.line)))}`);
  for (let i = 0; i < 3; i++) await publishOk(b.base, 'met.t', `m${i}`);
  await s.waitMessages(3, 5000);
  await sleep(200);
  const m2 = await request(b.base, 'GET', '/metrics');
  const p2 = parseProm(m2.text);
  const dp = sum(p2.samples, pubRe, bytesRe) - sum(p1.samples, pubRe, bytesRe);
  const dd = sum(p2.samples, delRe, bytesRe) - sum(p1.samples, delRe, bytesRe);
  assert(dp >= 3, `published counters rose by ${dp} after 3 publishes`);
  assert(dd >= 3, `delivered counters rose by ${dd} after 3 deliveries`);
  c.info(`metrics: published +${dp}, delivered +${dd}; ${p2.samples.length} samples`);
});

t.test('metrics: replays and gaps counted; vanished SSE clients leave the connection gauge (heartbeat 1s)', async (c) => {
  const b = await c.broker({ config: { sse: { heartbeat: '1s' }, history: { max_messages: 3 } } });
  const get = async () => parseProm((await request(b.base, 'GET', '/metrics')).text).samples;
  const conns = (smp) => smp.filter((x) => /conn/i.test(x.name) && /sse/i.test(x.labels)).reduce((a, x) => a + x.value, 0);
  const m0 = await get();
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(await publishOk(b.base, 'gm.t', `g${i}`));
  const r1 = await subscribe(b.base, '/sub/gm.t', { headers: { 'Last-Event-ID': ids[4] } }); // clean replay
  const r2 = await subscribe(b.base, '/sub/gm.t', { headers: { 'Last-Event-ID': ids[0] } }); // gap
  c.defer(() => { r1.close(); r2.close(); });
  await r2.waitFor((x) => x.events.some((e) => e.event === 'rt.gap'), 5000, 'rt.gap');
  const m1 = await get();
  assert(sum(m1, /replay/i) - sum(m0, /replay/i) >= 2, `replay counter rose by ${sum(m1, /replay/i) - sum(m0, /replay/i)} after 2 resumes`);
  assert(sum(m1, /gap/i) - sum(m0, /gap/i) >= 1, `gap counter rose by ${sum(m1, /gap/i) - sum(m0, /gap/i)} after a gap resume`);
  r1.close(); r2.close();
  await waitFor(async () => conns(await get()) === conns(m0), 5000, 'gauge back after closing 2 streams');
  const ghosts = await Promise.all(Array.from({ length: 10 }, () => subscribe(b.base, '/sub/gm.idle')));
  const up = conns(await get());
  assert(up >= conns(m0) + 10, `sse connections gauge ${up} with 10 more streams open (baseline ${conns(m0)})`);
  ghosts.forEach((g) => g.res.socket.destroy()); // clients vanish without a word; the topic stays idle
  const t0 = Date.now();
  await waitFor(async () => conns(await get()) <= conns(m0), 6000, 'vanished idle SSE clients to be noticed (sse.heartbeat 1s)',
    () => `gauge still ${up}`);
  c.info(`vanished idle SSE clients noticed within ${Date.now() - t0} ms`);
});

t.test('static files from web.root; no traversal out of it', async (c) => {
  const dir = mkTemp('rtb-web-');
  const www = path.join(dir, 'www');
  fs.mkdirSync(www);
  const marker = `rtb-static-${process.pid}-${Date.now()}`;
  fs.writeFileSync(path.join(www, 'index.html'), `<!doctype html><title>${marker}</title>\n`);
  fs.writeFileSync(path.join(www, 'app.js'), `console.log("${marker}");\n`);
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'TOP-SECRET-OUTSIDE-ROOT\n');
  const b = await c.broker({ config: { web: { root: www } } });
  const r = await request(b.base, 'GET', '/');
  eq(r.status, 200, `GET / (${trunc(r.text)})`);
  assert(r.text.includes(marker), `GET / did not serve index.html: ${trunc(r.text)}`);
  assert(/^text\/html/.test(r.headers.get('content-type') || ''), `GET / content-type ${r.headers.get('content-type')}`);
  const r2 = await request(b.base, 'GET', '/index.html');
  assert(r2.status === 200 && r2.text.includes(marker), `GET /index.html: ${r2.status}`);
  const js = await request(b.base, 'GET', '/app.js');
  assert(js.status === 200 && js.text.includes(marker), `GET /app.js: ${js.status} ${trunc(js.text)}`);
  assert(/javascript/.test(js.headers.get('content-type') || ''), `app.js content-type ${js.headers.get('content-type')}`);
  for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '//../secret.txt']) {
    const x = await rawRequest(b.base, 'GET', p);
    assert(!x.text.includes('TOP-SECRET'), `path traversal ${p} served a file outside web.root (${x.status})`);
  }
});

function writeCfg(dir, name, text) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

t.test('--check-config: bad values name the key and line; conf/rtbroker.yaml is valid', async () => {
  const dir = mkTemp('rtb-cfg-');
  const cases = [
    ['history: {max_messages: abc}', '# rtbroker test config\nlisten: 127.0.0.1:8080\nhistory: {max_messages: abc}\n', /max_messages/, 3],
    ['sse.heartbeat: soon', 'listen: 127.0.0.1:8080\nsse:\n  retry: 3s\n  heartbeat: soon\n', /heartbeat/, 4],
    ['limits.max_message_bytes: lots', 'limits:\n  max_message_bytes: lots\n', /max_message_bytes/, 2],
    ['YAML syntax error', 'listen: 127.0.0.1:8080\nhistory:\n  max_messages: [1, 2\nsse: {\n', null, null],
  ];
  for (const [i, [label, text, keyRe, line]] of cases.entries()) {
    const p = writeCfg(dir, `bad-${i}.yaml`, text);
    const r = runBrokerSync(['-c', p, '--check-config']);
    const out = r.stdout + r.stderr;
    assert(!r.error, `--check-config (${label}): could not run: ${r.error && r.error.message}`);
    assert(r.code !== 0 && r.code !== null, `--check-config on a bad config (${label}) exited ${r.code} (signal ${r.signal}); output ${trunc(out)}`);
    if (keyRe) assert(keyRe.test(out), `--check-config (${label}): message does not name the key: ${trunc(out)}`);
    if (line) assert(new RegExp(`line[ :]*${line}\\b|:${line}(:\\d+)?\\b`).test(out), `--check-config (${label}): message does not give line ${line}: ${trunc(out)}`);
    else assert(/line[ :]*\d|:\d+/.test(out), `--check-config (${label}): no line number: ${trunc(out)}`);
  }
  const good = path.join(ROOT, 'conf', 'rtbroker.yaml');
  assert(fs.existsSync(good), `${good} does not exist`);
  const r = runBrokerSync(['-c', good, '--check-config']);
  assert(r.code === 0, `--check-config conf/rtbroker.yaml exited ${r.code}: ${trunc(r.stdout + r.stderr)}`);
  const missing = runBrokerSync(['-c', path.join(dir, 'nope.yaml'), '--check-config']);
  assert(missing.code !== 0, `--check-config on a missing file exited ${missing.code}`);
  // the broker refuses to start on a bad config, too
  const start = runBrokerSync(['-c', path.join(dir, 'bad-0.yaml'), '--listen', `127.0.0.1:${await freePort()}`], { timeout: 5000 });
  assert(start.signal !== 'SIGTERM' && start.code !== 0 && start.code !== null, `broker started with a bad config (code ${start.code}, signal ${start.signal})`);
});

t.test('env override RTB_HISTORY_MAX_MESSAGES=5 beats the config file (gap on resume)', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 100 } }, env: { RTB_HISTORY_MAX_MESSAGES: '5' } });
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(await publishOk(b.base, 'env.t', `e${i}`));
  const j = await poll(b.base, { topic: 'env.t', cursor: ids[0], timeout: 1 });
  assert(j.status === 200, `poll: ${j.status} ${j.text}`);
  eq(j.json.gap, true, 'gap with history.max_messages 5 via env');
  eq(j.json.messages.map((m) => m.id), ids.slice(3), 'the 5 retained');
  const s = await subscribe(b.base, '/sub/env.t', { headers: { 'Last-Event-ID': ids[0] } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.events.length >= 6, 5000, 'SSE gap + 5');
  eq(s.events.map((e) => e.event === 'rt.gap' ? 'GAP' : e.id), ['GAP', ...ids.slice(3)], 'SSE resume with env override');
  // without the env: the config's 100 applies, no gap
  const b2 = await c.broker({ config: { history: { max_messages: 100 } } });
  const ids2 = [];
  for (let i = 0; i < 8; i++) ids2.push(await publishOk(b2.base, 'env.t', `e${i}`));
  const j2 = await poll(b2.base, { topic: 'env.t', cursor: ids2[0], timeout: 1 });
  eq([j2.json.gap, j2.json.messages.length], [false, 7], 'no gap without the env override');
});

t.test('env override of a list: RTB_AUTH_ANONYMOUS_PUBLISH="chat.>,news.>"', async (c) => {
  const b = await c.broker({ env: { RTB_AUTH_ANONYMOUS_PUBLISH: 'chat.>,news.>' } });
  eq((await publish(b.base, 'chat.a', 'x')).status, 200, 'chat.a');
  eq((await publish(b.base, 'news.b.c', 'x')).status, 200, 'news.b.c');
  expectError(await publish(b.base, 'other.x', 'x'), 401, 'unauthorized', 'other.x not in the env list');
});

t.test('--listen overrides the config file listen', async (c) => {
  const other = await freePort();
  const b = await c.broker({ config: { listen: `127.0.0.1:${other}` } });
  const h = await request(b.base, 'GET', '/healthz');
  eq(h.status, 200, '--listen port answers');
  const refused = await new Promise((resolve) => {
    const s = net.connect(other, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
  assert(refused, `the config's listen port ${other} accepts connections too although --listen was given`);
});

await t.run();

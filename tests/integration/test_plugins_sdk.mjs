// The plugin SDK from a third party's side (issue 9): `make install` to a temp prefix, build
// plugins/ndjson/ndjson.c from a copy outside the source tree with only the installed header
// and `pkg-config --cflags rtbroker-plugin`, load that copy by path into the INSTALLED broker,
// and stream to a Node fetch() client: live delivery, event names, JSON / text / base64 data,
// resume with Last-Event-ID / since= / lastEventId= (exactly what was missed, then live, no
// duplicates), gap lines, heartbeat lines (ndjson.heartbeat and plugins.ndjson.heartbeat),
// Authorization, and the shutdown line on SIGTERM. Also `rtbroker --list-plugins`.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  suite, assert, eq, ROOT, mkTemp, publishOk, request, expectError, sleep, waitFor, epochOf, trunc, indent, brokerEnv,
  SLOW, openSSE, withTimeout,
} from './lib.mjs';
import {
  startNdjson, ndjsonError, connections, waitConnections, ccShared, startBinary,
} from '../plugins/pluginlib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 115000 });

// set up by the first two cases
const S = { prefix: null, bin: null, pcPath: null, build: null, so: null };
const need = (...keys) => { for (const k of keys) assert(S[k], `setup did not complete (no ${k}): see the first failing case`); };
const NDJ = () => ({ plugins: { load: ['sse', 'longpoll', S.so] } });

function run(cmd, args, { cwd, env = {}, timeout = 30000 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}
const pc = (...args) => run('pkg-config', args, { env: { PKG_CONFIG_PATH: path.join(S.prefix, 'lib', 'pkgconfig') } });
function runInstalled(args, { cwd, env = {}, timeout = 15000 } = {}) {
  const r = spawnSync(S.bin, args, { cwd: cwd || S.build, env: brokerEnv(env), encoding: 'utf8', timeout });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}
function writeYaml(name, text) {
  const f = path.join(mkTemp('rtb-sdkcfg-'), name);
  fs.writeFileSync(f, text);
  return f;
}
const inside = (p, dir) => { const r = path.relative(dir, p); return r === '' || (!r.startsWith('..') && !path.isAbsolute(r)); };

t.test('make install PREFIX=<tmp>: broker, plugins, plugin.h and rtbroker-plugin.pc', async (c) => {
  const prefix = mkTemp('rtb-prefix-');
  assert(!inside(prefix, ROOT), `temp prefix ${prefix} is inside the source tree`);
  const r = run('make', ['-s', 'install', `PREFIX=${prefix}`], { cwd: ROOT, timeout: 100000 });
  assert(r.code === 0, `make -s install PREFIX=${prefix}: exit ${r.code} ${r.signal || ''}\n${indent(r.stdout + r.stderr)}`);
  for (const f of ['bin/rtbroker', 'lib/rtbroker/rtbroker', 'lib/rtbroker/plugins/sse.so', 'lib/rtbroker/plugins/longpoll.so',
    'lib/rtbroker/plugins/websocket.so', 'lib/rtbroker/plugins/ndjson.so', 'include/rtbroker/plugin.h', 'lib/pkgconfig/rtbroker-plugin.pc']) {
    assert(fs.existsSync(path.join(prefix, f)), `make install did not install ${f} (under ${prefix})`);
  }
  eq(fs.readFileSync(path.join(prefix, 'include/rtbroker/plugin.h'), 'utf8'), fs.readFileSync(path.join(ROOT, 'include/rtbroker/plugin.h'), 'utf8'), 'installed plugin.h is the source tree\'s');
  S.prefix = prefix;
  S.bin = path.join(prefix, 'bin', 'rtbroker');
  const pcText = fs.readFileSync(path.join(prefix, 'lib/pkgconfig/rtbroker-plugin.pc'), 'utf8');
  assert(!pcText.includes('@'), `unsubstituted placeholders in rtbroker-plugin.pc:\n${indent(pcText)}`);
  const cflags = pc('--cflags', 'rtbroker-plugin');
  assert(cflags.code === 0, `pkg-config --cflags rtbroker-plugin: exit ${cflags.code}: ${cflags.stderr}`);
  eq(cflags.stdout.trim(), `-I${prefix}/include`, 'pkg-config --cflags rtbroker-plugin');
  eq(pc('--variable=plugindir', 'rtbroker-plugin').stdout.trim(), `${prefix}/lib/rtbroker/plugins`, 'pkg-config --variable=plugindir');
  const abi = /#define RT_PLUGIN_ABI_VERSION (\d+)/.exec(fs.readFileSync(path.join(ROOT, 'include/rtbroker/plugin.h'), 'utf8'))[1];
  eq(pc('--variable=abi', 'rtbroker-plugin').stdout.trim(), abi, 'pkg-config --variable=abi');
  const v = runInstalled(['--version'], { cwd: prefix });
  assert(v.code === 0 && v.stdout.includes(`plugin ABI ${abi}`), `installed rtbroker --version: exit ${v.code}, ${JSON.stringify(v.stdout + v.stderr)}`);
  const mv = pc('--modversion', 'rtbroker-plugin').stdout.trim();
  assert(mv && v.stdout.includes(mv), `pkg-config --modversion ${JSON.stringify(mv)} is not the broker's version (${v.stdout.trim()})`);
  c.info(`installed to ${prefix}; ${v.stdout.trim()}; pkg-config --cflags: ${cflags.stdout.trim()}`);
}, { timeout: 105000 });

t.test('ndjson.c builds from a copy outside the source tree with only the installed header and pkg-config', async (c) => {
  need('prefix');
  const build = mkTemp('rtb-ndjson-build-');
  assert(!inside(build, ROOT), `build dir ${build} is inside the source tree`);
  fs.copyFileSync(path.join(ROOT, 'plugins/ndjson/ndjson.c'), path.join(build, 'ndjson.c'));
  const cflags = pc('--cflags', 'rtbroker-plugin').stdout.trim().split(/\s+/).filter(Boolean);
  for (const f of cflags) {
    assert(!f.includes(ROOT), `pkg-config --cflags points into the source tree: ${f}`);
    if (f.startsWith('-I')) assert(inside(f.slice(2), S.prefix), `pkg-config --cflags has an -I outside the install prefix: ${f}`);
  }
  const so = path.join(build, 'ndjson.so');
  const { cmd } = ccShared('ndjson.c', so, { cflags, cwd: build });
  assert(!cmd.includes(ROOT), `the compile line names the source tree: ${cmd}`);
  // which headers the compiler actually read: rtbroker/plugin.h from the prefix, nothing from the tree
  const dep = run('cc', ['-std=c11', ...cflags, '-M', 'ndjson.c'], { cwd: build });
  assert(dep.code === 0, `cc -M: ${dep.stderr}`);
  const headers = dep.stdout.replace(/\\\n/g, ' ').split(/\s+/).filter((h) => h.endsWith('.h'));
  const ours = headers.filter((h) => h.includes('rtbroker/'));
  eq(ours, [`${S.prefix}/include/rtbroker/plugin.h`], 'rtbroker headers the copy was compiled with');
  assert(!headers.some((h) => inside(path.resolve(build, h), ROOT)), `a header from the source tree was used: ${headers.filter((h) => inside(path.resolve(build, h), ROOT))}`);
  const nm = run('nm', ['-D', '--defined-only', so]);
  if (nm.code === 0) assert(/\brt_transport_v1\b/.test(nm.stdout), `the built ndjson.so does not export rt_transport_v1:\n${indent(nm.stdout)}`);
  S.build = build;
  S.so = so;
  c.info(`built: ${cmd} (in ${build})`);
});

t.test('rtbroker --list-plugins (installed) names ndjson, its path /ndjson and its key; also for a plugins.dir holding only the copy', async (c) => {
  need('bin', 'so');
  const cfg = writeYaml('list.yaml', 'log:\n  level: warn\n');
  const r = runInstalled(['--list-plugins', '-c', cfg]);
  assert(r.code === 0, `--list-plugins: exit ${r.code} ${r.signal || ''}: ${r.stderr}`);
  const out = r.stdout;
  assert(out.includes(`plugins in ${S.prefix}/lib/rtbroker/plugins`), `--list-plugins does not say it lists ${S.prefix}/lib/rtbroker/plugins (the default plugins.dir beside the installed binary):\n${indent(out)}`);
  for (const [name, p] of [['ndjson', '/ndjson'], ['sse', '/sse'], ['longpoll', '/poll'], ['websocket', '/ws']]) {
    const block = out.split(/\n(?=  \S)/).find((b) => new RegExp(`^\\s*${name}\\s`).test(b));
    assert(block, `--list-plugins does not list ${name}:\n${indent(out)}`);
    assert(block.includes(`${name}.so`) && /ABI 1\b/.test(block), `--list-plugins entry for ${name} lacks its file or ABI: ${JSON.stringify(block)}`);
    assert(block.split(/\s+/).includes(p), `--list-plugins entry for ${name} does not name its path ${p}: ${JSON.stringify(block)}`);
  }
  assert(/ndjson\.heartbeat=15s/.test(out), `--list-plugins does not show the key ndjson.heartbeat=15s:\n${indent(out)}`);
  assert(!/refused/.test(out), `--list-plugins refuses an installed plugin:\n${indent(out)}`);
  // plugins.dir = the build dir: only the out-of-tree copy
  const cfg2 = writeYaml('list2.yaml', `plugins:\n  dir: ${S.build}\n`);
  const r2 = runInstalled(['--list-plugins', '-c', cfg2]);
  assert(r2.code === 0, `--list-plugins with plugins.dir ${S.build}: exit ${r2.code}: ${r2.stderr}`);
  assert(r2.stdout.includes(`plugins in ${S.build}`) && /^\s*ndjson\s+ndjson\.so, ABI 1/m.test(r2.stdout) && r2.stdout.split(/\s+/).includes('/ndjson'),
    `--list-plugins for ${S.build} does not list the copy with /ndjson:\n${indent(r2.stdout)}`);
  c.info(`--list-plugins:\n${indent(out.trimEnd())}`);
});

t.test('the installed broker loads the out-of-tree copy by path (check-config, start line, the mapped file)', async (c) => {
  need('bin', 'so');
  const cfg = writeYaml('check.yaml', `plugins:\n  load: [sse, longpoll, ${S.so}]\n`);
  const chk = runInstalled(['--check-config', '-c', cfg]);
  assert(chk.code === 0, `--check-config with the copy: exit ${chk.code}: ${chk.stdout}${chk.stderr}`);
  const b = await startBinary(c, S.bin, { config: NDJ() });
  const log = b.fullLog();
  assert(/transports: sse longpoll ndjson;/.test(log), `start line does not list the transports sse longpoll ndjson:\n${indent(log)}`);
  const maps = fs.readFileSync(`/proc/${b.pid}/maps`, 'utf8');
  assert(maps.includes(S.so), `the broker did not map ${S.so}`);
  assert(!maps.includes(`${S.prefix}/lib/rtbroker/plugins/ndjson.so`), 'the broker mapped the installed ndjson.so instead of (or besides) the copy');
  assert(!maps.includes(`${ROOT}/build/`), `the installed broker mapped a file of the source tree's build/`);
  assert(maps.includes(`${S.prefix}/lib/rtbroker/plugins/sse.so`), 'the installed broker did not load its own sse.so');
  const s = startNdjson(b.base, '/sub/sdk.load');
  c.defer(() => s.close());
  await waitConnections(b.base, 'ndjson', 1);
  const id = await publishOk(b.base, 'sdk.load', 'x');
  await s.waitMessages(1, 5000);
  await s.ok();
  eq(s.messages.map((m) => m.id), [id], 'a message through the copy');
  const m = await request(b.base, 'GET', '/metrics');
  const line = m.text.split('\n').find((l) => l.startsWith('rtbroker_messages_delivered_total{transport="ndjson"}'));
  assert(line && Number(line.split(' ').pop()) >= 1, `/metrics does not count the copy's deliveries: ${JSON.stringify(line)}`);
});

t.test('a new stream gets its response headers at once, before any message or heartbeat (fetch() resolves)', async (c) => {
  need('bin', 'so');
  const b = await startBinary(c, S.bin, { config: NDJ() }); // ndjson.heartbeat: the default 15s
  const res = [];
  for (const p of ['/sub/sdk.hdr', '/ndjson?topic=sdk.hdr']) {
    const s = startNdjson(b.base, p);
    c.defer(() => s.close());
    const got = await withTimeout(s.ready, 2500, 'headers').then(() => true, () => false);
    res.push({ p, got, ms: got ? s.headersAt - s.openedAt : null, s });
  }
  const late = res.filter((r) => !r.got);
  if (late.length) {
    // diagnose: do the headers come with the first message?
    await publishOk(b.base, 'sdk.hdr', 'first');
    const after = await Promise.all(late.map((r) => withTimeout(r.s.ready, 3000, 'headers').then(() => 'they arrived with the first message', () => 'still none after a message')));
    throw new Error(`fetch() got no response headers within 2.5 s of subscribing on ${late.map((r) => r.p).join(' and ')} (no message published yet, heartbeat 15s); ${after.join('; ')}: a client cannot tell it is subscribed until the first line`);
  }
  for (const r of res) {
    await r.s.ok();
    assert(r.ms < 2500, `${r.p}: headers after ${r.ms} ms`);
    await waitFor(() => r.s.lines.length > 0, 2500, `first line on ${r.p}`);
    assert(r.s.opened, `${r.p}: the stream must open with {"type":"ok"}, got ${JSON.stringify(r.s.lines[0] && r.s.lines[0].v)}`);
  }
  c.info(`headers after ${res.map((r) => `${r.ms} ms (${r.p})`).join(', ')}`);
}, { timeout: 15000 });

t.test('live delivery to fetch(): one envelope per line with id, topic, event and JSON / text / base64 data', async (c) => {
  need('bin', 'so');
  const b = await startBinary(c, S.bin, { config: NDJ() });
  const T = 'sdk.live';
  const s = startNdjson(b.base, `/sub/${T}`);
  const alt = startNdjson(b.base, `/ndjson?topic=${T}`, { accept: null });
  const alt2 = startNdjson(b.base, `/ndjson/${T}`, { accept: '*/*' });
  const multi = startNdjson(b.base, `/sub?topic=${T}&topic=sdk.*&topic=other.t`);
  const all = [s, alt, alt2, multi];
  c.defer(() => all.forEach((x) => x.close()));
  await waitConnections(b.base, 'ndjson', 4);
  const utf = 'line1\nline2\r\nline3\u2028\u2029 "quoted" \\ tab\t é 😀 \u0001';
  const pubs = [
    { body: 'hello', headers: { 'Content-Type': 'text/plain' }, want: { event: null, data: 'hello', content_type: 'text/plain' } },
    { body: '{"a":[1,2,{"b":null}],"s":"x"}', headers: { 'Content-Type': 'application/json', 'X-Event': 'typing' }, want: { event: 'typing', data: { a: [1, 2, { b: null }], s: 'x' }, content_type: 'application/json' } },
    { body: '[1,"two"]', headers: { 'Content-Type': 'application/json' }, query: 'event=ev.name-2_x', want: { event: 'ev.name-2_x', data: [1, 'two'], content_type: 'application/json' } },
    { body: '{not json', headers: { 'Content-Type': 'application/json' }, want: { event: null, data: '{not json', content_type: 'application/json' } },
    { body: Buffer.from([0xff, 0x00, 0x01, 0x80, 0x0a]), headers: { 'Content-Type': 'application/octet-stream', 'X-Event': 'bin' }, want: { event: 'bin', data: Buffer.from([0xff, 0x00, 0x01, 0x80, 0x0a]).toString('base64'), encoding: 'base64', content_type: 'application/octet-stream' } },
    { body: utf, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, want: { event: null, data: utf, content_type: 'text/plain; charset=utf-8' } },
    { body: '', headers: {}, want: { event: null, data: '' } },
    { body: '42', headers: { 'Content-Type': 'application/json' }, want: { event: null, data: 42, content_type: 'application/json' } },
  ];
  const ids = [];
  for (const p of pubs) ids.push(await publishOk(b.base, T, p.body, { headers: p.headers, query: p.query }));
  for (const x of all) await x.waitMessages(pubs.length, 5000, `${pubs.length} messages on ${x.path}`);
  await sleep(300); // duplicates would show up now
  for (const x of all) {
    await x.ok();
    eq(x.bad, [], `lines that are not JSON on ${x.path}`);
    eq(x.control, [], `control lines on ${x.path} (heartbeat 15s)`);
    eq(x.messages.map((m) => m.id), ids, `ids on ${x.path} (each once, in order)`);
    assert(x.text.endsWith('\n') && !x.text.includes('\n\n') && x.text.split('\n').length === pubs.length + 2, `${x.path}: not exactly the ok line and one line per message: ${JSON.stringify(x.text)}`);
    x.messages.forEach((m, i) => {
      const w = pubs[i].want;
      for (const k of ['id', 'topic', 'event', 'data']) assert(k in m, `envelope ${i} on ${x.path} lacks "${k}": ${JSON.stringify(m)}`);
      eq(m.topic, T, `topic of message ${i} on ${x.path}`);
      eq(m.event, w.event, `event of message ${i} on ${x.path}`);
      eq(m.data, w.data, `data of message ${i} on ${x.path}`);
      eq(m.encoding, w.encoding, `encoding of message ${i} on ${x.path}`);
      if (w.content_type) eq(m.content_type, w.content_type, `content_type of message ${i} on ${x.path}`);
    });
  }
  eq(s.headers.get('cache-control'), 'no-cache', 'Cache-Control');
  eq(s.text, alt.text, 'the same bytes on /sub and /ndjson');
  const other = await publishOk(b.base, 'other.t', 'o');
  await multi.waitMessages(pubs.length + 1, 5000);
  eq(multi.messages.at(-1).id, other, 'multi-topic stream gets other.t');
  await sleep(200);
  eq([s, alt, alt2].map((x) => x.messages.length), [pubs.length, pubs.length, pubs.length], 'single-topic streams did not get other.t');
  // a wildcard subscription
  const wild = startNdjson(b.base, '/sub/sdk.>');
  c.defer(() => wild.close());
  await waitConnections(b.base, 'ndjson', 5);
  const w1 = await publishOk(b.base, 'sdk.deep.er', 'w');
  await wild.waitMessages(1, 5000, 'sdk.deep.er on sdk.>');
  eq(wild.messages.map((m) => [m.id, m.topic]), [[w1, 'sdk.deep.er']], 'wildcard stream');
  // refusals are the API's JSON errors, not a stream
  expectError(await ndjsonError(b.base, '/sub/bad..topic'), 400, 'invalid_topic', 'ndjson invalid topic');
  expectError(await ndjsonError(b.base, '/ndjson'), 400, 'invalid_topic', '/ndjson without a topic');
  const many = Array.from({ length: 33 }, (_, i) => `topic=m.t${i}`).join('&');
  expectError(await ndjsonError(b.base, `/ndjson?${many}`), 400, 'too_many_topics', '33 topics (limits.max_topics 32)');
});

t.test('negotiation on /sub with the copy loaded: ndjson (20) over SSE (10) over long-poll (1)', async (c) => {
  need('bin', 'so');
  const b = await startBinary(c, S.bin, { config: NDJ() });
  const accepts = ['application/x-ndjson', 'text/event-stream, application/x-ndjson', 'application/json;q=0.5, APPLICATION/X-NDJSON;q=0.9'];
  const nd = accepts.map((accept) => startNdjson(b.base, '/sub/neg.t', { accept }));
  c.defer(() => nd.forEach((s) => s.close()));
  await waitConnections(b.base, 'ndjson', accepts.length);
  const sse = await openSSE(b.base, '/sub/neg.t');
  c.defer(() => sse.close());
  eq([sse.status, sse.headers['content-type']], [200, 'text/event-stream'], 'Accept: text/event-stream');
  await waitConnections(b.base, 'sse', 1);
  const id = await publishOk(b.base, 'neg.t', 'n');
  for (const [i, s] of nd.entries()) {
    await s.waitMessages(1, 5000);
    await s.ok();
    eq(s.messages.map((m) => m.id), [id], `Accept: ${accepts[i]}`);
  }
  const lp = await request(b.base, 'GET', '/sub/neg.t?timeout=1');
  assert(lp.status === 200 && lp.json && Array.isArray(lp.json.messages), `no Accept → long-poll, got ${lp.status} ${trunc(lp.text)}`);
  const ws = await request(b.base, 'GET', '/ws');
  assert(ws.status === 404, `/ws with websocket not loaded: expected 404, got ${ws.status}`);
});

async function resumeCase(c, how) {
  const b = await startBinary(c, S.bin, { config: NDJ() });
  const T = `sdk.res.${how.name}`;
  const s1 = startNdjson(b.base, `/sub/${T}`);
  c.defer(() => s1.close());
  await waitConnections(b.base, 'ndjson', 1);
  const first = [];
  for (let i = 0; i < 3; i++) first.push(await publishOk(b.base, T, `before-${i}`));
  await s1.waitMessages(3, 5000);
  await s1.ok();
  eq(s1.messages.map((m) => m.id), first, 'before the disconnect');
  s1.close();
  await s1.done;
  const missed = [];
  for (let i = 0; i < 20; i++) missed.push(await publishOk(b.base, T, `missed-${i}`));
  await publishOk(b.base, `${T}x`, 'another topic');
  const last = s1.messages.at(-1).id;
  const s2 = startNdjson(b.base, how.path(T, last), { headers: how.headers ? how.headers(last) : {} });
  c.defer(() => s2.close());
  await s2.waitMessages(20, 5000, `the 20 missed messages (${how.name})`);
  await s2.ok();
  await sleep(100);
  const live = await publishOk(b.base, T, 'live');
  await s2.waitMessages(21, 5000, `the live message after the replay (${how.name})`);
  await sleep(300);
  eq(s2.control, [], `control lines on a clean resume (${how.name})`);
  eq(s2.bad, [], 'lines that are not JSON');
  eq(s2.messages.map((m) => m.id), [...missed, live], `${how.name}: exactly the 20 missed, then live, no duplicate`);
  eq(s2.messages.map((m) => m.data), [...missed.map((_, i) => `missed-${i}`), 'live'], `${how.name}: payloads`);
}

const RESUMES = [
  { name: 'lastEventIdHeader', path: (T) => `/sub/${T}`, headers: (id) => ({ 'Last-Event-ID': id }) },
  { name: 'sinceOnSub', path: (T, id) => `/sub/${T}?since=${encodeURIComponent(id)}` },
  { name: 'sinceOnNdjson', path: (T, id) => `/ndjson?topic=${T}&since=${encodeURIComponent(id)}` },
  { name: 'lastEventIdQuery', path: (T, id) => `/ndjson/${T}?lastEventId=${encodeURIComponent(id)}` },
];
for (const how of RESUMES) {
  t.test(`resume (${how.name}): disconnect, 20 published, reconnect → exactly those 20, then live, no duplicate`, (c) => (need('bin', 'so'), resumeCase(c, how)));
}

t.test('resume while a publisher publishes continuously: 5 reconnects with Last-Event-ID, every message exactly once', async (c) => {
  need('bin', 'so');
  const b = await startBinary(c, S.bin, { config: { ...NDJ(), history: { max_messages: 1000 } } });
  const T = 'sdk.cont';
  const published = [];
  let stop = false;
  let s = startNdjson(b.base, `/sub/${T}`);
  const streams = [s];
  c.defer(() => streams.forEach((x) => x.close()));
  await waitConnections(b.base, 'ndjson', 1);
  const pub = (async () => { let i = 0; while (!stop && i < 900) { published.push(await publishOk(b.base, T, `m${i++}`)); if (i % 2 === 0) await sleep(2); } })();
  const got = [];
  for (let k = 0; k < 5; k++) {
    await s.waitMessages(1, 5000, `a message on stream ${k}`);
    await sleep(60 + 40 * k);
    s.close();
    await s.done;
    got.push(...s.messages.map((m) => m.id));
    s = startNdjson(b.base, `/sub/${T}`, { headers: { 'Last-Event-ID': got.at(-1) } });
    streams.push(s);
  }
  stop = true;
  await pub;
  published.push(await publishOk(b.base, T, 'final')); // the last stream gets at least this one
  await s.waitFor((x) => x.messages.length && x.messages.at(-1).id === published.at(-1), 10000, 'the last published message on the last stream');
  await sleep(200);
  got.push(...s.messages.map((m) => m.id));
  for (const x of streams) eq(x.control, [], `control lines on a clean resume (${x.path})`);
  eq(got.length, published.length, 'deliveries across 6 streams vs published');
  eq(got, published, 'every message exactly once, in order, across reconnects');
  c.info(`${published.length} messages across 6 streams (5 resumes)`);
});

t.test('gap lines: an id of another epoch, an id older than retention; resume from the newest: nothing; malformed: 400 invalid_id', async (c) => {
  need('bin', 'so');
  const b = await startBinary(c, S.bin, { config: { ...NDJ(), history: { max_messages: 5 } } });
  const T = 'sdk.gap';
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push(await publishOk(b.base, T, `g${i}`));
  assert(epochOf(ids[0]) !== 'zzzz', 'the broker epoch happens to be zzzz; cannot test a foreign epoch');
  const shape = (x) => x.lines.map((l) => (l.v.type ? l.v : l.v.id));
  // another epoch: the gap line first, then what is retained (the last 5)
  for (const [label, p, headers] of [
    ['Last-Event-ID zzzz:5', `/sub/${T}`, { 'Last-Event-ID': 'zzzz:5' }],
    ['since=zzzz:5 on /ndjson', `/ndjson?topic=${T}&since=zzzz:5`, {}],
  ]) {
    const s = startNdjson(b.base, p, { headers });
    c.defer(() => s.close());
    await s.waitFor((x) => x.lines.length >= 7, 5000, `${label}: ok + gap + 5 messages`);
    await s.ok();
    await sleep(200);
    eq(shape(s), [{ type: 'ok' }, { type: 'gap', from: 'zzzz:5' }, ...ids.slice(-5)], `${label}: the gap line, then the retained messages`);
    const live = await publishOk(b.base, T, 'after');
    await s.waitMessages(6, 5000);
    eq(s.messages.at(-1).id, live, `${label}: live after the replay`);
    s.close();
    ids.push(live);
  }
  // older than retention (5 per topic): gap from the id asked for, then the retained ones
  const s = startNdjson(b.base, `/sub/${T}`, { headers: { 'Last-Event-ID': ids[1] } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.lines.length >= 7, 5000, 'ok + gap + 5 messages');
  await sleep(200);
  eq(shape(s), [{ type: 'ok' }, { type: 'gap', from: ids[1] }, ...ids.slice(-5)], 'id older than retention');
  // inside retention: no gap
  const before = await connections(b.base, 'ndjson'); // closed streams stay counted until a write to them fails
  const s2 = startNdjson(b.base, `/sub/${T}`, { headers: { 'Last-Event-ID': ids.at(-3) } });
  c.defer(() => s2.close());
  await s2.waitMessages(2, 5000);
  // the newest id: nothing replayed, no gap, live continues
  const s3 = startNdjson(b.base, `/sub/${T}`, { headers: { 'Last-Event-ID': ids.at(-1) } });
  c.defer(() => s3.close());
  await sleep(300);
  eq(s3.lines.map((l) => l.v), [{ type: 'ok' }], 'resume from the newest id: only the opening line');
  await waitConnections(b.base, 'ndjson', before + 2);
  const live = await publishOk(b.base, T, 'live');
  await s3.waitMessages(1, 5000);
  await s2.waitMessages(3, 5000);
  await sleep(200);
  eq(shape(s2), [{ type: 'ok' }, ...ids.slice(-2), live], 'resume inside retention: no gap line');
  eq(shape(s3), [{ type: 'ok' }, live], 'resume from the newest id');
  // malformed ids are refused with the API's JSON error
  for (const [p, headers] of [[`/sub/${T}`, { 'Last-Event-ID': 'not-an-id' }], [`/ndjson?topic=${T}&since=abc:xyz`, {}]]) {
    expectError(await ndjsonError(b.base, p, { headers }), 400, 'invalid_id', `malformed id on ${p}`);
  }
});

t.test('heartbeat lines every 500 ms: ndjson.heartbeat, plugins.ndjson.heartbeat, RTB_PLUGINS_NDJSON_HEARTBEAT, RTB_NDJSON_HEARTBEAT; both keys given or 50ms: errors', async (c) => {
  need('bin', 'so');
  const variants = [
    { name: 'ndjson.heartbeat: 500ms', config: { ...NDJ(), ndjson: { heartbeat: '500ms' } } },
    { name: 'plugins.ndjson.heartbeat: 500ms', config: { plugins: { load: ['sse', 'longpoll', S.so], ndjson: { heartbeat: '500ms' } } } },
    { name: 'RTB_PLUGINS_NDJSON_HEARTBEAT=500ms', config: NDJ(), env: { RTB_PLUGINS_NDJSON_HEARTBEAT: '500ms' } },
    { name: 'RTB_NDJSON_HEARTBEAT=500ms', config: NDJ(), env: { RTB_NDJSON_HEARTBEAT: '500ms' } },
  ];
  const brokers = await Promise.all(variants.map((v) => startBinary(c, S.bin, { config: v.config, env: v.env })));
  const streams = brokers.map((b, i) => startNdjson(b.base, i % 2 ? '/ndjson?topic=hb.t' : '/sub/hb.t'));
  c.defer(() => streams.forEach((s) => s.close()));
  const WINDOW = 2300;
  await sleep(1000);
  const ids = await Promise.all(brokers.map((b) => publishOk(b.base, 'hb.t', 'between pings')));
  await sleep(WINDOW - 1000);
  for (const [i, s] of streams.entries()) {
    const v = variants[i];
    await s.ok();
    const pings = s.pings.map((l) => l.at - s.openedAt);
    eq(s.bad, [], `${v.name}: lines that are not JSON`);
    eq(s.messages.map((m) => m.id), [ids[i]], `${v.name}: the message between the pings`);
    eq(s.control.filter((x) => x.type !== 'ping'), [], `${v.name}: control lines other than ping`);
    for (const l of s.pings) eq(l.v, { type: 'ping' }, `${v.name}: ping line`);
    assert(pings.length >= 3 && pings.length <= 6, `${v.name}: ${pings.length} ping lines in ${WINDOW} ms (at ${pings.join(', ')} ms), expected about 4`);
    assert(pings[0] >= 300, `${v.name}: first ping ${pings[0]} ms after the request, expected about 500`);
    const gaps = pings.slice(1).map((x, k) => x - pings[k]);
    assert(gaps.every((g) => g >= 250 && g <= 1000 * SLOW), `${v.name}: intervals between pings ${gaps.join(', ')} ms, expected about 500`);
  }
  // the default (15s): no ping within 1.2 s
  const d = await startBinary(c, S.bin, { config: NDJ() });
  const ds = startNdjson(d.base, '/sub/hb.t');
  c.defer(() => ds.close());
  await sleep(1200);
  eq(ds.lines.map((l) => l.v), [{ type: 'ok' }], 'only the opening line within 1.2 s with the default heartbeat 15s');
  // the same key twice: an error naming both
  const both = writeYaml('both.yaml', `plugins:\n  load: [sse, longpoll, ${S.so}]\n  ndjson:\n    heartbeat: 1s\nndjson:\n  heartbeat: 2s\n`);
  const r = runInstalled(['--check-config', '-c', both]);
  assert(r.code !== 0 && /ndjson\.heartbeat/.test(r.stderr) && /plugins\.ndjson\.heartbeat/.test(r.stderr), `ndjson.heartbeat given as both keys: exit ${r.code}, ${JSON.stringify(r.stdout + r.stderr)}`);
  // out of the declared bounds (100 ms .. 1 h): an error naming the key and the line
  const low = writeYaml('low.yaml', `plugins:\n  load: [sse, longpoll, ${S.so}]\n  ndjson:\n    heartbeat: 50ms\n`);
  const r2 = runInstalled(['--check-config', '-c', low]);
  assert(r2.code !== 0 && /heartbeat/.test(r2.stderr) && /line 4\b/.test(r2.stderr), `plugins.ndjson.heartbeat: 50ms (min 100ms): exit ${r2.code}, ${JSON.stringify(r2.stdout + r2.stderr)}`);
  c.info(`both keys: ${r.stderr.trim()} | 50ms: ${r2.stderr.trim()}`);
});

function jwt(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

t.test('Authorization: Bearer from fetch() (what EventSource cannot send): 200 with a token, 401 without, 403 outside its rights', async (c) => {
  need('bin', 'so');
  const secret = crypto.randomBytes(24).toString('hex');
  const b = await startBinary(c, S.bin, { config: { ...NDJ(), auth: { anonymous: { subscribe: [], publish: ['>'] }, jwt: { secret } } } });
  const exp = Math.floor(Date.now() / 1000) + 600;
  const tok = jwt(secret, { sub: 'alice', exp, rt: { sub: ['authz.*'] } });
  const s = startNdjson(b.base, '/sub/authz.room', { headers: { Authorization: `Bearer ${tok}` } });
  c.defer(() => s.close());
  await waitConnections(b.base, 'ndjson', 1);
  const id = await publishOk(b.base, 'authz.room', 'secret stuff');
  await s.waitMessages(1, 5000);
  await s.ok();
  eq(s.messages.map((m) => m.id), [id], 'delivered with a bearer token');
  for (const [label, headers, p, status, code] of [
    ['no token', {}, '/sub/authz.room', 401, 'unauthorized'],
    ['a bad signature', { Authorization: `Bearer ${jwt('wrong', { sub: 'x', exp, rt: { sub: ['>'] } })}` }, '/sub/authz.room', 401, 'unauthorized'],
    ['a token for authz.* on other.room', { Authorization: `Bearer ${tok}` }, '/ndjson?topic=other.room', 403, 'forbidden'],
  ]) {
    expectError(await ndjsonError(b.base, p, { headers }), status, code, label);
  }
});

t.test('SIGTERM: every NDJSON stream ends with {"type":"shutdown"} as its last line; exit 0 within shutdown.drain', async (c) => {
  need('bin', 'so');
  const b = await startBinary(c, S.bin, { config: { ...NDJ(), shutdown: { drain: '3s' } } });
  const streams = Array.from({ length: 20 }, (_, i) => startNdjson(b.base, i % 2 ? `/sub/down.t${i % 3}` : `/ndjson?topic=down.t${i % 3}`));
  c.defer(() => streams.forEach((s) => s.close()));
  await waitConnections(b.base, 'ndjson', 20);
  const id = await publishOk(b.base, 'down.t0', 'before');
  const t0s = streams.filter((s) => s.path.endsWith('down.t0'));
  await waitFor(() => t0s.every((s) => s.messages.length === 1), 5000, 'the message on the down.t0 streams');
  const t0 = Date.now();
  const res = await b.stop({ timeout: 10000 });
  const ms = Date.now() - t0;
  eq([res.code, res.signal, res.killed], [0, null, false], 'exit status after SIGTERM');
  assert(ms <= 4000 * SLOW, `exit took ${ms} ms (shutdown.drain 3s)`);
  await Promise.race([Promise.all(streams.map((s) => s.done)), sleep(3000)]);
  for (const s of streams) {
    assert(s.ended, `${s.path}: the stream did not end after the broker exited`);
    eq(s.status, 200, `${s.path}: status`);
    eq(s.bad, [], `${s.path}: lines that are not JSON`);
    eq(s.tail, '', `${s.path}: an unterminated last line`);
    assert(s.lines.length >= 1, `${s.path}: no line at all; expected {"type":"shutdown"}`);
    eq(s.lines.at(-1).v, { type: 'shutdown' }, `${s.path}: last line`);
    eq(s.control.filter((x) => x.type === 'shutdown').length, 1, `${s.path}: shutdown lines`);
  }
  for (const s of t0s) eq(s.messages.map((m) => m.id), [id], 'the message before the shutdown');
  c.info(`SIGTERM → exit 0 after ${ms} ms; 20 streams got {"type":"shutdown"}`);
});

await t.run();

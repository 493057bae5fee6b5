// The plugin loader (issue 9): every refusal — a missing file, a .so without rt_transport_v1,
// another ABI version, two plugins claiming one explicit path, a second plugin with a loaded
// plugin's name, an incomplete table, bad cache_slots, a file that is no shared object, an
// init that refuses — makes `rtbroker --check-config` and a real start exit non-zero with a
// message naming the file and the reason. `--list-plugins` lists good and broken .so files.
// `plugins.<name>.enabled: false` skips a plugin and its keys; plugin keys are checked (bounds,
// unknown keys with their line) and reachable as NAME.KEY, plugins.NAME.KEY and env.
// The test plugins are built from tests/plugins/*.c.
import fs from 'node:fs';
import path from 'node:path';
import {
  suite, assert, eq, BIN, ROOT, mkTemp, freePort, runBrokerSync, publishOk, request, sleep, trunc, indent, openSSE,
} from './lib.mjs';
import { buildTestPlugin, startNdjson, waitConnections } from '../plugins/pluginlib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 115000 });

const PDIR = fs.realpathSync(path.join(path.dirname(BIN), 'plugins')); // the default plugins.dir
let built = null;
function plugins() {
  if (built) return built;
  const dir = mkTemp('rtb-testplugins-');
  const so = {};
  for (const n of ['tiny', 'nosym', 'oldabi', 'dupath', 'dupname', 'incomplete', 'badslots', 'initfail']) so[n] = buildTestPlugin(n, dir);
  so.garbage = path.join(dir, 'garbage.so');
  fs.writeFileSync(so.garbage, 'this is not an ELF shared object\n');
  built = { dir, so };
  return built;
}

function cfgFile(text, name = 'rtbroker.yaml') {
  const f = path.join(mkTemp('rtb-loadercfg-'), name);
  fs.writeFileSync(f, text);
  return f;
}
const yamlList = (xs) => `[${xs.join(', ')}]`;

/** --check-config and a real start must both refuse, with one message matching every regexp in `want`. */
async function refused(c, label, text, want, { env = {}, checkToo = true } = {}) {
  const cfg = cfgFile(text);
  const out = {};
  if (checkToo) {
    const r = runBrokerSync(['--check-config', '-c', cfg], { env });
    const all = r.stdout + r.stderr;
    assert(r.code !== 0 && r.code !== null, `${label}: --check-config exit ${r.code} ${r.signal || ''}, expected non-zero: ${JSON.stringify(all)}`);
    assert(!/configuration OK/.test(all), `${label}: --check-config says OK: ${JSON.stringify(all)}`);
    for (const re of want) assert(re.test(r.stderr), `${label}: --check-config message does not match ${re}: ${JSON.stringify(r.stderr)}`);
    out.check = r.stderr.trim();
  }
  const port = await freePort();
  const r2 = runBrokerSync(['-c', cfg, '--listen', `127.0.0.1:${port}`, '--workers', '1'], { env, timeout: 10000 });
  assert(!r2.signal && r2.code !== null, `${label}: the broker started anyway (still running after 10 s, killed by ${r2.signal}); output ${JSON.stringify((r2.stdout + r2.stderr).slice(-400))}`);
  assert(r2.code !== 0, `${label}: a real start exited 0: ${JSON.stringify(r2.stdout + r2.stderr)}`);
  for (const re of want) assert(re.test(r2.stderr), `${label}: start message does not match ${re}: ${JSON.stringify(r2.stderr)}`);
  assert(!/listening on/.test(r2.stderr + r2.stdout), `${label}: the broker said it was listening: ${JSON.stringify(r2.stderr)}`);
  out.start = r2.stderr.trim().split('\n').at(-1);
  c.info(`${label}: exit ${r2.code}: ${out.start}`);
  return out;
}

function checkOk(label, text, env = {}) {
  const cfg = cfgFile(text);
  const r = runBrokerSync(['--check-config', '-c', cfg], { env });
  assert(r.code === 0 && /configuration OK/.test(r.stdout), `${label}: --check-config exit ${r.code}: ${JSON.stringify(r.stdout + r.stderr)}`);
  return r;
}

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

t.test('a missing file: by path and by name (plugins.dir), "no such file"', async (c) => {
  const missing = path.join(mkTemp('rtb-nofile-'), 'nope.so');
  await refused(c, 'missing path', `plugins:\n  load: ${yamlList(['sse', 'longpoll', missing])}\n`, [new RegExp(`plugin ${esc(missing)}: no such file`)]);
  await refused(c, 'missing name', 'plugins:\n  load: [sse, longpoll, nope]\n', [new RegExp(`plugin ${esc(path.join(PDIR, 'nope.so'))}: no such file`), /plugins\.load names "nope"/]);
  const dir = mkTemp('rtb-emptydir-');
  await refused(c, 'a plugins.dir without the plugin', `plugins:\n  dir: ${dir}\n  load: [sse]\n`, [new RegExp(`plugin ${esc(path.join(dir, 'sse.so'))}: no such file`)]);
});

t.test('a .so without rt_transport_v1 (tests/plugins/nosym.c)', async (c) => {
  const { so } = plugins();
  await refused(c, 'nosym', `plugins:\n  load: ${yamlList(['sse', so.nosym])}\n`, [new RegExp(`plugin ${esc(so.nosym)}: `), /does not export the symbol rt_transport_v1/]);
});

t.test('another ABI version (tests/plugins/oldabi.c: RT_PLUGIN_ABI_VERSION + 1)', async (c) => {
  const { so } = plugins();
  const abi = Number(/#define RT_PLUGIN_ABI_VERSION (\d+)/.exec(fs.readFileSync(path.join(ROOT, 'include', 'rtbroker', 'plugin.h'), 'utf8'))[1]);
  await refused(c, 'oldabi', `plugins:\n  load: ${yamlList(['sse', 'longpoll', so.oldabi])}\n`,
    [new RegExp(`plugin ${esc(so.oldabi)}: `), new RegExp(`ABI version ${abi + 1}\\b`), new RegExp(`version ${abi}\\b`)]);
});

t.test('two plugins claiming the same explicit path (tests/plugins/dupath.c claims /sse), in either order', async (c) => {
  const { so } = plugins();
  await refused(c, 'dupath after sse', `plugins:\n  load: ${yamlList(['sse', 'longpoll', so.dupath])}\n`,
    [new RegExp(`plugin ${esc(so.dupath)}: `), /path \/sse is already claimed by plugin "sse"/]);
  await refused(c, 'sse after dupath', `plugins:\n  load: ${yamlList([so.dupath, 'longpoll', 'sse'])}\n`,
    [new RegExp(`plugin ${esc(path.join(PDIR, 'sse.so'))}: `), /path \/sse is already claimed by plugin "dupath"/]);
});

t.test('a plugin with the name of one already loaded (tests/plugins/dupname.c is "longpoll"; sse twice)', async (c) => {
  const { so } = plugins();
  await refused(c, 'dupname', `plugins:\n  load: ${yamlList(['sse', 'longpoll', so.dupname])}\n`,
    [new RegExp(`plugin ${esc(so.dupname)}: `), /a plugin named "longpoll" is already loaded/]);
  await refused(c, 'sse twice', 'plugins:\n  load: [sse, longpoll, sse]\n',
    [new RegExp(`plugin ${esc(path.join(PDIR, 'sse.so'))}: `), /a plugin named "sse" is already loaded/]);
});

t.test('an incomplete table (no deliver), bad cache_slots, a file that is no shared object', async (c) => {
  const { so } = plugins();
  await refused(c, 'incomplete', `plugins:\n  load: ${yamlList(['sse', so.incomplete])}\n`, [new RegExp(`plugin ${esc(so.incomplete)}: `), /lacks a required field/]);
  await refused(c, 'badslots', `plugins:\n  load: ${yamlList(['sse', so.badslots])}\n`, [new RegExp(`plugin ${esc(so.badslots)}: `), /cache_slots/]);
  await refused(c, 'garbage', `plugins:\n  load: ${yamlList(['sse', so.garbage])}\n`, [new RegExp(`plugin ${esc(so.garbage)}: `), /cannot be loaded/]);
});

t.test('a plugin whose init refuses: the broker does not start', async (c) => {
  const { so } = plugins();
  const text = `plugins:\n  load: ${yamlList(['sse', so.initfail])}\n`;
  const chk = runBrokerSync(['--check-config', '-c', cfgFile(text)]);
  c.info(`--check-config with initfail (init is not run by --check-config): exit ${chk.code}: ${(chk.stdout + chk.stderr).trim()}`);
  await refused(c, 'initfail', text, [/plugin initfail: refused to start/], { checkToo: false });
});

t.test('--list-plugins with plugins.dir holding a good and broken .so files: lists each, the broken ones with the reason', async (c) => {
  const { so } = plugins();
  const dir = mkTemp('rtb-listdir-');
  for (const n of ['tiny', 'oldabi', 'nosym', 'incomplete']) fs.copyFileSync(so[n], path.join(dir, `${n}.so`));
  fs.copyFileSync(so.garbage, path.join(dir, 'garbage.so'));
  fs.writeFileSync(path.join(dir, 'README.txt'), 'not a plugin');
  const r = runBrokerSync(['--list-plugins', '-c', cfgFile(`plugins:\n  dir: ${dir}\n  load: [sse, tiny]\n`)]);
  const out = r.stdout;
  c.info(`--list-plugins exit ${r.code}:\n${indent(out.trimEnd())}`);
  assert(r.code !== null && !r.signal, `--list-plugins did not finish: ${r.signal}`);
  assert(out.includes(`plugins in ${dir}`), `--list-plugins does not name the directory ${dir}:\n${indent(out)}`);
  const blocks = out.split(/\n(?=  \S)/);
  const good = blocks.find((b) => /^\s*tiny\s+tiny\.so, ABI 1\b/.test(b));
  assert(good, `--list-plugins does not list tiny.so as loadable:\n${indent(out)}`);
  assert(good.split(/\s+/).includes('/tiny'), `tiny's entry does not name its path /tiny: ${JSON.stringify(good)}`);
  assert(/tiny\.greeting=hello/.test(good) && /tiny\.repeat=1/.test(good), `tiny's entry does not list its keys with defaults: ${JSON.stringify(good)}`);
  for (const [n, re] of [['oldabi', /ABI version 2/], ['nosym', /rt_transport_v1/], ['incomplete', /lacks a required field/], ['garbage', /cannot be loaded/]]) {
    const b = blocks.find((x) => x.includes(`${n}.so`));
    assert(b, `--list-plugins does not list the broken ${n}.so:\n${indent(out)}`);
    assert(/refused|cannot/.test(b) && re.test(b), `${n}.so: the entry does not say why it cannot be loaded (${re}): ${JSON.stringify(b)}`);
  }
  assert(!out.includes('README.txt'), '--list-plugins lists a file that is not a .so');
  // the default plugins.dir (beside the binary): the four built-in transports
  const r2 = runBrokerSync(['--list-plugins', '-c', cfgFile('log:\n  level: warn\n')]);
  for (const [n, p] of [['sse', '/sse'], ['longpoll', '/poll'], ['websocket', '/ws'], ['ndjson', '/ndjson']]) {
    assert(new RegExp(`^\\s*${n}\\s+${n}\\.so, ABI 1`, 'm').test(r2.stdout) && r2.stdout.split(/\s+/).includes(p), `default --list-plugins lacks ${n} with ${p}:\n${indent(r2.stdout)}`);
  }
});

t.test('--list-plugins says which files plugins.load loads: one named by path is loaded; another file with a loaded plugin\'s name is not', async (c) => {
  const { so } = plugins();
  const dir = mkTemp('rtb-listload-');
  for (const n of ['tiny', 'dupname']) fs.copyFileSync(so[n], path.join(dir, `${n}.so`));
  for (const n of ['sse', 'longpoll']) fs.copyFileSync(path.join(PDIR, `${n}.so`), path.join(dir, `${n}.so`));
  const cfg = cfgFile(`plugins:\n  dir: ${dir}\n  load: ${yamlList(['sse', 'longpoll', path.join(dir, 'tiny.so')])}\n`);
  const chk = runBrokerSync(['--check-config', '-c', cfg]);
  assert(chk.code === 0, `this configuration loads: ${chk.stderr}`);
  const r = runBrokerSync(['--list-plugins', '-c', cfg]);
  c.info(`--list-plugins:\n${indent(r.stdout.trimEnd())}`);
  const entry = (file) => r.stdout.split(/\n(?=  \S)/).find((b) => b.includes(` ${file},`)) || '';
  for (const f of ['sse.so', 'longpoll.so', 'tiny.so']) {
    assert(/loaded by plugins\.load/.test(entry(f)), `${f} is loaded (plugins.load: sse, longpoll, ${path.join(dir, 'tiny.so')}), but --list-plugins says: ${JSON.stringify(entry(f))}`);
  }
  const d = entry('dupname.so');
  assert(d && !/loaded by plugins\.load/.test(d), `dupname.so (a plugin named "longpoll") is not loaded — plugins.load's "longpoll" is ${path.join(dir, 'longpoll.so')} — but --list-plugins says: ${JSON.stringify(d)}`);
});

t.test('a third-party plugin loaded by path: its path, negotiation priority and declared keys (NAME.KEY, plugins.NAME.KEY, env, bounds)', async (c) => {
  const { so } = plugins();
  const b = await c.broker({ config: { plugins: { load: ['sse', 'longpoll', so.tiny], tiny: { repeat: 3 } }, tiny: { greeting: 'hi' } } });
  let r = await request(b.base, 'GET', '/tiny');
  eq([r.status, r.text], [200, 'hi hi hi from tiny at /tiny\n'], 'GET /tiny');
  r = await request(b.base, 'GET', '/tiny/some.topic');
  eq([r.status, r.text], [200, 'hi hi hi from tiny at /tiny/some.topic\n'], 'GET /tiny/some.topic');
  r = await request(b.base, 'GET', '/tinyx');
  eq(r.status, 404, 'GET /tinyx is not the plugin\'s path');
  r = await request(b.base, 'GET', '/sub/x.y', { headers: { Accept: 'text/event-stream;q=0.1, application/x-tiny' } });
  eq([r.status, r.text], [200, 'hi hi hi from tiny at /sub/x.y\n'], '/sub with Accept application/x-tiny (priority 50 over SSE 10)');
  const sse = await openSSE(b.base, '/sub/x.y');
  c.defer(() => sse.close());
  eq(sse.status, 200, 'SSE still negotiated');
  eq(sse.headers['content-type'], 'text/event-stream', 'SSE content type');
  const b2 = await c.broker({ config: { plugins: { load: ['sse', 'longpoll', so.tiny] } }, env: { RTB_TINY_GREETING: 'env' } });
  r = await request(b2.base, 'GET', '/tiny');
  eq(r.text, 'env from tiny at /tiny\n', 'RTB_TINY_GREETING');
  const b3 = await c.broker({ config: { plugins: { load: ['sse', 'longpoll', so.tiny] } } });
  r = await request(b3.base, 'GET', '/tiny');
  eq(r.text, 'hello from tiny at /tiny\n', 'defaults');
  const m = await request(b.base, 'GET', '/metrics');
  assert(/rtbroker_connections\{transport="tiny"\} 0/.test(m.text), `/metrics has no series for the tiny transport:\n${trunc(m.text, 600)}`);
  // declared bounds and types are checked, with key and line
  await refused(c, 'tiny.repeat: 9', `plugins:\n  load: ${yamlList(['sse', so.tiny])}\ntiny:\n  repeat: 9\n`, [/tiny\.repeat/, /out of range/, /line 4\b/]);
  await refused(c, 'plugins.tiny.repeat: abc', `plugins:\n  load: ${yamlList(['sse', so.tiny])}\n  tiny:\n    repeat: abc\n`, [/repeat/, /line 4\b/]);
  await refused(c, 'RTB_TINY_REPEAT=0', `plugins:\n  load: ${yamlList(['sse', so.tiny])}\n`, [/RTB_TINY_REPEAT|tiny\.repeat/, /out of range/], { env: { RTB_TINY_REPEAT: '0' } });
});

t.test('plugins.<name>.enabled: false skips a plugin; its path 404s, /sub negotiation falls to another transport, its keys are no error', async (c) => {
  const { so } = plugins();
  checkOk('ndjson disabled with its keys', 'plugins:\n  load: [sse, longpoll, ndjson]\n  ndjson:\n    enabled: false\n    heartbeat: 1s\nndjson:\n  heartbeat: 2s\n');
  const b = await c.broker({ config: { plugins: { load: ['sse', 'longpoll', 'websocket', 'ndjson'], ndjson: { enabled: false } }, ndjson: { heartbeat: '1s' } } });
  const log = fs.readFileSync(b.logPath, 'utf8');
  assert(/transports: sse longpoll websocket;/.test(log), `start line does not list exactly sse longpoll websocket:\n${indent(log)}`);
  assert(/plugin ndjson: disabled by plugins\.ndjson\.enabled/.test(log), `no log line saying ndjson is disabled:\n${indent(log)}`);
  let r = await request(b.base, 'GET', '/ndjson?topic=x.y');
  eq(r.status, 404, `/ndjson with ndjson disabled (${trunc(r.text, 100)})`);
  r = await request(b.base, 'GET', '/sub/x.y?timeout=1', { headers: { Accept: 'application/x-ndjson' } });
  assert(r.status === 200 && r.json && Array.isArray(r.json.messages) && /application\/json/.test(r.headers.get('content-type')),
    `/sub with Accept application/x-ndjson and ndjson disabled: expected the long-poll answer, got ${r.status} ${r.headers.get('content-type')} ${trunc(r.text)}`);
  r = await request(b.base, 'GET', '/metrics');
  assert(!/transport="ndjson"/.test(r.text), '/metrics still has an ndjson series');
  // SSE disabled (env): text/event-stream falls to long-poll, /sse 404s, sse.* keys are no error
  const b2 = await c.broker({ config: { plugins: { load: ['sse', 'longpoll', 'ndjson'] }, sse: { heartbeat: '1s', retry: '2s' } }, env: { RTB_PLUGINS_SSE_ENABLED: 'false' } });
  r = await request(b2.base, 'GET', '/sse?topic=x.y');
  eq(r.status, 404, '/sse with sse disabled');
  r = await request(b2.base, 'GET', '/sub/x.y?timeout=1', { headers: { Accept: 'text/event-stream' } });
  assert(r.status === 200 && r.json && Array.isArray(r.json.messages), `/sub with Accept text/event-stream and sse disabled: expected long-poll, got ${r.status} ${trunc(r.text)}`);
  // the remaining transports still work: ndjson streams
  const s = startNdjson(b2.base, '/sub/en.t');
  c.defer(() => s.close());
  await waitConnections(b2.base, 'ndjson', 1);
  const id = await publishOk(b2.base, 'en.t', 'x');
  await s.waitMessages(1, 5000);
  eq(s.messages.map((m) => m.id), [id], 'ndjson next to a disabled sse');
  // everything disabled that negotiates: 406
  const b3 = await c.broker({ config: { plugins: { load: ['sse', 'longpoll'], sse: { enabled: false }, longpoll: { enabled: false } } } });
  r = await request(b3.base, 'GET', '/sub/x.y');
  eq([r.status, r.json && r.json.error], [406, 'not_acceptable'], '/sub with every transport disabled');
  // a path-loaded plugin is disabled by its section too, and its own keys are then no error
  checkOk('tiny by path, disabled', `plugins:\n  load: ${yamlList(['sse', so.tiny])}\n  tiny:\n    enabled: false\n    repeat: 2\ntiny:\n  greeting: x\n`);
  const b4 = await c.broker({ config: { plugins: { load: ['sse', 'longpoll', so.tiny], tiny: { enabled: false } }, tiny: { greeting: 'x' } } });
  r = await request(b4.base, 'GET', '/tiny');
  eq(r.status, 404, '/tiny with tiny disabled');
  // enabled takes a boolean, and explicit true loads it
  await refused(c, 'enabled: maybe', 'plugins:\n  load: [sse, longpoll, ndjson]\n  ndjson:\n    enabled: maybe\n', [/plugins\.ndjson\.enabled/, /line 4\b/]);
  checkOk('enabled: true', 'plugins:\n  load: [sse, longpoll, ndjson]\n  ndjson:\n    enabled: true\n');
});

t.test('an unknown key under a loaded plugin\'s section is an error naming the key and the line', async (c) => {
  const { so } = plugins();
  await refused(c, 'sse.nope', 'plugins:\n  load: [sse, longpoll]\nsse:\n  heartbeat: 5s\n  nope: 1\n', [/sse\.nope: unknown key/, /line 5\b/]);
  await refused(c, 'plugins.sse.nope', 'plugins:\n  load: [sse, longpoll]\n  sse:\n    nope: 1\n', [/plugins\.sse\.nope: unknown key/, /line 4\b/]);
  await refused(c, 'ndjson.heartbeatt', 'plugins:\n  load: [sse, ndjson]\nndjson:\n  heartbeatt: 1s\n', [/ndjson\.heartbeatt: unknown key/, /line 4\b/]);
  await refused(c, 'tiny.nope (a path-loaded plugin)', `plugins:\n  load: ${yamlList(['sse', so.tiny])}\ntiny:\n  greeting: a\n  nope: 1\n`, [/tiny\.nope: unknown key/, /line 5\b/]);
  // the known keys of the same sections are fine
  checkOk('known keys', `plugins:\n  load: ${yamlList(['sse', 'longpoll', so.tiny])}\n  sse:\n    retry: 1s\nsse:\n  heartbeat: 5s\ntiny:\n  greeting: a\nlongpoll:\n  timeout: 5s\n`);
});

await t.run();

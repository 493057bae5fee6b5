// The docs test: every sh and js example of README.md and PLUGINS.md runs against real brokers, as a reader
// would run it after `make run`, and where the text prints an output the output must match (ids and times
// masked). The markers that steer it (`<!-- docs-test: … -->`) are described in README.md ("Tests").
// Each block runs in its own temporary folder that links the repository's top-level entries, with the ports
// of the text (8080, 8081, 8082, 8443, 4222) mapped to free ones and /tmp/ and /usr/local to the folder.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, ROOT, SLOW, assert, freePort, indent, mkTemp, publishOk, sanitizerReport, sleep, startBroker, suite, trunc } from './lib.mjs';
import { extractBlocks, jsOutputs, mark, marks, matches, shellCommands } from './docs_extract.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 120000 * SLOW });
const FILES = (process.env.DOCS_FILES || 'README.md,PLUGINS.md').split(',');
const KNOWN = new Set(['skip', 'output', 'run', 'replace', 'env', 'config']);

const ports = {};
let mainBroker = null; // conf/rtbroker.yaml, as `make run` starts it
let epoch = 'k3x9m2aq'; // the text's example epoch stands for that broker's
const secret = crypto.randomBytes(32).toString('hex');

function hs256(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

function spawnCollect(cmd, args, { cwd, env, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} }, timeoutMs);
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err, pgid: child.pid }); });
  });
}

async function killGroup(pgid) {
  try { process.kill(-pgid, 'SIGTERM'); } catch { return; }
  for (let i = 0; i < 100 * SLOW; i++) {
    try { process.kill(-pgid, 0); } catch { return; }
    await sleep(50);
  }
  try { process.kill(-pgid, 'SIGKILL'); } catch {}
}

/** A fresh folder for one block, linking the repository's top-level entries (build/, conf/, web/, …). */
function blockDir() {
  const dir = mkTemp('rtb-docs-');
  for (const e of fs.readdirSync(ROOT)) if (!e.startsWith('.')) fs.symlinkSync(path.join(ROOT, e), path.join(dir, e));
  return dir;
}

function substitute(text, block, dir) {
  let s = text;
  for (const r of marks(block, 'replace')) {
    const [from, to] = r.arg.split(/\s+→\s+|\s+->\s+/);
    assert(to !== undefined, `${where(block)}: replace needs "FROM -> TO"`);
    s = s.split(from).join(to);
  }
  s = s.replace(/\bk3x9m2aq:/g, `${epoch}:`);
  s = s.replace(/\b(8080|8081|8082|8443|4222)\b/g, (p) => String(ports[p]));
  s = s.replace(/(^|[\s(])build\/rtbroker\b/gm, `$1${BIN}`);
  return s.replace(/\/tmp\//g, `${dir}/`).replace(/\/usr\/local\b/g, `${dir}/usr/local`);
}

const where = (b) => `${path.basename(b.file)} line ${b.line}`;

function blockEnv(block, dir) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTB_') || k === 'RTB_BIN' || k === 'RTB_SANITIZED') env[k] = v;
  Object.assign(env, {
    PATH: `${dir}/.docs-bin:${process.env.PATH}`, DOCS_DIR: dir,
    RTB_NATS_URL: `nats://127.0.0.1:${ports[4222]}`, PKG_CONFIG_PATH: `${dir}/usr/local/lib/pkgconfig`,
  });
  for (const e of marks(block, 'env')) { const i = e.arg.indexOf('='); env[e.arg.slice(0, i)] = e.arg.slice(i + 1); }
  return env;
}

// curl as the reader runs it, quiet, its response heads kept (per command) so that a 4xx/5xx fails the example
const CURL = `#!/bin/sh
n=$(date +%s%N)
exec /usr/bin/curl -sS --max-time 30 -D "$DOCS_DIR/.docs-hdr/$DOCS_CMD.$n.$$" "$@"
`;
const PRELUDE = `set -u
docs_wait() { for i in $(seq 300); do /usr/bin/curl -fs -o /dev/null --max-time 1 "$1" && return 0; sleep 0.05; done; echo "docs-test: $1 never answered" >&2; return 1; }
docs_wait_output() { for i in $(seq 200); do [ -s "$1" ] && { sleep 0.1; return 0; }; sleep 0.025; done; }
docs_wait_port() { for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "docs-test: port $1 never opened" >&2; return 1; }
`;

/** Runs a sh block in one bash, a command at a time (so that shell variables carry over): each command's output
 * in out.N, its status in rc.N; servers and streams in the background (killed when the block ends), each waited
 * for before the next command. An id the text prints stands, in the commands after it, for the id printed there. */
async function runShell(ctx, block) {
  const dir = blockDir();
  for (const d of ['.docs-bin', '.docs-hdr', '.docs-out']) fs.mkdirSync(path.join(dir, d));
  fs.writeFileSync(path.join(dir, '.docs-bin', 'curl'), CURL, { mode: 0o755 });
  const cmds = shellCommands(block);
  const sh = spawn('bash', [], { cwd: dir, env: blockEnv(block, dir), detached: true, stdio: ['pipe', 'ignore', 'pipe'] });
  let shErr = '';
  sh.stderr.on('data', (d) => { shErr += d; });
  sh.stdin.on('error', () => {});
  const file = (f) => path.join(dir, '.docs-out', f);
  const read = (f) => { try { return fs.readFileSync(file(f), 'utf8'); } catch { return null; } };
  const ids = new Map(); // an example id of the text -> the id printed in its place
  const ran = [];
  const detail = (c) => `\n  $ ${c.code.split('\n').join('\n    ')}\n  stdout:\n${indent(trunc(c.out, 1500), '    | ')}\n  stderr:\n${indent(trunc(c.err, 1500), '    | ')}`;
  sh.stdin.write(PRELUDE);
  try {
    for (const [i, c] of cmds.entries()) {
      let code = c.code;
      for (const [from, to] of ids) code = code.split(from).join(to); // before the example epoch is replaced
      code = substitute(code, block, dir);
      const bg = /&\s*$/.test(code) || /^curl\b.*\s-N\b/s.test(code);
      code = code.replace(/&\s*$/, '');
      const io = `> "${file(`out.${i}`)}" 2> "${file(`err.${i}`)}" < /dev/null`;
      let wait = /^curl\b/.test(code) ? `docs_wait_output "${file(`out.${i}`)}"` : `sleep ${0.5 * SLOW}`;
      const listen = /rtbroker\b.*--listen\s+(\S+)/.exec(code);
      if (/\brtbroker\s/.test(code)) wait = `docs_wait http://${listen ? listen[1] : `127.0.0.1:${ports[8080]}`}/readyz`;
      else if (/^nats-server\b/.test(code)) wait = `docs_wait_port ${/-p\s+(\d+)/.exec(code)[1]}`;
      sh.stdin.write(`export DOCS_CMD=${i}\n`);
      sh.stdin.write(bg ? `{ ${code}\n} ${io} &\n${wait}; echo $? > "${file(`rc.${i}`)}"\n` : `{ ${code}\n} ${io}; echo $? > "${file(`rc.${i}`)}"\n`);
      const deadline = Date.now() + 30000 * SLOW;
      while (read(`rc.${i}`) === null || !read(`rc.${i}`).endsWith('\n')) {
        assert(Date.now() < deadline, `${where(block)}: line ${c.line}: did not finish within ${30 * SLOW} s${detail({ ...c, out: read(`out.${i}`) ?? '', err: read(`err.${i}`) ?? '' })}`);
        assert(sh.exitCode === null, `${where(block)}: line ${c.line}: the shell exited (${sh.exitCode}): ${shErr}`);
        await sleep(20);
      }
      const r = { ...c, out: read(`out.${i}`) ?? '', err: read(`err.${i}`) ?? '', rc: read(`rc.${i}`).trim(), bg };
      ran.push(r);
      const at = `${where(block)}: line ${c.line}`;
      assert(r.rc === '0', `${at}: ${bg ? 'did not start' : `exited with status ${r.rc}`}${detail(r)}`);
      if (c.output.length) {
        const got = r.out.split('\n').filter((l) => l.trim() !== '');
        const ok = got.length === c.output.length && c.output.every((e, k) => matches(e, got[k]));
        assert(ok, `${at}: printed\n${indent(r.out)}\n  where the text prints\n${indent(c.output.join('\n'))}`);
        const re = /\b[A-Za-z0-9_-]{4,32}:\d+\b/g;
        const want = c.output.join('\n').match(re) || [], have = got.join('\n').match(re) || [];
        if (want.length === have.length) want.forEach((w, k) => ids.set(w, have[k]));
      }
    }
    sh.stdin.end(`sleep ${0.3 * SLOW}\n`);
    await new Promise((res) => (sh.exitCode !== null ? res() : sh.once('exit', res)));
  } finally {
    await killGroup(sh.pid);
  }
  for (const [i, r] of ran.entries()) {
    r.out = read(`out.${i}`) ?? ''; // what the background commands printed until the end
    const report = sanitizerReport(file(`err.${i}`));
    assert(!report, `${where(block)}: line ${r.line}: sanitizer report:\n${indent(report || '')}`);
  }
  for (const f of fs.readdirSync(path.join(dir, '.docs-hdr'))) {
    const statuses = [...fs.readFileSync(path.join(dir, '.docs-hdr', f), 'utf8').matchAll(/^HTTP\/[\d.]+ (\d{3})/gm)].map((m) => +m[1]);
    const last = statuses[statuses.length - 1], r = ran[Number(f.split('.')[0])];
    // a refusal is fine where the text prints it ({"error":…} under the command)
    const refusal = r && r.output.length > 0 && r.output.every((o) => o.startsWith('{"error"'));
    assert(!(last >= 400) || refusal, `${where(block)}: line ${r ? r.line : '?'}: curl got HTTP ${last}${r ? detail(r) : ''}`);
  }
  ctx.info(`${where(block)}: ${cmds.length} commands, ${ran.filter((c) => c.output.length).length} outputs compared`);
  return { ran, dir };
}

// Browser globals in Node for the js examples: relative and localhost:8080 URLs go to the test broker.
const JS_PRELUDE = (base, want) => `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(path.join(ROOT, 'tests', 'package.json'))});
const WS = require('ws'); const { EventSource: ES } = require('eventsource');
const BASE = ${JSON.stringify(base)};
const fix = (u, scheme) => { const x = new URL(String(u).replace(/localhost:8080/, new URL(BASE).host), BASE); if (scheme) x.protocol = scheme; return x.href; };
globalThis.WebSocket = class extends WS { constructor(u, p) { super(fix(u, 'ws:'), p); } };
globalThis.EventSource = class extends ES { constructor(u, o) { super(fix(u), o); } };
const f0 = globalThis.fetch; globalThis.fetch = (u, o) => f0(fix(u), o);
globalThis.token = process.env.DOCS_TOKEN; globalThis.lastId = process.env.DOCS_LAST_ID;
let printed = 0;
console.log = (...a) => {
  process.stdout.write(a.map((x) => typeof x === 'string' ? x : JSON.stringify(x)).join(' ') + '\\n');
  if (++printed === ${want}) setTimeout(() => process.exit(0), 100); // every output the text shows is there
};
setTimeout(() => process.exit(0), ${want ? 3000 * SLOW : 800});
`;

async function runJs(ctx, block) {
  const dir = mkTemp('rtb-docs-js-');
  const file = path.join(dir, 'example.mjs');
  const want = jsOutputs(block);
  fs.writeFileSync(file, JS_PRELUDE(mainBroker.base, want.length) + block.text + '\n');
  // lastId: the head of the broker's history, so that a `since: lastId` replays nothing old
  const head = await publishOk(mainBroker.base, 'docs.head', 'x');
  const token = hs256({ sub: 'docs', exp: Math.floor(Date.now() / 1000) + 600, rt: { sub: ['>'], pub: ['>'] } });
  const r = await spawnCollect(process.execPath, [file], { cwd: dir, env: { ...process.env, DOCS_TOKEN: token, DOCS_LAST_ID: head }, timeoutMs: 10000 * SLOW });
  assert(r.code === 0, `${where(block)}: node exited with ${r.code ?? r.signal}:\n${indent(trunc(r.err, 2000))}`);
  const got = r.out.split('\n').filter((l) => l !== '');
  const ok = want.every((w, k) => got[k] !== undefined && matches(w, got[k]));
  assert(ok, `${where(block)}: printed, in this order,\n${indent(got.join('\n'))}\n  where the text prints\n${indent(want.join('\n'))}`);
  ctx.info(`${where(block)}: ran in Node, ${want.length} outputs compared`);
}

/** A yaml block marked `config`: the broker accepts it (--check-config) in the folder of the previous sh block. */
async function runConfig(ctx, block, prevDir) {
  const dir = prevDir || blockDir();
  const file = path.join(dir, `docs-${block.line}.yaml`);
  fs.writeFileSync(file, substitute(block.text, block, dir));
  const r = await spawnCollect(BIN, ['--check-config', '-c', file], { cwd: dir, env: blockEnv(block, dir), timeoutMs: 10000 * SLOW });
  assert(r.code === 0, `${where(block)}: rtbroker --check-config refused it:\n${indent(r.err + r.out)}`);
}

// One case per block that runs, in the order of the text; a sh block's commands and folder are what an output
// or config block after it refers to.
let prev = null, prevDir = null, skipped = 0;
t.test('start the broker `make run` starts (conf/rtbroker.yaml)', async () => {
  // with a JWT secret, so that the token of the js examples works
  mainBroker = await startBroker({
    configText: fs.readFileSync(path.join(ROOT, 'conf', 'rtbroker.yaml'), 'utf8'), env: { RTB_AUTH_JWT_SECRET: secret }, workers: 2,
  });
  ports[8080] = mainBroker.port;
  epoch = (await publishOk(mainBroker.base, 'docs.head', 'x')).split(':')[0];
  for (const p of [8081, 8082, 8443, 4222]) ports[p] = await freePort();
});
for (const f of FILES) {
  for (const b of extractBlocks(path.join(ROOT, f))) {
    const unknown = b.marks.find((m) => !KNOWN.has(m.word));
    const skip = mark(b, 'skip');
    if (unknown || (skip && !skip.arg)) {
      t.test(`${where(b)} markers`, () => assert(false, unknown ? `unknown docs-test marker "${unknown.word}"` : 'skip needs a reason'));
      continue;
    }
    if (skip) { skipped++; continue; }
    const out = mark(b, 'output');
    if (out) {
      t.test(`${where(b)} (output)`, () => {
        // the expected output of command N of the sh block before
        assert(prev, 'the sh block before it did not run to its end (or there is none)');
        const c = prev[Number(out.arg || 1) - 1];
        assert(c, `no command ${out.arg} in the block before`);
        const got = c.out.split('\n').map((l) => l.trimEnd()).join('\n').trim();
        const want = b.text.trim().split('\n');
        const lines = got.split('\n');
        const ok = lines.length === want.length && want.every((w, k) => matches(w, lines[k]));
        assert(ok, `command ${out.arg || 1} of the block before printed\n${indent(got)}\n  where the text prints\n${indent(b.text.trim())}`);
      });
    } else if (mark(b, 'run')) {
      t.test(`${where(b)} (output of a command)`, async (ctx) => {
        // the block is printed, somewhere in its output, by the command the marker gives
        const { ran } = await runShell(ctx, { ...b, lang: 'sh', text: mark(b, 'run').arg });
        assert(matches(b.text.trim(), ran[0].out, true), `\`${mark(b, 'run').arg}\` printed\n${indent(trunc(ran[0].out, 3000))}\n  which does not hold what the text prints\n${indent(b.text.trim())}`);
      });
    } else if (mark(b, 'config')) {
      t.test(`${where(b)} (yaml)`, (ctx) => runConfig(ctx, b, prevDir));
    } else if (b.lang === 'sh') {
      t.test(`${where(b)} (sh)`, async (ctx) => {
        prev = null;
        ({ ran: prev, dir: prevDir } = await runShell(ctx, b));
      }, { timeout: 45000 * SLOW });
    } else if (b.lang === 'js') {
      t.test(`${where(b)} (js)`, (ctx) => runJs(ctx, b));
    }
  }
}
t.test('stop the broker', async (ctx) => {
  ctx.info(`${skipped} blocks skipped (marked, with a reason)`);
  const r = await mainBroker.stop();
  assert(r.code === 0, `the broker exited with ${r.code ?? r.signal}`);
  const report = sanitizerReport(mainBroker.logPath);
  assert(!report, `sanitizer report in the broker's log:\n${indent(report || '')}`);
});

await t.run();

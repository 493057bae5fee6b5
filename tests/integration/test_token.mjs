// `rtbroker token`: the test JWT it mints from a configuration is accepted by a broker running that
// configuration (issuer, audience and the permissions claim included), carries only the rights --rt gives,
// and its refusals say what is missing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { suite, assert, eq, expectError, publish, mkTemp, toYaml, BIN, ROOT, trunc } from './lib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });
const SECRET = 'a-secret-for-the-token-test-0123456789';

function token(args, env = {}) {
  const r = spawnSync(BIN, ['token', ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 10000 });
  return { code: r.status, out: r.stdout.trim(), err: r.stderr };
}

t.test('a token minted from the configuration is accepted, with only the rights --rt gives', async (c) => {
  const auth = { jwt: { secret: 'env:RT_JWT_SECRET', issuer: 'https://auth.example', audience: 'rtbroker', claim: 'perm' } };
  const b = await c.broker({ config: { auth: { ...auth, anonymous: { subscribe: [], publish: [] } } }, env: { RT_JWT_SECRET: SECRET } });
  const conf = path.join(mkTemp(), 'auth.yaml');
  fs.writeFileSync(conf, toYaml({ auth }));
  const tk = token(['-c', conf, '--sub', 'alice', '--rt', '{"sub":["chat.*"],"pub":["chat.room1"]}', '--ttl', '10m'], { RT_JWT_SECRET: SECRET });
  eq(tk.code, 0, `rtbroker token: ${tk.err}`);
  const claims = JSON.parse(Buffer.from(tk.out.split('.')[1], 'base64url'));
  eq([claims.sub, claims.iss, claims.aud, claims.perm], ['alice', 'https://auth.example', 'rtbroker', { pub: ['chat.room1'], sub: ['chat.*'] }], 'claims (libjwt sorts the keys)');
  assert(claims.exp - claims.iat === 600, `--ttl 10m: exp - iat = ${claims.exp - claims.iat}`);
  const headers = { Authorization: `Bearer ${tk.out}`, 'Content-Type': 'text/plain' };
  const ok = await publish(b.base, 'chat.room1', 'hi', { headers });
  eq(ok.status, 200, `publish with the token (${trunc(ok.text)})`);
  expectError(await publish(b.base, 'chat.room2', 'hi', { headers }), 403, 'forbidden', 'a topic --rt does not grant');
  const other = token(['-c', conf], { RT_JWT_SECRET: 'another-secret-of-enough-length-000' });
  expectError(await publish(b.base, 'chat.room1', 'hi', { headers: { Authorization: `Bearer ${other.out}` } }), 401, 'unauthorized', 'signed with another secret');
});

t.test('refusals say what is missing', async () => {
  const dir = mkTemp();
  const conf = path.join(dir, 'a.yaml');
  fs.writeFileSync(conf, 'listen: 127.0.0.1:1\nauth:\n  jwt:\n    secret: env:RT_JWT_SECRET\n');
  let r = token(['-c', conf]);
  eq(r.code, 2, 'unset secret');
  assert(/auth\.jwt\.secret: the environment variable RT_JWT_SECRET is not set .*a\.yaml line 4\)/.test(r.err), `message: ${r.err}`);
  fs.writeFileSync(path.join(dir, 'b.yaml'), 'auth:\n  jwt:\n    public_key_file: /etc/rt/jwt.pem\n');
  r = token(['-c', path.join(dir, 'b.yaml')]);
  assert(r.code === 2 && /no HMAC secret to sign with/.test(r.err), `public key only: ${r.code} ${r.err}`);
  r = token(['-c', conf, '--rt', 'chat.*'], { RT_JWT_SECRET: SECRET });
  assert(r.code === 2 && /--rt 'chat\.\*' is not a JSON object/.test(r.err), `bad --rt: ${r.code} ${r.err}`);
  r = token(['-c', conf, '--ttl', 'soon'], { RT_JWT_SECRET: SECRET });
  assert(r.code === 2 && /--ttl "soon" is not a duration/.test(r.err), `bad --ttl: ${r.code} ${r.err}`);
});

await t.run();

#!/usr/bin/python3
"""Keys and secrets: RS256 and ES256 tokens with auth.jwt.public_key_file, `env:` and `file:`
secrets, --check-config on missing key material, and SIGHUP key rotation (a changed `file:`
secret and public_key_file are picked up; old tokens are refused; connections opened before
stay connected and keep receiving).
"""
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import (Report, Broker, BrokerError, mktemp, make_rsa, make_ec, read, claims, sign, sign_hmac_raw, check_config,  # noqa: E402
                     SSE, WS, bearer, http_req, trunc)

R = Report(__file__, hard_timeout=100)
RT = {'sub': ['chat.*'], 'pub': ['chat.*']}
PLUGINS = {'load': ['sse', 'longpoll', 'websocket']}
LIMITS = {'connections_per_ip': 100000, 'publish_per_subject': 100000}
ENV_SECRET = 'env-secret-0123456789abcdef-0123456789abcdef'
FILE_SECRET = 'file-secret-0123456789abcdef-0123456789abcdef'


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


async def pub(port, token, topic='chat.room1', body='x'):
    return await http_req(port, 'POST', f'/pub/{topic}', bearer(token) if token else {}, body=body)


async def sse_ok(port, token):
    s = await SSE.open(port, '/sub/chat.room1', headers=bearer(token))
    ok = s.status == 200 and await s.wait_ok(3)
    s.close()
    return ok, (s.status if s.status != 200 else ('200' if ok else '200 without ": ok"')), s.resp


def with_broker(name, cfg, env=None):
    try:
        return Broker(cfg, env=env, name=name).start()
    except BrokerError as e:
        R.fail(f'start broker ({name})', e)
        return None


async def keys_cases(d):
    rsa_priv, rsa_pub = make_rsa(d, 'rsa')
    rsa2_priv, _ = make_rsa(d, 'rsa2')
    ec_priv, ec_pub = make_ec(d, 'ec')
    ec2_priv, _ = make_ec(d, 'ec2')

    b = with_broker('public_key_file RSA', {'plugins': PLUGINS, 'limits': LIMITS, 'auth': {'jwt': {'public_key_file': rsa_pub}}})
    if b:
        try:
            for alg in ('RS256', 'RS384', 'RS512'):
                t = sign(claims(rt=RT), read(rsa_priv), alg)
                r = await pub(b.port, t)
                R.check(f'public_key_file (RSA): {alg} token → pub 200', r.status == 200, f'got {r.brief()}')
            t = sign(claims(rt=RT), read(rsa_priv), 'RS256')
            ok, st, resp = await sse_ok(b.port, t)
            R.check('public_key_file (RSA): RS256 token → sse 200', ok, f'got {st} {resp.text}')
            w = await WS.connect(b.port, '/sub/chat.room1', protocols=['rt.v1', 'bearer.' + t])
            code = await w.wait_close(0.5) if w.status == 101 else None
            await w.close()
            R.check('public_key_file (RSA): RS256 token → ws.v1 open', w.status == 101 and code is None,
                    f'got {w.status or w.error}, close {code}')
            r = await pub(b.port, sign(claims(rt=RT), read(rsa2_priv), 'RS256'))
            R.check('public_key_file (RSA): RS256 signed by another key → 401 unauthorized',
                    r.status == 401 and r.error == 'unauthorized', f'got {r.brief()}')
            r = await pub(b.port, sign(claims(rt=RT), 'some-secret-0123456789abcdef-0123456789abcdef', 'HS256'))
            R.check('public_key_file only: HS256 token → 401 unauthorized (no secret configured)',
                    r.status == 401 and r.error == 'unauthorized', f'got {r.brief()}')
        finally:
            b.stop()

    b = with_broker('public_key_file EC P-256', {'plugins': PLUGINS, 'limits': LIMITS, 'auth': {'jwt': {'public_key_file': ec_pub}}})
    if b:
        try:
            t = sign(claims(rt=RT), read(ec_priv), 'ES256')
            r = await pub(b.port, t)
            R.check('public_key_file (EC P-256): ES256 token → pub 200', r.status == 200, f'got {r.brief()}')
            ok, st, resp = await sse_ok(b.port, t)
            R.check('public_key_file (EC P-256): ES256 token → sse 200', ok, f'got {st} {resp.text}')
            r = await pub(b.port, sign(claims(rt=RT), read(ec2_priv), 'ES256'))
            R.check('public_key_file (EC P-256): ES256 signed by another key → 401 unauthorized',
                    r.status == 401 and r.error == 'unauthorized', f'got {r.brief()}')
            r = await pub(b.port, sign(claims(rt=RT), read(rsa_priv), 'RS256'))
            R.check('public_key_file (EC P-256): RS256 token → 401 unauthorized',
                    r.status == 401 and r.error == 'unauthorized', f'got {r.brief()}')
            for label, key in (('the EC public key PEM', read(ec_pub)), ('the PEM minus its last newline', read(ec_pub).rstrip(b'\n'))):
                r = await pub(b.port, sign_hmac_raw(claims(rt=RT), key, 'HS256'))
                R.check(f'public_key_file (EC P-256): key confusion, HS256 keyed with {label} → 401 unauthorized',
                        r.status == 401 and r.error == 'unauthorized', f'got {r.brief()}')
        finally:
            b.stop()

    b = with_broker('secret env:AUTHTEST_JWT_SECRET', {'plugins': PLUGINS, 'limits': LIMITS,
                                                       'auth': {'jwt': {'secret': 'env:AUTHTEST_JWT_SECRET'}}},
                    env={'AUTHTEST_JWT_SECRET': ENV_SECRET})
    if b:
        try:
            r = await pub(b.port, sign(claims(rt=RT), ENV_SECRET))
            R.check('secret env:NAME: token signed with the variable\'s value → 200', r.status == 200, f'got {r.brief()}')
            r = await pub(b.port, sign(claims(rt=RT), 'env:AUTHTEST_JWT_SECRET'))
            R.check('secret env:NAME: token signed with the literal "env:NAME" → 401', r.status == 401, f'got {r.brief()}')
        finally:
            b.stop()

    sp = os.path.join(d, 'jwt-secret')
    write(sp, FILE_SECRET)
    b = with_broker('secret file:', {'plugins': PLUGINS, 'limits': LIMITS, 'auth': {'jwt': {'secret': 'file:' + sp}}})
    if b:
        try:
            r = await pub(b.port, sign(claims(rt=RT), FILE_SECRET))
            R.check('secret file:/path: token signed with the file\'s content → 200', r.status == 200, f'got {r.brief()}')
            r = await pub(b.port, sign(claims(rt=RT), 'file:' + sp))
            R.check('secret file:/path: token signed with the literal "file:/path" → 401', r.status == 401, f'got {r.brief()}')
        finally:
            b.stop()

    # --check-config: fine, and the key material problems it must report
    base = {'plugins': PLUGINS}
    rc, out = check_config(dict(base, auth={'jwt': {'secret': 'file:' + sp, 'public_key_file': rsa_pub}}))
    R.check('--check-config with a file: secret and public_key_file → exit 0', rc == 0, f'exit {rc}: {trunc(out)}')
    for label, jwtcfg, env in (
            ('public_key_file missing', {'public_key_file': os.path.join(d, 'nope.pub')}, None),
            ('file: secret missing', {'secret': 'file:' + os.path.join(d, 'nope-secret')}, None),
            ('env: secret variable unset', {'secret': 'env:AUTHTEST_UNSET_VARIABLE'}, None),
            ('public_key_file is not a key', {'public_key_file': sp}, None)):
        rc, out = check_config(dict(base, auth={'jwt': jwtcfg}), env)
        R.check(f'--check-config: {label} → exit 2 naming the key', rc == 2 and 'auth.jwt' in out,
                f'exit {rc}: {trunc(out)}')
    # presence.client_secret takes the same forms; too short or unset is refused
    for label, secret, want in (('file: secret', 'file:' + sp, 0), ('15 bytes', 'x' * 15, 2),
                                ('env: variable unset', 'env:AUTHTEST_UNSET_VARIABLE', 2)):
        rc, out = check_config(dict(base, presence={'client_secret': secret}))
        R.check(f'--check-config: presence.client_secret {label} → exit {want}',
                rc == want and (want == 0 or 'presence.client_secret' in out), f'exit {rc}: {trunc(out)}')
    return rsa_priv, rsa2_priv


async def sighup_cases(d):
    r1_priv, r1_pub = make_rsa(d, 'hup1')
    r2_priv, r2_pub = make_rsa(d, 'hup2')
    sp, kp = os.path.join(d, 'hup-secret'), os.path.join(d, 'hup-key.pub')
    s1, s2 = 'hup-old-secret-0123456789abcdef-0123456789abcdef', 'hup-new-secret-0123456789abcdef-0123456789abcdef'
    write(sp, s1)
    write(kp, read(r1_pub))
    b = with_broker('SIGHUP rotation', {'plugins': PLUGINS, 'limits': LIMITS,
                                        'auth': {'jwt': {'secret': 'file:' + sp, 'public_key_file': kp}}})
    if not b:
        return
    sse = w1 = w2 = None
    try:
        old_hs = sign(claims(rt=RT, sub='old-hs'), s1)
        old_rs = sign(claims(rt=RT, sub='old-rs'), read(r1_priv), 'RS256')
        new_hs = sign(claims(rt=RT, sub='new-hs'), s2)
        new_rs = sign(claims(rt=RT, sub='new-rs'), read(r2_priv), 'RS256')
        sse = await SSE.open(b.port, '/sub/chat.room1', headers=bearer(old_hs))
        w1 = await WS.connect(b.port, '/sub/chat.room1', protocols=['rt.v1', 'bearer.' + old_hs])
        w2 = await WS.connect(b.port, '/sub/chat.room1', protocols=['rt.raw', 'bearer.' + old_rs])
        if not R.check('sighup: before: SSE, ws.v1 (old secret) and ws.raw (old RSA key) open',
                       sse.status == 200 and await sse.wait_ok(3) and w1.status == 101 and w2.status == 101,
                       f'sse {sse.status}, ws.v1 {w1.status or w1.error}, ws.raw {w2.status or w2.error}'):
            return
        r = await pub(b.port, old_hs, body='before-hup')
        R.check('sighup: before: old secret → pub 200', r.status == 200, f'got {r.brief()}')
        r = await pub(b.port, new_hs)
        R.check('sighup: before: new secret → 401', r.status == 401, f'got {r.brief()}')

        write(sp, s2)
        write(kp, read(r2_pub))
        pid = b.pid
        b.sighup()
        deadline = time.time() + 5
        while time.time() < deadline:
            r = await pub(b.port, new_hs, body='probe')
            if r.status == 200 or not b.alive():
                break
            await asyncio.sleep(0.1)
        R.check('sighup: broker still running (same pid)', b.alive() and b.pid == pid, f'exited {b.proc.returncode}\n{b.log()}')
        R.check('sighup: token signed with the new file: secret → 200', r.status == 200, f'got {r.brief()} 5 s after SIGHUP')
        r = await pub(b.port, old_hs)
        R.check('sighup: token signed with the old secret → 401 unauthorized', r.status == 401 and r.error == 'unauthorized',
                f'got {r.brief()}')
        r = await pub(b.port, new_rs)
        R.check('sighup: RS256 token of the new public_key_file → 200', r.status == 200, f'got {r.brief()}')
        r = await pub(b.port, old_rs)
        R.check('sighup: RS256 token of the old public key → 401 unauthorized', r.status == 401 and r.error == 'unauthorized',
                f'got {r.brief()}')

        r = await pub(b.port, new_hs, body='after-hup')
        got_sse = await sse.wait(lambda s: any(e['data'] == 'after-hup' for e in s.events), 3)
        R.check('sighup: SSE stream opened before stays connected and receives', got_sse and not sse.ended,
                f'ended {sse.ended}; tail {sse.tail()}')
        m1 = await w1.wait_msg(lambda m: isinstance(m, dict) and m.get('data') == 'after-hup', 3)
        R.check('sighup: ws.v1 opened before stays connected and receives', m1 is not None and w1.close_code is None,
                f'close {w1.close_code}; frames {trunc(w1.msgs, 300)}')
        m2 = await w2.wait_msg(lambda m: m == 'after-hup', 3)
        R.check('sighup: ws.raw opened before (old RSA key) stays connected and receives', m2 is not None and w2.close_code is None,
                f'close {w2.close_code}; frames {trunc(w2.msgs, 300)}')

        # a reload that cannot read its key material must not take the broker down
        write(kp, b'this is not a PEM key\n')
        b.sighup()
        await asyncio.sleep(0.5)
        h = await http_req(b.port, 'GET', '/healthz') if b.alive() else None
        if not R.check('sighup: a public_key_file that no longer parses → the broker keeps running (/healthz 200)',
                       b.alive() and h is not None and h.status == 200,
                       f'alive {b.alive()} (exit {b.proc.returncode}), healthz {h.brief() if h else None}\n{b.log()}'):
            return
        r = await pub(b.port, new_hs, body='after-bad-hup')
        r2 = await pub(b.port, new_rs, body='after-bad-hup')
        R.info(f'after a SIGHUP with an unreadable public_key_file: HS256 (current secret) → {r.status}, RS256 (last good key) → {r2.status}')
        got = await sse.wait(lambda s: any(e['data'] == 'after-bad-hup' for e in s.events), 2) if r.status == 200 else None
        R.check('sighup: after the failed reload the SSE stream opened before is still connected',
                not sse.ended, f'ended; tail {sse.tail()} (got the message: {got})')
    finally:
        if sse:
            sse.close()
        for w in (w1, w2):
            if w:
                await w.close()
        b.stop()


async def main():
    d = mktemp('rtb-auth-keys-')
    await asyncio.wait_for(keys_cases(d), 50)
    await asyncio.wait_for(sighup_cases(d), 30)


R.run(main)

#!/usr/bin/python3
"""Auth configuration around the token checks: auth.anonymous patterns (alone and mixed with
token-only topics, tokenless rt.v1 not closed by auth_timeout when something is anonymous),
auth.cookie and auth.jwt.claim renamed, multi-topic subscriptions with one topic outside the
claim, leeway not extending a live connection's exp, NumericDate with a fraction (RFC 7519),
case-insensitive Bearer scheme (RFC 7235), tokens without exp refused unless auth.jwt.require_exp
is false (RTB_AUTH_JWT_REQUIRE_EXP).
"""
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import (Report, Broker, BrokerError, claims, sign, SSE, WS, bearer, http_req, is_type, trunc)  # noqa: E402

R = Report(__file__, hard_timeout=100)
SECRET = 'misc-secret-0123456789abcdef-0123456789abcdef'
AUTH_TIMEOUT = 1.0
PERMS = {'sub': ['chat.*'], 'pub': ['chat.*']}


def tok(**kw):
    """A token carrying the permissions in the renamed claim `perms` (auth.jwt.claim: perms)."""
    kw.setdefault('rt', None)
    kw.setdefault('perms', PERMS)
    return sign(claims(**kw), SECRET)


def st(r):
    return f'{r.status} {r.error}' if r.status != 200 else '200'


async def sse_outcome(port, path, headers=None):
    s = await SSE.open(port, path, headers)
    try:
        if s.status == 200:
            return '200' if await s.wait_ok(3) else '200 without ": ok"'
        return st(s.resp)
    finally:
        s.close()


async def http_cases(port):
    good = tok()
    cases = [
        # (name, method, path, headers, expected)
        ('anonymous: sse public.x without a token → 200', 'SSE', '/sub/public.x', {}, '200'),
        ('anonymous: longpoll public.x without a token → 200', 'GET', '/poll?topic=public.x&timeout=1', {}, '200'),
        ('anonymous: pub public.x without a token → 200', 'POST', '/pub/public.x', {}, '200'),
        ('anonymous: sse chat.room1 (not anonymous) without a token → 401', 'SSE', '/sub/chat.room1', {}, '401 unauthorized'),
        ('anonymous: pub chat.room1 (not anonymous) without a token → 401', 'POST', '/pub/chat.room1', {}, '401 unauthorized'),
        ('anonymous: sse public.> (the anonymous pattern itself) without a token → 200', 'SSE', '/sub/public.%3E', {}, '200'),
        ('anonymous: sse > (wider than the anonymous public.>) without a token → 401', 'SSE', '/sub/%3E', {}, '401 unauthorized'),
        ('anonymous: longpoll public.x + chat.room1 without a token → 401', 'GET', '/poll?topic=public.x&topic=chat.room1&timeout=1', {}, '401 unauthorized'),
        ('anonymous: longpoll public.x + chat.room1 with a chat.* token → 200', 'GET', '/poll?topic=public.x&topic=chat.room1&timeout=1', bearer(good), '200'),
        ('multi-topic: sse chat.room1 + news.x with a chat.* token → 403', 'SSE', '/sub?topic=chat.room1&topic=news.x', bearer(good), '403 forbidden'),
        ('multi-topic: longpoll chat.room1 + news.x with a chat.* token → 403', 'GET', '/poll?topic=chat.room1&topic=news.x&timeout=1', bearer(good), '403 forbidden'),
        ('auth.cookie sess_tok: token in cookie sess_tok → pub 200', 'POST', '/pub/chat.room1', {'Cookie': f'sess_tok={good}'}, '200'),
        ('auth.cookie sess_tok: token in cookie sess_tok → sse 200', 'SSE', '/sub/chat.room1', {'Cookie': f'a=b; sess_tok={good}'}, '200'),
        ('auth.cookie sess_tok: token in cookie rt_token (not the configured name) → 401', 'POST', '/pub/chat.room1', {'Cookie': f'rt_token={good}'}, '401 unauthorized'),
        ('auth.jwt.claim perms: permissions in perms → 200', 'POST', '/pub/chat.room1', bearer(good), '200'),
        ('auth.jwt.claim perms: permissions only in rt → 403', 'POST', '/pub/chat.room1',
         bearer(sign(claims(rt=PERMS), SECRET)), '403 forbidden'),
        ('Bearer scheme is case-insensitive (RFC 7235): "bearer <jwt>" → 200', 'POST', '/pub/chat.room1',
         {'Authorization': f'bearer {good}'}, '200'),
        ('exp with a fraction (RFC 7519 NumericDate), 1 h ahead → 200', 'POST', '/pub/chat.room1',
         bearer(tok(exp_in=None, exp=time.time() + 3600.5)), '200'),
        ('exp with a fraction, 1 h past → 401', 'POST', '/pub/chat.room1',
         bearer(tok(exp_in=None, exp=time.time() - 3600.5)), '401 unauthorized'),
        ('nbf with a fraction, 1 h ahead → 401', 'POST', '/pub/chat.room1',
         bearer(tok(nbf_in=None, nbf=time.time() + 3600.5)), '401 unauthorized'),
        ('nbf that is not a NumericDate (a string, 1 h ahead) → 401', 'POST', '/pub/chat.room1',
         bearer(tok(nbf=str(int(time.time()) + 3600))), '401 unauthorized'),
    ]
    for name, method, path, headers, exp in cases:
        if method == 'SSE':
            got = await sse_outcome(port, path, headers)
        else:
            r = await http_req(port, method, path, headers, body='x' if method == 'POST' else None)
            got = st(r)
        R.check(name, got == exp, f'expected {exp}, got {got}')


async def ws_cases(port):
    # raw WebSocket without a token: anonymous topic opens, token-only topic closes 4001
    for path, exp in (('/sub/public.x', 'open'), ('/sub/chat.room1', 'close 4001')):
        w = await WS.connect(port, path)
        try:
            code = await w.wait_close(0.5 if exp == 'open' else 3) if w.status == 101 else None
            got = ('open' if code is None else f'close {code}') if w.status == 101 else f'http {w.status or w.error}'
            R.check(f'anonymous: ws.raw {path} without a token → {exp}', got == exp, f'got {got}')
        finally:
            await w.close()
    # the bearer entry may come first; the server selects rt.v1 and never echoes the token
    good = tok()
    for protos, want, label in ((['bearer.' + good, 'rt.v1'], 'rt.v1', 'bearer entry offered before rt.v1 → 101 selecting rt.v1'),
                                (['bearer.' + good, 'rt.raw'], 'rt.raw', 'bearer entry offered before rt.raw → 101 selecting rt.raw'),
                                (['bearer.' + good], None, 'only a bearer entry offered → 101 raw, no Sec-WebSocket-Protocol echoed')):
        w = await WS.connect(port, '/sub/chat.room1', protocols=protos)
        try:
            code = await w.wait_close(0.4) if w.status == 101 else None
            hdr = w.proto_header or []
            R.check(f'ws subprotocol: {label}', w.status == 101 and w.protocol == want and code is None
                    and not any('bearer' in h for h in hdr) and (want is not None or not hdr),
                    f'got {w.status or w.error}, protocol {w.protocol!r}, Sec-WebSocket-Protocol {hdr}, close {code}')
        finally:
            await w.close()
    # tokenless rt.v1 while something is anonymous: no auth_timeout close; anonymous subs work
    w = await WS.connect(port, '/ws', protocols=['rt.v1'])
    try:
        if w.status != 101:
            R.fail('anonymous: tokenless rt.v1 is not closed by auth_timeout', f'upgrade: {w.status or w.error}')
            return
        code = await w.wait_close(AUTH_TIMEOUT + 1.5)
        R.check(f'anonymous: tokenless rt.v1 is not closed by auth_timeout ({AUTH_TIMEOUT:g} s) when something is anonymous',
                code is None, f'closed {code} (frames {trunc(w.msgs, 200)})')
        if code is not None:
            return
        await w.send({'op': 'sub', 'topic': 'public.x', 'ref': 1})
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 1, 2)
        R.check('anonymous: tokenless rt.v1 sub public.x → ok', is_type('ok', ref=1)(m), f'got {m!r}')
        await w.send({'op': 'sub', 'topic': 'chat.room1', 'ref': 2})
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 2, 2)
        R.check('anonymous: tokenless rt.v1 sub chat.room1 → error unauthorized/forbidden',
                isinstance(m, dict) and m.get('type') == 'error' and m.get('code') in ('unauthorized', 'forbidden'),
                f'got {m!r}')
        await w.send({'op': 'auth', 'token': tok(), 'ref': 3})
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 3, 2)
        await w.send({'op': 'sub', 'topic': 'chat.room1', 'ref': 4})
        m2 = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 4, 2)
        R.check('anonymous: rt.v1 auth op later → ok, then sub chat.room1 → ok',
                is_type('ok', ref=3)(m) and is_type('ok', ref=4)(m2), f'auth → {m!r}, sub → {m2!r}')
    finally:
        await w.close()


async def no_exp_cases(port, required):
    """A token without exp: 401 naming auth.jwt.require_exp on every transport (the default), or accepted."""
    t = tok(exp_in=None)
    label = 'require_exp true (default)' if required else 'RTB_AUTH_JWT_REQUIRE_EXP=false'
    want = '401 unauthorized' if required else '200'
    for what, method, path in (('pub', 'POST', '/pub/chat.room1'), ('longpoll', 'GET', '/poll?topic=chat.room1&timeout=0'),
                               ('sse', 'SSE', '/sub/chat.room1')):
        if method == 'SSE':
            s = await SSE.open(port, path, bearer(t))
            s.close()
            r = s.resp if s.status != 200 else None
            got = st(r) if r else '200'
        else:
            r = await http_req(port, method, path, bearer(t), body='x' if method == 'POST' else None)
            got = st(r)
        says = got == '200' or 'require_exp' in (r.json or {}).get('message', '')
        R.check(f'{label}: {what} with a token without exp → {want}', got == want and says,
                f'got {got} {r.text if r else ""}')
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.raw', 'bearer.' + t])
    try:
        code = await w.wait_close(0.5) if w.status == 101 else None
        R.check(f'{label}: ws with a token without exp → {"close 4001" if required else "open"}',
                w.status == 101 and code == (4001 if required else None), f'got {w.status or w.error}, close {code}')
    finally:
        await w.close()


async def leeway_live(port):
    """leeway 30 s accepts the token at connect, but the live connection still ends at exp."""
    exp = int(time.time()) + 3
    t = tok(exp_in=None, exp=exp)
    s = await SSE.open(port, '/sub/chat.room1', headers=bearer(t))
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.v1', 'bearer.' + t])
    try:
        if not R.check('leeway 30 s: sse and ws.v1 with a token expiring in ~3 s open', s.status == 200 and w.status == 101,
                       f'sse {s.status}, ws {w.status or w.error}'):
            return
        async def ws_close():
            c = await w.wait_close(exp - time.time() + 4)
            return c, time.time()
        (code, at_ws), _ = await asyncio.gather(ws_close(), s.wait(lambda s: s.ended, exp - time.time() + 4))
        R.check('leeway 30 s does not extend a live ws.v1: close 4001 at exp', code == 4001 and at_ws <= exp + 2.5,
                f'close {code} at exp{at_ws - exp:+.1f} s')
        ev = any(e['event'] == 'rt.expired' for e in s.events)
        R.check('leeway 30 s does not extend a live SSE stream: rt.expired at exp', ev and s.ended and s.ended_at <= exp + 2.5,
                f'rt.expired {"seen" if ev else "missing"}, ended {s.ended} at exp{((s.ended_at or time.time()) - exp):+.1f} s')
    finally:
        s.close()
        await w.close()


async def main():
    cfg = {'plugins': {'load': ['sse', 'longpoll', 'websocket']},
           'auth': {'anonymous': {'subscribe': ['public.>'], 'publish': ['public.>']}, 'cookie': 'sess_tok',
                    'jwt': {'secret': SECRET, 'claim': 'perms', 'leeway': '30s'}},
           'websocket': {'auth_timeout': f'{AUTH_TIMEOUT:g}s'},
           'limits': {'connections_per_ip': 100000, 'publish_per_subject': 100000}}
    try:
        b = Broker(cfg, name='misc broker').start()
    except BrokerError as e:
        R.fail('start broker (anonymous public.>, cookie sess_tok, claim perms, leeway 30s)', e)
        return
    try:
        await asyncio.wait_for(asyncio.gather(http_cases(b.port), ws_cases(b.port), leeway_live(b.port),
                                              no_exp_cases(b.port, True)), 40)
        R.check('broker alive after the cases', b.alive(), f'exited {b.proc.returncode}\n{b.log()}')
    finally:
        b.stop()
    try:
        b = Broker(cfg, name='require_exp false', env={'RTB_AUTH_JWT_REQUIRE_EXP': 'false'}).start()
    except BrokerError as e:
        R.fail('start broker (RTB_AUTH_JWT_REQUIRE_EXP=false)', e)
        return
    try:
        await asyncio.wait_for(no_exp_cases(b.port, False), 20)
    finally:
        b.stop()


R.run(main)

#!/usr/bin/python3
"""Token lifetime on live connections: rt.v1 `expiring` then close 4001 at exp, refresh with
op:auth keeps a connection alive, a narrowing refresh drops subscriptions, raw WebSocket
4001 at exp, SSE `event: rt.expired`, long-poll held past exp → 401, tokenless rt.v1 auth
op, auth_timeout → 4001. Tokens expire 2-3 s ahead; auth.jwt.leeway is 0s.
"""
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import (Report, Broker, BrokerError, claims, sign, SSE, WS, bearer, publish, http_req,  # noqa: E402
                     is_type, trunc)

R = Report(__file__, hard_timeout=110)
SECRET = 'live-secret-0123456789abcdef-0123456789abcdef'
AUTH_TIMEOUT = 2.0
ALL = {'sub': ['chat.*', 'news.*'], 'pub': ['chat.*', 'news.*']}


def tok(exp_in=600, rt=None, sub='user42', exp_at=None):
    c = claims(sub=sub, rt=rt or ALL, exp_in=exp_in)
    if exp_at is not None:
        c['exp'] = exp_at
    return sign(c, SECRET)


def exp_soon(secs=3):
    """An exp about `secs` seconds ahead (whole seconds, so 2-3 s when secs=3); returns (exp, token)."""
    exp = int(time.time()) + secs
    return exp, tok(exp_at=exp)


PUBTOK = None


async def pub(port, topic, body):
    r = await publish(port, topic, body, headers=bearer(PUBTOK))
    if r.status != 200:
        raise AssertionError(f'publish {topic}: {r.brief()}')
    return r.json['id']


async def case(name, fn, *args):
    try:
        await asyncio.wait_for(fn(*args), 25)
    except Exception as e:  # noqa: BLE001
        R.fail(name, f'{type(e).__name__}: {e}')


async def v1_expiring_then_4001(port):
    exp, t = exp_soon(3)
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.v1', 'bearer.' + t])
    try:
        if not R.check('ws.v1: upgrade with a token expiring in ~3 s → 101 rt.v1', w.status == 101 and w.protocol == 'rt.v1',
                       f'got {w.status or w.error}, protocol {w.protocol!r}'):
            return
        t0 = time.time()
        m = await w.wait_msg(is_type('expiring'), 2)
        R.check('ws.v1: {"type":"expiring","in_s":N} sent at once when exp is < 60 s away (N ≤ 60, ≈ the time left)',
                m is not None and isinstance(m.get('in_s'), (int, float)) and 0 <= m['in_s'] <= 4
                and time.time() - t0 < 1.5,
                f'got {m!r} after {time.time() - t0:.2f} s; frames {trunc(w.msgs, 200)}; close {w.close_code}')
        code = await w.wait_close(exp - time.time() + 3)
        at = time.time()
        R.check('ws.v1: close 4001 at exp', code == 4001 and exp - 1.0 <= at <= exp + 2.5,
                f'close {code} at exp{at - exp:+.2f} s (frames {trunc(w.msgs, 200)})')
    finally:
        await w.close()


async def v1_expiring_long(port):
    # exp 64 s ahead: the notice must come before exp with in_s <= 60, i.e. within ~4-5 s
    exp = int(time.time()) + 64
    w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + tok(exp_at=exp)])
    try:
        if w.status != 101:
            R.fail('ws.v1: expiring notice for a token 64 s from exp comes with in_s ≤ 60', f'upgrade: {w.status or w.error}')
            return
        m = await w.wait_msg(is_type('expiring'), 8)
        left = exp - time.time()
        R.check('ws.v1: expiring notice for a token 64 s from exp comes with in_s ≤ 60',
                m is not None and isinstance(m.get('in_s'), (int, float)) and m['in_s'] <= 60 and abs(m['in_s'] - left) <= 3,
                f'got {m!r} with {left:.1f} s left (frames {trunc(w.msgs, 200)}, close {w.close_code})')
    finally:
        await w.close()


async def v1_refresh(port):
    exp, t = exp_soon(3)
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.v1', 'bearer.' + t])
    try:
        if w.status != 101:
            R.fail('ws.v1: refresh before exp keeps the connection', f'upgrade: {w.status or w.error}')
            return
        m = await w.wait_msg(is_type('expiring'), 2)
        if m is None:
            R.info(f'ws.v1 refresh: no expiring notice (frames {trunc(w.msgs, 200)}); refreshing anyway')
        await w.send({'op': 'auth', 'token': tok(exp_in=600), 'ref': 'r1'})
        ok = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 'r1', 2)
        R.check('ws.v1: op auth with a fresh token → {"type":"ok","ref":"r1"}', is_type('ok', ref='r1')(ok),
                f'got {ok!r} (close {w.close_code})')
        code = await w.wait_close(exp - time.time() + 2)
        R.check('ws.v1: refreshed connection stays open past the old exp', code is None,
                f'closed {code} at exp{time.time() - exp:+.2f} s')
        if code is None:
            mid = await pub(port, 'chat.room1', 'after-refresh')
            m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('type') == 'msg' and m.get('id') == mid, 3)
            R.check('ws.v1: refreshed connection keeps receiving', m is not None and m.get('data') == 'after-refresh',
                    f'no msg {mid} (frames {trunc(w.msgs, 300)}, close {w.close_code})')
    finally:
        await w.close()


async def raw_4001(port):
    exp, t = exp_soon(3)
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.raw', 'bearer.' + t])
    try:
        if not R.check('ws.raw: upgrade with a token expiring in ~3 s → 101 rt.raw', w.status == 101 and w.protocol == 'rt.raw',
                       f'got {w.status or w.error}, protocol {w.protocol!r}'):
            return
        mid = await pub(port, 'chat.room1', 'before-exp')
        m = await w.wait_msg(lambda m: m == 'before-exp', 2)
        R.check('ws.raw: receives before exp', m is not None, f'frames {trunc(w.msgs, 200)}, close {w.close_code} (id {mid})')
        code = await w.wait_close(exp - time.time() + 3)
        at = time.time()
        R.check('ws.raw: close 4001 at exp', code == 4001 and exp - 1.0 <= at <= exp + 2.5,
                f'close {code} at exp{at - exp:+.2f} s (frames {trunc(w.msgs, 200)})')
    finally:
        await w.close()


async def sse_expired(port):
    exp, t = exp_soon(3)
    s = await SSE.open(port, '/sub/chat.room1', headers=bearer(t))
    try:
        if not R.check('sse: token expiring in ~3 s → 200 and ": ok"', s.status == 200 and await s.wait_ok(3),
                       f'got {s.status} {s.tail() if s.status == 200 else s.resp.brief()}'):
            return
        await pub(port, 'chat.room1', 'sse-before-exp')
        await s.wait(lambda s: any(e['data'] == 'sse-before-exp' for e in s.events), 2)
        await s.wait(lambda s: s.ended, exp - time.time() + 3)
        ev = [e for e in s.events if e['event'] == 'rt.expired']
        at = s.ended_at or time.time()
        R.check('sse: event rt.expired at exp, then the stream ends',
                ev and s.ended and exp - 1.0 <= at <= exp + 2.5,
                f'rt.expired {"seen" if ev else "missing"}, ended {s.ended} at exp{at - exp:+.2f} s; tail {s.tail()}')
    finally:
        s.close()


async def longpoll_401(port):
    exp, t = exp_soon(3)
    t0 = time.time()
    r = await http_req(port, 'GET', '/poll?topic=chat.lpexp&timeout=20', bearer(t), timeout=25)
    at = time.time()
    R.check('longpoll: held past exp → 401 unauthorized (at exp, not at the poll timeout)',
            r.status == 401 and r.error == 'unauthorized' and at <= exp + 2.5,
            f'got {r.brief()} after {at - t0:.1f} s (exp{at - exp:+.2f} s)')


async def narrowing_refresh(port):
    w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + tok(exp_in=600)])
    try:
        if w.status != 101:
            R.fail('ws.v1: narrowing refresh', f'upgrade: {w.status or w.error}')
            return
        for ref, topic in (('s1', 'chat.*'), ('s2', 'news.*')):
            await w.send({'op': 'sub', 'topic': topic, 'ref': ref})
            m = await w.wait_msg(lambda m, ref=ref: isinstance(m, dict) and m.get('ref') == ref, 2)
            if not is_type('ok', ref=ref)(m):
                R.fail('ws.v1: narrowing refresh: subscribe chat.* and news.*', f'sub {topic}: got {m!r}')
                return
        nid = await pub(port, 'news.a', 'news-before')
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('id') == nid, 2)
        if m is None:
            R.fail('ws.v1: narrowing refresh: news.a arrives before', f'frames {trunc(w.msgs, 300)}')
            return
        await w.send({'op': 'auth', 'token': tok(exp_in=600, rt={'sub': ['chat.*'], 'pub': []}), 'ref': 'a1'})
        ok = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 'a1', 2)
        R.check('ws.v1: narrowing refresh → ok', is_type('ok', ref='a1')(ok), f'got {ok!r} (close {w.close_code})')
        drop = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('type') == 'error' and m.get('topic') == 'news.*', 2)
        R.check('ws.v1: narrowing refresh announces the dropped news.* with {"type":"error","code":"forbidden","topic":"news.*"}',
                drop is not None and drop.get('code') == 'forbidden' and isinstance(drop.get('message'), str),
                f'got {drop!r}; frames {trunc(w.msgs, 400)}')
        n0 = len(w.msgs)
        nid = await pub(port, 'news.b', 'news-after')
        cid = await pub(port, 'chat.b', 'chat-after')
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('id') == cid, 3)
        await asyncio.sleep(0.3)
        while await w.recv(0.05) is not None:
            pass
        later = w.msgs[n0:]
        R.check('ws.v1: after the narrowing refresh chat.* still arrives and news.* no longer does',
                m is not None and not any(isinstance(x, dict) and x.get('id') == nid for x in later),
                f'chat.b {"arrived" if m else "missing"}; frames after refresh {trunc(later, 400)}; close {w.close_code}')
    finally:
        await w.close()


async def tokenless_auth_op(port):
    w = await WS.connect(port, '/ws', protocols=['rt.v1'])
    try:
        if w.status != 101:
            R.fail('ws.v1: tokenless, first frame op auth → ok', f'upgrade: {w.status or w.error}')
            return
        await w.send({'op': 'auth', 'token': tok(exp_in=600), 'ref': 1})
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 1, 2)
        if not R.check('ws.v1: tokenless, first frame {"op":"auth","token":…,"ref":1} → {"type":"ok","ref":1}',
                       is_type('ok', ref=1)(m), f'got {m!r} (close {w.close_code})'):
            return
        await w.send({'op': 'sub', 'topic': 'chat.room1', 'ref': 2})
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 2, 2)
        ok = is_type('ok', ref=2)(m)
        if ok:
            mid = await pub(port, 'chat.room1', 'after-auth-op')
            got = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('id') == mid, 2)
            ok = got is not None
        code = await w.wait_close(AUTH_TIMEOUT + 0.5)
        R.check('ws.v1: after the auth op it may sub and receive, and is not closed by auth_timeout',
                ok and code is None, f'sub reply {m!r}; close {code}; frames {trunc(w.msgs, 300)}')
    finally:
        await w.close()


async def auth_timeout(port):
    t0 = time.time()
    w = await WS.connect(port, '/ws', protocols=['rt.v1'])
    try:
        if w.status != 101:
            R.fail(f'ws.v1: tokenless and silent → 4001 after auth_timeout ({AUTH_TIMEOUT:g} s)', f'upgrade: {w.status or w.error}')
            return
        code = await w.wait_close(AUTH_TIMEOUT + 3)
        el = time.time() - t0
        R.check(f'ws.v1: tokenless and silent → 4001 after auth_timeout ({AUTH_TIMEOUT:g} s)',
                code == 4001 and AUTH_TIMEOUT - 0.5 <= el <= AUTH_TIMEOUT + 2.5,
                f'close {code} after {el:.2f} s (frames {trunc(w.msgs, 200)})')
    finally:
        await w.close()


async def main():
    global PUBTOK
    PUBTOK = tok(exp_in=3600, sub='publisher')
    cfg = {'plugins': {'load': ['sse', 'longpoll', 'websocket']},
           'auth': {'jwt': {'secret': SECRET, 'leeway': '0s'}},
           'websocket': {'auth_timeout': f'{AUTH_TIMEOUT:g}s'},
           'limits': {'connections_per_ip': 100000, 'publish_per_subject': 100000, 'publish_per_connection': 100000}}
    try:
        b = Broker(cfg, name='live broker').start()
    except BrokerError as e:
        R.fail('start broker (jwt.secret, leeway 0s, websocket.auth_timeout 2s)', e)
        return
    try:
        # independent cases run side by side (each waits for its own token's exp)
        await asyncio.gather(
            case('ws.v1 expiring/4001', v1_expiring_then_4001, b.port),
            case('ws.v1 refresh', v1_refresh, b.port),
            case('ws.raw 4001 at exp', raw_4001, b.port),
            case('sse rt.expired', sse_expired, b.port),
            case('longpoll 401 past exp', longpoll_401, b.port),
            case('ws.v1 narrowing refresh', narrowing_refresh, b.port),
            case('ws.v1 tokenless auth op', tokenless_auth_op, b.port),
            case('ws.v1 auth_timeout', auth_timeout, b.port),
            case('ws.v1 expiring in_s ≤ 60', v1_expiring_long, b.port),
        )
        R.check('broker alive after the live-expiry cases', b.alive(), f'exited {b.proc.returncode}\n{b.log()}')
    finally:
        b.stop()


R.run(main)

#!/usr/bin/python3
"""Rate limits: limits.connections_per_ip (SSE, long-poll, WebSocket subscribe requests),
limits.publish_per_subject (per token `sub`, per client IP when anonymous) → 429
rate_limited with Retry-After, recovered after a second; limits.publish_per_connection on
rt.v1 → error rate_limited, then close 4029 for a connection that keeps going;
rtbroker_rate_limited_total counts them.

Bursts are 3 × the limit, sent concurrently, so that they fall into at most two one-second
windows: at least one request must be refused and at most 2 × limit may pass.
"""
import asyncio
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import (Report, each_broker, claims, sign, SSE, WS, bearer, http_req, metric_sum,  # noqa: E402
                     trunc)

R = Report(__file__, hard_timeout=100)
SECRET = 'ratelimit-secret-0123456789abcdef-0123456789abcdef'
LIMIT = 5
BURST = 3 * LIMIT
RT = {'sub': ['>'], 'pub': ['>']}
seen_429 = 0
OTHER_IP = '127.0.0.2'  # Linux routes all of 127/8 to lo: a second client address


def tok(sub):
    return sign(claims(sub=sub, rt=RT), SECRET)


def check_429s(name, results):
    """results: list of Resp-like (status, error, h). Checks the burst outcome."""
    global seen_429
    statuses = [r.status for r in results]
    n200 = statuses.count(200)
    refused = [r for r in results if r.status == 429]
    seen_429 += len(refused)
    ok = refused and n200 >= 1 and n200 <= 2 * LIMIT and n200 + len(refused) == len(results)
    if not R.check(f'{name}: burst of {BURST} with limit {LIMIT}/s → 429 for the excess', ok,
                   f'statuses {statuses}'):
        return
    bad = [r for r in refused if r.error != 'rate_limited']
    R.check(f'{name}: 429 body is {{"error":"rate_limited",…}}', not bad, f'got {trunc(bad[0].text, 200) if bad else ""}')
    ra = [r.h('retry-after') for r in refused]
    R.check(f'{name}: 429 carries Retry-After (seconds)', all(x is not None and re.fullmatch(r'\d+', x.strip()) for x in ra),
            f'Retry-After values {ra}')


async def sse_status(port, token, src=None):
    s = await SSE.open(port, '/sub/chat.room1', headers=bearer(token), src=src)
    if s.status == 200:
        await s.wait_ok(2)
    s.close()
    return s.resp


async def poll_status(port, token):
    return await http_req(port, 'GET', '/poll?topic=chat.room1&timeout=1', bearer(token))


async def pub_status(port, token, topic='chat.room1', src=None):
    return await http_req(port, 'POST', f'/pub/{topic}', bearer(token) if token else {}, body='x', src=src)


async def next_window():
    await asyncio.sleep(1.3)


async def http_limits(port):
    alice = tok('alice')
    # subscribe requests per client IP
    for name, fn in (('sse', sse_status), ('longpoll', poll_status)):
        await next_window()
        rs = await asyncio.gather(*(fn(port, alice) for _ in range(BURST)))
        check_429s(f'{name} connections_per_ip', rs)
        if name == 'sse':
            # the budget is per client IP: another loopback address is not limited meanwhile
            r = await sse_status(port, alice, src=OTHER_IP)
            R.check(f'sse connections_per_ip: another client IP ({OTHER_IP}) is not limited meanwhile → 200',
                    r.status == 200, f'got {r.brief()}')
        await next_window()
        r = await fn(port, alice)
        R.check(f'{name} connections_per_ip: recovered after a second → 200', r.status == 200, f'got {r.brief()}')

    # WebSocket upgrades count as subscribe requests: refused with 429 (or, after the upgrade, 4029)
    await next_window()
    ws = await asyncio.gather(*(WS.connect(port, '/sub/chat.room1', protocols=['rt.raw', 'bearer.' + alice]) for _ in range(BURST)))
    outcomes = []
    for w in ws:
        if w.status == 101:
            code = await w.wait_close(0.3)
            outcomes.append('open' if code is None else f'close {code}')
        else:
            outcomes.append(f'http {w.status}' if w.status else w.error)
    for w in ws:
        await w.close()
    nopen = outcomes.count('open')
    nref = sum(1 for o in outcomes if o in ('http 429', 'close 4029'))
    R.check(f'ws connections_per_ip: burst of {BURST} upgrades → the excess refused (429 or close 4029)',
            nref >= 1 and 1 <= nopen <= 2 * LIMIT and nopen + nref == BURST, f'outcomes {outcomes}')
    await next_window()
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.raw', 'bearer.' + alice])
    code = await w.wait_close(0.3) if w.status == 101 else None
    await w.close()
    R.check('ws connections_per_ip: recovered after a second → 101 open', w.status == 101 and code is None,
            f'got {w.status or w.error}, close {code}')

    # publishes per token subject
    await next_window()
    rs = await asyncio.gather(*(pub_status(port, alice) for _ in range(BURST)))
    check_429s('pub publish_per_subject (token sub alice)', rs)
    r = await pub_status(port, tok('bob'))
    R.check('pub publish_per_subject: another subject (bob) is not limited meanwhile → 200', r.status == 200, f'got {r.brief()}')
    await next_window()
    r = await pub_status(port, alice)
    R.check('pub publish_per_subject: alice recovered after a second → 200', r.status == 200, f'got {r.brief()}')

    # rt.v1 pubs are publishes of the token's subject too: they share the per-subject budget
    await next_window()
    dave = tok('dave')
    w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + dave])
    try:
        if w.status == 101:
            for i in range(BURST):
                await w.send({'op': 'pub', 'topic': 'chat.room1', 'data': i, 'ref': i})
            replies = {}
            deadline = time.time() + 3
            while len(replies) < BURST and time.time() < deadline and not w.closed_seen:
                m = await w.recv(deadline - time.time())
                if isinstance(m, dict) and m.get('ref') in range(BURST):
                    replies[m['ref']] = m
            codes = [replies[i].get('code', 'ok') if i in replies else None for i in range(BURST)]
            R.check(f'ws.v1 publish_per_subject: {BURST} pubs by one subject on one connection → the excess get error rate_limited',
                    'rate_limited' in codes and 1 <= codes.count('ok') <= 2 * LIMIT, f'replies {codes}; close {w.close_code}')
            r = await pub_status(port, dave)
            seen = r.status
            R.check('pub publish_per_subject: the same subject over HTTP right after its rt.v1 burst → 429 (one budget per subject)',
                    r.status == 429, f'got {r.brief()}')
            if seen == 429:
                global seen_429
                seen_429 += 1
        else:
            R.fail('ws.v1 publish_per_subject: connect', f'got {w.status or w.error}')
    finally:
        await w.close()

    # anonymous publishes: per client IP
    await next_window()
    rs = await asyncio.gather(*(pub_status(port, None, 'anon.x') for _ in range(BURST)))
    check_429s('pub publish_per_subject (anonymous, per IP)', rs)
    r = await pub_status(port, None, 'anon.x', src=OTHER_IP)
    R.check(f'pub publish_per_subject (anonymous): another client IP ({OTHER_IP}) is not limited meanwhile → 200',
            r.status == 200, f'got {r.brief()}')
    await next_window()
    r = await pub_status(port, None, 'anon.x')
    R.check('pub publish_per_subject (anonymous): recovered after a second → 200', r.status == 200, f'got {r.brief()}')

    m = await metric_sum(port, 'rtbroker_rate_limited_total')
    R.check('metrics: rtbroker_rate_limited_total counts the 429s', m is not None and m >= seen_429,
            f'rtbroker_rate_limited_total {m}, 429s seen {seen_429}')


async def ws_limits(port):
    t = tok('carol')
    w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + t])
    try:
        if w.status != 101:
            R.fail('ws.v1 publish_per_connection: connect', f'got {w.status or w.error}')
            return
        n = LIMIT + 3
        for i in range(n):
            await w.send({'op': 'pub', 'topic': 'chat.room1', 'data': i, 'ref': i})
        replies = {}
        deadline = time.time() + 3
        while len(replies) < n and time.time() < deadline:
            m = await w.recv(deadline - time.time())
            if m is None and w.closed_seen:
                break
            if isinstance(m, dict) and m.get('ref') in range(n) and m.get('type') in ('ok', 'error'):
                replies[m['ref']] = m
        oks = [r for r in replies.values() if r['type'] == 'ok']
        limited = [r for r in replies.values() if r['type'] == 'error' and r.get('code') == 'rate_limited']
        R.check(f'ws.v1 publish_per_connection: {n} pubs at once with limit {LIMIT}/s → the excess get error rate_limited',
                len(replies) == n and limited and 1 <= len(oks) <= 2 * LIMIT and len(oks) + len(limited) == n,
                f'{len(oks)} ok, {len(limited)} rate_limited of {len(replies)} replies: {trunc(list(replies.values()), 400)}; close {w.close_code}')
        await next_window()
        await w.send({'op': 'pub', 'topic': 'chat.room1', 'data': 'again', 'ref': 'after'})
        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 'after', 2)
        R.check('ws.v1 publish_per_connection: recovered after a second → ok', isinstance(m, dict) and m.get('type') == 'ok',
                f'got {m!r} (close {w.close_code})')
    finally:
        await w.close()

    w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + t])
    try:
        if w.status != 101:
            R.fail('ws.v1 publish_per_connection: connect (flood)', f'got {w.status or w.error}')
            return
        sent = 0
        for i in range(400):
            if not await w.send({'op': 'pub', 'topic': 'chat.flood', 'data': i, 'ref': i}):
                break
            sent += 1
        code = await w.wait_close(4)
        limited = sum(1 for m in w.msgs if isinstance(m, dict) and m.get('code') == 'rate_limited')
        R.check('ws.v1 publish_per_connection: a connection that keeps publishing past the limit → close 4029',
                code == 4029, f'close {code} after {sent} pubs sent, {limited} rate_limited errors')
    finally:
        await w.close()


async def main():
    common = {'plugins': {'load': ['sse', 'longpoll', 'websocket']}}
    cfg1 = dict(common, auth={'anonymous': {'publish': ['anon.>']}, 'jwt': {'secret': SECRET}},
                limits={'connections_per_ip': LIMIT, 'publish_per_subject': LIMIT, 'publish_per_connection': 100000})
    cfg2 = dict(common, auth={'jwt': {'secret': SECRET}},
                limits={'connections_per_ip': 100000, 'publish_per_subject': 100000, 'publish_per_connection': LIMIT})
    await each_broker(R, (('connections_per_ip 5, publish_per_subject 5', cfg1, http_limits),
                          ('publish_per_connection 5', cfg2, ws_limits)), 45)


R.run(main)

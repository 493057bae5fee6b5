#!/usr/bin/python3
"""Origin checks and CORS: with http.allowed_origins set, an unlisted Origin is refused (403
before the upgrade for WebSocket; 403 forbidden for SSE, long-poll and publish), a listed
one works and gets Access-Control-Allow-Origin: <origin>, -Credentials: true, Vary: Origin;
the CORS preflight; with allowed_origins empty, Access-Control-Allow-Origin: * and no
credentials header. Requests carry valid tokens, so only the Origin decides.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import Report, each_broker, claims, sign, SSE, WS, bearer, http_req, trunc  # noqa: E402

R = Report(__file__, hard_timeout=100)
SECRET = 'origin-secret-0123456789abcdef-0123456789abcdef'
GOOD = 'https://a.example'
RT = {'sub': ['chat.*'], 'pub': ['chat.*']}


def cors_problems(headers_of, origin):
    """What is wrong with the CORS headers of a response to a listed origin ([] = fine)."""
    p = []
    acao = headers_of('access-control-allow-origin')
    if acao != origin:
        p.append(f'Access-Control-Allow-Origin {acao!r} (want {origin!r})')
    acac = headers_of('access-control-allow-credentials')
    if (acac or '').lower() != 'true':
        p.append(f'Access-Control-Allow-Credentials {acac!r} (want "true")')
    vary = headers_of('vary') or ''
    if 'origin' not in [v.strip().lower() for v in vary.split(',')]:
        p.append(f'Vary {vary!r} (want it to include Origin)')
    return p


def refusal(r):
    return r.status == 403 and r.error == 'forbidden'


async def listed_broker_cases(port, token):
    hdr = dict(bearer(token))
    # --- WebSocket
    for origin in ('https://evil.example', 'https://a.example.evil.example', 'https://a.example:8443', 'null',
                   'http://a.example'):
        w = await WS.connect(port, '/sub/chat.room1', headers=hdr, origin=origin)
        try:
            R.check(f'ws: unlisted Origin {origin} → 403 before the upgrade', w.status == 403,
                    f'got {"101 (upgraded; close " + str(await w.wait_close(1)) + ")" if w.status == 101 else (w.status or w.error)}')
        finally:
            await w.close()
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.v1', 'bearer.' + token], origin=GOOD)
    try:
        code = await w.wait_close(0.5) if w.status == 101 else None
        R.check(f'ws: listed Origin {GOOD} → 101 and stays open', w.status == 101 and code is None,
                f'got {w.status or w.error}, close {code}')
    finally:
        await w.close()

    # --- SSE
    for origin in ('https://evil.example', 'https://a.example.evil.example'):
        s = await SSE.open(port, '/sub/chat.room1', headers=dict(hdr, Origin=origin))
        s.close()
        R.check(f'sse: unlisted Origin {origin} → 403 forbidden', s.status == 403 and s.resp.error == 'forbidden',
                f'got {s.status} {s.resp.text if s.status != 200 else "(stream)"}')
    s = await SSE.open(port, '/sub/chat.room1', headers=dict(hdr, Origin=GOOD))
    try:
        ok = s.status == 200 and await s.wait_ok(3)
        R.check('sse: listed Origin → 200', ok, f'got {s.status} {s.resp.text if s.status != 200 else s.tail()}')
        if ok:
            pr = cors_problems(s.h, GOOD)
            R.check('sse: listed Origin → Access-Control-Allow-Origin: <origin>, -Credentials: true, Vary: Origin',
                    not pr, '; '.join(pr))
    finally:
        s.close()

    # --- long-poll
    r = await http_req(port, 'GET', '/poll?topic=chat.room1&timeout=1', dict(hdr, Origin='https://evil.example'))
    R.check('longpoll: unlisted Origin → 403 forbidden', refusal(r), f'got {r.brief()}')
    r = await http_req(port, 'GET', '/poll?topic=chat.room1&timeout=1', dict(hdr, Origin=GOOD))
    if R.check('longpoll: listed Origin → 200', r.status == 200, f'got {r.brief()}'):
        pr = cors_problems(r.h, GOOD)
        R.check('longpoll: listed Origin → CORS headers with credentials and Vary: Origin', not pr, '; '.join(pr))

    # --- publish
    for origin in ('https://evil.example', 'https://a.example.evil.example', 'null'):
        r = await http_req(port, 'POST', '/pub/chat.room1', dict(hdr, Origin=origin), body='x')
        R.check(f'pub: unlisted Origin {origin} → 403 forbidden', refusal(r), f'got {r.brief()}')
    r = await http_req(port, 'POST', '/pub/chat.room1', dict(hdr, Origin=GOOD), body='x')
    if R.check('pub: listed Origin → 200', r.status == 200, f'got {r.brief()}'):
        pr = cors_problems(r.h, GOOD)
        R.check('pub: listed Origin → CORS headers with credentials and Vary: Origin', not pr, '; '.join(pr))
    # the Origin check does not replace the token check
    r = await http_req(port, 'POST', '/pub/chat.room1', {'Origin': GOOD}, body='x')
    R.check('pub: listed Origin without a token → 401 unauthorized', r.status == 401 and r.error == 'unauthorized',
            f'got {r.brief()}')

    # --- preflight
    r = await http_req(port, 'OPTIONS', '/pub/x', {
        'Origin': GOOD, 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization, content-type, idempotency-key, x-event'})
    if R.check('preflight: OPTIONS /pub/x from a listed Origin → 204', r.status == 204, f'got {r.brief()}'):
        methods = [m.strip().upper() for m in (r.h('access-control-allow-methods') or '').split(',')]
        R.check('preflight: Access-Control-Allow-Methods includes POST', 'POST' in methods,
                f'Access-Control-Allow-Methods {r.h("access-control-allow-methods")!r}')
        allowed = [m.strip().lower() for m in (r.h('access-control-allow-headers') or '').split(',')]
        missing = [x for x in ('Authorization', 'Content-Type', 'Last-Event-ID', 'Idempotency-Key', 'X-Event')
                   if x.lower() not in allowed]
        R.check('preflight: Access-Control-Allow-Headers includes Authorization, Content-Type, Last-Event-ID, Idempotency-Key, X-Event',
                not missing, f'missing {missing} in {r.h("access-control-allow-headers")!r}')
        pr = cors_problems(r.h, GOOD)
        R.check('preflight: Access-Control-Allow-Origin: <origin> with credentials', not pr, '; '.join(pr))


async def open_broker_cases(port, token):
    hdr = dict(bearer(token), Origin='https://anywhere.example')
    r = await http_req(port, 'POST', '/pub/chat.room1', hdr, body='x')
    if R.check('allowed_origins empty: pub with any Origin → 200', r.status == 200, f'got {r.brief()}'):
        R.check('allowed_origins empty: pub → Access-Control-Allow-Origin: * and no Access-Control-Allow-Credentials',
                r.h('access-control-allow-origin') == '*' and r.h('access-control-allow-credentials') is None,
                f'ACAO {r.h("access-control-allow-origin")!r}, ACAC {r.h("access-control-allow-credentials")!r}')
    s = await SSE.open(port, '/sub/chat.room1', headers=hdr)
    try:
        if R.check('allowed_origins empty: sse with any Origin → 200', s.status == 200 and await s.wait_ok(3),
                   f'got {s.status} {s.resp.text}'):
            R.check('allowed_origins empty: sse → Access-Control-Allow-Origin: * and no credentials header',
                    s.h('access-control-allow-origin') == '*' and s.h('access-control-allow-credentials') is None,
                    f'ACAO {s.h("access-control-allow-origin")!r}, ACAC {s.h("access-control-allow-credentials")!r}')
    finally:
        s.close()
    r = await http_req(port, 'GET', '/poll?topic=chat.room1&timeout=1', hdr)
    if R.check('allowed_origins empty: longpoll with any Origin → 200', r.status == 200, f'got {r.brief()}'):
        R.check('allowed_origins empty: longpoll → Access-Control-Allow-Origin: * and no credentials header',
                r.h('access-control-allow-origin') == '*' and r.h('access-control-allow-credentials') is None,
                f'ACAO {r.h("access-control-allow-origin")!r}, ACAC {r.h("access-control-allow-credentials")!r}')
    w = await WS.connect(port, '/sub/chat.room1', protocols=['rt.raw', 'bearer.' + token], origin='https://anywhere.example')
    try:
        code = await w.wait_close(0.4) if w.status == 101 else None
        R.check('allowed_origins empty: ws with any Origin → 101 and open', w.status == 101 and code is None,
                f'got {w.status or w.error}, close {code}')
    finally:
        await w.close()
    r = await http_req(port, 'OPTIONS', '/pub/x', {'Origin': 'https://anywhere.example', 'Access-Control-Request-Method': 'POST'})
    R.check('allowed_origins empty: preflight → 204 with Access-Control-Allow-Origin: * and no credentials header',
            r.status == 204 and r.h('access-control-allow-origin') == '*' and r.h('access-control-allow-credentials') is None,
            f'got {r.status}, ACAO {r.h("access-control-allow-origin")!r}, ACAC {r.h("access-control-allow-credentials")!r}, body {trunc(r.text, 100)}')


async def main():
    token = sign(claims(rt=RT), SECRET)
    base = {'plugins': {'load': ['sse', 'longpoll', 'websocket']},
            'limits': {'connections_per_ip': 100000, 'publish_per_subject': 100000}}
    listed = dict(base, http={'allowed_origins': [GOOD]}, auth={'jwt': {'secret': SECRET}})
    opened = dict(base, auth={'jwt': {'secret': SECRET}})
    await each_broker(R, (('allowed_origins [https://a.example]', listed, lambda port: listed_broker_cases(port, token)),
                          ('allowed_origins empty', opened, lambda port: open_broker_cases(port, token))), 40)


R.run(main)

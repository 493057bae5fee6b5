#!/usr/bin/python3
"""Cookie tokens only from trusted origins (issue 17 item 3). A cookie is sent by the browser whatever
page makes the request, so a token read from the `rt_token` cookie counts only when the request's
Origin is the broker's own scheme://host or is named in http.allowed_origins (`*` is not a name);
otherwise it is ignored, as if absent. A page on another site that holds the victim's cookie gets
401 naming the cookie on SSE, long-poll, history and publish, close 4001 on a raw WebSocket, and an
`unauthorized` error for an rt.v1 sub, and never a message of the victim's topics; anonymous topics
stay open to it. A request without Origin may use the cookie (curl, a same-origin GET) unless
Sec-Fetch-Site says another site made it. Tokens in the Authorization header, token=, a subprotocol
entry or an rt.v1 auth frame are not affected, and come before the cookie.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import Report, each_broker, claims, sign, SSE, WS, bearer, http_req, trunc, is_type  # noqa: E402

R = Report(__file__, hard_timeout=90)
SECRET = 'cookie-origin-secret-0123456789abcdef-0123456789'
EVIL = 'https://evil.example'
LISTED = 'https://app.example'
RT = {'sub': ['private.victim.>'], 'pub': ['private.victim.>']}


def unauth_cookie(r):
    return r.status == 401 and r.error == 'unauthorized' and 'cookie' in (r.json or {}).get('message', '')


async def history_count(port, tok):
    r = await http_req(port, 'GET', '/history/private.victim.inbox?limit=100', bearer(tok))
    return len(r.json['messages']) if r.status == 200 and r.json else -1


async def ws_v1_steal(port, cookie, origin, tok):
    """The reproduction: a page on `origin` upgrades /ws with the victim's cookie and subscribes to the
    victim's topics. Returns (upgrade status, the sub's reply type/code, whether a victim message arrived)."""
    w = await WS.connect(port, '/ws', protocols=['rt.v1'], headers={'Cookie': cookie}, origin=origin)
    try:
        if w.status != 101:
            return w.status, None, False
        await w.send({'op': 'sub', 'topic': 'private.victim.>', 'ref': 's'})
        rep = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 's', 1)
        await http_req(port, 'POST', '/pub/private.victim.inbox', bearer(tok), body='secret-for-victim')
        got = await w.wait_msg(is_type('msg', data='secret-for-victim'), 1)
        rep = rep and (rep.get('code') or rep.get('type'))
        return 101, rep or f'closed {w.close_code}', got is not None
    finally:
        await w.close()


async def ws_open(port, path, origin, headers=None, protocols=None):
    """(status, close code within 0.4 s or None when still open)."""
    w = await WS.connect(port, path, protocols=protocols, headers=headers, origin=origin)
    try:
        return w.status, (await w.wait_close(0.4) if w.status == 101 else None)
    finally:
        await w.close()


async def sse_status(port, headers, path='/sub/private.victim.inbox'):
    s = await SSE.open(port, path, headers=headers)
    try:
        ok = s.status == 200 and await s.wait_ok(3)
        return s, ok
    finally:
        s.close()


async def foreign_origin_cases(port, tok):
    cookie = f'theme=dark; rt_token={tok}'
    own = f'http://127.0.0.1:{port}'
    ck = {'Cookie': cookie}

    st, rep, stolen = await ws_v1_steal(port, cookie, EVIL, tok)
    R.check('ws rt.v1: cookie from a foreign Origin → the sub is refused (unauthorized), no victim message',
            st == 101 and rep in ('unauthorized', 'closed 4001') and not stolen,
            f'upgrade {st}, sub reply {rep}, victim message received: {stolen}')
    st, code = await ws_open(port, '/sub/private.victim.inbox', EVIL, headers=ck)
    R.check('ws raw: cookie from a foreign Origin → close 4001', st == 101 and code == 4001, f'upgrade {st}, close {code}')

    s, _ = await sse_status(port, dict(ck, Origin=EVIL))
    R.check('sse: cookie from a foreign Origin → 401 naming the cookie', s.status == 401 and unauth_cookie(s.resp),
            f'got {s.status} {s.resp.text if s.status != 200 else "(stream)"}')
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(ck, Origin=EVIL))
    R.check('longpoll: cookie from a foreign Origin → 401 naming the cookie', unauth_cookie(r), f'got {r.brief()}')
    before = await history_count(port, tok)
    r = await http_req(port, 'POST', '/pub/private.victim.inbox', dict(ck, Origin=EVIL, **{'Content-Type': 'text/plain'}),
                       body='forged by evil')
    after = await history_count(port, tok)
    R.check('pub: cross-site text/plain POST with the cookie → 401, nothing published',
            unauth_cookie(r) and before == after and before >= 0, f'got {r.brief()}, history {before} → {after}')
    r = await http_req(port, 'POST', '/pub/private.victim.inbox', dict(ck, Origin='null'), body='x')
    R.check('pub: cookie with Origin: null (sandboxed frame) → 401', unauth_cookie(r), f'got {r.brief()}')
    r = await http_req(port, 'GET', '/history/private.victim.inbox', dict(ck, Origin=EVIL))
    R.check('history: cookie from a foreign Origin → 401', unauth_cookie(r), f'got {r.brief()}')
    # no Origin, but the browser says another site made it (an <img>/<script>/link GET)
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(ck, **{'Sec-Fetch-Site': 'cross-site'}))
    R.check('longpoll: cookie, no Origin, Sec-Fetch-Site: cross-site → 401', unauth_cookie(r), f'got {r.brief()}')
    # a look-alike of the own origin
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(ck, Origin=own + '.evil.example'))
    R.check('longpoll: cookie from Origin <own>.evil.example → 401', unauth_cookie(r), f'got {r.brief()}')

    # --- the same-origin page, and clients without Origin, keep working
    st, rep, got = await ws_v1_steal(port, cookie, own, tok)
    R.check('ws rt.v1: cookie from the own origin → subscribed, receives', st == 101 and rep == 'ok' and got,
            f'upgrade {st}, sub reply {rep}, message received: {got}')
    s, ok = await sse_status(port, dict(ck, Origin=own))
    R.check('sse: cookie from the own origin → 200', ok, f'got {s.status} {s.resp.text if s.status != 200 else s.tail()}')
    s, ok = await sse_status(port, dict(ck, **{'Sec-Fetch-Site': 'same-origin'}))
    R.check('sse: cookie, no Origin, Sec-Fetch-Site: same-origin (same-origin EventSource) → 200', ok,
            f'got {s.status} {s.resp.text if s.status != 200 else s.tail()}')
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', ck)
    R.check('longpoll: cookie, no Origin (not a browser) → 200', r.status == 200, f'got {r.brief()}')
    r = await http_req(port, 'POST', '/pub/private.victim.inbox', dict(ck, Origin=own), body='same-origin')
    R.check('pub: cookie from the own origin → 200', r.status == 200, f'got {r.brief()}')
    r = await http_req(port, 'POST', '/pub/private.victim.inbox',
                       dict(ck, Origin=f'https://127.0.0.1:{port}', **{'X-Forwarded-Proto': 'https'}), body='via-tls-proxy')
    R.check('pub: cookie behind a TLS proxy (X-Forwarded-Proto: https, Origin https://host) → 200', r.status == 200,
            f'got {r.brief()}')

    # the ignored cookie leaves what is open to anyone open
    s, ok = await sse_status(port, dict(ck, Origin=EVIL), '/sub/public.news')
    R.check('sse: anonymous topic with a cookie from a foreign Origin → 200 (the cookie is ignored, not an error)', ok,
            f'got {s.status} {s.resp.text if s.status != 200 else s.tail()}')

    # --- tokens the page's own code sends are not affected by the Origin, and come before the cookie
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(bearer(tok), Origin=EVIL))
    R.check('longpoll: Authorization header from a foreign Origin → 200', r.status == 200, f'got {r.brief()}')
    r = await http_req(port, 'GET', f'/poll?topic=private.victim.inbox&timeout=0&token={tok}', {'Origin': EVIL})
    R.check('longpoll: token= from a foreign Origin → 200', r.status == 200, f'got {r.brief()}')
    st, code = await ws_open(port, '/sub/private.victim.inbox', EVIL, headers=ck, protocols=['rt.raw', 'bearer.' + tok])
    R.check('ws raw: subprotocol token (and the cookie) from a foreign Origin → open', st == 101 and code is None,
            f'upgrade {st}, close {code}')
    w = await WS.connect(port, '/ws', protocols=['rt.v1'], headers=ck, origin=EVIL)
    try:
        ok = w.status == 101 and await w.send({'op': 'auth', 'token': tok, 'ref': 'a'}) and \
            await w.wait_msg(is_type('ok', ref='a'), 2) is not None
        R.check('ws rt.v1: first-frame auth (and the cookie) from a foreign Origin → ok', ok,
                f'upgrade {w.status or w.error}, frames {trunc(w.msgs, 200)}')
    finally:
        await w.close()


async def listed_cases(port, tok):
    ck = {'Cookie': f'rt_token={tok}'}
    s, ok = await sse_status(port, dict(ck, Origin=LISTED))
    R.check(f'allowed_origins [{LISTED}]: sse with the cookie from {LISTED} → 200', ok,
            f'got {s.status} {s.resp.text if s.status != 200 else s.tail()}')
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(ck, Origin=LISTED))
    R.check(f'allowed_origins [{LISTED}]: longpoll with the cookie from {LISTED} → 200', r.status == 200, f'got {r.brief()}')
    r = await http_req(port, 'POST', '/pub/private.victim.inbox', dict(ck, Origin=LISTED), body='x')
    R.check(f'allowed_origins [{LISTED}]: pub with the cookie from {LISTED} → 200', r.status == 200, f'got {r.brief()}')
    st, code = await ws_open(port, '/sub/private.victim.inbox', LISTED, headers=ck)
    R.check(f'allowed_origins [{LISTED}]: ws with the cookie from {LISTED} → open', st == 101 and code is None,
            f'upgrade {st}, close {code}')
    own = f'http://127.0.0.1:{port}'
    r = await http_req(port, 'POST', '/pub/private.victim.inbox', dict(ck, Origin=own), body='x')
    R.check(f'allowed_origins [{LISTED}]: the own origin, not listed → 403 (the Origin check comes first)',
            r.status == 403 and r.error == 'forbidden', f'got {r.brief()}')


async def star_cases(port, tok):
    ck = {'Cookie': f'rt_token={tok}'}
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(ck, Origin=EVIL))
    R.check('allowed_origins [*]: cookie from a foreign Origin → 401 (* names no origin)', unauth_cookie(r), f'got {r.brief()}')
    st, code = await ws_open(port, '/sub/private.victim.inbox', EVIL, headers=ck)
    R.check('allowed_origins [*]: ws with the cookie from a foreign Origin → close 4001', st == 101 and code == 4001,
            f'upgrade {st}, close {code}')
    r = await http_req(port, 'GET', '/poll?topic=private.victim.inbox&timeout=0', dict(bearer(tok), Origin=EVIL))
    R.check('allowed_origins [*]: Authorization header from a foreign Origin → 200', r.status == 200, f'got {r.brief()}')


async def main():
    tok = sign(claims(sub='victim', rt=RT), SECRET)
    base = {'plugins': {'load': ['sse', 'longpoll', 'websocket']},
            'auth': {'jwt': {'secret': SECRET}, 'anonymous': {'subscribe': ['public.>']}},
            'limits': {'connections_per_ip': 100000, 'publish_per_subject': 100000}}
    await each_broker(R, (('allowed_origins empty', base, lambda port: foreign_origin_cases(port, tok)),
                          (f'allowed_origins [{LISTED}]', dict(base, http={'allowed_origins': [LISTED]}), lambda port: listed_cases(port, tok)),
                          ('allowed_origins [*]', dict(base, http={'allowed_origins': ['*']}), lambda port: star_cases(port, tok))), 30)


R.run(main)

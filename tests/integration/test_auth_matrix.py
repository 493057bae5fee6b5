#!/usr/bin/python3
"""Auth matrix: every token case against every transport (SSE, long-poll, WebSocket raw,
WebSocket rt.v1, POST /pub), one PASS/FAIL line per cell with the exact status or close
code, then the rt.v1 op refusals, the auth-failure metric and the matrix totals.

Brokers: A (secret + public_key_file, algorithms [HS256, RS256], issuer and audience set,
leeway 30 s, nothing anonymous) and B (public_key_file only: the key-confusion target).
Keys are made with openssl in a temp dir; tokens with python3-jwt (the broken ones by hand).
"""
import asyncio
import os
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authlib import (Report, Broker, BrokerError, mktemp, make_rsa, read, claims, sign, sign_hmac_raw,  # noqa: E402
                     none_token, http_req, SSE, WS, bearer, metric_sum, is_type, trunc)

R = Report(__file__, hard_timeout=110)

SECRET = 'matrix-secret-0123456789abcdef-0123456789abcdef'
ISS = 'https://issuer.test'
AUD = 'rtbroker'
TRANSPORTS = ['sse', 'longpoll', 'ws.raw', 'ws.v1', 'pub']
SUB_TRANSPORTS = ['sse', 'longpoll', 'ws.raw', 'ws.v1']
WS_TRANSPORTS = ['ws.raw', 'ws.v1']
HTTP_TRANSPORTS = ['sse', 'longpoll', 'pub']
HIGH_LIMITS = {'connections_per_ip': 100000, 'publish_per_connection': 100000, 'publish_per_subject': 100000}


def q(topic):
    return urllib.parse.quote(topic, safe='.*-_')


def placement(tok, place, transport):
    """-> (query suffix, headers, subprotocols) for a token at a place ('default' = header on HTTP, subprotocol on WS)."""
    if tok is None:
        place = None
    elif place == 'default':
        place = 'subprotocol' if transport in WS_TRANSPORTS else 'header'
    mode = {'ws.raw': 'rt.raw', 'ws.v1': 'rt.v1'}.get(transport)
    protos = [mode] if transport == 'ws.v1' else None
    query, headers = '', {}
    if place == 'header':
        headers = bearer(tok)
    elif place == 'query':
        query = 'token=' + urllib.parse.quote(tok, safe='')
    elif place == 'cookie':
        headers = {'Cookie': f'theme=dark; rt_token={tok}; lang=en'}
    elif place == 'subprotocol':
        protos = [mode, 'bearer.' + tok]
    return query, headers, protos, place


def http_outcome(r):
    if r.status == 200:
        return '200'
    if not isinstance(r.json, dict) or not isinstance(r.json.get('message'), str):
        return f'{r.status} (body is not JSON {{"error","message"}}: {trunc(r.text, 120)})'
    return f'{r.status} {r.json.get("error")}'


async def attempt(transport, port, topic, tok, place, expect):
    query, headers, protos, place = placement(tok, place, transport)
    if transport == 'sse':
        path = f'/sub/{q(topic)}' + (f'?{query}' if query else '')
        s = await SSE.open(port, path, headers)
        try:
            if s.status == 200:
                return '200' if await s.wait_ok(3) else f'200 without ": ok" ({s.tail()})'
            return http_outcome(s.resp)
        finally:
            s.close()
    if transport == 'longpoll':
        path = f'/poll?topic={q(topic)}&timeout=1' + (f'&{query}' if query else '')
        r = await http_req(port, 'GET', path, headers, timeout=10)
        if r.status == 200 and not (isinstance(r.json, dict) and 'cursor' in r.json):
            return f'200 without a cursor: {trunc(r.text, 120)}'
        return http_outcome(r)
    if transport == 'pub':
        path = f'/pub/{q(topic)}' + (f'?{query}' if query else '')
        r = await http_req(port, 'POST', path, headers, body='matrix', timeout=10)
        if r.status == 200 and not (isinstance(r.json, dict) and isinstance(r.json.get('id'), str)):
            return f'200 without an id: {trunc(r.text, 120)}'
        return http_outcome(r)
    # WebSocket
    path = f'/sub/{q(topic)}' + (f'?{query}' if query else '')
    w = await WS.connect(port, path, protocols=protos, headers=headers)
    try:
        if w.status != 101:
            return f'http {w.status}' if w.status else f'handshake failed: {w.error}'
        mode = 'rt.raw' if transport == 'ws.raw' else 'rt.v1'
        if place == 'subprotocol':
            hdr = ', '.join(w.proto_header or [])
            if w.protocol != mode or 'bearer' in hdr:
                return f'101 with Sec-WebSocket-Protocol {hdr!r} (want exactly {mode!r})'
        elif transport == 'ws.v1' and w.protocol != 'rt.v1':
            return f'101 with subprotocol {w.protocol!r} (want rt.v1)'
        if expect == 'open':
            if transport == 'ws.v1':
                await w.send({'op': 'ping', 'ref': 'p1'})
                m = await w.wait_msg(is_type('ok', ref='p1'), 2)
                if m is None:
                    code = w.close_code
                    return f'close {code}' if code else f'open but no ok to ping (got {trunc(w.msgs, 150)})'
                await asyncio.sleep(0.2)
            code = await w.wait_close(0.5)
            return 'open' if code is None else f'close {code}'
        code = await w.wait_close(4)
        return 'open (not closed within 4 s)' if code is None else f'close {code}'
    finally:
        await w.close()


def expected(kind, transport):
    ws = transport in WS_TRANSPORTS
    return {'ok': 'open' if ws else '200',
            'unauth': 'close 4001' if ws else '401 unauthorized',
            'forbidden': 'close 4003' if ws else '403 forbidden'}[kind]


def short(exp):
    return exp.replace('close ', '').replace(' unauthorized', '').replace(' forbidden', '')


async def main():
    d = mktemp('rtb-auth-keys-')
    rsa_priv, rsa_pub = make_rsa(d, 'rsa')
    other_priv, _ = make_rsa(d, 'other')
    pem_priv = read(rsa_priv)
    pem_pub = read(rsa_pub)
    other_pem = read(other_priv)

    common = {'plugins': {'load': ['sse', 'longpoll', 'websocket']}, 'limits': HIGH_LIMITS,
              'websocket': {'auth_timeout': '2s'}}
    cfg_a = dict(common, auth={'cookie': 'rt_token', 'jwt': {
        'secret': SECRET, 'public_key_file': rsa_pub, 'algorithms': ['HS256', 'RS256'], 'leeway': '30s',
        'issuer': ISS, 'audience': AUD, 'claim': 'rt'}})
    cfg_b = dict(common, auth={'jwt': {'public_key_file': rsa_pub}})
    brokers = {}
    for name, cfg in (('A', cfg_a), ('B', cfg_b)):
        try:
            brokers[name] = Broker(cfg, name=f'broker {name}').start()
        except BrokerError as e:
            R.fail(f'start broker {name} ({"secret+public_key_file" if name == "A" else "public_key_file only"})', e)

    def good(**kw):
        kw.setdefault('iss', ISS)
        kw.setdefault('aud', AUD)
        return sign(claims(**kw), SECRET)

    std = good()
    # (label, token, place, {transport: topic}, kind, broker)
    sub_topic = {t: 'chat.room1' for t in SUB_TRANSPORTS}
    all_topic = dict(sub_topic, pub='chat.room1')
    cases = [
        ('valid, token in header', std, 'header', all_topic, 'ok', 'A'),
        ('valid, token in query', std, 'query', all_topic, 'ok', 'A'),
        ('valid, token in cookie', std, 'cookie', all_topic, 'ok', 'A'),
        ('valid, token in subprotocol', std, 'subprotocol', {t: 'chat.room1' for t in WS_TRANSPORTS}, 'ok', 'A'),
        ('valid RS256 token (public_key_file)', sign(claims(iss=ISS, aud=AUD), pem_priv, 'RS256'), 'default', all_topic, 'ok', 'A'),
        ('valid, aud array containing the audience', good(aud=['other', AUD]), 'default', all_topic, 'ok', 'A'),
        ('narrower wildcard (user.42.> grants user.42.*)', std, 'default', {t: 'user.42.*' for t in SUB_TRANSPORTS}, 'ok', 'A'),
        ('expired within leeway (exp -10 s, leeway 30 s)', good(exp_in=-10), 'default', {'pub': 'chat.room1'}, 'ok', 'A'),
        ('nbf within leeway (+10 s, leeway 30 s)', good(nbf_in=10), 'default', {'pub': 'chat.room1'}, 'ok', 'A'),
        ('no token', None, 'default', all_topic, 'unauth', 'A'),
        ('expired', good(exp_in=-120), 'default', all_topic, 'unauth', 'A'),
        ('expired token in query', good(exp_in=-120), 'query', all_topic, 'unauth', 'A'),
        ('expired token in cookie', good(exp_in=-120), 'cookie', all_topic, 'unauth', 'A'),
        ('nbf in the future', good(nbf_in=120), 'default', all_topic, 'unauth', 'A'),
        ('wrong signature', sign(claims(iss=ISS, aud=AUD), 'another-secret-0123456789abcdef-0123456789'), 'default', all_topic, 'unauth', 'A'),
        ('alg none', none_token(claims(iss=ISS, aud=AUD)), 'default', all_topic, 'unauth', 'A'),
        ('algorithm not configured (HS384 with the right secret)', sign(claims(iss=ISS, aud=AUD), SECRET, 'HS384'), 'default', all_topic, 'unauth', 'A'),
        ('RS256 signed by another key', sign(claims(iss=ISS, aud=AUD), other_pem, 'RS256'), 'default', all_topic, 'unauth', 'A'),
        ('key confusion: HS256 keyed with the RSA public key PEM (secret+public_key_file)', sign_hmac_raw(claims(iss=ISS, aud=AUD), pem_pub), 'default', all_topic, 'unauth', 'A'),
        ('key confusion: HS256 keyed with the RSA public key PEM (public_key_file only)', sign_hmac_raw(claims(), pem_pub), 'default', all_topic, 'unauth', 'B'),
        ('key confusion: HS256 keyed with the PEM minus its last newline (public_key_file only)', sign_hmac_raw(claims(), pem_pub.rstrip(b'\n')), 'default', all_topic, 'unauth', 'B'),
        ('wrong iss', good(iss='https://evil.test'), 'default', all_topic, 'unauth', 'A'),
        ('missing iss (issuer configured)', sign(claims(aud=AUD), SECRET), 'default', all_topic, 'unauth', 'A'),
        ('wrong aud', good(aud='someone-else'), 'default', all_topic, 'unauth', 'A'),
        ('malformed token', 'abc.def.ghi', 'default', all_topic, 'unauth', 'A'),
        ('missing rt claim', good(rt=None), 'default', all_topic, 'forbidden', 'A'),
        ('topic outside the claim', std, 'default', dict({t: 'news.x' for t in SUB_TRANSPORTS}, pub='chat.room2'), 'forbidden', 'A'),
        ('wildcard escalation (chat.* token asks chat.>; pub: chat.* grant publishes chat.a.b)',
         None, 'default', dict({t: 'chat.>' for t in SUB_TRANSPORTS}, pub='chat.a.b'), 'forbidden', 'A'),
        ('wildcard escalation (chat.* token asks >)', std, 'default', {t: '>' for t in SUB_TRANSPORTS}, 'forbidden', 'A'),
    ]
    esc_pub_tok = good(rt={'sub': ['chat.*'], 'pub': ['chat.*']})

    cells = []  # (name, transport, case label, coroutine factory)
    for label, tok, place, topics, kind, bname in cases:
        for tr in TRANSPORTS:
            if tr not in topics:
                continue
            t = tok
            if label.startswith('wildcard escalation (chat.* token asks chat.>'):
                t = esc_pub_tok if tr == 'pub' else std
            exp = expected(kind, tr)
            cells.append((f'{tr}: {label} → {short(exp)}', tr, label, bname, topics[tr], t, place, exp, kind))

    sem = asyncio.Semaphore(8)
    before = None
    if 'A' in brokers:
        try:
            before = await metric_sum(brokers['A'].port, 'rtbroker_auth_failures_total')
        except Exception as e:  # noqa: BLE001
            R.info(f'metrics before the matrix: {e}')

    async def run_cell(c):
        name, tr, label, bname, topic, tok, place, exp, kind = c
        if bname not in brokers:
            return f'broker {bname} did not start'
        async with sem:
            try:
                return await asyncio.wait_for(attempt(tr, brokers[bname].port, topic, tok, place,
                                                      'open' if kind == 'ok' else 'close'), 15)
            except Exception as e:  # noqa: BLE001
                return f'error: {type(e).__name__}: {e}'

    t0 = time.time()
    results = await asyncio.gather(*(run_cell(c) for c in cells))
    table = {}
    npass = nfail = 0
    for c, got in zip(cells, results):
        name, tr, label, bname, topic, tok, place, exp, kind = c
        ok = got == exp
        where = f'{topic}, token in {place if tok else "(none)"}'
        if R.check(name, ok, f'expected {exp}, got {got} ({where}, broker {bname})'):
            npass += 1
        else:
            nfail += 1
        table.setdefault(label, {})[tr] = 'ok' if ok else 'FAIL'
    R.info(f'{len(cells)} matrix cells in {time.time() - t0:.1f} s')

    # rt.v1 ops on /ws: refusals of individual ops on an authenticated connection
    ops_pass = ops_fail = 0
    if 'A' in brokers:
        port = brokers['A'].port
        w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + std])
        try:
            if w.status != 101:
                R.fail('ws.v1 ops: connect /ws with a valid token', f'got {w.status or w.error}')
                ops_fail += 1
            else:
                op_cases = [
                    ('sub chat.room1 → ok', {'op': 'sub', 'topic': 'chat.room1'}, 'ok', None),
                    ('sub chat.> with a chat.* token → error forbidden', {'op': 'sub', 'topic': 'chat.>'}, 'error', 'forbidden'),
                    ('sub > → error forbidden', {'op': 'sub', 'topic': '>'}, 'error', 'forbidden'),
                    ('sub news.x → error forbidden', {'op': 'sub', 'topic': 'news.x'}, 'error', 'forbidden'),
                    ('pub chat.room1 → ok with id', {'op': 'pub', 'topic': 'chat.room1', 'data': 'hi'}, 'ok', None),
                    ('pub chat.room2 (not granted) → error forbidden', {'op': 'pub', 'topic': 'chat.room2', 'data': 'hi'}, 'error', 'forbidden'),
                    ('pub user.42.x (sub-only grant) → error forbidden', {'op': 'pub', 'topic': 'user.42.x', 'data': 'hi'}, 'error', 'forbidden'),
                ]
                for i, (label, op, typ, code) in enumerate(op_cases):
                    ref = f'o{i}'
                    await w.send(dict(op, ref=ref))
                    m = await w.wait_msg(lambda m, ref=ref: isinstance(m, dict) and m.get('ref') == ref and m.get('type') in ('ok', 'error'), 3)
                    good_ = m is not None and m.get('type') == typ and (code is None or m.get('code') == code)
                    if good_ and label.startswith('pub chat.room1'):
                        good_ = isinstance(m.get('id'), str)
                    if R.check(f'ws.v1 op: {label}', good_,
                               f'got {m!r}' if m is not None else f'no reply with ref {ref} (close {w.close_code}; frames {trunc(w.msgs, 200)})'):
                        ops_pass += 1
                    else:
                        ops_fail += 1
        finally:
            await w.close()
        for label, tok in (('expired token', good(exp_in=-120)), ('missing rt claim, sub chat.room1', good(rt=None))):
            w = await WS.connect(port, '/ws', protocols=['rt.v1', 'bearer.' + tok])
            try:
                if label == 'expired token':
                    code = await w.wait_close(4) if w.status == 101 else None
                    ok = code == 4001
                    why = f'got {"close " + str(code) if code else (w.status or w.error)}'
                    nm = 'ws.v1 /ws without topic: expired token → 4001'
                else:
                    m = None
                    if w.status == 101:
                        await w.send({'op': 'sub', 'topic': 'chat.room1', 'ref': 'm1'})
                        m = await w.wait_msg(lambda m: isinstance(m, dict) and m.get('ref') == 'm1', 3)
                    ok = isinstance(m, dict) and m.get('type') == 'error' and m.get('code') == 'forbidden'
                    why = f'got {m!r} (status {w.status}, close {w.close_code})'
                    nm = 'ws.v1 op: missing rt claim, sub chat.room1 → error forbidden'
                if R.check(nm, ok, why):
                    ops_pass += 1
                else:
                    ops_fail += 1
            finally:
                await w.close()

        # auth failures are counted
        try:
            after = await metric_sum(port, 'rtbroker_auth_failures_total')
            n401 = sum(1 for c, got in zip(cells, results) if c[3] == 'A' and c[8] == 'unauth' and got == c[7])
            R.check('metrics: rtbroker_auth_failures_total counts the refused tokens',
                    after is not None and before is not None and after - before >= n401,
                    f'before {before}, after {after}; {n401} cells on broker A were refused with 401/4001')
        except Exception as e:  # noqa: BLE001
            R.fail('metrics: rtbroker_auth_failures_total counts the refused tokens', e)

    # tokens are credentials: they must not end up in the broker's log (signatures are unique per token)
    for name, b in brokers.items():
        if not b.alive():
            R.fail(f'broker {name} alive after the matrix', f'exited {b.proc.returncode}\n{b.log()}')
            continue
        b.stop()
        try:
            with open(b.log_path, 'rb') as f:
                log = f.read().decode('utf-8', 'replace')
        except OSError as e:
            log = ''
            R.info(f'broker {name} log: {e}')
        leaked = sorted({c[5].rsplit('.', 1)[-1] for c in cells if c[3] == name and c[5] and len(c[5].rsplit('.', 1)[-1]) >= 20
                         and c[5].rsplit('.', 1)[-1] in log})
        R.check(f'broker {name} log does not contain the tokens it was given', not leaked,
                f'{len(leaked)} token signatures appear in {b.log_path}, e.g. …{leaked[0] if leaked else ""}')

    for name, b in brokers.items():
        if b.proc.returncode not in (0, None):
            R.fail(f'broker {name} exits 0 on SIGTERM after the matrix', f'exit status {b.proc.returncode}\n{b.log()}')

    # totals
    width = max(len(l) for l in table) if table else 10
    R.info('matrix (rows: token case; columns: ' + ' '.join(TRANSPORTS) + ')')
    for label, row in table.items():
        print('  ' + label.ljust(width) + '  ' + ' '.join(row.get(t, '-').ljust(len(t)) for t in TRANSPORTS))
    print(f'INFO auth matrix: {len(cells)} cells ({len(cases)} token cases × {len(TRANSPORTS)} transports where they apply): '
           f'{npass} passed, {nfail} failed; rt.v1 op cells: {ops_pass} passed, {ops_fail} failed', flush=True)


R.run(main)

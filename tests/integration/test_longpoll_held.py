#!/usr/bin/python3
"""Held long-polls are cheap: on HTTP/1.1 the answer's head goes out when the poll is held and h2o lets the
request go, so a waiting poll costs the broker about what an idle WebSocket does; after the answer h2o gets the
connection back for the next poll. Checks the RSS per held poll (1,000 polls, one worker), that a publish answers
every one of them with a well-formed chunked JSON body, that the next poll on the same connection (sent after the
answer, or pipelined before it) is served, and that a client that closes while held is noticed at once."""

import http.client
import json
import os
import socket
import time

from authlib import Broker, Report
from testutil import metric, pump_until, raise_nofile, rss_bytes

N = 1000
MAX_PER_POLL = 2048  # bytes of RSS per held poll (before the hand-over: about 10 KB)
SANITIZED = bool(os.environ.get('RTB_SANITIZED'))

r = Report(__file__, hard_timeout=60)

raise_nofile()


def request(port, method, path, body=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request(method, path, body=body)
    res = c.getresponse()
    data = res.read()
    c.close()
    return res.status, data


class Poller:
    """A keep-alive HTTP/1.1 connection that sends polls and parses the answers (Content-Length or chunked)."""

    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.s.setblocking(False)
        self.buf = b''
        self.answers = []  # (status, headers dict, body bytes)
        self.closed = False
        self.bad = None

    def fileno(self):
        return self.s.fileno()

    def send(self, path):
        self.s.setblocking(True)
        self.s.sendall(f'GET {path} HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
        self.s.setblocking(False)

    def pump(self):
        try:
            data = self.s.recv(65536)
        except BlockingIOError:
            return
        if not data:
            self.closed = True
            return
        self.buf += data
        while self.parse_one():
            pass

    def parse_one(self):
        if b'\r\n\r\n' not in self.buf:
            return False
        head, rest = self.buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(':')
            hdrs[k.strip().lower()] = v.strip()
        if 'content-length' in hdrs:
            n = int(hdrs['content-length'])
            if len(rest) < n:
                return False
            body, rest = rest[:n], rest[n:]
        elif hdrs.get('transfer-encoding') == 'chunked':
            body, pos = b'', 0
            while True:
                end = rest.find(b'\r\n', pos)
                if end < 0:
                    return False
                try:
                    size = int(rest[pos:end], 16)
                except ValueError:
                    self.bad = f'bad chunk size {rest[pos:end][:40]!r}'
                    return False
                if len(rest) < end + 2 + size + 2:
                    return False
                if rest[end + 2 + size:end + 4 + size] != b'\r\n':
                    self.bad = 'chunk not followed by CRLF'
                    return False
                body += rest[end + 2:end + 2 + size]
                pos = end + 4 + size
                if size == 0:
                    break
            rest = rest[pos:]
        else:
            self.bad = f'no framing: {head[:200]!r}'
            return False
        self.answers.append((int(lines[0].split()[1]), hdrs, body))
        self.buf = rest
        return True


def gone(p):
    return p.closed or p.bad is not None


b = Broker({'plugins': {'load': ['sse', 'longpoll', 'websocket']},
            'limits': {'connections_per_ip': 0},
            'http': {'allowed_origins': ['https://app.example']},
            'auth': {'anonymous': {'subscribe': ['>'], 'publish': ['>']}}}, workers=1).start()
try:
    warm = [Poller(b.port) for _ in range(20)]
    for p in warm:
        p.send('/sub/held?timeout=30')
    time.sleep(0.3)
    before = rss_bytes(b.pid)
    polls = [Poller(b.port) for _ in range(N)]
    for p in polls:
        p.send('/sub/held?timeout=30')
    time.sleep(1.0)
    r.check('1,000 polls held (no answer yet)', all(not p.answers for p in polls),
            f'{sum(1 for p in polls if p.answers)} answered early')
    per_poll = (rss_bytes(b.pid) - before) / N
    r.info(f'RSS per held long-poll: {per_poll:.0f} B')
    if not SANITIZED:
        r.check(f'a held long-poll costs at most {MAX_PER_POLL} B of RSS', per_poll <= MAX_PER_POLL,
                f'{per_poll:.0f} B per poll')

    status, body = request(b.port, 'POST', '/pub/held', 'hello held')
    r.check('publish accepted', status in (200, 201, 202), f'{status} {body!r}')
    allp = warm + polls
    got = pump_until(allp, lambda p: len(p.answers) >= 1, 15, gone)
    bad = [p.bad for p in allp if p.bad]
    ok = got and not bad
    cursor = None
    if ok:
        for p in allp:
            st, hdrs, bd = p.answers[0]
            doc = json.loads(bd)
            if st != 200 or hdrs.get('content-type') != 'application/json' or hdrs.get('cache-control') != 'no-store' \
                    or [m['data'] for m in doc['messages']] != ['hello held']:
                ok = False
                bad.append(f'{st} {hdrs} {bd[:200]!r}')
                break
            cursor = doc['cursor']
    r.check('one publish answers every held poll: 200, application/json, no-store, the message and a cursor', ok,
            f'{sum(1 for p in allp if not p.answers)} unanswered; {bad[:2]}')

    # the next poll on the same connections: h2o serves them again
    again = polls[:200]
    for p in again:
        p.send(f'/sub/held?cursor={cursor}&timeout=30')
    time.sleep(0.5)
    held_again = all(len(p.answers) == 1 and not p.closed for p in again)
    request(b.port, 'POST', '/pub/held', 'second')
    got = pump_until(again, lambda p: len(p.answers) >= 2, 15, gone)
    r.check('the next poll on the same connection is held, then answered with the next message only',
            held_again and got and all(json.loads(p.answers[1][2])['messages'][0]['data'] == 'second'
                                       and len(json.loads(p.answers[1][2])['messages']) == 1 for p in again),
            f'held again {held_again}; {[(p.answers[1:], p.closed, p.bad) for p in again if len(p.answers) < 2][:2]}')

    # pipelined: the second request is sent before the first is answered
    pipe = polls[200:300]
    for p in pipe:
        p.send('/sub/held?timeout=30')
        p.send('/poll?topic=held&timeout=1')
    time.sleep(0.3)
    request(b.port, 'POST', '/pub/held', 'third')
    got = pump_until(pipe, lambda p: len(p.answers) >= 3, 10, gone)
    r.check('a poll pipelined behind a held one is answered after it, on the same connection',
            got and all(p.answers[2][0] == 200 for p in pipe),
            f'{[(len(p.answers), p.closed, p.bad) for p in pipe if len(p.answers) < 3][:3]}')

    # clients that go away while held
    rest = polls[300:]
    for p in rest:
        p.send('/sub/held?timeout=30')
    time.sleep(0.5)
    n0 = metric(b.port, 'rtbroker_connections{transport="longpoll"}')
    for p in rest:
        p.s.close()
    deadline, n = time.time() + 3, None
    while time.time() < deadline:
        n = metric(b.port, 'rtbroker_connections{transport="longpoll"}')
        if n is not None and n0 is not None and n <= n0 - len(rest):
            break
        time.sleep(0.05)
    r.check(f'{len(rest)} held polls whose client closed are gone at once', n is not None and n0 is not None
            and n <= n0 - len(rest), f'{n0} -> {n}')
except Exception:  # noqa: BLE001 - reported as a failure, not lost in finish()
    import traceback
    r.fail('the test ran to its end', traceback.format_exc())
finally:
    r.finish()

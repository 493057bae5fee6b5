#!/usr/bin/python3
"""Idle HTTP/1.1 streams are cheap: an SSE or NDJSON subscriber leaves h2o after its response head (the socket is
handed over as an upgrade is), so it costs the broker about what a WebSocket does, not h2o's request state.
Checks the broker's RSS per idle connection (1,500 SSE, 500 NDJSON, one worker), the response head (status,
content type, chunked framing, CORS), that a message reaches every stream as one well-formed chunk, that a
client that closes is noticed at once (no heartbeat needed), that a drain ends each stream with rt.shutdown
and the last chunk, and that streams opened together do not get their first heartbeat in the same instant."""

import http.client
import json
import os
import signal
import socket
import time

from authlib import Broker, Report
from testutil import metric, pump_until, raise_nofile, rss_bytes

N_SSE, N_ND = 1500, 500
MAX_PER_CONN = 2048  # bytes of RSS per idle connection (before the hand-over: about 11 KB)
SANITIZED = bool(os.environ.get('RTB_SANITIZED'))

r = Report(__file__, hard_timeout=60)

raise_nofile()


def publish(port, topic, body):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request('POST', f'/pub/{topic}', body=body)
    res = c.getresponse()
    res.read()
    c.close()
    return res.status


class Stream:
    """A raw HTTP/1.1 client: the head as received, then the body decoded from its chunks."""

    def __init__(self, port, path, accept, origin=None):
        self.sse = accept == 'text/event-stream'
        self.s = socket.create_connection(('127.0.0.1', port))
        extra = f'Origin: {origin}\r\n' if origin else ''
        self.s.sendall(f'GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n{extra}\r\n'.encode())
        self.s.setblocking(False)
        self.raw = b''
        self.head = None
        self.body = b''
        self.ended = False  # the last chunk arrived
        self.bad = None

    def fileno(self):
        return self.s.fileno()

    def pump(self):
        try:
            data = self.s.recv(65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        self.raw += data
        if self.head is None and b'\r\n\r\n' in self.raw:
            self.head, self.raw = self.raw.split(b'\r\n\r\n', 1)
            self.head = self.head.decode('latin-1')
        while self.head is not None and not self.ended and b'\r\n' in self.raw:
            size_line, rest = self.raw.split(b'\r\n', 1)
            try:
                size = int(size_line, 16)
            except ValueError:
                self.bad = f'bad chunk size line {size_line[:40]!r}'
                return False
            if len(rest) < size + 2:
                break
            if rest[size:size + 2] != b'\r\n':
                self.bad = f'chunk of {size} bytes not followed by CRLF: {rest[size:size + 10]!r}'
                return False
            self.body += rest[:size]
            self.raw = rest[size + 2:]
            self.ended = size == 0
        return True

    def header(self, name):
        for line in (self.head or '').split('\r\n')[1:]:
            k, _, v = line.partition(':')
            if k.strip().lower() == name:
                return v.strip()
        return None

    def close(self):
        self.s.close()


b = Broker({'plugins': {'load': ['sse', 'ndjson', 'longpoll', 'websocket']},
            'limits': {'connections_per_ip': 0},
            'sse': {'heartbeat': '30s'}, 'ndjson': {'heartbeat': '30s'},
            'http': {'allowed_origins': ['https://app.example']},
            'auth': {'anonymous': {'subscribe': ['>'], 'publish': ['>']}}}, workers=1).start()
try:
    warm = [Stream(b.port, '/sub/idle', 'text/event-stream') for _ in range(20)]
    pump_until(warm, lambda s: s.body.startswith(b'retry:'), 5)
    time.sleep(0.2)
    before = rss_bytes(b.pid)
    sse = [Stream(b.port, '/sub/idle', 'text/event-stream', origin='https://app.example') for _ in range(N_SSE)]
    nd = [Stream(b.port, '/sub/idle', 'application/x-ndjson') for _ in range(N_ND)]
    allst = sse + nd
    up = pump_until(allst, lambda s: s.body.endswith(b'\n\n' if s.sse else b'\n'), 20)
    r.check('2,000 idle streams get their head and first bytes', up,
            f'{sum(1 for s in allst if s.head is None)} without a head')
    time.sleep(0.3)
    per_conn = (rss_bytes(b.pid) - before) / len(allst)
    r.info(f'RSS per idle SSE/NDJSON connection: {per_conn:.0f} B')
    if not SANITIZED:  # ASan's redzones and quarantine make the figure meaningless
        r.check(f'an idle SSE/NDJSON stream costs at most {MAX_PER_CONN} B of RSS', per_conn <= MAX_PER_CONN,
                f'{per_conn:.0f} B per connection')

    s0 = sse[0]
    r.check('SSE head: 200, text/event-stream, chunked, no-cache, CORS for the allowed Origin',
            s0.head.startswith('HTTP/1.1 200') and s0.header('content-type') == 'text/event-stream'
            and s0.header('transfer-encoding') == 'chunked' and s0.header('cache-control') == 'no-cache'
            and s0.header('access-control-allow-origin') == 'https://app.example' and s0.header('date') is not None,
            s0.head)
    r.check('NDJSON head: 200, application/x-ndjson, chunked', nd[0].head.startswith('HTTP/1.1 200')
            and nd[0].header('content-type') == 'application/x-ndjson'
            and nd[0].header('transfer-encoding') == 'chunked', nd[0].head)

    marks = [len(s.body) for s in allst]
    r.check('publish accepted', publish(b.port, 'idle', 'hello idle') in (200, 201, 202))
    got = pump_until(allst, lambda s: b'hello idle' in s.body or s.bad is not None, 15)
    bad = [s.bad for s in allst if s.bad]
    r.check('a message reaches every stream in well-formed chunks', got and not bad,
            f'{sum(1 for s in allst if b"hello idle" not in s.body)} missed it; {bad[:3]}')
    r.check('SSE event and NDJSON line as before the hand-over',
            b'data: hello idle\n\n' in sse[7].body[marks[7]:] and
            json.loads(nd[3].body[marks[N_SSE + 3]:].decode().strip())['data'] == 'hello idle',
            f'{sse[7].body[marks[7]:]!r} / {nd[3].body[marks[N_SSE + 3]:]!r}')

    conns0 = metric(b.port, 'rtbroker_connections{transport="sse"}')
    for s in sse[:500]:
        s.close()
    deadline, conns = time.time() + 3, None
    while time.time() < deadline:
        conns = metric(b.port, 'rtbroker_connections{transport="sse"}')
        if conns is not None and conns0 is not None and conns <= conns0 - 500:
            break
        time.sleep(0.05)
    r.check('500 SSE clients that close are gone at once (heartbeat 30 s)',
            conns is not None and conns0 is not None and conns <= conns0 - 500, f'{conns0} -> {conns}')

    rest = sse[500:510] + nd[:10]
    os.kill(b.pid, signal.SIGTERM)
    done = pump_until(rest, lambda s: s.ended or s.bad is not None, 8)
    r.check('a drain ends each stream with its goodbye and the last chunk',
            done and all(s.bad is None for s in rest) and all(b'event: rt.shutdown' in s.body for s in rest[:10])
            and all(b'{"type":"shutdown"}' in s.body for s in rest[10:]),
            f'{[(s.ended, s.bad, s.body[-60:]) for s in rest if not s.ended][:2]}')
    b.proc.wait(timeout=10)

    hb = Broker({'plugins': {'load': ['sse']}, 'sse': {'heartbeat': '1s'},
                 'auth': {'anonymous': {'subscribe': ['>'], 'publish': ['>']}}}, workers=1).start()
    streams = [Stream(hb.port, '/sub/hb', 'text/event-stream') for _ in range(64)]
    pump_until(streams, lambda s: s.body.startswith(b'retry:'), 5)
    t0, first = time.time(), {}

    def pinged(s):
        if s not in first and b': ping' in s.body:
            first[s] = time.time() - t0
        return s in first
    pump_until(streams, pinged, 5)
    at = sorted(first.values())
    r.check('64 streams opened together get their first heartbeat spread over the last 22% of the interval (1 s heartbeat)',
            len(at) == 64 and at[-1] - at[0] >= 0.1 and at[0] >= 0.6,
            f'first pings from {at[0]:.3f} to {at[-1]:.3f} s after the streams opened' if at else 'no ping')
except Exception as e:  # noqa: BLE001 - reported as a failure, not lost in finish()
    import traceback
    r.fail('the test ran to its end', traceback.format_exc())
finally:
    r.finish()

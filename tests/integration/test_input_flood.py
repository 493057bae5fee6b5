#!/usr/bin/python3
"""Input stays bounded whatever a client sends: a WebSocket the broker is closing (slow consumer),
an rt.v1 connection that has not authenticated, and held SSE / long-poll / NDJSON requests whose
client keeps writing; and an rt.v1 connection is closed 4001 once it sends more than
websocket.auth_max_bytes before {"op":"auth"}, and not after. Each case floods the broker (at most FLOOD_MIB MiB or FLOOD_S s, never reading)
and then checks the broker's own memory (/proc/PID/status VmRSS) and the temp files it holds
open (/proc/PID/fd links to deleted files: h2o spills socket buffers past 32 MiB to /tmp)."""

import base64
import json
import os
import select
import socket
import struct
import time

import jwt

from authlib import Broker, Report

FLOOD_MIB = 240
FLOOD_S = 2.4             # paced over this time, so that most of it comes after the broker decided to close
WARM_MIB, WARM_RATE = 8, 24  # the first MiB, at MiB/s
STALL_S = 0.5             # the broker took nothing for this long: it stopped reading, the kernel holds the rest
MAX_RSS_GROWTH_MIB = 32 if os.environ.get('RTB_SANITIZED') else 16  # what a flood may add to the broker's RSS
MAX_TEMP_MIB = 1          # temp files the broker may hold after a flood
SECRET = 'input-flood-secret-0123456789abcdef'

r = Report(__file__, hard_timeout=90)


def token(grants):
    return jwt.encode({'sub': 'flooder', 'exp': int(time.time()) + 600, 'rt': {'sub': grants}}, SECRET,
                      algorithm='HS256')


def rss_mib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def temp_files(pid):
    """(count, MiB) of the deleted files the broker holds open."""
    n, size = 0, 0
    d = f'/proc/{pid}/fd'
    for fd in os.listdir(d):
        try:
            if os.readlink(f'{d}/{fd}').endswith('(deleted)'):
                n += 1
                size += os.stat(f'{d}/{fd}').st_size
        except OSError:
            pass
    return n, size / 2**20


def connect(port, rcvbuf=4096):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # a client that reads nothing, and holds little
    s.connect(('127.0.0.1', port))
    return s


def ws_open(port, path, protocol=None):
    s = connect(port)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f'Sec-WebSocket-Protocol: {protocol}\r\n' if protocol else ''
    s.sendall((f'GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
               f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        b = s.recv(1)
        if not b:
            raise AssertionError(f'connection closed during the handshake: {head!r}')
        head += b
    if not head.startswith(b'HTTP/1.1 101'):
        raise AssertionError(f'no upgrade: {head[:200]!r}')
    return s


def ping_frames(mib):
    """Masked pings with a 125-byte payload, as many as fit in mib MiB (whole frames only)."""
    frame = bytes([0x89, 0x80 | 125]) + b'\0\0\0\0' + b'p' * 125  # mask 0: the payload goes as is
    return frame * (mib * 2**20 // len(frame))


def text_frame(payload):
    p = payload.encode()
    n = len(p)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack('>H', n))
    return head + b'\0\0\0\0' + p  # mask 0


def read_frames(s, until, timeout=3):
    """Server frames as (opcode, payload) until until(frames) holds, the connection ends or timeout."""
    s.settimeout(timeout)
    buf, frames, deadline = b'', [], time.time() + timeout
    while not until(frames) and time.time() < deadline:
        try:
            b = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not b:
            break
        buf += b
        while len(buf) >= 2:
            n, h = buf[1] & 0x7f, 2
            if n == 126:
                n, h = struct.unpack('>H', buf[2:4])[0] if len(buf) >= 4 else -1, 4
            elif n == 127:
                n, h = struct.unpack('>Q', buf[2:10])[0] if len(buf) >= 10 else -1, 10
            if n < 0 or len(buf) < h + n:
                break
            frames.append((buf[0] & 0x0f, buf[h:h + n]))
            buf = buf[h + n:]
    return frames


def closed_with(frames):
    """(code, reason) of the close frame among frames, or None."""
    for op, p in frames:
        if op == 8:
            return (struct.unpack('>H', p[:2])[0] if len(p) >= 2 else None), p[2:].decode('utf-8', 'replace')
    return None


def check_auth_cap(b, tok):
    name = 'tokenless rt.v1 that sends 20 KiB of ops before {"op":"auth"}: close 4001'
    s = ws_open(b.port, '/ws', 'rt.v1')
    s.sendall(text_frame('{"op":"ping"}') * (20 * 1024 // 19))
    got = closed_with(read_frames(s, closed_with, 3))
    r.check(name, got is not None and got[0] == 4001 and 'auth' in got[1], f'close frame: {got}')
    s.close()

    name = 'rt.v1 that authenticates first may then send 64 KiB of ops'
    s = ws_open(b.port, '/ws', 'rt.v1')
    n = 64 * 1024 // 19
    s.sendall(text_frame(json.dumps({'op': 'auth', 'token': tok})) + text_frame('{"op":"ping"}') * n)
    frames = read_frames(s, lambda f: len(f) > n or closed_with(f), 5)
    oks = sum(1 for op, p in frames if op == 1 and b'"ok"' in p)
    r.check(name, oks == n + 1 and not closed_with(frames), f'{oks} answers of {n + 1}; close: {closed_with(frames)}')
    s.close()


def flood(s, chunk):
    """Writes chunk over and over (keeping frames whole) until FLOOD_MIB, FLOOD_S, a stall or the peer closes; the first
    WARM_MIB go in small steps (so that the broker answers pings until its own output is stuck), the rest paced
    evenly. Returns the MiB the kernel took."""
    s.setblocking(False)
    view, off, sent = memoryview(chunk), 0, 0
    t0 = last = time.time()
    while sent < FLOOD_MIB * 2**20 and time.time() - t0 < FLOOD_S and time.time() - last < STALL_S:
        warm = sent < WARM_MIB * 2**20
        due = (time.time() - t0) * (WARM_RATE if warm else FLOOD_MIB / FLOOD_S) * 2**20
        if sent > due:
            time.sleep(0.002)
            continue
        if not select.select([], [s], [], 0.1)[1]:
            continue
        try:
            n = s.send(view[off:off + (16384 if warm else len(chunk))])
        except BlockingIOError:
            continue
        except OSError:
            break  # closed by the broker: fine
        sent += n
        off = (off + n) % len(chunk)
        last = time.time()
    return sent / 2**20


def check_bounded(name, b, sock, chunk):
    base = rss_mib(b.pid)
    sent = flood(sock, chunk)
    rss = rss_mib(b.pid)
    ntemp, temp = temp_files(b.pid)
    r.info(f'{name}: sent {sent:.0f} MiB; broker RSS {base:.0f} -> {rss:.0f} MiB, {ntemp} temp files ({temp:.0f} MiB)')
    r.check(f'{name}: the broker keeps at most {MAX_RSS_GROWTH_MIB} MiB and {MAX_TEMP_MIB} MiB of temp files',
            rss - base <= MAX_RSS_GROWTH_MIB and temp <= MAX_TEMP_MIB,
            f'RSS grew {rss - base:.0f} MiB, {ntemp} temp files of {temp:.0f} MiB after {sent:.0f} MiB of input')
    sock.close()
    time.sleep(0.2)  # let the broker notice the close before the next case


def main():
    # ASan keeps freed memory in a quarantine (256 MiB): keep it small, or it would count as the flood's
    env = {'ASAN_OPTIONS': os.environ.get('ASAN_OPTIONS', '') + ':quarantine_size_mb=4'}
    b = Broker({'auth': {'jwt': {'secret': SECRET}}, 'limits': {'max_queue_bytes': '256KiB'},
                'longpoll': {'timeout': '30s'}}, env=env).start()
    try:
        pings = ping_frames(1)
        tok = token(['flood.>'])

        # rt.v1 upgrades before it authenticates: a tokenless client that pings and never reads
        check_bounded('tokenless rt.v1 flooding pings', b, ws_open(b.port, '/ws', 'rt.v1'), pings)

        # an authorised raw subscriber that reads nothing: ended as a slow consumer, then keeps sending
        check_bounded('raw subscriber flooding pings after its slow-consumer close', b,
                      ws_open(b.port, f'/sub/flood.a?token={tok}'), pings)

        # held requests: the client writes after its request while the broker holds it
        junk = b'x' * 2**20
        for name, path, accept in (('SSE', f'/sub/flood.b?token={tok}', 'text/event-stream'),
                                   ('long-poll', f'/poll?topic=flood.c&timeout=30&token={tok}', '*/*'),
                                   ('NDJSON', f'/ndjson?topic=flood.d&token={tok}', 'application/x-ndjson')):
            s = connect(b.port)
            s.sendall(f'GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n'.encode())
            time.sleep(0.2)  # the request is held now
            check_bounded(f'held {name} request whose client keeps writing', b, s, junk)

        check_auth_cap(b, tok)
        r.check('the broker is still alive', b.alive(), b.log())
    finally:
        b.stop()
    r.finish()


if __name__ == '__main__':
    main()

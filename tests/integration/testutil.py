"""Helpers shared by the Python tests: free ports, sanitizer reports in a broker's log, publish answers."""
import json
import random
import re
import socket

_handed_out = set()


def free_port():
    """A port below the kernel's ephemeral range (32768-60999): a port from bind(0) may be taken as the
    source port of some outgoing connection before the server binds it."""
    for _ in range(200):
        p = random.randint(20000, 32767)
        if p in _handed_out:
            continue
        s = socket.socket()
        try:
            s.bind(('127.0.0.1', p))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(p)
        return p
    raise RuntimeError('no free port in 20000-32767')


def sanitizer_report(log_path):
    """The lines around the first ASan/UBSan/LSan report in a log (a sanitized build), or None."""
    try:
        with open(log_path, 'rb') as f:
            txt = f.read().decode('utf-8', 'replace')
    except OSError:
        return None
    m = re.search(r'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:', txt)
    if not m:
        return None
    i = txt.rfind('\n', 0, max(0, m.start() - 200))
    return txt[max(0, i):m.start() + 3000]


PUBLISHED_ID = re.compile(r'^[A-Za-z0-9_-]+:[1-9][0-9]*$')


def check_published(status, body, what, ephemeral=False):
    """A publish's 200 must name what was stored: {"id": "EPOCH:SEQ"} with SEQ >= 1 (null only for an ephemeral
    message); raises AssertionError otherwise (a bus that answered 200 for what it did not store gives ":0")."""
    if status != 200:
        return
    text = body.decode('utf-8', 'replace') if isinstance(body, bytes) else body
    try:
        pid = json.loads(text).get('id')
    except (ValueError, AttributeError):
        pid = ''
    if ephemeral and pid is None:
        return
    if not (isinstance(pid, str) and PUBLISHED_ID.match(pid)):
        raise AssertionError(f"{what}: a 200 without a stored message's id (EPOCH:SEQ, SEQ >= 1): {text[:300]!r}")

def rss_bytes(pid):
    """The resident memory of a process (VmRSS), in bytes."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


def raise_nofile():
    """Open files up to the hard limit, for this process and the brokers it starts (many idle connections)."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def metric(port, name):
    """One value of the broker's /metrics (exact name with labels), or None."""
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request('GET', '/metrics')
    body = c.getresponse().read().decode()
    c.close()
    for line in body.split('\n'):
        if line.startswith(name + ' '):
            return float(line.split()[1])
    return None


def pump_until(conns, cond, timeout, gone=lambda c: False):
    """Calls pump() on each of conns (objects with fileno() and pump()) that has input, until cond(c) holds for
    every one, or the rest are gone(c), or timeout seconds pass; whether cond holds for all."""
    import select
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        waiting = {c.fileno(): c for c in conns if not cond(c) and not gone(c)}
        if not waiting:
            break
        p = select.poll()
        for fd in waiting:
            p.register(fd, select.POLLIN)
        for fd, _ in p.poll(50):
            waiting[fd].pump()
    return all(cond(c) for c in conns)

"""Ports for test servers (shared by the Python tests).

Below the kernel's ephemeral range (32768-60999): a port from bind(0) may be taken as the source
port of some outgoing connection before the server binds it.
"""
import random
import socket

_handed_out = set()


def free_port():
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

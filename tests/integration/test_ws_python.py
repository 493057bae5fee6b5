#!/usr/bin/python3
"""WebSocket interop with Python `websockets` (Debian's python3-websockets, 10.x legacy asyncio API):
raw and rt.v1 subscribe / receive / publish, with and without permessage-deflate, resume with
since, and the close codes a client sees. Starts its own broker (free port, temp config) and
stops it by PID. Prints PASS/FAIL lines and `test_ws_python.py: N passed, N failed`."""

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

import websockets
from websockets.extensions.permessage_deflate import PerMessageDeflate

from testutil import check_published, sanitizer_report  # tests/integration/testutil.py (this script's directory)

FILE = "test_ws_python.py"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("RTBROKER_BIN") or os.path.join(ROOT, os.environ.get("RTB_BIN", "build/rtbroker"))
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)
SLOW = 3 if os.environ.get("RTB_SANITIZED") else 1
HARD_TIMEOUT_S = 90 * SLOW

passed = 0
failed = 0
brokers = []


def report(ok, name, why=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {FILE}: {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {FILE}: {name}: {why}", flush=True)


def on_alarm(signum, frame):
    print(f"FAIL {FILE}: hard timeout: file did not finish within {HARD_TIMEOUT_S} s", flush=True)
    for b in brokers:
        b.kill()
    print(f"{FILE}: {passed} passed, {failed + 1} failed", flush=True)
    os._exit(1)


class Broker:
    def __init__(self, extra_yaml=""):
        self.dir = tempfile.mkdtemp(prefix="rtb-py-")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        cfg = os.path.join(self.dir, "rtbroker.yaml")
        with open(cfg, "w") as f:
            f.write(
                f"listen: 127.0.0.1:{self.port}\n"
                "workers: 2\n"
                "plugins:\n  load: [sse, longpoll, websocket]\n"
                "shutdown:\n  drain: 3s\n"
                "auth:\n  anonymous:\n    subscribe: ['>']\n    publish: ['>']\n" + extra_yaml
            )
        self.log_path = os.path.join(self.dir, "broker.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RTB_")}
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "-c", cfg, "--listen", f"127.0.0.1:{self.port}", "--workers", "2"],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        brokers.append(self)
        deadline = time.time() + 10 * SLOW
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited ({self.proc.returncode}) before /healthz answered:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline:
                self.kill()
                raise RuntimeError(f"broker did not answer /healthz within {10 * SLOW} s:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join("  | " + l for l in f.read().decode("utf8", "replace").splitlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=8):
        """SIGTERM by PID; SIGKILL after timeout. Returns the exit code (None when killed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def sanitizer_report(self):
        return sanitizer_report(self.log_path)

    def cleanup(self):
        self.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in brokers:
            brokers.remove(self)


def http(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def publish(base, topic, body, headers=None):
    if isinstance(body, str):
        body = body.encode("utf8")
    status, out = await asyncio.to_thread(http, base, "POST", f"/pub/{topic}", body, headers)
    check(status == 200, f"POST /pub/{topic}: {status} {out[:200]!r}")
    check_published(status, out, f"POST /pub/{topic}")
    return json.loads(out)["id"]


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what):
    if got != want:
        raise Fail(f"{what}: expected {want!r}, got {got!r}")


def deflated(ws):
    return any(isinstance(e, PerMessageDeflate) for e in ws.extensions)


async def recv(ws, timeout=5):
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise Fail(f"no message within {timeout} s")


async def recv_json(ws, timeout=5):
    m = await recv(ws, timeout)
    check(isinstance(m, str), f"rt.v1 sent a binary frame: {m[:60]!r}")
    return json.loads(m)


async def until_ref(ws, ref, timeout=5):
    """Collect rt.v1 frames until the ok/error carrying ref; returns (before, answer)."""
    before = []
    deadline = time.time() + timeout
    while True:
        j = await recv_json(ws, max(0.1, deadline - time.time()))
        if j.get("type") in ("ok", "error") and j.get("ref") == ref:
            return before, j
        before.append(j)


def connect(url, deflate, **kw):
    return websockets.connect(url, compression="deflate" if deflate else None, open_timeout=8, close_timeout=3, **kw)


# ---------------------------------------------------------------- cases

async def case_raw(b, deflate):
    async with connect(f"{b.ws}/sub/py.raw", deflate) as ws:
        eq(deflated(ws), deflate, "permessage-deflate negotiated")
        eq(ws.subprotocol, None, "subprotocol")
        await asyncio.sleep(0.05)
        await ws.send("ignored by the broker in raw mode")
        await publish(b.base, "py.raw", "grüße")
        await publish(b.base, "py.raw", b"\xff\x00\xfe")
        big = "python payload " * 700
        await publish(b.base, "py.raw", big)
        eq(await recv(ws), "grüße", "UTF-8 payload as a text frame (str)")
        eq(await recv(ws), b"\xff\x00\xfe", "non-UTF-8 payload as a binary frame (bytes)")
        eq(await recv(ws), big, "10 KB payload")
        try:
            extra = await asyncio.wait_for(ws.recv(), 0.3)
            raise Fail(f"unexpected extra frame (the client's own text echoed?): {extra!r}")
        except asyncio.TimeoutError:
            pass


async def case_v1(b, deflate):
    async with connect(f"{b.ws}/ws", deflate, subprotocols=["rt.v1"]) as ws:
        eq(ws.subprotocol, "rt.v1", "subprotocol")
        eq(deflated(ws), deflate, "permessage-deflate negotiated")
        await ws.send(json.dumps({"op": "sub", "topic": "py.v1.*", "ref": "s1"}))
        before, ok = await until_ref(ws, "s1")
        eq((before, ok), ([], {"type": "ok", "ref": "s1"}), "sub ack")
        id1 = await publish(b.base, "py.v1.a", '{"k":[1,"two"]}', {"Content-Type": "application/json"})
        id2 = await publish(b.base, "py.v1.b", b"\x00\xff", {"X-Event": "bin"})
        m1 = await recv_json(ws)
        eq((m1.get("type"), m1.get("id"), m1.get("topic"), m1.get("event"), m1.get("data")),
           ("msg", id1, "py.v1.a", None, {"k": [1, "two"]}), "JSON envelope")
        m2 = await recv_json(ws)
        eq((m2.get("id"), m2.get("event"), m2.get("encoding"), base64.b64decode(m2.get("data", ""))),
           (id2, "bin", "base64", b"\x00\xff"), "binary envelope")
        await ws.send(json.dumps({"op": "pub", "topic": "py.v1.c", "data": [1, {"x": None}], "event": "ev", "ref": 42}))
        before, ack = await until_ref(ws, 42)
        eq((ack.get("type"), ack.get("ref")), ("ok", 42), f"pub ack {ack}")
        check(isinstance(ack.get("id"), str) and ack["id"].split(":")[0] == id1.split(":")[0], f"pub ack id {ack}")
        own = before + [await recv_json(ws)] if not before else before
        eq((own[0].get("type"), own[0].get("id"), own[0].get("event"), own[0].get("data")),
           ("msg", ack["id"], "ev", [1, {"x": None}]), "own publish delivered")
        status, body = await asyncio.to_thread(http, b.base, "GET", f"/poll?topic=py.v1.c&cursor={id2}&timeout=1")
        eq(status, 200, "long-poll status")
        lp = json.loads(body)["messages"]
        eq([(m["id"], m["data"], m.get("content_type")) for m in lp], [(ack["id"], [1, {"x": None}], "application/json")],
           "the rt.v1 publish seen by long-poll")
        await ws.send(json.dumps({"op": "ping", "ref": "p"}))
        eq((await until_ref(ws, "p"))[1], {"type": "ok", "ref": "p"}, "ping ack")
        await ws.send(json.dumps({"op": "sub", "topic": "py..bad", "ref": "e"}))
        err = (await until_ref(ws, "e"))[1]
        eq((err.get("type"), err.get("code")), ("error", "invalid_topic"), f"error answer {err}")


async def case_v1_path(b, deflate):
    async with connect(f"{b.ws}/sub/py.path", deflate, subprotocols=["rt.v1"]) as ws:
        eq(ws.subprotocol, "rt.v1", "subprotocol")
        await asyncio.sleep(0.1)
        i = await publish(b.base, "py.path", "hello")
        m = await recv_json(ws)
        eq((m.get("type"), m.get("id"), m.get("data")), ("msg", i, "hello"), "msg on the path topic")


async def case_resume(b, deflate):
    ids = [await publish(b.base, "py.res", f"r{i}") for i in range(6)]
    async with connect(f"{b.ws}/sub/py.res?since={ids[1]}", deflate) as ws:
        got = [await recv(ws) for _ in range(4)]
        eq(got, ["r2", "r3", "r4", "r5"], "raw replay after since")
        await publish(b.base, "py.res", "live")
        eq(await recv(ws), "live", "live after replay")
    async with connect(f"{b.ws}/ws", deflate, extra_headers={}) as ws:
        await ws.send(json.dumps({"op": "sub", "topic": "py.res", "since": ids[3], "ref": 1}))
        before, ok = await until_ref(ws, 1)
        eq([m.get("data") for m in before], ["r4", "r5", "live"], "rt.v1 replay before the ok")


async def case_close_codes(b, deflate):
    async with connect(f"{b.ws}/sub/py.big", deflate, max_size=None) as ws:
        await ws.send(b"x" * 65537)
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise Fail("a frame instead of the close")
        except websockets.ConnectionClosed as e:
            eq(e.rcvd.code if e.rcvd else None, 1009, "close code for a 65537-byte message")
        except asyncio.TimeoutError:
            raise Fail("no close within 5 s after a 65537-byte message")


async def case_shutdown(deflate):
    b = Broker()
    try:
        async with connect(f"{b.ws}/sub/py.sd", deflate) as raw, connect(f"{b.ws}/ws", deflate, subprotocols=["rt.v1"]) as v1:
            code = await asyncio.to_thread(b.stop)
            eq(code, 0, "broker exit code after SIGTERM")
            if b.sanitizer_report():
                raise Fail("sanitizer report in the broker log:\n" + b.sanitizer_report())
            for name, ws in (("raw", raw), ("rt.v1", v1)):
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as e:
                    eq(e.rcvd.code if e.rcvd else None, 1001, f"{name}: close code on SIGTERM")
                except asyncio.TimeoutError:
                    raise Fail(f"{name}: no close within 5 s of SIGTERM")
    finally:
        b.cleanup()


async def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HARD_TIMEOUT_S)
    if not os.path.exists(BIN):
        report(False, "broker binary", f"not found: {BIN} (run make build)")
        return
    try:
        b = Broker("limits:\n  max_message_bytes: 65536\n")
    except Exception as e:
        report(False, "start the broker with the websocket plugin", str(e))
        return
    try:
        cases = []
        for d in (False, True):
            tag = f"(deflate: {'yes' if d else 'no'})"
            cases += [
                (f"raw /sub/topic: text as str, binary as bytes, 10 KB, client frames ignored {tag}", lambda d=d: case_raw(b, d)),
                (f"rt.v1 /ws: sub ack, JSON and base64 envelopes, pub with ack id seen by long-poll, ping, error {tag}", lambda d=d: case_v1(b, d)),
                (f"rt.v1 subprotocol on /sub/topic: path topic subscribed at connect {tag}", lambda d=d: case_v1_path(b, d)),
                (f"close 1009 for a 65537-byte client message {tag}", lambda d=d: case_close_codes(b, d)),
            ]
        cases.append(("resume: raw ?since= and rt.v1 sub since replay exactly the missed messages (deflate: no)", lambda: case_resume(b, False)))
        for d in (False, True):
            cases.append((f"SIGTERM: raw and rt.v1 clients see close 1001, exit 0 (deflate: {'yes' if d else 'no'})", lambda d=d: case_shutdown(d)))
        for name, fn in cases:
            try:
                await asyncio.wait_for(fn(), 25 * SLOW)
                if not b.alive():
                    raise Fail(f"the broker exited unexpectedly (status {b.proc.returncode})\n{b.tail()}")
                report(True, name)
            except Fail as e:
                report(False, name, str(e))
            except asyncio.TimeoutError:
                report(False, name, f"case timed out after {25 * SLOW} s")
            except Exception as e:
                report(False, name, f"{type(e).__name__}: {e}\n" + traceback.format_exc(limit=3))
            if not b.alive():
                print(b.tail(), flush=True)
                break
        code = await asyncio.to_thread(b.stop)
        report(code == 0 and not b.sanitizer_report(), "broker exits 0 on SIGTERM at the end, with no sanitizer report",
               f"exit {code}\n{b.sanitizer_report() or b.tail()}")
    finally:
        b.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        for br in list(brokers):
            br.kill()
    print(f"{FILE}: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)

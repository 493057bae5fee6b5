"""Shared helpers for the auth integration tests (tests/integration/test_auth_*.py).

- Report: `PASS <file>: <case>` / `FAIL <file>: <case>: <why>` lines, a closing
  `<file>: N passed, N failed`, exit status 1 on any failure, and a hard timeout that
  reports, kills every broker started here (by PID) and exits.
- Broker: a real build/rtbroker on a free 127.0.0.1 port with a temp YAML config,
  stopped by PID (SIGTERM, then SIGKILL) in `finally` blocks and again at exit.
- Keys (made with `openssl` in a temp dir at test time) and tokens (python3-jwt; the
  deliberately broken ones - alg none, HMAC keyed with a PEM - are assembled by hand).
- asyncio clients: plain HTTP/1.1, SSE (incremental, chunked-aware), WebSocket
  (python3-websockets 10.4 legacy client).

Only Debian's python3-jwt and python3-websockets are used (no PyPI).
"""
import asyncio
import atexit
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import http.client

import jwt  # python3-jwt (PyJWT 2.6)
import websockets
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
BIN = os.path.join(ROOT, os.environ.get('RTB_BIN') or os.environ.get('RTBROKER_BIN') or os.path.join('build', 'rtbroker'))
SLOW = 3 if os.environ.get('RTB_SANITIZED') else 1

# ------------------------------------------------------------------ cleanup registry
_live = set()
_all = []
_temps = []


def _kill_all():
    for b in list(_live):
        try:
            os.kill(b.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            b.proc.wait(timeout=2)
        except Exception:
            pass
        _live.discard(b)
    for d in _temps:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_kill_all)


def mktemp(prefix='rtb-auth-'):
    d = tempfile.mkdtemp(prefix=prefix)
    _temps.append(d)
    return d


def trunc(s, n=300):
    if isinstance(s, (bytes, bytearray)):
        s = s.decode('utf-8', 'replace')
    s = str(s)
    return s if len(s) <= n else s[:n] + '…'


# ------------------------------------------------------------------ reporting
class Report:
    def __init__(self, file, hard_timeout=110):
        self.file = os.path.basename(file)
        self.passed = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.timer = threading.Timer(hard_timeout * SLOW, self._hard)
        self.timer.daemon = True
        self.timer.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._interrupted)

    def _interrupted(self, signum, frame):
        self.fail('harness', f'interrupted by signal {signum}')
        self._summary()
        _kill_all()
        os._exit(130)

    def _hard(self):
        self.fail('hard timeout', f'file did not finish within {110 * SLOW} s')
        self._summary()
        _kill_all()
        os._exit(1)

    def _out(self, line):
        with self.lock:
            sys.stdout.write(line + '\n')
            sys.stdout.flush()

    def ok(self, name):
        self.passed += 1
        self._out(f'PASS {self.file}: {name}')

    def fail(self, name, why):
        self.failed += 1
        why = str(why).rstrip()
        first, _, rest = why.partition('\n')
        self._out(f'FAIL {self.file}: {name}: {first}')
        if rest:
            self._out('\n'.join('  | ' + l for l in rest.split('\n')))

    def check(self, name, cond, why=''):
        if cond:
            self.ok(name)
        else:
            self.fail(name, why or 'check failed')
        return bool(cond)

    def info(self, msg):
        self._out(f'INFO {self.file}: {msg}')

    def _summary(self):
        self._out(f'{self.file}: {self.passed} passed, {self.failed} failed')

    def run(self, main):
        """asyncio.run(main()), an escaping exception reported as a harness failure, then finish()."""
        try:
            asyncio.run(main())
        except Exception as e:  # noqa: BLE001
            import traceback
            self.fail('harness', f'{type(e).__name__}: {e}\n{traceback.format_exc()}')
        self.finish()

    def finish(self):
        self.timer.cancel()
        for b in list(_live):  # graceful, so that LeakSanitizer can report
            b.stop()
        for b in _all:
            rep = b.sanitizer_report()
            if rep:
                self.fail(f'no sanitizer report in the log of {b.name} (pid {b.pid})', '\n' + rep)
        _kill_all()
        self._summary()
        sys.exit(1 if self.failed or not self.passed else 0)


# ------------------------------------------------------------------ YAML + broker
def _yaml_scalar(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return '[' + ', '.join(_yaml_scalar(x) for x in v) + ']'
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def to_yaml(obj, indent=''):
    out = ''
    for k, v in obj.items():
        if v is None:
            continue
        if isinstance(v, dict):
            out += f'{indent}{k}:' + (' {}\n' if not v else '\n' + to_yaml(v, indent + '  '))
        else:
            out += f'{indent}{k}: {_yaml_scalar(v)}\n'
    return out


from testutil import check_published, free_port, sanitizer_report as _sanitizer_report  # noqa: E402


def broker_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith('RTB_')}
    env.update(extra or {})
    return env


class BrokerError(Exception):
    pass


class Broker:
    """A broker process. config: dict written as YAML (listen is forced to the free port)."""

    def __init__(self, config, env=None, name='broker', workers=2):
        self.config = config
        self.env = env or {}
        self.name = name
        self.workers = workers
        self.proc = None
        self.pid = None

    def start(self):
        last = None
        for _ in range(3):
            try:
                return self._start_once()
            except BrokerError as e:
                last = e
                if 'in use' not in str(e).lower():
                    raise
        raise last

    def _start_once(self):
        if not os.path.exists(BIN):
            raise BrokerError(f'broker binary not found: {BIN} (run make build)')
        self.dir = mktemp('rtb-auth-broker-')
        self.port = free_port()
        cfg = {'listen': f'127.0.0.1:{self.port}', 'workers': self.workers, 'shutdown': {'drain': '2s'}}
        cfg.update(self.config)
        self.config_path = os.path.join(self.dir, 'rtbroker.yaml')
        with open(self.config_path, 'w') as f:
            f.write(to_yaml(cfg))
        self.log_path = os.path.join(self.dir, 'broker.log')
        logf = open(self.log_path, 'ab')
        args = [BIN, '-c', self.config_path, '--listen', f'127.0.0.1:{self.port}', '--workers', str(self.workers)]
        self.proc = subprocess.Popen(args, cwd=ROOT, env=broker_env(self.env), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        self.pid = self.proc.pid
        _live.add(self)
        _all.append(self)
        deadline = time.time() + 10 * SLOW
        while True:
            if self.proc.poll() is not None:
                _live.discard(self)
                raise BrokerError(f'{self.name} exited (status {self.proc.returncode}) before /healthz answered:\n{self.log()}')
            try:
                c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=1)
                c.request('GET', '/healthz')
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return self
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise BrokerError(f'{self.name} did not answer /healthz within {10 * SLOW} s:\n{self.log()}')
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self, lines=40):
        try:
            with open(self.log_path, 'rb') as f:
                txt = f.read().decode('utf-8', 'replace')
            return '\n'.join(txt.split('\n')[-lines:])
        except OSError as e:
            return f'(no log: {e})'

    def sanitizer_report(self):
        return _sanitizer_report(self.log_path)

    def sighup(self):
        os.kill(self.pid, signal.SIGHUP)

    def stop(self, timeout=8):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        _live.discard(self)
        return self.proc.returncode


async def each_broker(R, runs, timeout):
    """For each (name, config, cases) in turn: a broker, then `await cases(port)` within timeout seconds. A broker
    that does not start, cases that raise and a broker that died are reported; the broker is stopped."""
    for name, cfg, cases in runs:
        try:
            b = Broker(cfg, name=name).start()
        except BrokerError as e:
            R.fail(f'start broker ({name})', e)
            continue
        try:
            await asyncio.wait_for(cases(b.port), timeout)
        except Exception as e:  # noqa: BLE001
            R.fail(f'{name}: cases', f'{type(e).__name__}: {e}')
        finally:
            if not b.alive():
                R.fail(f'broker ({name}) alive', f'exited {b.proc.returncode}\n{b.log()}')
            b.stop()


def check_config(config, env=None):
    """Runs `rtbroker --check-config -c <config>`; returns (exit status, output)."""
    d = mktemp('rtb-auth-check-')
    p = os.path.join(d, 'c.yaml')
    with open(p, 'w') as f:
        f.write(to_yaml(config))
    r = subprocess.run([BIN, '--check-config', '-c', p], cwd=ROOT, env=broker_env(env), capture_output=True,
                       timeout=15)
    return r.returncode, (r.stdout + r.stderr).decode('utf-8', 'replace')


# ------------------------------------------------------------------ keys and tokens
def openssl(*args):
    r = subprocess.run(['openssl', *args], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f'openssl {" ".join(args)}: {r.stderr.decode(errors="replace")}')


def make_rsa(d, name='rsa', bits=2048):
    priv, pub = os.path.join(d, name + '.key'), os.path.join(d, name + '.pub')
    openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', f'rsa_keygen_bits:{bits}', '-out', priv)
    openssl('pkey', '-in', priv, '-pubout', '-out', pub)
    return priv, pub


def make_ec(d, name='ec', curve='P-256'):
    priv, pub = os.path.join(d, name + '.key'), os.path.join(d, name + '.pub')
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', f'ec_paramgen_curve:{curve}', '-out', priv)
    openssl('pkey', '-in', priv, '-pubout', '-out', pub)
    return priv, pub


def read(path, mode='rb'):
    with open(path, mode) as f:
        return f.read()


STD_RT = {'sub': ['chat.*', 'user.42.>'], 'pub': ['chat.room1']}
_MISSING = object()


def claims(sub='user42', rt=_MISSING, exp_in=3600, nbf_in=None, iss=None, aud=None, **extra):
    """A claim set; rt=None drops the permissions claim, exp_in=None drops exp."""
    now = int(time.time())
    c = {'sub': sub, 'iat': now}
    if exp_in is not None:
        c['exp'] = now + exp_in
    if nbf_in is not None:
        c['nbf'] = now + nbf_in
    if iss is not None:
        c['iss'] = iss
    if aud is not None:
        c['aud'] = aud
    if rt is _MISSING:
        rt = STD_RT
    if rt is not None:
        c['rt'] = rt
    c.update(extra)
    return c


def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def sign(c, key, alg='HS256'):
    """A properly signed token (python3-jwt). key: secret (str/bytes) or PEM private key bytes."""
    return jwt.encode(c, key, algorithm=alg)


def sign_hmac_raw(c, key, alg='HS256'):
    """HMAC-signed by hand: allows any bytes as the key (e.g. an RSA public key PEM: key confusion)."""
    if isinstance(key, str):
        key = key.encode()
    h = {'alg': alg, 'typ': 'JWT'}
    si = b64u(json.dumps(h, separators=(',', ':'))) + '.' + b64u(json.dumps(c, separators=(',', ':')))
    dig = {'HS256': hashlib.sha256, 'HS384': hashlib.sha384, 'HS512': hashlib.sha512}[alg]
    return si + '.' + b64u(hmac.new(key, si.encode(), dig).digest())


def none_token(c):
    h = {'alg': 'none', 'typ': 'JWT'}
    return b64u(json.dumps(h)) + '.' + b64u(json.dumps(c)) + '.'


# ------------------------------------------------------------------ HTTP client (asyncio, HTTP/1.1)
class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lower name, value)
        self.body = body
        self.text = body.decode('utf-8', 'replace')
        try:
            self.json = json.loads(self.text)
        except ValueError:
            self.json = None

    def h(self, name):
        name = name.lower()
        vals = [v for k, v in self.headers if k == name]
        return ', '.join(vals) if vals else None

    @property
    def error(self):
        return self.json.get('error') if isinstance(self.json, dict) else None

    def brief(self):
        return f'{self.status} {trunc(self.text, 200)}'


async def _read_head(reader):
    line = await reader.readline()
    if not line:
        raise ConnectionError('connection closed before a response')
    parts = line.decode('latin-1').rstrip('\r\n').split(' ', 2)
    status = int(parts[1])
    headers = []
    while True:
        l = await reader.readline()
        if l in (b'\r\n', b'\n', b''):
            break
        k, _, v = l.decode('latin-1').partition(':')
        headers.append((k.strip().lower(), v.strip()))
    return status, headers


async def _body_chunks(reader, headers, method, status):
    """Yields body bytes as they come (chunked, content-length or until close)."""
    if method == 'HEAD' or status in (204, 304) or 100 <= status < 200:
        return
    hd = {k: v for k, v in headers}
    if 'chunked' in hd.get('transfer-encoding', '').lower():
        while True:
            size_line = await reader.readline()
            if not size_line:
                return
            size = int(size_line.split(b';')[0].strip() or b'0', 16)
            if size == 0:
                await reader.readline()
                return
            data = await reader.readexactly(size)
            await reader.readline()
            yield data
    elif 'content-length' in hd:
        n = int(hd['content-length'])
        while n > 0:
            data = await reader.read(min(n, 65536))
            if not data:
                return
            n -= len(data)
            yield data
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            yield data


def _request_bytes(port, method, path, headers, body):
    hdrs = {'Host': f'127.0.0.1:{port}', 'Connection': 'close'}
    hdrs.update(headers or {})
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        hdrs['Content-Length'] = str(len(body))
    head = f'{method} {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in hdrs.items()) + '\r\n'
    return head.encode('latin-1') + (body or b'')


async def http_req(port, method, path, headers=None, body=None, timeout=10, src=None):
    """One request on its own connection; src: a local address to connect from (e.g. '127.0.0.2')."""
    async def go():
        reader, writer = await asyncio.open_connection('127.0.0.1', port, local_addr=(src, 0) if src else None)
        try:
            writer.write(_request_bytes(port, method, path, headers, body))
            await writer.drain()
            status, hdrs = await _read_head(reader)
            chunks = []
            async for c in _body_chunks(reader, hdrs, method, status):
                chunks.append(c)
            return Resp(status, hdrs, b''.join(chunks))
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)


async def publish(port, topic, body='x', headers=None, query='', timeout=10):
    r = await http_req(port, 'POST', f'/pub/{topic}' + (f'?{query}' if query else ''), headers or {}, body, timeout)
    check_published(r.status, r.body, f'POST /pub/{topic}', ephemeral='ephemeral=' in query)
    return r


def bearer(tok):
    return {'Authorization': f'Bearer {tok}'}


async def metric_sum(port, name):
    r = await http_req(port, 'GET', '/metrics')
    total, seen = 0.0, False
    for line in r.text.split('\n'):
        if line.startswith('#') or not line.strip():
            continue
        n = line.split('{')[0].split(' ')[0]
        if n == name:
            seen = True
            try:
                total += float(line.rsplit(' ', 1)[1])
            except ValueError:
                pass
    return total if seen else None


# ------------------------------------------------------------------ SSE client
class SSE:
    """An SSE stream. status/headers from the response; events: [{'event','data','id'}]; comments: [str]."""

    def __init__(self):
        self.events = []
        self.comments = []
        self.ended = False
        self.ended_at = None
        self.raw = b''
        self.resp = None
        self._task = None
        self._writer = None

    @classmethod
    async def open(cls, port, path, headers=None, timeout=5, src=None):
        s = cls()
        h = {'Accept': 'text/event-stream'}
        h.update(headers or {})
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection('127.0.0.1', port, local_addr=(src, 0) if src else None), timeout)
        s._writer = writer
        writer.write(_request_bytes(port, 'GET', path, h, None))
        await writer.drain()
        s.status, s.headers = await asyncio.wait_for(_read_head(reader), timeout)
        s.resp = Resp(s.status, s.headers, b'')
        if s.status != 200:
            chunks = []
            try:
                async def rd():
                    async for c in _body_chunks(reader, s.headers, 'GET', s.status):
                        chunks.append(c)
                await asyncio.wait_for(rd(), timeout)
            except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                pass
            s.resp = Resp(s.status, s.headers, b''.join(chunks))
            s.ended = True
            writer.close()
            return s
        s._task = asyncio.ensure_future(s._pump(reader))
        return s

    def h(self, name):
        return self.resp.h(name)

    async def _pump(self, reader):
        buf = ''
        cur = {'data': [], 'event': None, 'id': None}
        try:
            async for chunk in _body_chunks(reader, self.headers, 'GET', 200):
                self.raw += chunk
                buf += chunk.decode('utf-8', 'replace')
                while True:
                    i = min([x for x in (buf.find('\r\n'), buf.find('\n'), buf.find('\r')) if x >= 0], default=-1)
                    if i < 0:
                        break
                    sep = 2 if buf.startswith('\r\n', i) else 1
                    line, buf = buf[:i], buf[i + sep:]
                    if line == '':
                        if cur['data'] or cur['event'] is not None or cur['id'] is not None:
                            self.events.append({'event': cur['event'], 'data': '\n'.join(cur['data']), 'id': cur['id']})
                        cur = {'data': [], 'event': None, 'id': None}
                    elif line.startswith(':'):
                        self.comments.append(line[1:].lstrip(' '))
                    else:
                        f, _, v = line.partition(':')
                        v = v[1:] if v.startswith(' ') else v
                        if f == 'data':
                            cur['data'].append(v)
                        elif f in ('event', 'id'):
                            cur[f] = v
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.ended = True
            self.ended_at = time.time()

    async def wait(self, pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self):
                return True
            await asyncio.sleep(0.02)
        return bool(pred(self))

    async def wait_ok(self, timeout=3):
        return await self.wait(lambda s: 'ok' in s.comments, timeout)

    def messages(self):
        return [e for e in self.events if not (e['event'] or '').startswith('rt.')]

    def tail(self):
        return trunc(self.raw.decode('utf-8', 'replace')[-300:], 300)

    def close(self):
        if self._task:
            self._task.cancel()
        if self._writer:
            self._writer.close()


# ------------------------------------------------------------------ WebSocket client
class WS:
    """A WebSocket attempt: status (101 or the HTTP refusal), ws (open connection) or error."""

    def __init__(self):
        self.status = None
        self.ws = None
        self.error = None
        self.protocol = None
        self.proto_header = None
        self.msgs = []
        self.closed_seen = False

    @classmethod
    async def connect(cls, port, path, protocols=None, headers=None, origin=None, timeout=5):
        w = cls()
        try:
            w.ws = await asyncio.wait_for(websockets.connect(
                f'ws://127.0.0.1:{port}{path}', subprotocols=protocols or None, extra_headers=headers or {},
                origin=origin, open_timeout=timeout, close_timeout=2, ping_interval=None, compression=None,
                max_size=8 << 20), timeout + 1)
            w.status = 101
            w.protocol = w.ws.subprotocol
            w.proto_header = w.ws.response_headers.get_all('Sec-WebSocket-Protocol')
        except websockets.exceptions.InvalidStatusCode as e:
            w.status = e.status_code
            w.error = f'HTTP {e.status_code}'
        except Exception as e:  # noqa: BLE001
            w.error = f'{type(e).__name__}: {e}'
        return w

    @property
    def close_code(self):
        return self.ws.close_code if self.ws is not None and self.ws.closed else None

    @property
    def closed(self):
        return self.ws is None or self.closed_seen

    @property
    def close_reason(self):
        return self.ws.close_reason if self.ws is not None else None

    async def send(self, obj):
        try:
            await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))
            return True
        except websockets.exceptions.ConnectionClosed:
            return False

    async def recv(self, timeout):
        """Next message (JSON-decoded when possible), or None on timeout or once the connection is closed
        and every message that came before the close has been read (then closed_seen is set)."""
        if self.closed_seen:
            return None
        try:
            m = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return None
        except websockets.exceptions.ConnectionClosed:
            self.closed_seen = True
            return None
        try:
            v = json.loads(m)
        except (ValueError, TypeError):
            v = m
        self.msgs.append(v)
        return v

    async def wait_msg(self, pred, timeout):
        """Reads until pred(msg) holds; the matching message, or None (timeout/close). Earlier messages are kept in msgs."""
        for m in self.msgs:
            if pred(m):
                return m
        deadline = time.time() + timeout
        while not self.closed_seen:
            left = deadline - time.time()
            if left <= 0:
                return None
            m = await self.recv(left)
            if m is not None and pred(m):
                return m
        return None

    async def wait_close(self, timeout):
        """Reads (keeping messages) until the server closes; the close code, or None when still open."""
        deadline = time.time() + timeout
        while not self.closed_seen and time.time() < deadline:
            await self.recv(max(0.01, deadline - time.time()))
        if self.closed_seen:
            try:
                await asyncio.wait_for(self.ws.wait_closed(), 3)
            except asyncio.TimeoutError:
                pass
            return self.ws.close_code
        return None

    async def close(self):
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:  # noqa: BLE001
                pass


def is_type(t, **kw):
    def pred(m):
        return isinstance(m, dict) and m.get('type') == t and all(m.get(k) == v for k, v in kw.items())
    return pred

#!/usr/bin/python3
"""docker/Dockerfile followed step by step on this machine, without a Docker engine.

- The build stage: only the paths its COPY lines name are copied into an empty directory,
  and its `make ... build` runs there (so a source directory the build needs but the
  Dockerfile forgets to copy fails here). Its apt-get step is checked instead of run: every
  package of the list it installs from is installed here.
- The runtime stage: its COPY --from=build / COPY lines assemble the image's tree in a temp
  directory (binary, plugins, web/, conf/ and nothing else); its ENV, USER, WORKDIR and
  ENTRYPOINT start the broker with only that environment (paths mapped into the tree,
  RTB_LISTEN moved to 127.0.0.1 and a free port), as PID 1 of a new PID namespace
  (unshare), as the image's non-root uid (setpriv). The HEALTHCHECK command runs as Docker
  would (/bin/sh -c); SIGTERM is sent from outside the namespace as `docker stop` does.
Prints `PASS <file>: <case>` / `FAIL <file>: <case>: <why>`; exits 1 on any failure.
"""
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
FILE = os.path.basename(__file__)
DOCKERFILE = os.path.join(ROOT, 'docker', 'Dockerfile')
IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'  # Debian images' PATH
HARD_TIMEOUT = 110

passed = failed = 0
children = []  # Popen objects, killed by PID at exit
brokers = []  # Containers: their brokers are not our children when unshare runs them
TMP = tempfile.mkdtemp(prefix='rtb-image-')


def report(ok, name, why='', detail=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'PASS {FILE}: {name}', flush=True)
    else:
        failed += 1
        print(f'FAIL {FILE}: {name}: {why}', flush=True)
        if detail:
            print('\n'.join('  | ' + line for line in str(detail).rstrip().split('\n')[-40:]), flush=True)


def cleanup():
    # the brokers themselves first: setpriv's uid change clears unshare --kill-child's parent-death signal
    for c in brokers:
        c.kill()
    for p in children:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    shutil.rmtree(TMP, ignore_errors=True)


def on_alarm(signum, frame):
    report(False, 'hard timeout', f'the file did not finish within {HARD_TIMEOUT} s')
    cleanup()
    print(f'{FILE}: {passed} passed, {failed} failed', flush=True)
    os._exit(1)


class Fail(Exception):
    def __init__(self, msg, detail=''):
        super().__init__(msg)
        self.detail = detail


# ---------------------------------------------------------------- the Dockerfile
def parse_dockerfile(path):
    """[stage] with stage = {'from', 'name', 'steps': [(INSTR, args)]}; continuations joined."""
    lines, cur = [], ''
    for raw in open(path, encoding='utf-8'):
        s = raw.rstrip('\n')
        if not cur and (s.strip().startswith('#') or not s.strip()):
            continue
        if cur and s.strip().startswith('#'):
            continue  # a comment inside a continued instruction
        if s.endswith('\\'):
            cur += s[:-1] + ' '
            continue
        lines.append(cur + s)
        cur = ''
    stages = []
    for line in lines:
        instr, _, args = line.strip().partition(' ')
        instr = instr.upper()
        args = args.strip()
        if instr == 'FROM':
            m = re.match(r'^(\S+)(?:\s+AS\s+(\S+))?$', args, re.I)
            if not m:
                raise Fail(f'FROM {args}: not understood')
            stages.append({'from': m.group(1), 'name': m.group(2), 'steps': []})
        elif not stages:
            raise Fail(f'{instr} before the first FROM')
        else:
            stages[-1]['steps'].append((instr, args))
    return stages


def parse_env(args):
    """ENV K=V [K=V...] (the form this Dockerfile uses)."""
    out = {}
    for tok in shlex.split(args):
        if '=' not in tok:
            raise Fail(f'ENV {args}: only the K=V form is followed here')
        k, v = tok.split('=', 1)
        out[k] = v
    return out


def copy_args(args):
    toks = shlex.split(args)
    frm = None
    while toks and toks[0].startswith('--'):
        opt = toks.pop(0)
        if opt.startswith('--from='):
            frm = opt.split('=', 1)[1]
        else:
            raise Fail(f'COPY option {opt} is not followed here')
    if len(toks) != 2:
        raise Fail(f'COPY {args}: one source and one destination are followed here')
    return frm, toks[0], toks[1]


def in_root(root, cwd, dest):
    p = dest if dest.startswith('/') else os.path.join(cwd, dest)
    return os.path.join(root, os.path.normpath(p).lstrip('/'))


def copy_into(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def list_packages(path):
    return [w for line in open(path, encoding='utf-8') if not line.startswith('#') for w in line.split()]


def check_apt_step(run, root, cwd):
    """An apt-get step is not run here: it must install from a copied package list, every
    package of which is installed on this machine (make deps installs the same list)."""
    m = re.search(r'(/\S*packages-\w+\.txt)', run)
    if not m:
        raise Fail(f'RUN {run}: apt-get does not install from a package list file')
    lst = in_root(root, cwd, m.group(1))
    if not os.path.exists(lst):
        raise Fail(f'RUN {run}: {m.group(1)} was not copied into the stage before')
    missing = [p for p in list_packages(lst)
               if subprocess.run(['dpkg', '-s', p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0]
    if missing:
        raise Fail(f'{m.group(1)}: not installed here: {missing} (make deps)')
    return list_packages(lst)


# ---------------------------------------------------------------- helpers
from testutil import free_port  # noqa: E402 (tests/integration/testutil.py)


def http_get(port, path, headers=None, timeout=3):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request('GET', path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode('utf-8', 'replace')
    finally:
        c.close()


def wait_until(cond, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        time.sleep(0.05)
    raise Fail(f'timed out after {timeout} s waiting for {what}' + (f' (last error: {last})' if last else ''))


def tail(path, n=40):
    try:
        return '\n'.join(open(path, encoding='utf-8', errors='replace').read().split('\n')[-n:])
    except OSError as e:
        return f'(no log: {e})'


def ns_child(pid):
    """The pid (as seen here) of the process unshare --fork started."""
    for _ in range(100):
        try:
            kids = open(f'/proc/{pid}/task/{pid}/children').read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.02)
    raise Fail('unshare started no child')


def proc_status(pid):
    out = {}
    for line in open(f'/proc/{pid}/status'):
        k, _, v = line.partition(':')
        out[k] = v.split()
    return out


# ---------------------------------------------------------------- the emulation
class Image:
    """Follows the Dockerfile: builds the build stage, assembles the runtime tree."""

    def __init__(self):
        self.stages = parse_dockerfile(DOCKERFILE)
        if len(self.stages) != 2:
            raise Fail(f'{len(self.stages)} stages; this emulation follows two (build, runtime)')
        self.build_root = os.path.join(TMP, 'build-stage')
        self.root = os.path.join(TMP, 'image')
        self.env, self.user, self.workdir = {}, None, '/'
        self.entrypoint, self.cmd, self.healthcheck, self.expose = None, [], None, []
        self.uid = self.gid = None
        self.home = None
        self.build_log = ''

    def build(self):
        st = self.stages[0]
        cwd = '/'
        os.makedirs(self.build_root)
        for instr, args in st['steps']:
            if instr == 'WORKDIR':
                cwd = os.path.normpath(os.path.join(cwd, args))
                os.makedirs(in_root(self.build_root, cwd, '.'), exist_ok=True)
            elif instr == 'COPY':
                frm, src, dest = copy_args(args)
                if frm:
                    raise Fail(f'build stage: COPY --from={frm} is not followed here')
                copy_into(os.path.join(ROOT, src), in_root(self.build_root, cwd, dest))
            elif instr == 'RUN':
                if 'apt-get' in args:
                    check_apt_step(args, self.build_root, cwd)
                    continue
                # anything else runs as written, in the stage's working directory
                r = subprocess.run(['/bin/sh', '-c', args], cwd=in_root(self.build_root, cwd, '.'),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
                self.build_log += r.stdout
                if r.returncode != 0:
                    raise Fail(f'build stage: RUN {args} exited {r.returncode}', r.stdout)
            elif instr in ('ENV', 'ARG'):
                raise Fail(f'build stage: {instr} is not followed here')
            else:
                raise Fail(f'build stage: {instr} is not followed here')
        self.build_cwd = cwd

    def assemble(self):
        st = self.stages[1]
        build_name = self.stages[0]['name']
        os.makedirs(self.root)
        for instr, args in st['steps']:
            if instr == 'COPY':
                frm, src, dest = copy_args(args)
                if frm is not None:
                    if frm != build_name:
                        raise Fail(f'COPY --from={frm}: no such stage')
                    copy_into(in_root(self.build_root, '/', src), in_root(self.root, '/', dest))
                else:
                    copy_into(os.path.join(ROOT, src), in_root(self.root, '/', dest))
            elif instr == 'RUN':
                self.runtime_run(args)
            elif instr == 'ENV':
                self.env.update(parse_env(args))
            elif instr == 'USER':
                self.user = args
            elif instr == 'WORKDIR':
                self.workdir = os.path.normpath(os.path.join(self.workdir, args))
            elif instr == 'EXPOSE':
                self.expose += args.split()
            elif instr == 'HEALTHCHECK':
                m = re.match(r'^((?:--\S+\s+)*)CMD\s+(.*)$', args)
                if not m:
                    raise Fail(f'HEALTHCHECK {args}: not understood')
                self.healthcheck = m.group(2)
            elif instr == 'ENTRYPOINT':
                self.entrypoint = json.loads(args)
            elif instr == 'CMD':
                self.cmd = json.loads(args)
            elif instr == 'STOPSIGNAL':
                if args not in ('SIGTERM', '15'):
                    raise Fail(f'STOPSIGNAL {args}: the broker drains on SIGTERM')
            else:
                raise Fail(f'runtime stage: {instr} is not followed here')
        wd = in_root(self.root, '/', self.workdir)
        os.makedirs(wd, exist_ok=True)
        # the image's user: USER must name the uid:gid the RUN created
        if self.user is None:
            raise Fail('no USER: the image would run as root')
        m = re.match(r'^(\d+)(?::(\d+))?$', self.user)
        if not m:
            raise Fail(f'USER {self.user}: use a numeric uid:gid (Kubernetes runAsNonRoot checks it)')
        uid, gid = int(m.group(1)), int(m.group(2) or m.group(1))
        if uid == 0:
            raise Fail('USER 0: root')
        if (self.uid, self.gid) != (uid, gid):
            raise Fail(f'USER {self.user} is not the user the RUN creates ({self.uid}:{self.gid})')
        for d, _, files in os.walk(TMP):
            os.chmod(d, 0o755)
        if os.geteuid() == 0:
            os.chown(wd, uid, gid)

    def runtime_run(self, args):
        """The runtime RUN: apt-get from the runtime list (checked), and the user (recorded)."""
        for part in [p.strip() for p in args.split('&&')]:
            if 'apt-get install' in part:
                check_apt_step(part, self.root, '/')
            elif part.startswith(('apt-get update', 'rm -rf ')):
                pass
            elif part.startswith('groupadd'):
                m = re.search(r'--gid\s+(\d+)', part)
                self.gid = int(m.group(1)) if m else None
            elif part.startswith('useradd'):
                m = re.search(r'--uid\s+(\d+)', part)
                self.uid = int(m.group(1)) if m else None
                h = re.search(r'--home-dir\s+(\S+)', part)
                self.home = h.group(1) if h else None
                if h and '--create-home' in part:
                    os.makedirs(in_root(self.root, '/', h.group(1)), exist_ok=True)
            else:
                raise Fail(f'runtime stage: RUN step "{part}" is not followed here')

    def mapped(self, value):
        """An absolute path inside the image, as a path in the assembled tree."""
        if value.startswith('/') and os.path.exists(in_root(self.root, '/', value)):
            return in_root(self.root, '/', value)
        return value


class Container:
    """The runtime image started as Docker would: PID 1, the image's uid, only its ENV."""

    def __init__(self, img, port, extra_env=None):
        self.img, self.port = img, port
        env = {'PATH': IMAGE_PATH, 'HOME': img.home or '/'}
        for k, v in img.env.items():
            env[k] = img.mapped(v)
        if not re.match(r'^0\.0\.0\.0:\d+$', img.env.get('RTB_LISTEN', '')):
            raise Fail(f"ENV RTB_LISTEN={img.env.get('RTB_LISTEN')}: want 0.0.0.0:PORT (reachable from other containers)")
        env['RTB_LISTEN'] = f'127.0.0.1:{port}'  # tests listen on loopback only
        env.update(extra_env or {})
        self.env = env
        argv = [img.mapped(img.entrypoint[0])] + img.entrypoint[1:] + img.cmd
        self.how = []
        prefix = []
        if shutil.which('unshare') and self._can_unshare([]):
            prefix = ['unshare', '--pid', '--fork', '--kill-child']
            self.how.append('PID 1')
        elif shutil.which('unshare') and self._can_unshare(['--user', '--map-root-user']):
            prefix = ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--kill-child']
            self.how.append('PID 1 (user namespace)')
        if os.geteuid() == 0 and shutil.which('setpriv'):
            prefix += ['setpriv', f'--reuid={img.uid}', f'--regid={img.gid}', '--clear-groups']
            self.how.append(f'uid {img.uid}')
        self.log_path = os.path.join(TMP, f'broker-{port}.log')
        self.log = open(self.log_path, 'w')
        self.p = subprocess.Popen(prefix + argv, cwd=in_root(img.root, '/', img.workdir), env=env,
                                  stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        children.append(self.p)
        self.pid = ns_child(self.p.pid) if prefix and prefix[0] == 'unshare' else self.p.pid
        brokers.append(self)

    def kill(self):
        """SIGKILL the broker (by its pid here), then unshare. While unshare lives, the broker's pid
        cannot have been reused (unshare has not reaped it), so that pid is still the broker."""
        if self.p.poll() is not None:
            return
        for pid in (self.pid, self.p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    @staticmethod
    def _can_unshare(opts):
        try:
            return subprocess.run(['unshare', *opts, '--pid', '--fork', 'true'], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def wait_healthy(self):
        def ok():
            if self.p.poll() is not None:
                raise Fail(f'the broker exited with {self.p.returncode} at start', tail(self.log_path))
            return http_get(self.port, '/healthz')[0] == 200
        try:
            wait_until(ok, 10, '/healthz 200')
        except Fail as e:
            raise Fail(str(e), e.detail or tail(self.log_path))

    def healthcheck(self):
        argv = ['/bin/sh', '-c', self.img.healthcheck]
        if os.geteuid() == 0 and shutil.which('setpriv'):
            argv = ['setpriv', f'--reuid={self.img.uid}', f'--regid={self.img.gid}', '--clear-groups'] + argv
        r = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
        return r.returncode, r.stdout

    def stop(self, timeout):
        """SIGTERM to the broker from outside its namespace (docker stop); returns (code, seconds)."""
        t0 = time.time()
        os.kill(self.pid, signal.SIGTERM)
        try:
            code = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, time.time() - t0
        return code, time.time() - t0


# ---------------------------------------------------------------- cases
def case(name):
    def wrap(fn):
        try:
            fn()
            report(True, name)
        except Fail as e:
            report(False, name, str(e), e.detail)
        except Exception as e:  # noqa: BLE001 - a crash in a case is that case's failure
            report(False, name, f'{type(e).__name__}: {e}', traceback.format_exc())
        return fn
    return wrap


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HARD_TIMEOUT)
    img = None

    @case('build stage: the paths its COPY lines name are enough for its `make build`; its packages come from conf/packages-build.txt')
    def _build():
        nonlocal img
        img = Image()
        if img.stages[0]['from'] != 'debian:bookworm-slim' or img.stages[1]['from'] != 'debian:bookworm-slim':
            raise Fail(f"stages FROM {img.stages[0]['from']} / {img.stages[1]['from']}: want debian:bookworm-slim")
        img.build()
        for f in ('build/rtbroker', 'build/plugins/sse.so', 'build/plugins/longpoll.so', 'build/plugins/websocket.so'):
            if not os.path.exists(in_root(img.build_root, img.build_cwd, f)):
                raise Fail(f'the build stage produced no {f}', img.build_log)
        img.built = True

    if img is None or not getattr(img, 'built', False):
        return

    @case('runtime stage: holds only the binary, its plugins, web/ and conf/; its packages come from conf/packages-runtime.txt')
    def _assemble():
        img.assemble()
        if not img.entrypoint or not os.path.isfile(in_root(img.root, '/', img.entrypoint[0])):
            raise Fail(f'ENTRYPOINT {img.entrypoint}: not the broker binary copied into the image (exec form, no shell)')
        top = os.path.dirname(img.mapped(img.entrypoint[0]))
        have = sorted(os.listdir(top))
        if have != sorted([os.path.basename(img.entrypoint[0]), 'plugins', 'web', 'conf']):
            raise Fail(f'{img.entrypoint[0]} sits beside {have[:20]}: want only plugins/, web/ and conf/')
        sos = sorted(os.listdir(os.path.join(top, 'plugins')))
        if not sos or any(not s.endswith('.so') for s in sos):
            raise Fail(f'plugins/ holds {sos}')
        wd = in_root(img.root, '/', img.workdir)
        if os.path.exists(os.path.join(wd, 'conf', 'rtbroker.yaml')):
            raise Fail(f'WORKDIR {img.workdir} has conf/rtbroker.yaml: the image would run on that file, not on its environment')
        if '8080' not in img.expose and '8080/tcp' not in img.expose:
            raise Fail(f'EXPOSE {img.expose}')
        img.assembled = True

    if not getattr(img, 'assembled', False):
        return
    port = free_port()

    @case('runs from its ENV alone (built-in defaults, nothing anonymous), as PID 1 and non-root; HEALTHCHECK passes; SIGTERM exits 0')
    def _run():
        c = Container(img, port)
        try:
            c.wait_healthy()
            st = proc_status(c.pid)
            if 'PID 1' in c.how[:1] or 'PID 1 (user namespace)' in c.how[:1]:
                if st.get('NSpid', [None])[-1] != '1':
                    raise Fail(f"the broker is not PID 1 in its namespace: NSpid {st.get('NSpid')}")
            if f'uid {img.uid}' in c.how and st['Uid'][0] != str(img.uid):
                raise Fail(f"runs as uid {st['Uid'][0]}, want {img.uid}")
            log = tail(c.log_path)
            if 'built-in defaults' not in log:
                raise Fail('the start line does not say it runs on the built-in defaults', log)
            for path in ('/healthz', '/readyz', '/'):
                status, body = http_get(port, path)
                if status != 200:
                    raise Fail(f'GET {path}: {status} {body[:200]}', tail(c.log_path))
            status, body = http_get(port, '/sub/chat.room1', {'Accept': 'text/event-stream'})
            if status != 401:
                raise Fail(f'an anonymous subscribe got {status}, want 401: the image must open nothing by default')
            code, out = c.healthcheck()
            if code != 0:
                raise Fail(f'HEALTHCHECK CMD {img.healthcheck} exited {code}: {out.strip()}')
            code, secs = c.stop(15)
            if code is None:
                raise Fail('SIGTERM: still running after 15 s (docker stop would SIGKILL it at 10 s)', tail(c.log_path))
            if code != 0:
                raise Fail(f'SIGTERM: exit status {code}, want 0', tail(c.log_path))
            if 'SIGTERM' not in tail(c.log_path):
                raise Fail('SIGTERM not logged', tail(c.log_path))
            code, out = c.healthcheck()
            if code == 0:
                raise Fail('the HEALTHCHECK passes with the broker stopped')
            print(f"INFO {FILE}: ran as {', '.join(c.how) or 'a plain process (no namespaces here)'}; stopped in {secs:.2f} s", flush=True)
        finally:
            c.kill()

    @case('docker run -e RTB_AUTH_ANONYMOUS_SUBSCRIBE=">": an open SSE stream gets rt.shutdown on SIGTERM and PID 1 exits 0 within the drain')
    def _drain():
        p2 = free_port()
        c = Container(img, p2, {'RTB_AUTH_ANONYMOUS_SUBSCRIBE': '>'})
        sock = None
        try:
            c.wait_healthy()
            sock = socket.create_connection(('127.0.0.1', p2), timeout=5)
            sock.sendall(b'GET /sub/chat.room1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n')
            buf = b''
            deadline = time.time() + 5
            while b': ok' not in buf and time.time() < deadline:
                buf += sock.recv(4096)
            if b' 200 ' not in buf.split(b'\r\n', 1)[0] or b': ok' not in buf:
                raise Fail(f'SSE subscribe: {buf[:300]!r}')
            t0 = time.time()
            os.kill(c.pid, signal.SIGTERM)
            sock.settimeout(12)
            while b'rt.shutdown' not in buf:
                d = sock.recv(4096)
                if not d:
                    break
                buf += d
            if b'rt.shutdown' not in buf:
                raise Fail(f'the stream ended without event: rt.shutdown: {buf[-300:]!r}', tail(c.log_path))
            try:
                code = c.p.wait(timeout=12)
            except subprocess.TimeoutExpired:
                raise Fail('still running 12 s after SIGTERM', tail(c.log_path))
            if code != 0:
                raise Fail(f'exit status {code}', tail(c.log_path))
            print(f'INFO {FILE}: drained an SSE stream and exited 0 in {time.time() - t0:.2f} s', flush=True)
        finally:
            if sock:
                sock.close()
            c.kill()


if __name__ == '__main__':
    try:
        main()
    except Fail as e:
        report(False, 'Dockerfile', str(e), e.detail)
    finally:
        cleanup()
    print(f'{FILE}: {passed} passed, {failed} failed', flush=True)
    sys.exit(1 if failed or not passed else 0)

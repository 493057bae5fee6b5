"""The servers of `make bench-cluster` (tests/bench/cluster.py) and its scenarios across two nodes:

C1  fanout: 1,600 WebSocket subscribers over 16 topics on node B, 16 publishing connections on node A,
    each with one request in flight, publishing as fast as acknowledged (loadgen's closed loop);
C2  latency: 1,000 WebSocket subscribers on node B, one publisher on node A at 100 publishes/s;

for two rtbroker nodes on one nats-server and for two nginx + nchan nodes on one redis-server
(tests/bench/nchan.conf.in with nchan's Redis storage). Latency is per delivered message: loadgen
(tests/bench/loadgen.c, --pub-port) puts the send time in each payload. Each run starts fresh servers
on free ports on 127.0.0.1, pinned apart from the load generator, and stops them by pid.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'integration'))
from testutil import free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so'
procs = []  # every process started, stopped by pid at the end whatever happened

# servers on all CPUs but the last, the load generator on the last (one core each on 2 CPUs)
NPROC = os.cpu_count() or 1
SRV_CPUS = f'0-{NPROC - 2}' if NPROC > 1 else '0'
LG_CPUS = str(NPROC - 1)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all():
    while procs:
        stop(procs.pop())


def get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        c.request('GET', path)
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError:
        return 0, ''
    finally:
        c.close()


def spawn(argv, log, cpus=None, env=None):
    if cpus:
        argv = ['taskset', '-c', cpus] + argv
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, 'a'), env=env)
    procs.append(p)
    return p


def wait_port(port, p, what, t=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < t:
        if p.poll() is not None:
            break
        try:
            with socket.create_connection(('127.0.0.1', port), 0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f'{what} on port {port} did not start')


def start_nats(tmp, cpus=None):
    port = free_port()
    d = os.path.join(tmp, f'js-{port}')
    p = spawn(['nats-server', '-js', '-a', '127.0.0.1', '-p', str(port), '-sd', d], os.path.join(tmp, 'nats.log'), cpus)
    wait_port(port, p, 'nats-server')
    return p, f'nats://127.0.0.1:{port}'


def start_broker(binary, url, tmp, name, extra='', cpus=None):
    """A node with 1 worker on nats-server `url`; waits for /readyz 200 -> (process, port, seconds)."""
    port = free_port()
    cfg = os.path.join(tmp, f'{name}.yaml')
    with open(cfg, 'w') as f:
        f.write(f'listen: 127.0.0.1:{port}\nbus: nats\nworkers: 1\nnats:\n  url: [{url}]\n'
                'history:\n  max_messages: 100\n  max_age: 1h\n'
                'auth:\n  anonymous:\n    subscribe: [">"]\n    publish: [">"]\n' + extra)
    t0 = time.monotonic()
    log = os.path.join(tmp, f'{name}.log')
    p = spawn([binary, '-c', cfg], log, cpus,
              env=dict({k: v for k, v in os.environ.items() if k != 'RTB_BIN'},  # RTB_*: configuration keys
                       RTB_PLUGINS_DIR=os.path.join(os.path.dirname(binary), 'plugins')))
    while get(port, '/readyz')[0] != 200:
        if p.poll() is not None or time.monotonic() - t0 > 300:
            raise SystemExit(f'{name}: not ready; log {log}')
        time.sleep(0.02)
    return p, port, time.monotonic() - t0


# as tests/bench/run's nodes: no per-IP or per-subject limits, a deep queue per subscriber
FANOUT_CFG = ('log:\n  level: warn\nweb:\n  root: ""\nlimits:\n  connections_per_ip: 0\n  publish_per_subject: 0\n'
              '  max_queue_bytes: 8MiB\n')


def start_rtb_pair(binary, tmp, name):
    """nats-server and nodes A, B -> ({A port, B port}, pids of all three)."""
    nats, url = start_nats(tmp, SRV_CPUS)
    a, pa, _ = start_broker(binary, url, tmp, f'{name}_A', FANOUT_CFG, SRV_CPUS)
    b, pb, _ = start_broker(binary, url, tmp, f'{name}_B', FANOUT_CFG, SRV_CPUS)
    return pa, pb, [nats.pid, a.pid, b.pid]


def start_redis(tmp):
    port = free_port()
    p = spawn(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
               '--dir', tmp], os.path.join(tmp, 'redis.log'), SRV_CPUS)
    wait_port(port, p, 'redis-server')
    return p, port


def start_nchan(tmp, redis_port):
    port = free_port()
    d = os.path.join(tmp, f'nchan-{port}')
    os.makedirs(d)
    with open(os.path.join(ROOT, 'tests', 'bench', 'nchan.conf.in')) as f:
        conf = f.read()
    # C1/C2 speak plain HTTP/1.1: make bench's TLS listener (S5-SSE-h2, a certificate of its own) is left out
    conf = '\n'.join(x for x in conf.split('\n') if not any(k in x for k in ('@TLSPORT@', '@CERT@', '@KEY@')))
    for k, v in (('WORKERS', '1'), ('PORT', str(port)), ('DIR', d), ('MODULE', NCHAN_MODULE), ('DEFLATE', 'off')):
        conf = conf.replace(f'@{k}@', v)
    # nchan's Redis storage: every node publishes to and reads from the one redis-server
    # (nchan_redis_pass in the http or server block is taken and ignored: it goes in each location)
    http = 'nchan_message_timeout 1h;'
    assert http in conf and conf.count('nchan_subscriber;') == 1 and conf.count('nchan_publisher;') == 1, \
        'tests/bench/nchan.conf.in changed: where does Redis go?'
    conf = conf.replace(http, f'upstream rtbench_redis {{ nchan_redis_server redis://127.0.0.1:{redis_port}; }}\n    {http}', 1)
    for role in ('nchan_subscriber;', 'nchan_publisher;'):
        conf = conf.replace(role, f'{role} nchan_redis_pass rtbench_redis;', 1)
    with open(os.path.join(d, 'nginx.conf'), 'w') as f:
        f.write(conf)
    p = spawn(['nginx', '-p', d, '-c', os.path.join(d, 'nginx.conf')], os.path.join(tmp, 'nginx.log'), SRV_CPUS)
    wait_port(port, p, 'nginx')
    kids = []
    for _ in range(40):
        kids = subprocess.run(['pgrep', '-P', str(p.pid)], capture_output=True, text=True).stdout.split()
        if kids:
            break
        time.sleep(0.05)
    return port, [p.pid] + [int(k) for k in kids]


def start_nchan_pair(tmp):
    redis, rport = start_redis(tmp)
    pa, pids_a = start_nchan(tmp, rport)
    pb, pids_b = start_nchan(tmp, rport)
    return pa, pb, [redis.pid] + pids_a + pids_b


# seconds to wait for what is still on its way when publishing stops: nchan+Redis ran seconds late
# on this shared machine; what has not arrived by then counts as lost
DRAIN = 20


def scenario_args(sc, dur):
    if sc == 'C1':
        return ['--ws', '1600', '--topics', '16', '--publishers', '16', '--rate', '0', '--duration', str(dur)]
    # 4 connections share the 100/s: one alone falls behind whenever an acknowledgement takes over 10 ms
    return ['--ws', '1000', '--topics', '1', '--publishers', '4', '--rate', '100', '--duration', str(dur + 1)]


def run_pair(lg, sc, system, binary, tmp, dur, n, logdir):
    """One run of C1 or C2 on fresh servers (rtbroker `binary`, or nchan when None) -> the RESULT fields
    of loadgen `lg` (dict)."""
    k = len(procs)
    if binary:
        pa, pb, pids = start_rtb_pair(binary, tmp, f'{sc}_{n}')
        server = 'rtbroker'
    else:
        pa, pb, pids = start_nchan_pair(tmp)
        server = 'nchan'
    base = 2 + (n * 16) % 224  # source addresses rotate between runs so that no port range fills up
    argv = ['taskset', '-c', LG_CPUS, lg, '--server', server, '--port', str(pb), '--pub-port', str(pa),
            '--size', '64', '--src-addrs', '16', '--src-base', str(base), '--pid', ','.join(map(str, pids)),
            '--drain', str(DRAIN), '--label', sc, '--quiet'] + scenario_args(sc, dur)
    load1 = open('/proc/loadavg').read().split()[0]
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or '')
        out += f'\nRESULT label={sc} server={server} ok=0 timed_out=1\n'
    while len(procs) > k:  # this run's servers, newest first
        stop(procs.pop())
    with open(os.path.join(logdir, f'{sc}-{system.replace(" ", "_")}-{n}.txt'), 'w') as f:
        f.write(out)
    line = [ln for ln in out.splitlines() if ln.startswith('RESULT ')]
    fields = dict(kv.split('=', 1) for kv in line[-1].split()[1:]) if line else {'ok': '0'}
    fields['load1'] = load1
    return fields

#!/usr/bin/python3
"""`make bench-cluster`: what a cluster of NATS nodes costs (issue 18), for the broker under test and,
when BENCH_CLUSTER_BASELINE (or BASELINE_BIN) names one, an older build side by side, and for C1/C2
nginx + nchan with Redis in the same rounds. Writes its section of BENCHMARKS.md (tests/bench/cluster_report.py).

C1  fanout across nodes, C2 latency across nodes (tests/bench/cluster_nodes.py): publishers on node A,
    WebSocket subscribers on node B; two rtbroker nodes on one nats-server, two nginx + nchan on one redis-server.
C4  a new node with 1,000,000 retained messages in the stream (10,000 topics x 100 x 200 B):
    time from start to /readyz 200, and its RSS then and 2 s later.
C3  resume from an id on a node that has never seen the topic: 50 SSE resumes, each on another topic
    with 100 retained messages, one after the other; p50/p99 time to the last replayed message.
C5  a node whose clients subscribe to 1% of 10,000 active topics (100 topics over 4 SSE
    connections) while 100,000 messages are stored round-robin on all of them: the share of
    the stream's messages the node received (rtbroker_bus_messages_in_total; a build without
    it consumes the whole stream: rtbroker_bus_seq) and the CPU seconds it used.

Knobs (environment): RTB_BIN (build/rtbroker), BENCH_CLUSTER_BASELINE (unset: none; its rows are named
BENCH_CLUSTER_BASELINE_LABEL, "baseline"), BENCH_CLUSTER_ROUNDS (5), BENCH_CLUSTER_DURATION (publishing
seconds of C1; C2 one more, 3), C4_MESSAGES (1000000), C5_MESSAGES (100000), BENCH_CLUSTER_OUT
(BENCHMARKS.md), BENCH_NO_INSTALL=1 (never call apt-get). Every process it starts is stopped by its pid.
"""
import http.client
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(__file__))
from cluster_nodes import DRAIN, ROOT, SRV_CPUS, LG_CPUS, get, start_broker, start_nats, stop, stop_all, run_pair  # noqa: E402
from cluster_report import write_section  # noqa: E402

RTB = os.path.join(ROOT, os.environ.get('RTB_BIN', 'build/rtbroker'))
BASE = os.environ.get('BENCH_CLUSTER_BASELINE') or os.environ.get('BASELINE_BIN')
NC = os.path.join(os.path.dirname(RTB), 'tools', 'nats_client')
LG = os.path.join(os.path.dirname(RTB), 'bench', 'loadgen')
C4_N = int(os.environ.get('C4_MESSAGES', '1000000'))
C5_N = int(os.environ.get('C5_MESSAGES', '100000'))
ROUNDS = int(os.environ.get('BENCH_CLUSTER_ROUNDS', '5'))
DUR = int(os.environ.get('BENCH_CLUSTER_DURATION', '3'))
TOPICS = 10000
OUT = os.path.join(ROOT, os.environ.get('BENCH_CLUSTER_OUT', 'BENCHMARKS.md'))


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' ') or line.startswith(name + '{'):
            return float(line.split()[-1])
    return None


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0


def cpu_s(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def fill(url, prefix, n):
    t0 = time.monotonic()
    subprocess.run([NC, 'fill', url, prefix, str(TOPICS), str(n), '200'], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def sse(port, topics, counter):
    q = '&'.join(f'topic={t}' for t in topics)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    c.request('GET', f'/sub?{q}', headers={'Accept': 'text/event-stream'})
    r = c.getresponse()
    for line in r:
        if line.startswith(b'id:'):
            with counter['lock']:
                counter['n'] += 1


def c4(binary, url, tmp, name):
    p, port, ready = start_broker(binary, url, tmp, name)
    rss0 = rss_mb(p.pid)
    time.sleep(2)
    rss1 = rss_mb(p.pid)
    stop(p)
    return ready, rss0, rss1


def c3(binary, url, tmp, name):
    """-> (p50 ms, p99 ms, fewest messages a resume replayed): a node that keeps history in memory
    within a cap may have dropped the older ones (it sends a gap notice, then what it holds)"""
    p, port, _ = start_broker(binary, url, tmp, name)
    cursor = get(port, '/history/hist.t0?limit=1')[1].split('"cursor":"')[1].split('"')[0]
    epoch, last0 = cursor.split(':')[0], int(cursor.split(':')[1])
    times, fewest = [], None
    for i in range(1, 51):
        last = last0 + i  # the fill stores topics t0..t9999 round-robin, in order
        t0 = time.monotonic()
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        c.request('GET', f'/sub/hist.t{i}', headers={'Accept': 'text/event-stream', 'Last-Event-ID': f'{epoch}:0'})
        r = c.getresponse()
        n = 0
        for line in r:
            if line.startswith(b'id:'):
                n += 1
                if int(line.split(b':')[-1]) >= last:
                    break
        times.append((time.monotonic() - t0) * 1000)
        fewest = n if fewest is None else min(fewest, n)
        c.close()
    stop(p)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))], fewest


def c5(binary, url, tmp, name):
    p, port, _ = start_broker(binary, url, tmp, name)
    counter = {'n': 0, 'lock': threading.Lock()}
    mine = [f'rt_bench.t{i}' for i in range(0, TOPICS, 100)]  # 1%: 100 topics
    for k in range(4):
        threading.Thread(target=sse, args=(port, mine[k * 25:(k + 1) * 25], counter), daemon=True).start()
    time.sleep(1.5)
    m0 = get(port, '/metrics')[1]
    cpu0 = cpu_s(p.pid)
    fill(url, 'rt.rt_bench', C5_N)
    want = C5_N // 100
    t0 = time.monotonic()
    while counter['n'] < want and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    time.sleep(0.5)
    m1 = get(port, '/metrics')[1]
    cpu1 = cpu_s(p.pid)
    name_in = 'rtbroker_bus_messages_in_total' if metric(m1, 'rtbroker_bus_messages_in_total') is not None else 'rtbroker_bus_seq'
    got = metric(m1, name_in) - metric(m0, name_in)
    stop(p)
    return got / C5_N, counter['n'], cpu1 - cpu0, name_in


def fanout_rounds(designs, tmp, logdir):
    """C1 and C2, ROUNDS rounds, each system in turn (the order rotates) on fresh servers
    -> {(scenario, system): [RESULT fields, ...]}."""
    systems = designs + [('nchan+Redis', None)]
    res = {}
    n = 0
    for r in range(ROUNDS):
        for sc in ('C1', 'C2'):
            order = systems[r % len(systems):] + systems[:r % len(systems)]
            for name, binary in order:
                n += 1
                f = run_pair(LG, sc, name, binary, tmp, DUR, n, logdir)
                res.setdefault((sc, name), []).append(f)
                bad = '' if f.get('ok') == '1' else f"  !!! lost {f.get('lost')} dups {f.get('dups')} failed {f.get('failed')}"
                print(f"[round {r + 1}] {sc} {name}: {float(f.get('rate', 0)):,.0f} msg/s, p50 {f.get('p50_ms')} ms, "
                      f"p99 {f.get('p99_ms')} ms, servers' cpu {f.get('srv_cpu')} (load {f['load1']}){bad}", flush=True)
    return res


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return '?'


def versions():
    def deb(pkg):
        return subprocess.run(['dpkg-query', '-W', '-f=${Version}', pkg], capture_output=True, text=True).stdout or '?'
    return {'nats': first_line(['nats-server', '--version']), 'nginx': first_line(['nginx', '-v']),
            'nchan': deb('libnginx-mod-nchan'), 'redis': first_line(['redis-server', '--version']),
            'rtb': first_line([RTB, '--version']),
            'commit': subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                     text=True).stdout.strip()}


def main():
    t_start, load0 = time.monotonic(), ' '.join(open('/proc/loadavg').read().split()[:3])
    if subprocess.run([os.path.join(ROOT, 'tests', 'bench', 'ensure_packages.sh'), 'nginx', 'libnginx-mod-nchan',
                       'redis-server']).returncode != 0:
        raise SystemExit('bench-cluster: nginx, nchan and redis-server are needed')
    if not os.path.exists(LG):
        subprocess.run(['make', '-s', '-C', ROOT, os.path.relpath(LG, ROOT)], check=True)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # 1,600 subscribers: the servers inherit it
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base_label = os.environ.get('BENCH_CLUSTER_BASELINE_LABEL', 'baseline')
    designs = [('this build', RTB)] + ([(base_label, os.path.abspath(BASE))] if BASE else [])
    tmp = tempfile.mkdtemp(prefix='rtb-bench-cluster-')
    logdir = os.path.join(os.path.dirname(RTB), 'bench', 'logs', 'cluster-' + time.strftime('%Y%m%d-%H%M%S'))
    os.makedirs(logdir, exist_ok=True)
    nodes = {}
    try:
        res = fanout_rounds(designs, tmp, logdir)
        nats, url = start_nats(tmp)
        # the stream as this build makes it (re-publish included), then the retained history
        p, _, _ = start_broker(RTB, url, tmp, 'create')
        stop(p)
        fill_s = fill(url, 'rt.hist', C4_N)
        print(f'filled {C4_N} messages in {fill_s:.1f} s', flush=True)
        for name, binary in designs:
            ready, rss0, rss1 = c4(binary, url, tmp, name.replace(' ', '_'))
            p50, p99, replayed = c3(binary, url, tmp, name.replace(' ', '_') + '_c3')
            share, delivered, cpu, via = c5(binary, url, tmp, name.replace(' ', '_') + '_c5')
            nodes[name] = (ready, rss0, rss1, p50, p99, share, delivered, cpu, via, replayed)
            print(f'{name}: C4 ready {ready:.2f} s, RSS {rss0:.0f} MB (+2 s: {rss1:.0f} MB); '
                  f'C3 p50 {p50:.1f} ms p99 {p99:.1f} ms (at least {replayed} messages replayed); '
                  f'C5 share {share * 100:.1f}% ({via}), delivered {delivered}, CPU {cpu:.2f} s', flush=True)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    info = dict(versions(), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), duration=time.monotonic() - t_start,
                load0=load0, load1=' '.join(open('/proc/loadavg').read().split()[:3]), nproc=os.cpu_count(),
                rounds=ROUNDS, dur=DUR, drain=DRAIN, srv_cpus=SRV_CPUS, lg_cpus=LG_CPUS, c4_n=C4_N, c5_n=C5_N,
                base=BASE and os.path.abspath(BASE), base_version=BASE and first_line([BASE, '--version']))
    write_section(OUT, info, res, nodes, [n for n, _ in designs])
    print(f'wrote {OUT} (logs: {logdir}) in {info["duration"]:.0f} s')


if __name__ == '__main__':
    main()

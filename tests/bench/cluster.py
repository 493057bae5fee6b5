#!/usr/bin/python3
"""`make bench-cluster`: what one node of a NATS cluster costs (issue 18), for the broker under
test and, when BASELINE_BIN names one, an older build side by side, on one nats-server.

C4  a new node with 1,000,000 retained messages in the stream (10,000 topics x 100 x 200 B):
    time from start to /readyz 200, and its RSS then and 2 s later.
C3  resume from an id on a node that has never seen the topic: 50 SSE resumes, each on another topic
    with 100 retained messages, one after the other; p50/p99 time to the last replayed message. Also
    the same resumes again (the node's history cache), resumes of topics published after the big
    history, and the floor: the same reads by nats.c alone (tests/tools/nats_fetchbench.c).
C5  a node whose clients subscribe to 1% of 10,000 active topics (100 topics over 4 SSE
    connections) while 100,000 messages are stored round-robin on all of them: the share of
    the stream's messages the node received (rtbroker_bus_messages_in_total; a build without
    it consumes the whole stream: rtbroker_bus_seq) and the CPU seconds it used.

Knobs (environment): RTB_BIN (build/rtbroker), BASELINE_BIN (unset: none), BEFORE_BIN (another build, e.g. the
branch before a change; unset: none), C4_MESSAGES (1000000),
C5_MESSAGES (100000), BENCH_CLUSTER_OUT (BENCHMARKS-cluster.md). Every process it starts is
stopped by its pid.
"""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'integration'))
from testutil import free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
RTB = os.path.join(ROOT, os.environ.get('RTB_BIN', 'build/rtbroker'))
BASE = os.environ.get('BASELINE_BIN')
BEFORE = os.environ.get('BEFORE_BIN')
NC = os.path.join(os.path.dirname(RTB), 'tools', 'nats_client')
C4_N = int(os.environ.get('C4_MESSAGES', '1000000'))
C5_N = int(os.environ.get('C5_MESSAGES', '100000'))
TOPICS = 10000
OUT = os.path.join(ROOT, os.environ.get('BENCH_CLUSTER_OUT', 'BENCHMARKS-cluster.md'))
procs = []


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_nats(tmp):
    port = free_port()
    p = subprocess.Popen(['nats-server', '-js', '-a', '127.0.0.1', '-p', str(port), '-sd', os.path.join(tmp, 'js')],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    time.sleep(0.5)
    return p, f'nats://127.0.0.1:{port}'


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


def start_broker(binary, url, tmp, name):
    port = free_port()
    cfg = os.path.join(tmp, f'{name}.yaml')
    with open(cfg, 'w') as f:
        f.write(f'listen: 127.0.0.1:{port}\nbus: nats\nworkers: 1\nnats:\n  url: [{url}]\n'
                'history:\n  max_messages: 100\n  max_age: 1h\n'
                'auth:\n  anonymous:\n    subscribe: [">"]\n    publish: [">"]\n')
    t0 = time.monotonic()
    p = subprocess.Popen([binary, '-c', cfg], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f'{name}.log'), 'w'),
                         env=dict(os.environ, RTB_PLUGINS_DIR=os.path.join(os.path.dirname(binary), 'plugins')))
    procs.append(p)
    while get(port, '/readyz')[0] != 200:
        if p.poll() is not None or time.monotonic() - t0 > 300:
            raise SystemExit(f'{name}: not ready; log {os.path.join(tmp, name + ".log")}')
        time.sleep(0.02)
    return p, port, time.monotonic() - t0


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


def resume_ms(port, epoch, topic, per_topic):
    t0 = time.monotonic()
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('GET', f'/sub/{topic}', headers={'Accept': 'text/event-stream', 'Last-Event-ID': f'{epoch}:0'})
    r = c.getresponse()
    n = 0
    for line in r:
        if line.startswith(b'id:'):
            n += 1
            if n == per_topic:
                break
    c.close()
    return (time.monotonic() - t0) * 1000


def p50_p99(times):
    times = sorted(times)
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def c3(binary, url, tmp, name, first):
    """C3 on one new node: 50 resumes of hist topics it never saw, the same 50 again (its cache), and 50 of
    recent topics it never saw. {round: (p50, p99)}."""
    p, port, _ = start_broker(binary, url, tmp, name)
    cursor = get(port, '/history/hist.t0?limit=1')[1].split('"cursor":"')[1].split('"')[0]
    epoch = cursor.split(':')[0]
    per_topic = max(1, min(100, C4_N // TOPICS))
    out = {}
    for label, prefix, start, n in (('cold', 'hist', first, per_topic), ('again', 'hist', first, per_topic),
                                    ('recent', 'recent', first - 1, 100)):
        out[label] = p50_p99([resume_ms(port, epoch, f'{prefix}.t{i}', n) for i in range(start, start + 50)])
    stop(p)
    return out


def c3_floor(url, prefix, first, expect):
    """The floor of C3 without a broker (tests/tools/nats_fetchbench.c): each way nats.c reads a topic, on 50
    topics each; the fastest p50. (method, p50, p99)."""
    tool = os.path.join(os.path.dirname(RTB), 'tools', 'nats_fetchbench')
    best = None
    for k, method in enumerate(('ordered', 'pull', 'raw', 'direct')):
        r = subprocess.run([tool, url, 'RT', f'rt.{prefix}', str(first + 50 * k), '50', str(expect), method],
                           capture_output=True, text=True)
        f = dict(x.split('=') for x in r.stdout.split()[1:] if '=' in x)
        if r.returncode == 0 and (best is None or float(f['p50_ms']) < best[1]):
            best = (method, float(f['p50_ms']), float(f['p99_ms']))
    return best or ('none', 0, 0)


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


def main():
    designs = [('this build', RTB)] + ([('before', os.path.abspath(BEFORE))] if BEFORE else []) + \
        ([('baseline', os.path.abspath(BASE))] if BASE else [])
    tmp = tempfile.mkdtemp(prefix='rtb-bench-cluster-')
    rows = []
    try:
        nats, url = start_nats(tmp)
        # the stream as this build makes it (re-publish included), then the retained history
        p, _, _ = start_broker(RTB, url, tmp, 'create')
        stop(p)
        fill_s = fill(url, 'rt.hist', C4_N)
        # topics published after that history: each build's C3 reads 50 of recent.t0-199, the floor recent.t200-399
        subprocess.run([NC, 'fill', url, 'rt.recent', '400', '40000', '200'], check=True, stdout=subprocess.DEVNULL)
        print(f'filled {C4_N} messages in {fill_s:.1f} s', flush=True)
        for k, (name, binary) in enumerate(designs):
            ready, rss0, rss1 = c4(binary, url, tmp, name.replace(' ', '_'))
            r3 = c3(binary, url, tmp, name.replace(' ', '_') + '_c3', 1 + 50 * k)
            share, delivered, cpu, via = c5(binary, url, tmp, name.replace(' ', '_') + '_c5')
            rows.append((name, ready, rss0, rss1, r3, share, delivered, cpu, via))
            print(f'{name}: C4 ready {ready:.2f} s, RSS {rss0:.0f} MB (+2 s: {rss1:.0f} MB); C3 p50/p99 {r3["cold"][0]:.1f}/{r3["cold"][1]:.1f} ms, '
                  f'again {r3["again"][0]:.1f}/{r3["again"][1]:.1f} ms, recent topics {r3["recent"][0]:.1f}/{r3["recent"][1]:.1f} ms; '
                  f'C5 share {share * 100:.1f}% ({via}), delivered {delivered}, CPU {cpu:.2f} s', flush=True)
        floor_hist = c3_floor(url, 'hist', 1001, max(1, min(100, C4_N // TOPICS)))
        floor_recent = c3_floor(url, 'recent', 200, 100)
        print(f'C3 floor (nats.c alone): {floor_hist[0]} {floor_hist[1]:.1f}/{floor_hist[2]:.1f} ms; recent topics: '
              f'{floor_recent[0]} {floor_recent[1]:.1f}/{floor_recent[2]:.1f} ms', flush=True)
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    with open(OUT, 'w') as f:
        f.write('# Cluster benchmarks (make bench-cluster)\n\n'
                f'One nats-server 2.9 with JetStream, nodes with 1 worker, on this machine ({time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}).\n\n'
                f'- C4: a new node with {C4_N:,} retained messages (10,000 topics, 200 B): time to /readyz 200, RSS then and 2 s later.\n'
                '- C3: on that node, 50 SSE resumes from EPOCH:0, each on a topic it never saw (100 retained messages each, 10,000\n'
                '  SEQs apart in the stream): time to the 100th replayed message, p50/p99 (ms); "again": the same 50 resumes once\n'
                '  more (the node\'s history cache); "recent": 50 topics it never saw whose 100 messages were published after the\n'
                '  1,000,000 (400 topics interleaved, 40,000 messages).\n'
                '- C3 floor: the same reads by a plain nats.c client (tests/tools/nats_fetchbench.c; the fastest of an ordered\n'
                '  consumer, a pull consumer, a raw consumer request and direct gets by subject), without a broker.\n'
                f'- C5: a node whose clients subscribe to 1% of 10,000 topics while {C5_N:,} messages are stored on all of them:\n'
                '  the share of those messages it received from NATS, and its CPU time.\n\n'
                '| build | C4 ready (s) | C4 RSS (MB) | RSS +2 s (MB) | C3 p50/p99 | C3 again | C3 recent | C5 share received | C5 delivered | C5 CPU (s) | measured by |\n'
                '|---|---|---|---|---|---|---|---|---|---|---|\n')
        for name, ready, rss0, rss1, r3, share, delivered, cpu, via in rows:
            f.write(f'| {name} | {ready:.2f} | {rss0:.0f} | {rss1:.0f} | {r3["cold"][0]:.1f} / {r3["cold"][1]:.1f} | '
                    f'{r3["again"][0]:.1f} / {r3["again"][1]:.1f} | {r3["recent"][0]:.1f} / {r3["recent"][1]:.1f} | '
                    f'{share * 100:.1f}% | {delivered} | {cpu:.2f} | `{via}` |\n')
        f.write(f'| C3 floor (nats.c alone) | | | | {floor_hist[1]:.1f} / {floor_hist[2]:.1f} ({floor_hist[0]}) | | '
                f'{floor_recent[1]:.1f} / {floor_recent[2]:.1f} ({floor_recent[0]}) | | | | |\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()

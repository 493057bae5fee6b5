#!/usr/bin/python3
"""Writes BENCHMARKS.md (to stdout) from tests/bench/run's results.

usage: report.py RESULTS MACHINE LOGDIR
RESULTS: one line per run, "round=R workers=W RESULT key=value ..." (the loadgen's RESULT line).
MACHINE: key=value lines written by tests/bench/run.
"""
import os
import re
import statistics
import sys

results_path, machine_path, logdir = sys.argv[1:4]

machine = {}
for line in open(machine_path):
    if '=' in line:
        k, v = line.rstrip('\n').split('=', 1)
        machine[k] = v

runs = []
for line in open(results_path):
    d = {}
    for tok in line.split():
        if '=' in tok:
            k, v = tok.split('=', 1)
            d[k] = v
    if 'label' in d and 'server' in d:
        runs.append(d)

IDLE = ['S5', 'S5-SSE', 'S5-SSE-h2', 'S5-SSE-h2-1', 'S5-longpoll']
scenarios = [s for s in ['S1', 'S1p4', 'S1p16', 'S2', 'S2p4', 'S3', 'S4'] + IDLE + ['S6', 'S7', 'S7d']
             if any(r['label'] == s for r in runs)]
SCALING = [('S1p4', 4), ('S1p16', 16), ('S1', int(machine.get('fast_pubs', '64')))]  # S1 by publishing connections
workers = sorted({r['workers'] for r in runs}, key=int)
servers = ['rtbroker', 'nchan']


def num(v):
    try:
        x = float(v)
        return None if x != x else x  # NaN
    except (TypeError, ValueError):
        return None


def vals(sc, w, srv, key):
    out = []
    for r in runs:
        if r['label'] == sc and r['workers'] == w and r['server'] == srv:
            x = num(r.get(key))
            if x is not None:
                out.append(x)
    return out


def med(sc, w, srv, key):
    v = vals(sc, w, srv, key)
    return statistics.median(v) if v else None


def total(sc, w, srv, key):
    return int(sum(vals(sc, w, srv, key)))


def nruns(sc, w, srv):
    return sum(1 for r in runs if r['label'] == sc and r['workers'] == w and r['server'] == srv)


def fmt(x, kind):
    if x is None:
        return 'n/a'
    if kind == 'rate':
        return f'{x / 1000:,.0f}k' if x >= 10000 else f'{x:,.0f}'
    if kind == 'ms':
        return f'{x:.2f} ms' if x < 100 else f'{x:.0f} ms'
    if kind == 'bytes':
        return f'{x:,.0f} B'
    if kind == 'cpu':
        return f'{x * 100:.0f}%'
    return str(x)


def spread(sc, w, srv, key, kind):
    v = vals(sc, w, srv, key)
    if not v:
        return 'n/a'
    m = statistics.median(v)
    if len(v) == 1:
        return fmt(m, kind)
    return f'{fmt(m, kind)} ({fmt(min(v), kind)}–{fmt(max(v), kind)})'


# metric rows: (scenario, label, key, kind, better: 'high'|'low', target)
ROWS = {
    'S1': [('delivered msg/s', 'rate', 'rate', 'high', 2.0)],
    'S2': [('latency p50', 'p50_ms', 'ms', 'low', 2.0), ('latency p99', 'p99_ms', 'ms', 'low', 2.0)],
    'S2p4': [('latency p50', 'p50_ms', 'ms', 'low', None), ('latency p99', 'p99_ms', 'ms', 'low', None),
             ('publishes/s taken', 'pub_rate', 'rate', 'high', None)],
    'S3': [('delivered msg/s', 'rate', 'rate', 'high', 2.0)],
    'S4': [('delivered msg/s', 'rate', 'rate', 'high', 2.0)],
    'S5': [('memory per idle connection (PSS)', 'per_conn_b', 'bytes', 'low', 2.0)],
    'S5-SSE': [('memory per idle connection (PSS)', 'per_conn_b', 'bytes', 'low', 5.0)],
    'S5-SSE-h2': [('memory per idle HTTP/2 stream (PSS)', 'per_conn_b', 'bytes', 'low', None)],
    'S5-SSE-h2-1': [('memory per HTTP/2 connection with one idle stream (PSS)', 'per_conn_b', 'bytes', 'low', None)],
    'S5-longpoll': [('memory per held poll (PSS)', 'per_conn_b', 'bytes', 'low', 1.0)],
    'S6': [('latency p50', 'p50_ms', 'ms', 'low', None), ('latency p99', 'p99_ms', 'ms', 'low', None)],
    'S7': [('delivered msg/s', 'rate', 'rate', 'high', 2.0)],
    'S7d': [('delivered msg/s', 'rate', 'rate', 'high', 2.0)],
}

out = []
p = out.append
p('# Benchmarks: rtbroker and nginx + nchan, side by side')
p('')
p('Written by `make bench` (`tests/bench/run`); do not edit by hand. Both servers ran on the same machine in')
p('the same run, alternately, each run on a fresh server process; figures are medians over the rounds with')
p('(min–max). The machine is small and shared, so absolute figures are noisy: read the ratios.')
p('')
p(f"- Machine: {machine.get('nproc')} CPUs ({machine.get('cpu')}), {machine.get('mem')}, {machine.get('os')}, "
  f"kernel {machine.get('kernel')}; open files per process {machine.get('nofile')}; "
  f"load average at the start {machine.get('loadavg_start')}, at the end {machine.get('loadavg')} "
  f"(other work shares this machine; each run's 1-minute load is in the last table).")
p(f"- Servers: {machine.get('rtbroker')} at commit {machine.get('commit')}; nginx {machine.get('nginx')} "
  f"with nchan {machine.get('nchan')} (Debian 12 packages).")
if machine.get('before'):
    p(f"- rtbroker-before: {machine['before']}, run in the same rounds (BENCH_BEFORE), for a before/after comparison.")
rounds_done = machine.get('rounds')
if machine.get('skipped_rounds', '0') != '0':
    rounds_done = f"{int(machine['rounds']) - int(machine['skipped_rounds'])} of {machine['rounds']} " \
                  f"(the rest skipped to stay within the time budget)"
p(f"- Run: {machine.get('date')}, {machine.get('duration')} s in all, {rounds_done} rounds, "
  f"{machine.get('publish_seconds')} s of publishing per throughput run.")
pin = '; '.join(f"{w} worker{'s' if w != '1' else ''}: server on CPUs {machine.get('cpus_w' + w, '?').split()[0]}, "
                f"load generator on CPU {machine.get('cpus_w' + w, '? ?').split()[1]}" for w in workers)
p(f"- Pinning (taskset): {pin}. With 2 cores, 2 workers share a core with the load generator.")
p('')
p('## Results')
p('')
p('Ratio: how many times better rtbroker is (deliveries: rtbroker / nchan; latency and memory: nchan / rtbroker).')
p('Target (issue 10): 2× on every scenario, and zero loss and duplicates everywhere.')
p('')
p('| scenario | metric | workers | rtbroker | nchan | ratio | target met |')
p('|---|---|---|---|---|---|---|')
summary = []
for sc in scenarios:
    for (label, key, kind, better, target) in ROWS.get(sc, []):
        for w in workers:
            r = med(sc, w, 'rtbroker', key)
            n = med(sc, w, 'nchan', key)
            ratio = None
            if r is not None and n is not None and r > 0 and n > 0:
                ratio = r / n if better == 'high' else n / r
            if target is None:
                met = 'zero loss: ' + ('yes' if total(sc, w, 'rtbroker', 'lost') == 0 and
                                       total(sc, w, 'rtbroker', 'dups') == 0 and nruns(sc, w, 'rtbroker') else 'NO')
            elif ratio is None:
                met = 'n/a'
            else:
                met = 'yes' if ratio >= target else f'no ({ratio / target * 100:.0f}% of it)'
            rs = f'{ratio:.2f}×' if ratio is not None else 'n/a'
            p(f'| {sc} | {label} | {w} | {spread(sc, w, "rtbroker", key, kind)} | {spread(sc, w, "nchan", key, kind)} '
              f'| {rs} | {met} |')
            summary.append((sc, label, w, ratio, target))
p('')
p('Scenarios:')
p('')
for sc in scenarios:
    p(f"- **{sc}** {machine.get('what_' + sc, '')}.")
p('')

if any(sc in scenarios for sc, _ in SCALING[:2]):
    p('## S1 by the number of publishing connections')
    p('')
    p('Each publishing connection has one request in flight, so the number of connections sets how many messages')
    p('can be on their way at once (at most 64 per subscriber, the load generator\'s lag window). With more in')
    p('flight each server shows what it does with a deeper queue: rtbroker writes each subscriber\'s pending')
    p('messages together, nchan writes each message on its own.')
    p('')
    p('| publishing connections | workers | rtbroker msg/s | p50 | p99 | nchan msg/s | p50 | p99 | msg/s ratio |')
    p('|---|---|---|---|---|---|---|---|---|')
    for sc, npub in SCALING:
        if sc not in scenarios:
            continue
        for w in workers:
            r, n = med(sc, w, 'rtbroker', 'rate'), med(sc, w, 'nchan', 'rate')
            ratio = f'{r / n:.2f}×' if r and n else 'n/a'
            cells = [fmt(med(sc, w, srv, k), kind) for srv in servers
                     for k, kind in (('rate', 'rate'), ('p50_ms', 'ms'), ('p99_ms', 'ms'))]
            p(f"| {npub} | {w} | {' | '.join(cells)} | {ratio} |")
    p('')

FLOOR_ROWS = [('S2', 'latency p50', 'p50_ms', 'ms', 'low'), ('S2', 'latency p99', 'p99_ms', 'ms', 'low'),
              ('S3', 'delivered msg/s', 'rate', 'rate', 'high')]
if any(nruns(sc, '1', 'floor') for sc in ('S2', 'S3')):
    p('## S2 and S3 against the floor: what the kernel leaves to any server')
    p('')
    p('In S2 (100 messages/s to 1,000 subscribers of one topic) and S3 (each message to the 10 subscribers of')
    p('its topic) a subscriber has at most one message waiting at a time while the server keeps up, so every')
    p('delivery is one socket write for any server. `tests/bench/floor.c` is a minimal server that does only')
    p('that: one thread, one `write` per delivery, no history, auth, JSON or HTTP beyond what the load generator')
    p('sends (it answers a publish after its writes). It ran in the same rounds, after the two servers, with 1')
    p('worker\'s pinning. Its ratio to nchan is what a server that does nothing else reaches here; on loopback')
    p('the kernel also charges the sender for the receiver\'s side of each write.')
    p('')
    p('| scenario | metric | floor | rtbroker | nchan | floor vs nchan | rtbroker vs nchan |')
    p('|---|---|---|---|---|---|---|')
    for sc, label, key, kind, better in FLOOR_ROWS:
        if not nruns(sc, '1', 'floor'):
            continue
        f, r, n = (med(sc, '1', srv, key) for srv in ('floor', 'rtbroker', 'nchan'))

        def ratio(a, b):
            if not a or not b:
                return 'n/a'
            return f'{(a / b if better == "high" else b / a):.2f}×'
        p(f"| {sc} | {label} | {spread(sc, '1', 'floor', key, kind)} | {spread(sc, '1', 'rtbroker', key, kind)} "
          f"| {spread(sc, '1', 'nchan', key, kind)} | {ratio(f, n)} | {ratio(r, n)} |")
    p('')

p('Reading these figures: each run is a few seconds on 2 cores that other work shares (see the load column')
p('of the last table and the CPU table: a server well under 100% of a core with an idle load generator was')
p('waiting for the CPU, not for work). The medians damp that, the ranges show it. Both servers spend most')
p('of their CPU in the kernel writing to sockets (the CPU table), which bounds what user-space work can gain.')
p('')
p('## Correctness (all rounds)')
p('')
p('Counted by the load generator from the payloads (per topic and publishing connection: a sequence number and')
p('a send timestamp). "lost" is acknowledged publishes a subscriber connected from the start never got.')
p('')
p('| scenario | workers | server | runs | connected | failed conn. | dropped conn. | published | expected | lost | duplicates | reordered | publish errors |')
p('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for sc in scenarios:
    for w in workers:
        for srv in servers + ['rtbroker-before', 'floor']:
            k = nruns(sc, w, srv)
            if not k:
                continue
            cells = [total(sc, w, srv, x) for x in
                     ('connected', 'failed', 'dropped', 'published', 'expected', 'lost', 'dups', 'reordered',
                      'pub_errors')]
            bad = any(cells[i] for i in (1, 2, 5, 6, 8))
            row = ' | '.join(f'{c:,}' for c in cells)
            p(f'| {sc} | {w} | {srv} | {k} | {row} |' + (' ⚠' if bad else ''))
p('')

p('## CPU while publishing (medians)')
p('')
p('Share of one core used by the server (all its threads or processes) and by the load generator from the first')
p('publish to the last delivery. A load generator near 100% means the figure is a floor for the server.')
p('')
p('"writes/msg": write system calls the server made per message delivered (from /proc/PID/io `syscw`);')
p('fewer means a connection\'s pending messages go out together.')
p('')
p('| scenario | workers | rtbroker cpu | of it in the kernel | writes/msg | its load generator | nchan cpu | of it in the kernel | writes/msg | its load generator |')
p('|---|---|---|---|---|---|---|---|---|---|')
for sc in scenarios:
    if sc in IDLE:
        continue
    for w in workers:
        wr = med(sc, w, 'rtbroker', 'writes_per_deliv')
        wn = med(sc, w, 'nchan', 'writes_per_deliv')
        p(f"| {sc} | {w} | {fmt(med(sc, w, 'rtbroker', 'srv_cpu'), 'cpu')} | {fmt(med(sc, w, 'rtbroker', 'srv_sys_share'), 'cpu')} "
          f"| {'n/a' if wr is None else f'{wr:.2f}'} | {fmt(med(sc, w, 'rtbroker', 'lg_cpu'), 'cpu')} "
          f"| {fmt(med(sc, w, 'nchan', 'srv_cpu'), 'cpu')} | {fmt(med(sc, w, 'nchan', 'srv_sys_share'), 'cpu')} "
          f"| {'n/a' if wn is None else f'{wn:.2f}'} | {fmt(med(sc, w, 'nchan', 'lg_cpu'), 'cpu')} |")
p('')

HIST_EDGES = [1, 2, 5, 10, 20, 50, 100, 200]  # ms: the loadgen's hist_ms counts, below each edge and past the last
for h_sc in [sc for sc in ('S2', 'S2p4') if sc in scenarios]:
    p(f'## {h_sc} latency histogram')
    p('')
    p(f'Every delivery of {h_sc} (100 messages/s to 1,000 WebSocket subscribers, from '
      f'{"one publishing connection" if h_sc == "S2" else "4 publishing connections"}), summed over the rounds: the')
    p('share of deliveries whose latency (receive time − the send time in the payload) fell in each range.')
    p('"published/s": the publishes each server took (medians). A publishing connection has one request in')
    p('flight, so with one connection a server that cannot fan a message out in 10 ms gets fewer than 100/s,')
    p('and how many depends on when it answers. All three answer after their writes here (rtbroker because the')
    p('fan-out takes more than one slice of 128 subscribers: see Backpressure in the README), so the next publish')
    p('waits outside, unmeasured, and fan-outs do not overlap. S2p4 offers the 100/s through 4 connections, so')
    p('that every server gets them while it answers within 40 ms; there a publish read between slices joins the')
    p('writes of the subscribers not yet served ("writes/msg" below 1). The CPU time per delivery (server cpu /')
    p('deliveries per second) is lowest when writes carry several messages.')
    p('')
    heads = [f'< {HIST_EDGES[0]} ms'] + [f'{a}–{b} ms' for a, b in zip(HIST_EDGES, HIST_EDGES[1:])] + \
        [f'≥ {HIST_EDGES[-1]} ms']
    p('| workers | server | ' + ' | '.join(heads) + ' | p50 | p99 | p99 / p50 | published/s | server cpu | µs cpu/delivery | writes/msg |')
    p('|---|---|' + '---|' * (len(heads) + 7))
    for w in workers:
        for srv in servers + ['rtbroker-before', 'floor']:
            counts = [0] * len(heads)
            mine = [r for r in runs if r['label'] == h_sc and r['workers'] == w and r['server'] == srv]
            for r in mine:
                if r.get('hist_ms'):
                    for i, c in enumerate(r['hist_ms'].split(',')[:len(heads)]):
                        counts[i] += int(c)
            n = sum(counts)
            if not n:
                continue
            p50, p99 = med(h_sc, w, srv, 'p50_ms'), med(h_sc, w, srv, 'p99_ms')
            ratio = f'{p99 / p50:.1f}' if p50 and p99 else 'n/a'
            wpm = med(h_sc, w, srv, 'writes_per_deliv')
            per = [float(r['srv_cpu']) / float(r['rate']) * 1e6 for r in mine if num(r.get('srv_cpu')) and num(r.get('rate'))]
            us = f'{statistics.median(per):.1f}' if per else 'n/a'
            p(f"| {w} | {srv} | " + ' | '.join(f'{c * 100 / n:.1f}%' for c in counts) +
              f" | {fmt(p50, 'ms')} | {fmt(p99, 'ms')} | {ratio} | {fmt(med(h_sc, w, srv, 'pub_rate'), 'rate')} "
              f"| {fmt(med(h_sc, w, srv, 'srv_cpu'), 'cpu')} | {us} | {'n/a' if wpm is None else f'{wpm:.2f}'} |")
    p('')

if any(sc in scenarios for sc in IDLE):
    p('## Idle memory (S5: WebSocket, S5-SSE, S5-SSE-h2, S5-longpoll)')
    p('')
    p('Memory of the server processes (PSS summed over nginx master and workers; for rtbroker PSS ≈ RSS) before')
    p('the subscribers connect and once they are connected and idle; per connection = the difference / connections.')
    p('Kernel: the TCP memory of the whole machine (/proc/net/sockstat `mem` × page size) over the same interval,')
    p('per connection: both ends of each loopback connection, and whatever else ran meanwhile.')
    p('S5-SSE-h2 counts per stream (100 streams share a connection); its "floor" is `tests/bench/h2floor.c`, h2o 2.2.5')
    p('alone with a handler that holds each stream open and does nothing else: its figure is what h2o keeps per')
    p('stream (its stream object with the request, and the request\'s 4 KB memory pool chunk), below which rtbroker')
    p('cannot go without changing h2o. It ran in the same rounds with 1 worker\'s pinning.')
    p('')
    p('| scenario | workers | server | before (kB) | connected and idle (kB) | per connection (stream) | kernel per connection (stream) | 100,000 would take |')
    p('|---|---|---|---|---|---|---|---|')
    for sc in IDLE:
        if sc not in scenarios:
            continue
        for w in workers:
            for srv in servers + ['floor']:
                if not nruns(sc, w, srv):
                    continue
                pc = med(sc, w, srv, 'per_conn_b')
                base = med(sc, w, srv, 'mem_idle_kb')
                conn = med(sc, w, srv, 'mem_conn_kb')
                proj = f'{(base * 1024 + pc * 100000) / 2**20:,.0f} MiB' if pc is not None and base is not None else 'n/a'
                p(f"| {sc} | {w} | {srv} | {'n/a' if base is None else f'{base:,.0f}'} | "
                  f"{'n/a' if conn is None else f'{conn:,.0f}'} | {fmt(pc, 'bytes')} | "
                  f"{fmt(med(sc, w, srv, 'kper_conn_b'), 'bytes')} | {proj} |")
    p('')

p('## Every run')
p('')
p('| round | scenario | workers | server | load | msg/s | p50 ms | p99 ms | p99.9 ms | max ms | per conn. B | lost | dups | server cpu | loadgen cpu |')
p('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for r in runs:
    p(f"| {r.get('round')} | {r['label']} | {r.get('workers')} | {r['server']} | {r.get('load1', 'n/a')} | {r.get('rate', 'n/a')} | "
      f"{r.get('p50_ms', 'n/a')} | {r.get('p99_ms', 'n/a')} | {r.get('p999_ms', 'n/a')} | {r.get('max_ms', 'n/a')} | "
      f"{r.get('per_conn_b', 'n/a')} | {r.get('lost', 'n/a')} | {r.get('dups', 'n/a')} | {r.get('srv_cpu', 'n/a')} | "
      f"{r.get('lg_cpu', 'n/a')} |")
p('')

prof = machine.get('profile', 'none')


def top(path, n, only_ours=False):
    rows, seen_total, rows_seen = [], False, False
    for line in open(path, errors='replace'):
        if 'PROGRAM TOTALS' in line:
            seen_total = True
            continue
        m = re.match(r'\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$', line)
        if not seen_total:
            continue
        if not m:
            if rows_seen and not line.strip():
                break  # the end of the function table (source annotations follow)
            continue
        rows_seen = True
        where = m.group(3)
        obj = re.search(r'\[([^\]]*)\]\s*$', where)
        fn = re.sub(r'\s*\[[^\]]*\]\s*$', '', where)
        file_, _, func = fn.rpartition(':')
        objname = os.path.basename(obj.group(1)) if obj else ''
        if only_ours and not re.search(r'(^|/)(broker|plugins)/', file_):
            continue
        name = func or fn
        if any(r[1] == name for r in rows):
            continue  # the same function under another spelling of its file's path
        rows.append((m.group(2), name, os.path.basename(file_) if file_ and file_ != '???' else objname))
        if len(rows) >= n:
            break
    return rows


PROFILES = [('S1', 'fanout', '400 publishes (4 publishing connections) to 1,000 WebSocket subscribers'),
            ('S6', 'long-poll', '100 publishes at 20/s to 1,000 long-poll subscribers')]
if prof != 'none':
    p('## Where rtbroker\'s CPU goes (profiles)')
    p('')
    p('rtbroker with 1 worker under `valgrind --tool=callgrind` (instruction counts, user space only, the')
    shares = []
    for sc, what, how in PROFILES:
        ks = [x for w in workers for x in vals(sc, w, 'rtbroker', 'srv_sys_share')]
        if ks:
            shares.append(f'{sc} {statistics.median(ks) * 100:.0f}%')
    p('subscribers\' connection set-up included). The kernel\'s share of rtbroker\'s CPU time in the real runs')
    p(f"above (median), which callgrind does not see: {', '.join(shares) or 'n/a'}.")
    p('')
    for sc, what, how in PROFILES:
        selfp = os.path.join(prof, f'callgrind-{sc}-self.txt')
        incp = os.path.join(prof, f'callgrind-{sc}-inclusive.txt')
        if not os.path.exists(selfp):
            continue
        p(f'### {sc} ({what}): {how}')
        p('')
        p('| self: share of instructions | function | file or library |')
        p('|---|---|---|')
        for pct, func, where in top(selfp, 14):
            p(f'| {pct}% | `{func}` | {where} |')
        p('')
        p('| inclusive (with callees), rtbroker\'s own | function | file |')
        p('|---|---|---|')
        for pct, func, where in top(incp, 18, only_ours=True):
            p(f'| {pct}% | `{func}` | {where} |')
        p('')

p('## How it was run')
p('')
p('```sh')
p('make bench            # = make deps build && tests/bench/run')
p('BENCH_ROUNDS=1 BENCH_DURATION=2 BENCH_SCENARIOS="S1 S5" BENCH_WORKERS=1 BENCH_OUT=/tmp/bench.md tests/bench/run   # a quick look')
p('```')
p('')
p('Servers (a fresh process per run, on a free port, stopped by its pid):')
p('')
p('```sh')
p('# rtbroker: a temp config (anonymous pub/sub on ">", limits.connections_per_ip 0, limits.publish_per_subject 0,')
p('# limits.max_queue_bytes 8MiB, history.max_messages 100, plugins sse/longpoll/websocket, websocket.deflate true)')
p("taskset -c CPUS build/rtbroker -c rtbroker.yaml --listen '[127.0.0.1:PORT, {address: 127.0.0.1:TLS_PORT, tls: {cert: CERT, key: KEY}}]' --workers W")
p('# nginx + nchan: tests/bench/nchan.conf.in with worker_processes W (nchan_message_buffer_length 100,')
p('# nchan_subscriber_first_message oldest on fresh channels, nchan_longpoll_multipart_response on,')
p('# nchan_deflate_message_for_websocket on only for S7d; a second listener with ssl http2 on TLS_PORT)')
p('taskset -c CPUS nginx -p DIR -c DIR/nginx.conf')
if any(nruns(sc, '1', 'floor') for sc in ('S2', 'S3')):
    p('# the floor (S2 and S3, 1 worker\'s pinning): tests/bench/floor.c, built as build/bench/floor')
    p('taskset -c CPUS build/bench/floor --port PORT')
if any(nruns(sc, '1', 'floor') for sc in ('S5-SSE-h2', 'S5-SSE-h2-1')):
    p('# the HTTP/2 floor (S5-SSE-h2, 1 worker\'s pinning): tests/bench/h2floor.c, built as build/bench/h2floor')
    p('taskset -c CPUS build/bench/h2floor --port TLS_PORT --cert CERT --key KEY')
p('```')
p('')
p('Load generator (`tests/bench/loadgen.c`, built as `build/bench/loadgen`), per scenario:')
p('')
p('```sh')
for sc in scenarios:
    srvs = 'rtbroker|nchan|floor' if nruns(sc, '1', 'floor') else 'rtbroker|nchan'
    if sc.startswith('S5-SSE-h2'):  # HTTP/2 over TLS: node's http2 client
        p(f"taskset -c CPU node tests/bench/h2idle.mjs --server {srvs} --port TLS_PORT {machine.get('args_' + sc, '')} "
          f"--pid PIDS --label {sc}")
        continue
    p(f"taskset -c CPU build/bench/loadgen --server {srvs} --port PORT {machine.get('args_' + sc, '')} "
      f"--src-addrs 16 --src-base B --pid PIDS --label {sc}")
p('```')
p('')
p('- Subscribers connect first (at most 256 handshakes at a time, from 16 source addresses 127.0.0.x), then')
p('  0.5 s of settling, then publishing. "As fast as delivered" is a closed loop: a topic gets a new message')
p('  only while fewer than 64 messages per subscriber are still on their way, so neither server is measured')
p('  while it buffers without bound. Each publishing connection keeps one request in flight; "as fast as')
p(f"  delivered\" scenarios use {machine.get('fast_pubs', '64')} publishing connections, enough to fill that window.")
p('- Delivered msg/s = every message received by every subscriber / (last delivery − first publish).')
p('- Latency = receive time − the send time in the payload (same clock, same process), over every delivery;')
p('  the receive time is when `epoll_wait` returned the batch that held it, so the load generator\'s own walk')
p('  through 1,000 ready sockets is not counted (the kernel and the server are). At 100 messages/s to 1,000')
p('  subscribers both servers sit near the cost of writing 1,000 sockets one after the other (see the floor')
p('  server, where it ran); p99 is dominated by whatever else the machine runs at that moment.')
p('- Memory per connection: PSS (proportional set size, from /proc/PID/smaps_rollup; the sum over nginx\'s')
p('  master and workers) after connecting and 2 s idle, minus before connecting, divided by the connections.')
p('  Kernel socket memory is not in it, for either server: the idle-memory table shows the machine\'s TCP memory')
p('  (/proc/net/sockstat) beside it.')
p('- Long-poll follows each server\'s cursor: rtbroker `?cursor=ID` from the JSON answer (first poll')
p('  `timeout=0` to get the current cursor), nchan `If-Modified-Since`/`If-None-Match` from `Last-Modified`/`Etag`.')
p(f'- Raw outputs of every run: `{logdir}` (not committed).')
p('')
sys.stdout.write('\n'.join(out) + '\n')

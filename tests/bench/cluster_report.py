"""The section of BENCHMARKS.md that `make bench-cluster` (tests/bench/cluster.py) writes: C1-C5 of
issue 18 for this build, a baseline build and nginx + nchan with Redis, with the issue's targets.
It sits between the two markers below, replaced in place (appended when absent); tests/bench/run
keeps it when it rewrites the rest of the file.
"""
import os
import statistics

BEGIN, END = '<!-- cluster:begin -->', '<!-- cluster:end -->'
NCHAN = 'nchan+Redis'


def med(runs, key):
    """median (min-max) of a RESULT field over the runs that reported it -> (median, lo, hi) or None"""
    v = [float(r[key]) for r in runs if key in r and r.get(key) not in ('nan', '')]
    return (statistics.median(v), min(v), max(v)) if v else None


def fmt(m, unit):
    if m is None:
        return 'n/a'
    if unit == 'rate':
        return f'{m[0] / 1000:,.0f}k ({m[1] / 1000:,.0f}k–{m[2] / 1000:,.0f}k)'
    if unit == 'ms':
        return f'{m[0]:,.1f} ms ({m[1]:,.1f}–{m[2]:,.1f})' if m[0] < 1000 else \
            f'{m[0] / 1000:,.2f} s ({m[1] / 1000:,.2f}–{m[2] / 1000:,.2f})'
    return f'{m[0]:.2f}'


def verdict(ok, ratio_txt):
    return ('yes' if ok else 'no') + (f' ({ratio_txt})' if ratio_txt else '')


def fanout_rows(res, names, drain):
    rows = []
    new = names[0]

    def cell(sc, name, key, unit):
        return fmt(med(res.get((sc, name), []), key), unit)

    for sc, key, unit, what, target, better in (
            ('C1', 'rate', 'rate', 'deliveries/s', '≥ 2× nchan+Redis', lambda a, b: a >= 2 * b),
            ('C1', 'p50_ms', 'ms', 'latency p50', '', None),
            ('C1', 'p99_ms', 'ms', 'latency p99', '≤ ¼ of nchan+Redis', lambda a, b: 4 * a <= b),
            ('C2', 'p50_ms', 'ms', 'latency p50', '', None),
            ('C2', 'p99_ms', 'ms', 'latency p99', '≤ ½ of nchan+Redis', lambda a, b: 2 * a <= b)):
        cells = [cell(sc, n, key, unit) for n in names + [NCHAN]]
        met = '—'
        a, b = med(res.get((sc, new), []), key), med(res.get((sc, NCHAN), []), key)
        if better and a and b and a[0] > 0 and b[0] > 0:
            ratio = a[0] / b[0] if unit == 'rate' else b[0] / a[0]
            met = verdict(better(a[0], b[0]), f'{ratio:.2f}×')
        rows.append((sc, what, cells, target or '—', met))
    for sc in ('C1', 'C2'):
        cells = []
        for n in names + [NCHAN]:
            runs = res.get((sc, n), [])
            lost = sum(int(r.get('lost', 0)) for r in runs)
            dups = sum(int(r.get('dups', 0)) for r in runs)
            bad = sum(1 for r in runs if r.get('ok') != '1')
            cells.append(f'{lost} / {dups}' + (f' ({bad} runs not clean)' if bad else ''))
        rows.append((sc, f'lost (not there {drain} s after the last publish) / duplicates, all rounds', cells, '—', '—'))
    return rows


def node_rows(nodes, names, c4_n):
    """C3-C5 rows from {name: (ready, rss0, rss1, p50, p99, share, delivered, cpu, via, replayed)}"""
    def col(i, f):
        return [f(nodes[n][i]) if n in nodes else 'n/a' for n in names] + ['—']
    new = nodes.get(names[0])
    return [
        ('C3', 'resume, time to the last of 100 messages p50', col(3, lambda v: f'{v:.1f} ms'), '—', '—'),
        ('C3', 'p99', col(4, lambda v: f'{v:.1f} ms'), '< 20 ms', verdict(new and new[4] < 20, '')),
        ('C3', f'fewest messages a resume replayed (of {c4_n // 10000})', col(9, str), str(c4_n // 10000), '—'),
        ('C4', f'new node on {c4_n:,} retained: ready', col(0, lambda v: f'{v:.2f} s'), '< 1 s',
         verdict(new and new[0] < 1, '')),
        ('C4', 'RSS at ready / 2 s later', [f'{nodes[n][1]:.0f} / {nodes[n][2]:.0f} MB' if n in nodes else 'n/a'
                                             for n in names] + ['—'], '< 64 MB',
         verdict(new and max(new[1], new[2]) < 64, '')),
        ('C5', 'share of the stream received', col(5, lambda v: f'{v * 100:.1f}%'), '≤ 2%',
         verdict(new and new[5] <= 0.02, '')),
        ('C5', 'node CPU', col(7, lambda v: f'{v:.2f} s'), '—', '—'),
    ]


def section(info, res, nodes, names):
    lines = [BEGIN, '',
             '## Cluster (issue 18): two nodes side by side with nginx + nchan with Redis',
             '',
             'Written by `make bench-cluster` (`tests/bench/cluster.py`); do not edit by hand.',
             '',
             f'- Run: {info["date"]}, {info["duration"]:.0f} s in all; machine load average at the start {info["load0"]}, '
             f'at the end {info["load1"]} (a shared machine: {info["nproc"]} CPUs; each run\'s 1-minute load is below).',
             f'- Builds: this build = `{info["rtb"]}` at {info["commit"]}'
             + (f'; {names[1]} = `{info["base"]}` (`{info["base_version"]}`)' if len(names) > 1 else '') + '.',
             f'- Versions: {info["nats"]}; {info["nginx"]} with nchan {info["nchan"]}; {info["redis"]} (Debian packages).',
             f'- C1, C2: for rtbroker, nodes A and B (1 worker each) on one nats-server with JetStream; for nchan,'
             f' two nginx (1 worker each, `tests/bench/nchan.conf.in` + `nchan_redis_pass` to one redis-server).'
             f' Publishers on node A, WebSocket subscribers on node B. Fresh servers for every run; {info["rounds"]} rounds,'
             f' the order of the systems rotating; medians with (min–max). Servers pinned to CPUs {info["srv_cpus"]},'
             f' the load generator (`tests/bench/loadgen.c --pub-port`) to CPU {info["lg_cpus"]}. Latency is per delivered'
             ' message, from the send time in its payload to its arrival.',
             f'  - C1: 1,600 subscribers over 16 topics, 16 publishing connections (one request in flight each) as fast'
             f' as acknowledged for {info["dur"]} s, 64 B (loadgen brakes a topic while more than 64 messages per'
             ' subscriber are on their way).',
             f'  - C2: 1,000 subscribers on 1 topic, 100 publishes/s (over 4 publishing connections) for {info["dur"] + 1} s.',
             '- C3-C5: one nats-server (unpinned), the builds in turn: C4 a new node on a stream of '
             f'{info["c4_n"]:,} retained messages (10,000 topics × 200 B): time to `/readyz` 200, RSS; C3 on that node,'
             ' 50 SSE resumes from EPOCH:0 each on a topic it never saw (100 retained messages); C5 a node whose clients'
             f' subscribe to 1% of 10,000 topics while {info["c5_n"]:,} messages are stored on all of them: the share it'
             ' received from NATS (`rtbroker_bus_messages_in_total`, or `rtbroker_bus_seq` for a build that consumes'
             ' the whole stream) and its CPU time.',
             '',
             '"met" is for this build against the targets of issue 18.',
             '',
             '| scenario | metric | ' + ' | '.join(names + [NCHAN]) + ' | target | met |',
             '|---|---|' + '---|' * (len(names) + 3)]
    for sc, what, cells, target, met in fanout_rows(res, names, info['drain']) + node_rows(nodes, names, info['c4_n']):
        lines.append(f'| {sc} | {what} | ' + ' | '.join(cells) + f' | {target} | {met} |')
    lines += ['', 'Every C1/C2 run (deliveries/s, p50 / p99 ms, CPU of all the cluster\'s servers as a share of one core,'
              ' 1-minute load before the run):', '']
    for (sc, name), runs in sorted(res.items()):
        each = '; '.join(f'{float(r.get("rate", 0)) / 1000:,.0f}k, {r.get("p50_ms", "?")} / {r.get("p99_ms", "?")},'
                         f' cpu {r.get("srv_cpu", "?")}, load {r["load1"]}' + ('' if r.get('ok') == '1' else ' (not clean)')
                         for r in runs)
        lines.append(f'- {sc} {name}: {each}')
    lines += ['', END]
    return '\n'.join(lines) + '\n'


def write_section(path, info, res, nodes, names):
    text = section(info, res, nodes, names)
    old = open(path).read() if os.path.exists(path) else ''
    if BEGIN in old and END in old:
        a, b = old.index(BEGIN), old.index(END) + len(END)
        new = old[:a] + text.rstrip('\n') + old[b:]
    else:
        new = old.rstrip('\n') + ('\n\n' if old else '') + text
    with open(path, 'w') as f:
        f.write(new)

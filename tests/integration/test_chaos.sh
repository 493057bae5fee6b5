#!/usr/bin/env bash
# The short run of the fault-injection checker (tests/chaos/chaos.mjs) in make test: 3 broker nodes on
# one nats-server, each through its fault proxy, clients on every transport, random faults; a fixed
# seed, then a random one (printed, so a failure replays with --seed). About two minutes in all.
# Longer runs: make chaos DURATION=1h.
set -u
cd "$(dirname "$0")/../.."
secs=${CHAOS_SECONDS:-40}
status=0
for seed in 20261207 $(( (RANDOM << 15 | RANDOM) )); do
    out=$(timeout --kill-after=10 $(( secs + 70 )) node tests/chaos/chaos.mjs --seed "$seed" --duration "$secs" --nodes 3 --nats 1 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^chaos: (seed|faults injected|messages|deliveries|violations|harness)|^VIOLATION|^  ' | head -60
    if [ "$rc" -eq 0 ]; then
        echo "PASS test_chaos.sh: seed $seed: $secs s of faults, no violation"
    else
        echo "FAIL test_chaos.sh: seed $seed: $(printf '%s\n' "$out" | grep -E '^chaos: (violations|harness)' | head -1) (exit $rc; replay: node tests/chaos/chaos.mjs --seed $seed --duration $secs)"
        printf '%s\n' "$out" | tail -50
        status=1
    fi
done
exit $status

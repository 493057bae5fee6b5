#!/usr/bin/env bash
# The load generator of `make bench` (tests/bench/loadgen.c) against the real broker, briefly and
# with small counts: a correctness check, not a timing assertion. The loadgen and the broker must
# agree on counts (the loadgen's published / delivered per transport and the broker's /metrics),
# with nothing lost, duplicated or reordered, over WebSocket (raw mode, also with
# permessage-deflate), SSE and long-poll; and the loadgen must say so loudly (exit 1 with
# --strict) when something is wrong.
# Prints `PASS <file>: <case>` / `FAIL <file>: <case>: <why>` and `N passed, N failed`.
set -u
cd "$(dirname "$0")/../.."
FILE=$(basename "$0")
BIN=${RTB_BIN:-build/rtbroker}
BUILD=$(dirname "$BIN")
LG=$BUILD/bench/loadgen
passed=0 failed=0
TMP=$(mktemp -d /tmp/rtb-benchtest-XXXXXX)
PID=

cleanup() {
    [ -n "${FPID:-}" ] && kill -KILL "$FPID" 2>/dev/null
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

pass() { echo "PASS $FILE: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $FILE: $1: $2"; [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/  | /' | head -30; failed=$((failed + 1)); }
finish() { echo "$FILE: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

# the loadgen: built by `make build`; else build it here
if [ ! -x "$LG" ] || [ tests/bench/loadgen.c -nt "$LG" ]; then
    LG=$TMP/loadgen
    if ! out=$(cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$LG" tests/bench/loadgen.c -lssl -lcrypto -lz -lm 2>&1); then
        fail "the load generator builds" "cc failed" "$out"
        finish
    fi
fi
[ -x "$BIN" ] || { fail "the broker exists" "$BIN not found (make build)"; finish; }

# ---------------------------------------------------------------- the broker on a free port
pick_port() {
    port=
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12768)) # below the ephemeral range (32768-60999)
        ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { port=$p; break; }
    done
    [ -n "$port" ] || { fail "a free port" "none found"; finish; }
}
cat >"$TMP/rtbroker.yaml" <<EOF
bus: memory
log:
  level: warn
web:
  root: ""
plugins:
  load: [sse, longpoll, websocket]
limits:
  connections_per_ip: 0
  publish_per_subject: 0
  max_queue_bytes: 8MiB
auth:
  anonymous:
    subscribe: [">"]
    publish: [">"]
EOF
# start_server LOG URLPATH CMD...: starts CMD (@PORT@ in its arguments is the port) and waits until
# http://127.0.0.1:PORT/URLPATH answers; sets port and spid, or returns 1. A port found free can be
# taken by another process before the bind, so up to three are tried.
start_server() {
    local log=$1 urlpath=$2 a
    shift 2
    for _ in 1 2 3; do
        pick_port
        local args=()
        for a in "$@"; do args+=("${a//@PORT@/$port}"); done
        "${args[@]}" >"$log" 2>&1 &
        spid=$!
        for _ in $(seq 1 100); do
            kill -0 "$spid" 2>/dev/null || break
            curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port$urlpath" && return 0
            sleep 0.05
        done
        kill -KILL "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        spid=
    done
    return 1
}
start_server "$TMP/broker.log" /healthz "$BIN" -c "$TMP/rtbroker.yaml" --listen "127.0.0.1:@PORT@" --workers 2 ||
    { fail "the broker starts" "not listening on $port" "$(cat "$TMP/broker.log")"; finish; }
PID=$spid

bport=$port

metric() { # NAME (with labels): the value from /metrics
    curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k {print $2}'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run NAME ARGS...: runs the loadgen (strict) and leaves its RESULT line in $res, output in $out
run() {
    local name=$1; shift
    out=$(timeout -k 5 60 "$LG" --port "$port" --pid "${RUN_PID:-$PID}" --strict --quiet "$@" 2>&1)
    rc=$?
    res=$(grep '^RESULT ' <<<"$out" | tail -1)
    if [ $rc -ne 0 ] || [ -z "$res" ]; then
        fail "$name" "loadgen exited $rc" "$out"
        return 1
    fi
    return 0
}

# expect NAME KEY=VALUE...: every field of $res as given
expect() {
    local name=$1 kv k v got bad=""
    shift
    for kv in "$@"; do
        k=${kv%%=*} v=${kv#*=}
        got=$(field "$k" "$res")
        [ "$got" = "$v" ] || bad="$bad $k=$got (want $v)"
    done
    if [ -z "$bad" ]; then pass "$name"; else fail "$name" "${bad# }" "$out"; fi
}

# ---------------------------------------------------------------- 1. every transport, counts agree
pub0=$(metric rtbroker_messages_published_total)
ws0=$(metric 'rtbroker_messages_delivered_total{transport="websocket"}')
sse0=$(metric 'rtbroker_messages_delivered_total{transport="sse"}')
lp0=$(metric 'rtbroker_messages_delivered_total{transport="longpoll"}')
if run "50 websocket + 20 sse + 10 long-poll subscribers, 2 topics, 200 publishes" \
    --ws 50 --sse 20 --lp 10 --topics 2 --publishers 2 --count 200 --duration 20 --drain 10 --src-addrs 4; then
    # 200 publishes over 2 topics: each subscriber expects the 100 of its topic
    expect "50 websocket + 20 sse + 10 long-poll subscribers, 2 topics, 200 publishes: delivered == expected, none lost or duplicated" \
        connected=80 failed=0 dropped=0 published=200 pub_errors=0 expected=8000 delivered=8000 deliveries=8000 \
        lost=0 dups=0 reordered=0 deliv_ws=5000 deliv_sse=2000 deliv_lp=1000 ok=1
    pub1=$(metric rtbroker_messages_published_total)
    ws1=$(metric 'rtbroker_messages_delivered_total{transport="websocket"}')
    sse1=$(metric 'rtbroker_messages_delivered_total{transport="sse"}')
    lp1=$(metric 'rtbroker_messages_delivered_total{transport="longpoll"}')
    got="published $((pub1 - pub0)) websocket $((ws1 - ws0)) sse $((sse1 - sse0)) longpoll $((lp1 - lp0))"
    want="published 200 websocket 5000 sse 2000 longpoll 1000"
    if [ "$got" = "$want" ]; then
        pass "the broker's /metrics agree with the loadgen ($want)"
    else
        fail "the broker's /metrics agree with the loadgen" "broker: $got; loadgen: $want"
    fi
fi

# ---------------------------------------------------------------- 2. fixed rate, latency reported
if run "fixed rate: 20 websocket subscribers, 100 publishes at 200/s" \
    --ws 20 --topics 1 --rate 200 --count 100 --duration 10 --src-addrs 2; then
    p50=$(field p50_ms "$res")
    expect "fixed rate: 20 websocket subscribers, 100 publishes at 200/s: all delivered" \
        connected=20 published=100 expected=2000 delivered=2000 lost=0 dups=0 reordered=0 ok=1
    if awk -v x="$p50" 'BEGIN { exit !(x + 0 > 0 && x + 0 < 1000) }'; then
        pass "fixed rate: a latency p50 is reported ($p50 ms)"
    else
        fail "fixed rate: a latency p50 is reported" "p50_ms=$p50" "$out"
    fi
    mem=$(field mem_conn_kb "$res")
    if [ -n "$mem" ] && [ "$mem" -gt 0 ] 2>/dev/null; then
        pass "the broker's memory is read from /proc ($mem kB)"
    else
        fail "the broker's memory is read from /proc" "mem_conn_kb=$mem" "$out"
    fi
fi

# ---------------------------------------------------------------- 3. permessage-deflate, large payloads
if run "permessage-deflate: 20 websocket subscribers, 4 topics, 60 publishes of 4 KiB" \
    --ws 20 --topics 4 --publishers 4 --count 60 --size 4096 --deflate --duration 20 --src-addrs 2; then
    expect "permessage-deflate: 20 websocket subscribers, 4 topics, 60 publishes of 4 KiB: all delivered and inflated" \
        connected=20 published=60 expected=300 delivered=300 compressed=300 lost=0 dups=0 reordered=0 ok=1
fi

# many messages in flight at once (16 publishing connections on one topic): the load generator's
# cache of inflated messages must tell them apart
if run "permessage-deflate: 10 websocket subscribers, 16 publishing connections on one topic, 320 publishes of 4 KiB" \
    --ws 10 --topics 1 --publishers 16 --count 320 --size 4096 --deflate --duration 20 --src-addrs 2; then
    expect "permessage-deflate, 16 publishing connections on one topic: all delivered and inflated, in order" \
        connected=10 published=320 expected=3200 delivered=3200 compressed=3200 lost=0 dups=0 reordered=0 ok=1
    # every subscriber gets the same bytes for a message: about one inflate per message, not per delivery
    inflated=$(field inflated "$res")
    if [ -n "$inflated" ] && [ "$inflated" -ge 320 ] && [ "$inflated" -le 640 ]; then
        pass "permessage-deflate, 16 messages in flight: the load generator inflates each message about once ($inflated for 320)"
    else
        fail "permessage-deflate, 16 messages in flight: the load generator inflates each message about once" \
            "inflated=$inflated for 320 messages, 3200 deliveries" "$out"
    fi
fi

# ---------------------------------------------------------------- 4. the floor server (S2 and S3's yardstick)
FLOOR=$BUILD/bench/floor
if [ ! -x "$FLOOR" ] || [ tests/bench/floor.c -nt "$FLOOR" ]; then
    FLOOR=$TMP/floor
    out=$(cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$FLOOR" tests/bench/floor.c -lcrypto 2>&1) ||
        { fail "the floor server builds" "cc failed" "$out"; FLOOR=; }
fi
if [ -n "$FLOOR" ] && ! start_server "$TMP/floor.log" / "$FLOOR" --port @PORT@; then
    fail "the floor server starts" "not listening" "$(cat "$TMP/floor.log")"
    port=$bport
elif [ -n "$FLOOR" ]; then
    FPID=$spid RUN_PID=$spid
    if run "the floor server: 30 websocket subscribers, 3 topics, 90 publishes" \
        --server floor --ws 30 --topics 3 --publishers 3 --count 90 --duration 20 --drain 10 --src-addrs 2; then
        expect "the floor server: 30 websocket subscribers, 3 topics, 90 publishes: all delivered, none lost" \
            connected=30 failed=0 published=90 expected=900 delivered=900 lost=0 dups=0 reordered=0 ok=1
    fi
    kill -TERM "$FPID" 2>/dev/null
    wait "$FPID" 2>/dev/null
    port=$bport RUN_PID= FPID=
fi

# ---------------------------------------------------------------- 5. it says so when things go wrong
closed=0
for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 12768)) # below the ephemeral range (32768-60999)
    ss -Htan "sport = :$p or dport = :$p" 2>/dev/null | grep -q . || { closed=$p; break; }
done
out=$(timeout -k 5 30 "$LG" --port "$closed" --ws 5 --count 10 --duration 2 --drain 1 --strict 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q '^!!! CONNECTIONS: 5 failed' <<<"$out" && grep -q ' ok=0' <<<"$out"; then
    pass "with nobody listening: failures printed loudly, --strict exits 1"
else
    fail "with nobody listening: failures printed loudly, --strict exits 1" "exit $rc" "$out"
fi

# --pub-port (make bench-cluster: publishers on node A, subscribers on node B): the publishers, and
# only they, connect there
pub0=$(metric rtbroker_messages_published_total)
out=$(timeout -k 5 30 "$LG" --port "$port" --pub-port "$closed" --ws 5 --count 10 --duration 2 --drain 1 --strict 2>&1)
rc=$?
pub1=$(metric rtbroker_messages_published_total)
if [ $rc -eq 1 ] && grep -q '^!!! PUBLISHER CONNECTIONS FAILED' <<<"$out" && grep -q ' connected=5 failed=0 ' <<<"$out" &&
    [ "$pub0" = "$pub1" ]; then
    pass "--pub-port: the publishers connect to that port, the subscribers to --port"
else
    fail "--pub-port: the publishers connect to that port, the subscribers to --port" "exit $rc, published $pub0 -> $pub1" "$out"
fi

kill -0 "$PID" 2>/dev/null && pass "the broker is still running" || fail "the broker is still running" "it exited" "$(tail -20 "$TMP/broker.log")"
kill -TERM "$PID" 2>/dev/null
for _ in $(seq 1 200); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$PID" 2>/dev/null; then
    fail "the broker exits on SIGTERM" "still running after 10 s" "$(tail -20 "$TMP/broker.log")"
else
    wait "$PID"; rc=$?; PID=
    # a sanitized build (make asan) reports at exit
    if [ "$rc" -eq 0 ] && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/broker.log"; then
        pass "the broker exits 0 on SIGTERM, with no sanitizer report"
    else
        fail "the broker exits 0 on SIGTERM, with no sanitizer report" "exit $rc" "$(tail -40 "$TMP/broker.log")"
    fi
fi
finish

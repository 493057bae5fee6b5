#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are missing (idempotent; sudo only when not
# root), for tests/bench/run (nginx, nchan) and tests/bench/cluster.py (and redis-server).
# BENCH_NO_INSTALL=1: never call apt-get, fail when one is missing. Exit 0 when all are there.
set -u
missing=
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
if [ "${BENCH_NO_INSTALL:-0}" = 1 ]; then
    echo "bench: missing:$missing (BENCH_NO_INSTALL=1)" >&2
    exit 1
fi
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing:$missing"
# shellcheck disable=SC2086 # one word per package
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing ||
    { echo "bench: cannot install$missing" >&2; exit 1; }

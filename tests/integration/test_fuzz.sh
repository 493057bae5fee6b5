#!/usr/bin/env bash
# The fuzz targets of tests/fuzz/ (libFuzzer, ASan + UBSan): builds them, replays the committed corpus
# and every regression input (tests/fuzz/regressions/), then fuzzes each target briefly; any crash,
# sanitizer report or broken property fails. RTB_FUZZ_SECONDS: fuzzing time shared by all targets
# (default 60). Without clang and libFuzzer this fails: `make deps-test` installs them.
# Prints `PASS <file>: <target> (<N> execs ...)` / `FAIL <file>: <target>: <why>` and `<file>: N passed, N failed`.
set -u
cd "$(dirname "$0")/../.."
FILE=$(basename "$0")
total=${RTB_FUZZ_SECONDS:-60}
ntargets=$(ls tests/fuzz/fuzz_*.c | wc -l)

if ! command -v clang >/dev/null; then
    echo "FAIL $FILE: build: clang is not installed (make deps-test installs it, see conf/packages-test.txt)"
    echo "$FILE: 0 passed, 1 failed"; exit 1
fi
if ! out=$(make -s -j2 fuzz-build 2>&1); then
    printf '%s\n' "$out" | tail -n 20
    echo "FAIL $FILE: build: make fuzz-build failed (clang with libFuzzer: libclang-rt-14-dev, see conf/packages-test.txt)"
    echo "$FILE: 0 passed, 1 failed"; exit 1
fi
per=$(( total / ntargets )); [ "$per" -ge 1 ] || per=1
FUZZ_LABEL=$FILE exec tests/fuzz/run "$per"

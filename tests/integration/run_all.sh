#!/bin/sh
# Run every integration test file; print a summary; exit non-zero if any file failed.
# Usage: tests/integration/run_all.sh [test_x.mjs ...]   (RTBROKER_BIN overrides build/rtbroker)
cd "$(dirname "$0")" || exit 2
if [ ! -d ../node_modules/eventsource ]; then
  (cd .. && npm ci --no-audit --no-fund >/dev/null 2>&1) || { echo "npm ci in tests/ failed"; exit 2; }
fi
files="$*"
[ -n "$files" ] || files=$(ls test_*.mjs)
failed_files=""
passed=0; failed=0
for f in $files; do
  out=$(timeout 150 node "$f" 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | grep -c '^PASS ')
  n=$(printf '%s\n' "$out" | grep -c '^FAIL ')
  passed=$((passed + p)); failed=$((failed + n))
  if [ $rc -ne 0 ]; then
    failed_files="$failed_files $f"
    [ "$n" -eq 0 ] && { echo "FAIL $f: exited $rc without a FAIL line"; failed=$((failed + 1)); }
  fi
done
[ -n "$failed_files" ] && echo "failed files:$failed_files"
echo "integration: $passed passed, $failed failed"
[ -z "$failed_files" ]

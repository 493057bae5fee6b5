#!/usr/bin/env bash
# Runs the Engine.IO protocol's own test suite (github.com/socketio/engine.io-protocol, test-suite/: Mocha)
# against the Socket.IO plugin in echo mode (socketio.echo: /engine.io/ echoes messages; ping 300ms/200ms, as
# the suite expects). The suite is not part of this repository: check it out and `npm ci` in its test-suite/
# folder, then: tests/conformance/socketio_protocol.sh PATH/TO/engine.io-protocol/test-suite
# Prints `PASS eio-suite: CASE` / `FAIL eio-suite: CASE` per case and `N passed, N failed`.
set -u
suite=${1:?usage: $0 PATH/TO/engine.io-protocol/test-suite}
cd "$(dirname "$0")/../.."
bin=${RTB_BIN:-build/rtbroker}
port=$(( 20000 + RANDOM % 12000 ))
dir=$(mktemp -d)
cat > "$dir/echo.yaml" <<YAML
plugins:
  load: [socketio]
socketio:
  echo: true
  ping_interval: 300ms
  ping_timeout: 200ms
shutdown:
  drain: 1s
YAML
"$bin" -c "$dir/echo.yaml" --listen 127.0.0.1:$port >"$dir/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$suite/test-suite.rtbroker.js"; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sed "s|http://localhost:3000|http://127.0.0.1:$port|" "$suite/test-suite.js" > "$suite/test-suite.rtbroker.js"
(cd "$suite" && timeout 120 npx mocha --reporter tap test-suite.rtbroker.js) > "$dir/tap.txt" 2>&1
passed=$(grep -c '^ok ' "$dir/tap.txt"); failed=$(grep -c '^not ok ' "$dir/tap.txt")
sed -n -e 's/^ok [0-9]* /PASS eio-suite: /p' -e 's/^not ok [0-9]* /FAIL eio-suite: /p' "$dir/tap.txt"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

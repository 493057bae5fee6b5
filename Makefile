# rtbroker — `make run` and `make test` do all the set-up on a fresh Debian 12 machine.

BUILD   ?= build
CC      ?= cc
SAN     ?=
OPT     ?= -O2
CFLAGS_COMMON = -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -DH2O_USE_LIBUV=0 -Iinclude -pthread $(SAN)
LDLIBS  = -lh2o-evloop -lnats -ljwt -lssl -lcrypto -lz -lyaml -ldl -lpthread -lm
SUDO    = $(if $(filter 0,$(shell id -u)),,sudo)

BROKER_SRC = $(wildcard broker/*.c)
BROKER_OBJ = $(patsubst broker/%.c,$(BUILD)/obj/broker/%.o,$(BROKER_SRC))
CORE_OBJ   = $(filter-out $(BUILD)/obj/broker/main.o,$(BROKER_OBJ))
PLUGINS    = $(patsubst plugins/%/,%,$(sort $(dir $(wildcard plugins/*/*.c))))
PLUGIN_SO  = $(patsubst %,$(BUILD)/plugins/%.so,$(PLUGINS))
UNIT_SRC   = $(wildcard tests/unit/test_*.c)
UNIT_BIN   = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
UNIT_EXTRA = plugins/sse/sse_encode.c
TOOLS_SRC  = $(wildcard tests/tools/*.c)
TOOLS_BIN  = $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOLS_SRC))

PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build deps deps-build deps-test run test asan fuzz fuzz-build clean check-config install bench bench-cluster bench-quick soak soak-asan chaos

all: build
BENCH_BIN  = $(if $(wildcard tests/bench/loadgen.c),$(BUILD)/bench/loadgen $(BUILD)/bench/floor $(BUILD)/bench/h2floor)

build: $(BUILD)/rtbroker $(PLUGIN_SO) $(UNIT_BIN) $(TOOLS_BIN) $(BENCH_BIN)

$(BUILD)/obj/broker/%.o: broker/%.c $(wildcard broker/*.h) include/rtbroker/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -Ibroker -c $< -o $@

$(BUILD)/rtbroker: $(BROKER_OBJ)
	$(CC) $(CFLAGS_COMMON) -o $@ $^ $(LDLIBS)

# Plugins see only include/rtbroker/plugin.h.
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/$$*/*.c) $$(wildcard plugins/$$*/*.h) include/rtbroker/plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fPIC -shared -o $@ $(filter %.c,$^) -lz -lcrypto
# Socket.IO frames its WebSocket with the WebSocket plugin's pure framing code.
$(BUILD)/plugins/socketio.so: plugins/websocket/ws_frame.c plugins/websocket/ws_frame.h

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ) $(UNIT_EXTRA) tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -Ibroker -Iplugins/sse -Itests/unit -o $@ $< $(UNIT_EXTRA) $(CORE_OBJ) $(LDLIBS)

# Small programs the tests use (e.g. a plain nats.c client).
$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $< -lnats

# The load generator of `make bench` (libc and OpenSSL only; zlib for permessage-deflate).
$(BUILD)/bench/loadgen: tests/bench/loadgen.c $(wildcard tests/bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ tests/bench/loadgen.c -lssl -lcrypto -lz -lm

# The yardstick of S2 and S3 in BENCHMARKS.md: one write per delivery and nothing else.
$(BUILD)/bench/floor: tests/bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ tests/bench/floor.c -lcrypto

# The floor of S5-SSE-h2: what h2o itself keeps per idle HTTP/2 stream (a handler that holds the stream, nothing else).
$(BUILD)/bench/h2floor: tests/bench/h2floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ tests/bench/h2floor.c -lh2o-evloop -lssl -lcrypto -lz -lpthread

# Side by side with nginx + nchan; writes BENCHMARKS.md (bounded: well under 15 minutes).
bench: deps build
	RTB_BIN=$(BUILD)/rtbroker tests/bench/run

# Cluster scenarios of issue 18 (5 to 8 minutes): C1 fanout and C2 latency across two nodes against two nginx +
# nchan nodes on one redis-server, C3 resume on a node that never saw the topic, C4 a new node on 1,000,000 retained
# messages, C5 the share of the stream a node receives for 1% of 10,000 topics; BENCH_CLUSTER_BASELINE=path/to/older/rtbroker
# adds its figures beside. Writes its section of BENCHMARKS.md (make bench keeps it).
bench-cluster: deps build
	RTB_BIN=$(BUILD)/rtbroker /usr/bin/python3 tests/bench/cluster.py

# A look in about 30 s: S1 (WebSocket fanout) and S4 (SSE fanout), one round of 2 s, 1 worker, no profile;
# the report goes to $(BUILD)/bench-quick.md, not BENCHMARKS.md.
bench-quick: deps build
	BENCH_ROUNDS=1 BENCH_DURATION=2 BENCH_SCENARIOS="S1 S4" BENCH_WORKERS=1 BENCH_PROFILE=0 \
	  BENCH_OUT=$(BUILD)/bench-quick.md RTB_BIN=$(BUILD)/rtbroker tests/bench/run

# Installs what is missing (idempotent); sudo only when not root.
deps: deps-build deps-test

deps-build:
	@missing=$$(for p in $$(grep -v '^#' conf/packages-build.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi

deps-test:
	@missing=$$(for p in $$(grep -v '^#' conf/packages-test.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi
	@# npm ci empties node_modules first: never through a symlink (a worktree sharing another checkout's packages)
	@if [ -L tests/node_modules ]; then echo "tests/node_modules is a symlink: leaving the packages it points to alone"; \
	elif [ ! -d tests/node_modules ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then \
	  cd tests && npm ci --no-audit --no-fund --loglevel=error; fi

run: deps-build build
	exec $(BUILD)/rtbroker -c conf/rtbroker.yaml

# Every test. On CI (CI=true) the suite runs once, against the ASan + UBSan build (make asan) instead
# of the plain one: both would not fit its time budget, and the sanitized run finds more. The plain
# build is still compiled (with -Werror) either way.
ifeq ($(CI),true)
test: deps build asan
else
test: deps build
	RTB_BIN=$(BUILD)/rtbroker tests/run
endif

# The whole suite against an ASan + UBSan build; any sanitizer report in a broker's log fails its test.
asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" build
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1 RTB_BIN=build-asan/rtbroker RTB_SANITIZED=1 tests/run

# The churn and soak test for longer than the bounded run in make test (SOAK_* variables: tests/soak/soak.mjs).
SOAK_ENV ?= SOAK_WARMUP_S=30 SOAK_SECONDS=300 SOAK_CHURNERS=100 SOAK_RATE=200 SOAK_MIN_SESSIONS=10000
ASAN_ENV  = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1
soak: deps build
	$(SOAK_ENV) RTB_BIN=$(BUILD)/rtbroker node tests/soak/soak.mjs

# The fault-injection checker (tests/chaos/) for DURATION (90, 90s, 10m, 1h); SEED replays a run, NATS=3 a JetStream cluster.
DURATION ?= 10m
chaos: deps build
	RTB_BIN=$(BUILD)/rtbroker node tests/chaos/chaos.mjs --duration $(DURATION) --nats $(or $(NATS),1) --nodes $(or $(NODES),3) $(if $(SEED),--seed $(SEED))

soak-asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" build
	$(SOAK_ENV) $(ASAN_ENV) RTB_BIN=build-asan/rtbroker RTB_SANITIZED=1 node tests/soak/soak.mjs

# libFuzzer targets (tests/fuzz/fuzz_*.c) with ASan + UBSan, linked against the broker's own code and the
# WebSocket plugin's (or, for fuzz_sse, fuzz_longpoll and fuzz_ndjson, that plugin's: each plugin defines
# rt_transport_v1); `make fuzz` runs each for FUZZ_SECONDS after replaying the corpus and the regressions.
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS   = -std=gnu11 -O1 -g -Wall -Wextra -Werror -DH2O_USE_LIBUV=0 -Iinclude -Ibroker -Iplugins/websocket -Itests/fuzz \
                -DRT_FUZZ_KEYS='"$(CURDIR)/tests/fuzz/keys"' -pthread -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC  = $(filter-out broker/main.c,$(BROKER_SRC)) $(wildcard plugins/websocket/*.c) $(filter-out tests/fuzz/fuzz_%.c,$(wildcard tests/fuzz/*.c))
FUZZ_LIB_OBJ  = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_BIN      = $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_BUILD)/obj/%.o: %.c $(wildcard broker/*.h plugins/*/*.h tests/fuzz/*.h) include/rtbroker/plugin.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/librtfuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/librtfuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(filter %.o,$^) $(FUZZ_BUILD)/librtfuzz.a $(LDLIBS)

FUZZ_PLUGIN_OBJ = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(wildcard plugins/$(1)/*.c))
$(FUZZ_BUILD)/fuzz_sse: $(call FUZZ_PLUGIN_OBJ,sse)
$(FUZZ_BUILD)/fuzz_longpoll: $(call FUZZ_PLUGIN_OBJ,longpoll)
$(FUZZ_BUILD)/fuzz_ndjson: $(call FUZZ_PLUGIN_OBJ,ndjson)

# fuzz_socketio.c includes the Socket.IO plugin's parser source
$(FUZZ_BUILD)/fuzz_socketio: $(wildcard plugins/socketio/*.c plugins/socketio/*.h)

fuzz-build: $(FUZZ_BIN)

fuzz: deps-test fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run $(FUZZ_SECONDS)

# The broker lives in $(PREFIX)/lib/rtbroker with its plugins beside it (it finds them next to itself);
# bin/rtbroker links there. Third-party plugins build with `pkg-config --cflags rtbroker-plugin`.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/rtbroker/plugins $(DESTDIR)$(PREFIX)/include/rtbroker \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/rtbroker/conf $(DESTDIR)$(PREFIX)/share/rtbroker/web
	install -m 755 $(BUILD)/rtbroker $(DESTDIR)$(PREFIX)/lib/rtbroker/rtbroker
	ln -sf ../lib/rtbroker/rtbroker $(DESTDIR)$(PREFIX)/bin/rtbroker
	install -m 644 $(PLUGIN_SO) $(DESTDIR)$(PREFIX)/lib/rtbroker/plugins/
	install -m 644 include/rtbroker/plugin.h $(DESTDIR)$(PREFIX)/include/rtbroker/plugin.h
	install -m 644 conf/*.yaml $(DESTDIR)$(PREFIX)/share/rtbroker/conf/
	cp -R web/. $(DESTDIR)$(PREFIX)/share/rtbroker/web/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e "s|@ABI@|$$(sed -n 's/^#define RT_PLUGIN_ABI_VERSION //p' include/rtbroker/plugin.h)|" \
	  -e "s|@VERSION@|$$(sed -n 's/^#define RT_VERSION \"\(.*\)\"/\1/p' broker/rt.h)|" \
	  include/rtbroker-plugin.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/rtbroker-plugin.pc

check-config: build
	$(BUILD)/rtbroker --check-config -c conf/rtbroker.yaml

clean:
	rm -rf build build-asan build-fuzz

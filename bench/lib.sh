# Shared by the benchmark scripts (sourced, not run): building, the load client, starting and stopping
# servers on 127.0.0.1, and appending tagged result lines. Everything a script starts is stopped by
# the EXIT trap installed here, whatever way the script ends.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/out}
BUILD=$OUT/build/bench
# Data directories live on the disk being measured, never on tmpfs: fsync must cost what it costs.
DATA_ROOT=${BENCH_DATA_ROOT:-$OUT/data}
LOCKLOAD_SRC=${LOCKLOAD_SRC:-$ROOT/../shared/bench/lockload.c}
# Bounds: how long a server may take to come up, and slack on top of a load run's own duration.
START_TIMEOUT_S=${START_TIMEOUT_S:-30}
RUN_SLACK_S=${RUN_SLACK_S:-60}

SERVER_PID=""
SERVER_PORT=""
SERVER_DIR=""
SERVER_LOG=""
CLIENT=""
CLIENT_CMD=()
PIN_SERVER=()
PIN_CLIENT=()
APT_UPDATED=0

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  stop_server
  [[ -n "${RUN_DATA_ROOT:-}" && -d "$RUN_DATA_ROOT" ]] && rm -rf "$RUN_DATA_ROOT"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT" "$DATA_ROOT"
RUN_DATA_ROOT=$(mktemp -d "$DATA_ROOT/run-XXXXXX")

# Compiles lockd (dist/) and the benchmark tools (bench/out/build/).
build_project() {
  log "building lockd and the benchmark tools"
  (cd "$ROOT" && npm run --silent build && npx tsc -p tsconfig.bench.json) || die "build failed"
}

apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  apt_install redis-server
  # The package may start a system instance on 6379; ours use their own ports, so it does not matter.
}

ensure_etcd() {
  command -v etcd >/dev/null && return 0
  apt_install etcd-server
}

ensure_perf() {
  command -v perf >/dev/null && return 0
  apt_install linux-perf
}

# Picks the load client: lockload (C, speaks baton, Redis and etcd) when its source is there and
# compiles, else loadgen (TypeScript, baton only). Sets CLIENT and CLIENT_CMD. `$1` forces one.
ensure_client() {
  local wanted=${1:-auto}
  if [[ $wanted != loadgen ]]; then
    if [[ -f "$LOCKLOAD_SRC" ]] && command -v gcc >/dev/null; then
      if [[ ! -x "$OUT/lockload" || "$LOCKLOAD_SRC" -nt "$OUT/lockload" ]]; then
        log "building lockload from $LOCKLOAD_SRC"
        gcc -O2 -Wall -o "$OUT/lockload" "$LOCKLOAD_SRC" -lpthread || die "lockload did not compile"
      fi
      CLIENT=lockload
      CLIENT_CMD=("$OUT/lockload")
      return 0
    fi
    [[ $wanted == lockload ]] && die "lockload wanted but $LOCKLOAD_SRC is missing or gcc is not installed"
    log "NOTE: lockload not found at $LOCKLOAD_SRC (or no gcc): falling back to the TypeScript loadgen."
    log "NOTE: loadgen speaks only baton, so only lockd is measured, and it shares the CPU with the server."
  fi
  CLIENT=loadgen
  CLIENT_CMD=(node "$BUILD/loadgen.js")
}

# Builds bench/ceiling.c (the no-state reference server) into bench/out/; returns 1 without gcc.
ensure_ceiling() {
  command -v gcc >/dev/null || return 1
  if [[ ! -x "$OUT/ceiling" || "$ROOT/bench/ceiling.c" -nt "$OUT/ceiling" ]]; then
    log "building the ceiling server from bench/ceiling.c"
    gcc -O2 -Wall -o "$OUT/ceiling" "$ROOT/bench/ceiling.c" || die "bench/ceiling.c did not compile"
  fi
}

# Pins the server to the first CPU and the client to the last one (only with --pin on >= 2 CPUs).
enable_pinning() {
  local cpus
  cpus=$(nproc)
  if [[ $cpus -lt 2 ]] || ! command -v taskset >/dev/null; then
    log "NOTE: --pin needs taskset and 2 CPUs; running unpinned"
    return 0
  fi
  PIN_SERVER=(taskset -c 0)
  PIN_CLIENT=(taskset -c $((cpus - 1)))
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Which protocol the client speaks to a server kind.
server_proto() {
  case $1 in
    lockd-* | ceiling | node-ceiling-*) echo baton ;;
    redis-*) echo redis ;;
    etcd) echo etcd ;;
    *) die "unknown server kind $1" ;;
  esac
}

# start_server KIND [extra lockd flags...]; KIND: lockd-always lockd-never redis-always redis-memory etcd
# ceiling node-ceiling-always node-ceiling-never.
# Sets SERVER_PID, SERVER_PORT, SERVER_DIR (a fresh data directory, removed by stop_server).
start_server() {
  local kind=$1
  shift
  SERVER_DIR=$(mktemp -d "$RUN_DATA_ROOT/$kind-XXXXXX")
  SERVER_LOG=$SERVER_DIR.log
  case $kind in
    lockd-always | lockd-never)
      start_lockd "$SERVER_DIR" --fsync "${kind#lockd-}" "$@"
      ;;
    redis-always | redis-memory)
      SERVER_PORT=$(free_port)
      local persistence=(--appendonly no)
      [[ $kind == redis-always ]] && persistence=(--appendonly yes --appendfsync always)
      "${PIN_SERVER[@]}" redis-server --bind 127.0.0.1 --port "$SERVER_PORT" --dir "$SERVER_DIR" --save "" \
        "${persistence[@]}" --daemonize no --protected-mode yes --logfile "$SERVER_LOG" &
      SERVER_PID=$!
      wait_until "redis on :$SERVER_PORT" redis-cli -h 127.0.0.1 -p "$SERVER_PORT" ping
      ;;
    ceiling)
      SERVER_PORT=$(free_port)
      "${PIN_SERVER[@]}" "$OUT/ceiling" --port "$SERVER_PORT" >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      wait_until "ceiling on :$SERVER_PORT" grep -q "^ceiling listening" "$SERVER_LOG"
      ;;
    node-ceiling-always | node-ceiling-never)
      SERVER_PORT=$(free_port)
      local sync=()
      [[ $kind == node-ceiling-always ]] && sync=(--sync-file "$SERVER_DIR/sync")
      # shellcheck disable=SC2086 # SERVER_NODE_FLAGS is a list of words
      "${PIN_SERVER[@]}" node ${SERVER_NODE_FLAGS:-} "$BUILD/node-ceiling.js" --port "$SERVER_PORT" "${sync[@]}" >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      wait_until "node-ceiling on :$SERVER_PORT" grep -q "^node-ceiling listening" "$SERVER_LOG"
      ;;
    etcd)
      SERVER_PORT=$(free_port)
      local peer_port
      peer_port=$(free_port)
      "${PIN_SERVER[@]}" etcd --name bench --data-dir "$SERVER_DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$SERVER_PORT" --advertise-client-urls "http://127.0.0.1:$SERVER_PORT" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$peer_port" >"$SERVER_LOG" 2>&1 &
      SERVER_PID=$!
      wait_until "etcd on :$SERVER_PORT" curl -sf "http://127.0.0.1:$SERVER_PORT/health"
      ;;
    *) die "unknown server kind $kind" ;;
  esac
}

# start_lockd DATA_DIR [flags...]: lockd from dist/ on an ephemeral port; returns once it listens.
# Sets SERVER_PID, SERVER_PORT and STARTUP_MS (spawn to the "listening" line, 10 ms resolution).
start_lockd() {
  local dir=$1
  shift
  SERVER_LOG=${SERVER_LOG:-$dir.log}
  local started
  # Created here, not by the child's redirection, so the poll below never races the child to them.
  : >"$SERVER_LOG.out"
  : >"$SERVER_LOG"
  started=$(date +%s%N)
  # shellcheck disable=SC2086 # SERVER_NODE_FLAGS is a list of words (e.g. --cpu-prof --cpu-prof-dir DIR)
  "${PIN_SERVER[@]}" node ${SERVER_NODE_FLAGS:-} "$ROOT/dist/src/cli/lockd.js" --listen 127.0.0.1:0 --data "$dir" "$@" >"$SERVER_LOG.out" 2>"$SERVER_LOG" &
  SERVER_PID=$!
  local deadline=$((SECONDS + START_TIMEOUT_S))
  SERVER_PORT=""
  while [[ -z $SERVER_PORT ]]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$SERVER_LOG" >&2
      SERVER_PID=""
      die "lockd exited before listening"
    fi
    [[ $SECONDS -ge $deadline ]] && die "lockd did not listen within ${START_TIMEOUT_S}s"
    SERVER_PORT=$(sed -n 's/^lockd listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SERVER_LOG.out" || true)
    [[ -z $SERVER_PORT ]] && sleep 0.01
  done
  STARTUP_MS=$((($(date +%s%N) - started) / 1000000))
}

wait_until() {
  local what=$1
  shift
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2 2>/dev/null; SERVER_PID=""; die "$what exited while starting"; }
    [[ $SECONDS -ge $deadline ]] && die "$what not ready within ${START_TIMEOUT_S}s"
    sleep 0.05
  done
}

# Stops the server this script started (SIGTERM, then SIGKILL after 10 s) and removes its data.
stop_server() {
  [[ -z $SERVER_PID ]] && return 0
  local pid=$SERVER_PID
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [[ $waited -lt 100 ]]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true # a server ended by the signal reports 128+15: expected, not a failure
  [[ -n $SERVER_DIR ]] && rm -rf "$SERVER_DIR" "$SERVER_DIR".log*
  SERVER_DIR=""
  return 0
}

# SIGKILL the server (crash), keeping its data directory.
kill_server() {
  [[ -z $SERVER_PID ]] && return 0
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  return 0
}

server_rss_kb() {
  [[ -n $SERVER_PID ]] || { echo 0; return; }
  awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0
}

# run_load RESULTS_FILE TAGS_JSON SECONDS_BOUND client-args...
# Runs the client against the current server, checks its summary, and appends it to RESULTS_FILE with
# TAGS_JSON's fields (an object literal without braces) merged in front. Logs a one-line summary.
run_load() {
  local results=$1 tags=$2 bound=$3
  shift 3
  local line
  line=$(timeout --signal=INT --kill-after=5 "$((bound + RUN_SLACK_S))" "${PIN_CLIENT[@]}" "${CLIENT_CMD[@]}" \
    --host 127.0.0.1 --port "$SERVER_PORT" "$@" 2>>"$OUT/client.log" | tail -n 1) || true # judged by its output below
  if [[ $line != "{"* ]]; then
    log "client produced no summary (see $OUT/client.log); recording a failed run"
    line="{\"failed\":true}"
  fi
  local data_bytes=0
  [[ -n $SERVER_DIR && -d $SERVER_DIR ]] && data_bytes=$(du -sb "$SERVER_DIR" | cut -f1)
  line="{$tags,\"client\":\"$CLIENT\",\"server_rss_kb\":$(server_rss_kb),\"data_bytes\":$data_bytes,${line#\{}"
  printf '%s\n' "$line" >>"$results"
  local ops p99
  ops=$(grep -o '"ops_per_s":[0-9.]*' <<<"$line" | head -n 1 | cut -d: -f2)
  p99=$(grep -o '"p99":[0-9.]*' <<<"$line" | head -n 1 | cut -d: -f2)
  log "  {$tags}: ${ops:-?} ops/s, p99 ${p99:-?} us"
}

# "c50-p16" -> "-c 50 -P 16"
case_flags() {
  local spec=$1
  [[ $spec =~ ^c([0-9]+)-p([0-9]+)$ ]] || die "bad case $spec (expected like c50-p16)"
  echo "-c ${BASH_REMATCH[1]} -P ${BASH_REMATCH[2]}"
}

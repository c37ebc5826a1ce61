#!/usr/bin/env bash
# scaling.sh: how throughput and p99 move with the number of connections, and with the number of
# live locks the server holds, so the curve is visible and not only a point.
#
#   connections sweep: acquire/release on 100k locks at c = 1, 50, 500 and P = 1, 16
#   live-locks sweep:  fill a fresh server with N never-released locks (acquire-only, ttl 1 h), read its
#                      RSS, then run acquire/release c=50 P=16 on top of them; N = 10, 1k, 100k, 1M
#
# Raw results: bench/out/results-scaling-<time>.jsonl (rendered by report.js and plot.js).
#
#   bash bench/scaling.sh            # 1 run x (10 s + 1 s warm-up) per point
#   bash bench/scaling.sh --quick    # 2 s per point: a smoke test
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/scaling.sh [options]
  --quick              2 s (+0.5 s warm-up) per point
  --runs N             runs per point (1)
  --duration S         measured seconds per point (10)
  --warmup S           warm-up seconds per point (1)
  --conns LIST         connection counts (1,50,500)
  --pipelines LIST     pipeline depths for the connections sweep (1,16)
  --locks LIST         live locks for the locks sweep (10,1000,100000,1000000)
  --locks-case CASE    load run on top of the live locks (c50-p16)
  --servers LIST       from lockd-always,lockd-never,redis-always,redis-memory (all four)
  --only SWEEP         connections | locks
  --client C           lockload | loadgen
  --lockload-src PATH  lockload.c (env LOCKLOAD_SRC)
  --data-root DIR      where data directories go (bench/out/data)
  --pin                pin the server to CPU 0 and the client to the last CPU
  --no-build           use the existing builds
EOF
}

RUNS=1
DURATION=10
WARMUP=1
CONNS=1,50,500
PIPELINES=1,16
LOCKS=10,1000,100000,1000000
LOCKS_CASE=c50-p16
SERVERS=lockd-always,lockd-never,redis-always,redis-memory
ONLY=""
CLIENT_WANTED=auto
PIN=0
BUILD_FIRST=1
FILL_TTL_MS=3600000

while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) DURATION=2 WARMUP=0.5 ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --pipelines) PIPELINES=$2; shift ;;
    --locks) LOCKS=$2; shift ;;
    --locks-case) LOCKS_CASE=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --client) CLIENT_WANTED=$2; shift ;;
    --lockload-src) LOCKLOAD_SRC=$2; shift ;;
    --data-root) DATA_ROOT=$2; shift ;;
    --pin) PIN=1 ;;
    --no-build) BUILD_FIRST=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
  shift
done

[[ $BUILD_FIRST -eq 1 ]] && build_project
ensure_client "$CLIENT_WANTED"
[[ $PIN -eq 1 ]] && enable_pinning

IFS=, read -r -a server_list <<<"$SERVERS"
selected=()
for server in "${server_list[@]}"; do
  if [[ $CLIENT == loadgen && $server != lockd-* ]]; then
    log "NOTE: skipping $server: the TypeScript loadgen speaks only baton"
    continue
  fi
  [[ $server == redis-* ]] && ensure_redis
  selected+=("$server")
done
[[ ${#selected[@]} -gt 0 ]] || die "no server left to measure"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/results-scaling-$stamp.jsonl
: >"$RESULTS"
node "$BUILD/probe.js" --dir "$RUN_DATA_ROOT" --syncs 500 >>"$RESULTS"
bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 1 }')

if [[ $ONLY != locks ]]; then
  log "connections sweep: c in $CONNS, P in $PIPELINES"
  IFS=, read -r -a conn_list <<<"$CONNS"
  IFS=, read -r -a pipe_list <<<"$PIPELINES"
  for run in $(seq 1 "$RUNS"); do
    for pipeline in "${pipe_list[@]}"; do
      for conns in "${conn_list[@]}"; do
        for server in "${selected[@]}"; do
          start_server "$server"
          spec="c$conns-p$pipeline"
          tags="\"suite\":\"scaling\",\"sweep\":\"connections\",\"time\":\"$(date -u +%FT%TZ)\",\"server\":\"$server\",\"case\":\"$spec\",\"run\":$run"
          run_load "$RESULTS" "$tags" "$bound" --proto "$(server_proto "$server")" -c "$conns" -P "$pipeline" \
            -d "$DURATION" -w "$WARMUP" -k 100000 --label "$server $spec"
          stop_server
        done
      done
    done
  done
fi

if [[ $ONLY != connections ]]; then
  log "live-locks sweep: N in $LOCKS, then $LOCKS_CASE"
  IFS=, read -r -a lock_list <<<"$LOCKS"
  flags=$(case_flags "$LOCKS_CASE")
  for locks in "${lock_list[@]}"; do
    for server in "${selected[@]}"; do
      start_server "$server"
      sleep 0.5
      baseline=$(server_rss_kb)
      fill_started=$(date +%s%N)
      timeout --signal=INT 600 "${PIN_CLIENT[@]}" "${CLIENT_CMD[@]}" --host 127.0.0.1 --port "$SERVER_PORT" \
        --proto "$(server_proto "$server")" --workload acquire-only -n "$locks" -c 50 -P 16 --ttl "$FILL_TTL_MS" \
        --label "fill $locks" >"$OUT/fill.json" 2>>"$OUT/client.log" || log "fill of $locks locks failed (see $OUT/client.log)"
      fill_s=$(awk -v ns=$(($(date +%s%N) - fill_started)) 'BEGIN { printf "%.3f", ns / 1e9 }')
      filled_ok=$(grep -o '"acquire_status":{"0":[0-9]*' "$OUT/fill.json" | grep -o '[0-9]*$' || echo 0)
      sleep 1
      filled=$(server_rss_kb)
      tags="\"suite\":\"scaling\",\"sweep\":\"locks\",\"time\":\"$(date -u +%FT%TZ)\",\"server\":\"$server\",\"case\":\"$LOCKS_CASE\""
      tags+=",\"live_locks\":$locks,\"fill_ok\":${filled_ok:-0},\"fill_seconds\":$fill_s,\"rss_baseline_kb\":$baseline,\"rss_filled_kb\":$filled"
      # shellcheck disable=SC2086 # flags is a list of words
      run_load "$RESULTS" "$tags" "$bound" --proto "$(server_proto "$server")" $flags \
        -d "$DURATION" -w "$WARMUP" -k 100000 --label "$server $LOCKS_CASE on $locks live locks"
      stop_server
    done
  done
fi

log "results: $RESULTS"
node "$BUILD/report.js" --scaling "$RESULTS"

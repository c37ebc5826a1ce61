#!/usr/bin/env bash
# compare.sh: lockd side by side with Redis (and etcd when asked) under the same client and workload.
#
# Every server starts fresh on 127.0.0.1 for every run, with its own data directory on the disk under
# bench/out/data, and is stopped when the run ends (and on any exit). Runs are interleaved (run 1 of
# every server and case, then run 2, ...) so a slow phase of a shared machine does not land on one
# server only. Raw results: bench/out/results-compare-<time>.jsonl; the table is rendered from it.
#
#   bash bench/compare.sh                 # 3 runs x (10 s + 1 s warm-up) per server and case
#   bash bench/compare.sh --quick         # 1 run x 2 s: a smoke test of the tooling
#   bash bench/compare.sh --with-etcd     # also etcd (single member, fsync), P=1 cases only
#   bash bench/compare.sh --help
#
# With gcc present, bench/ceiling.c (a C server that answers every frame and does nothing else) runs
# next to them: the most this machine and client allow, measured in the same run as the others.
# bench/node-ceiling.ts does the same on Node's event loop, without and with one fdatasync per turn:
# the most a Node server gets here, which tells lockd's own work apart from its runtime's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/compare.sh [options]
  --quick              1 run of 2 s (+0.5 s warm-up): checks the tooling, numbers not comparable
  --runs N             runs per server and case (3)
  --duration S         measured seconds per run (10)
  --warmup S           warm-up seconds per run, not recorded (1)
  --cases LIST         comma-separated cN-pM (c1-p1,c50-p1,c50-p16)
  --servers LIST       comma-separated from lockd-always,lockd-never,redis-always,redis-memory,etcd,
                       ceiling,node-ceiling-always,node-ceiling-never (default: all but etcd; etcd
                       with --with-etcd; ceiling needs gcc)
  --no-ceiling         leave out the C and Node ceiling servers
  --with-etcd          add etcd (installs etcd-server if missing); run only for P=1 cases
  --no-redis           measure lockd only
  --keyspace K         locks in the key space (100000)
  --client C           lockload | loadgen (default: lockload when its source is found)
  --lockload-src PATH  lockload.c (default ../shared/bench/lockload.c next to the repo; env LOCKLOAD_SRC)
  --data-root DIR      where data directories go (bench/out/data; must be on the disk to measure)
  --pin                pin the server to CPU 0 and the client to the last CPU (taskset)
  --no-build           use the existing dist/ and bench/out/build/
  --report FILE        only render the table of an existing results file
EOF
}

RUNS=3
DURATION=10
WARMUP=1
CASES=c1-p1,c50-p1,c50-p16
SERVERS=""
WITH_ETCD=0
WITH_REDIS=1
WITH_CEILING=1
KEYSPACE=100000
CLIENT_WANTED=auto
PIN=0
BUILD_FIRST=1
REPORT_ONLY=""

while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) RUNS=1 DURATION=2 WARMUP=0.5 ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --cases) CASES=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --with-etcd) WITH_ETCD=1 ;;
    --no-redis) WITH_REDIS=0 ;;
    --no-ceiling) WITH_CEILING=0 ;;
    --keyspace) KEYSPACE=$2; shift ;;
    --client) CLIENT_WANTED=$2; shift ;;
    --lockload-src) LOCKLOAD_SRC=$2; shift ;;
    --data-root) DATA_ROOT=$2; shift ;;
    --pin) PIN=1 ;;
    --no-build) BUILD_FIRST=0 ;;
    --report) REPORT_ONLY=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
  shift
done

if [[ -n $REPORT_ONLY ]]; then
  node "$BUILD/report.js" --compare "$REPORT_ONLY"
  exit 0
fi

[[ $BUILD_FIRST -eq 1 ]] && build_project
ensure_client "$CLIENT_WANTED"
[[ $PIN -eq 1 ]] && enable_pinning

if [[ -z $SERVERS ]]; then
  SERVERS=lockd-always,lockd-never
  [[ $WITH_REDIS -eq 1 ]] && SERVERS+=,redis-always,redis-memory
  [[ $WITH_ETCD -eq 1 ]] && SERVERS+=,etcd
  [[ $WITH_CEILING -eq 1 ]] && SERVERS+=,ceiling,node-ceiling-always,node-ceiling-never
fi
IFS=, read -r -a server_list <<<"$SERVERS"
IFS=, read -r -a case_list <<<"$CASES"

selected=()
for server in "${server_list[@]}"; do
  if [[ $CLIENT == loadgen && $server != lockd-* && $server != ceiling && $server != node-ceiling-* ]]; then
    log "NOTE: skipping $server: the TypeScript loadgen speaks only baton"
    continue
  fi
  case $server in
    redis-*) ensure_redis ;;
    etcd) ensure_etcd ;;
    ceiling)
      if ! ensure_ceiling; then
        log "NOTE: no gcc: the C ceiling is not measured; the report uses its reference figure"
        continue
      fi
      ;;
  esac
  selected+=("$server")
done
[[ ${#selected[@]} -gt 0 ]] || die "no server left to measure"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/results-compare-$stamp.jsonl
: >"$RESULTS"
log "probing the machine and the disk under $RUN_DATA_ROOT"
node "$BUILD/probe.js" --dir "$RUN_DATA_ROOT" >>"$RESULTS"

bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 1 }')
for run in $(seq 1 "$RUNS"); do
  if [[ $run -gt 1 ]]; then
    # The disk's fdatasync moves by tens of µs over minutes: probed again before every round, so the
    # c=1 target compares lockd with the median of the disk's figures over the same minutes.
    node "$BUILD/probe.js" --dir "$RUN_DATA_ROOT" >>"$RESULTS"
  fi
  for spec in "${case_list[@]}"; do
    flags=$(case_flags "$spec")
    for server in "${selected[@]}"; do
      if [[ $server == etcd && $spec != *-p1 ]]; then
        continue # etcd's HTTP gateway answers one request at a time per connection
      fi
      start_server "$server"
      tags="\"suite\":\"compare\",\"time\":\"$(date -u +%FT%TZ)\",\"server\":\"$server\",\"case\":\"$spec\",\"run\":$run"
      # shellcheck disable=SC2086 # flags is a list of words
      run_load "$RESULTS" "$tags" "$bound" --proto "$(server_proto "$server")" $flags \
        -d "$DURATION" -w "$WARMUP" -k "$KEYSPACE" --label "$server $spec run $run"
      stop_server
    done
  done
done

log "results: $RESULTS"
node "$BUILD/report.js" --compare "$RESULTS"

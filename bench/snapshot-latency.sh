#!/usr/bin/env bash
# snapshot-latency.sh: request latency while snapshots of N live locks are being written, against the
# same load with no snapshot at all. Both servers are filled with N never-released locks first
# (acquire-only, ttl 1 h); the "snapshots" server then compacts as often as lockd allows
# (--snapshot-every 16 MiB; each snapshot also waits for as much new log as the previous snapshot
# holds, ~100 MiB for 1M locks), so every measured run includes snapshots of all N locks.
#
#   bash bench/snapshot-latency.sh                 # 1M locks, c=50 P=1 and P=16, 30 s each
#   bash bench/snapshot-latency.sh --locks 100000 --duration 3
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCKS=1000000
DURATION=30
BUILD_FIRST=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --locks) LOCKS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --no-build) BUILD_FIRST=0 ;;
    -h | --help) echo "usage: bench/snapshot-latency.sh [--locks N] [--duration S] [--no-build]"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

[[ $BUILD_FIRST -eq 1 ]] && build_project
ensure_client auto
RESULTS=$OUT/results-snapshot-$(date -u +%Y%m%dT%H%M%SZ).jsonl
: >"$RESULTS"

for mode in none snapshots; do
  if [[ $mode == none ]]; then extra=(--snapshot-every 1099511627776); else extra=(--snapshot-every 16777216 --segment-bytes 8388608); fi
  start_server lockd-always "${extra[@]}"
  log "$mode: filling $LOCKS live locks"
  run_load "$OUT/fill.jsonl" "\"suite\":\"snapshot-fill\",\"mode\":\"$mode\"" 120 --workload acquire-only -n "$LOCKS" --ttl 3600000 -c 50 -P 16
  sleep 1
  for spec in c50-p1 c50-p16; do
    before=$(grep -c "snapshot at index" "$SERVER_LOG" || true)
    # shellcheck disable=SC2046 # case_flags prints separate words
    run_load "$RESULTS" "\"suite\":\"snapshot\",\"mode\":\"$mode\",\"case\":\"$spec\",\"locks\":$LOCKS" "$((DURATION + 1))" \
      $(case_flags "$spec") -d "$DURATION" -w 1 -k 100000
    after=$(grep -c "snapshot at index" "$SERVER_LOG" || true)
    log "  snapshots written during $spec: $((after - before))"
    grep "snapshot at index" "$SERVER_LOG" | tail -n 1 >&2 || true
  done
  stop_server
done

printf '\n%-10s %-8s %10s %9s %9s %10s\n' mode case "ops/s" "p50 µs" "p99 µs" "p99.9 µs"
while IFS= read -r line; do
  field() { grep -o "\"$1\":[^,}]*" <<<"$line" | head -n 1 | cut -d: -f2 | tr -d '"'; }
  printf '%-10s %-8s %10.0f %9s %9s %10s\n' "$(field mode)" "$(field case)" "$(field ops_per_s)" "$(field p50)" "$(field p99)" "$(field p999)"
done <"$RESULTS"
echo "raw: $RESULTS"

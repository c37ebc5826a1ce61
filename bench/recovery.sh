#!/usr/bin/env bash
# recovery.sh: start-up time of lockd on a data directory holding N log entries / N live locks, after
# a SIGKILL (see recovery.ts for the scenarios). Raw results: bench/out/results-recovery-<time>.jsonl.
#
#   bash bench/recovery.sh                   # 1M entries, scenarios log and snapshot
#   bash bench/recovery.sh --entries 100000  # smaller, for a smoke test
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENTRIES=1000000
SCENARIOS=log,snapshot
CLIENT_WANTED=auto
BUILD_FIRST=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --entries) ENTRIES=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --client) CLIENT_WANTED=$2; shift ;;
    --lockload-src) LOCKLOAD_SRC=$2; shift ;;
    --data-root) DATA_ROOT=$2; shift ;;
    --no-build) BUILD_FIRST=0 ;;
    -h | --help)
      echo "usage: bench/recovery.sh [--entries N] [--scenarios log,snapshot] [--client lockload|loadgen] [--lockload-src PATH] [--data-root DIR] [--no-build]"
      exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

[[ $BUILD_FIRST -eq 1 ]] && build_project
ensure_client "$CLIENT_WANTED"
RESULTS=$OUT/results-recovery-$(date -u +%Y%m%dT%H%M%SZ).jsonl
: >"$RESULTS"
# recovery.js starts and stops its own lockd processes (SIGKILL, then SIGTERM on the restarted one).
timeout --signal=INT 1800 node "$BUILD/recovery.js" --results "$RESULTS" --entries "$ENTRIES" --scenarios "$SCENARIOS" \
  --data-root "$RUN_DATA_ROOT" -- "${CLIENT_CMD[@]}"
log "results: $RESULTS"
node "$BUILD/report.js" --recovery "$RESULTS"

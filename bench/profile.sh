#!/usr/bin/env bash
# profile.sh: a CPU profile of lockd under load (node --cpu-prof), and its top functions by self time.
#
#   bash bench/profile.sh                                # --fsync never, c=50 P=16, 5 s
#   bash bench/profile.sh --fsync always --case c50-p1 --duration 10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FSYNC=never
SPEC=c50-p16
DURATION=5
BUILD_FIRST=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --fsync) FSYNC=$2; shift ;;
    --case) SPEC=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --no-build) BUILD_FIRST=0 ;;
    -h | --help) echo "usage: bench/profile.sh [--fsync always|never] [--case cN-pM] [--duration S] [--no-build]"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

[[ $BUILD_FIRST -eq 1 ]] && build_project
ensure_client auto
PROFILE_DIR=$OUT/profile/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$PROFILE_DIR"
LOCKD_NODE_FLAGS="--cpu-prof --cpu-prof-dir $PROFILE_DIR" start_server "lockd-$FSYNC"
flags=$(case_flags "$SPEC")
# shellcheck disable=SC2086 # flags is a list of words
run_load "$OUT/results-profile.jsonl" "\"suite\":\"profile\",\"server\":\"lockd-$FSYNC\",\"case\":\"$SPEC\"" "$((DURATION + 2))" \
  --proto baton $flags -d "$DURATION" -w 1 -k 100000
stop_server # SIGTERM: lockd exits cleanly and V8 writes the profile
# One file per process and thread: lockd's main thread (.0.) serves; other processes compacted snapshots.
for profile in "$PROFILE_DIR"/*.cpuprofile; do
  log "profile: $profile (open in Chrome DevTools > Performance, or speedscope)"
  node "$BUILD/profile-top.js" "$profile" --top 30
done

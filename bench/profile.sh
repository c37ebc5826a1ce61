#!/usr/bin/env bash
# profile.sh: where a server's event-loop thread spends its time under load.
#
#   bash bench/profile.sh                                # V8's CPU profile of lockd, --fsync never, c=50 P=16, 5 s
#   bash bench/profile.sh --fsync always --case c50-p1 --duration 10
#   bash bench/profile.sh --perf                         # perf's samples of the thread: kernel, Node, JavaScript
#   bash bench/profile.sh --perf --server node-ceiling   # the same of the no-op Node server, to compare
#
# V8's profile (node --cpu-prof) sees JavaScript only: time in the kernel and in Node's C++ shows up as
# "(idle)" or "(program)", and on a loaded event loop that is half of it. --perf samples the thread
# with `perf record` (the Debian package linux-perf; installed when missing, as compare.sh installs
# Redis), with Node's --perf-basic-prof naming the JavaScript functions, and prints the time by part
# (kernel, node, libc, JavaScript) and the top symbols.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FSYNC=never
SPEC=c50-p16
DURATION=5
BUILD_FIRST=1
PROFILER=v8
SERVER=lockd
while [[ $# -gt 0 ]]; do
  case $1 in
    --fsync) FSYNC=$2; shift ;;
    --case) SPEC=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --perf) PROFILER=perf ;;
    --server) SERVER=$2; shift ;;
    --no-build) BUILD_FIRST=0 ;;
    -h | --help)
      echo "usage: bench/profile.sh [--fsync always|never] [--case cN-pM] [--duration S] [--perf [--server lockd|node-ceiling]] [--no-build]"
      exit 0
      ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
[[ $SERVER == lockd || $SERVER == node-ceiling ]] || die "--server is lockd or node-ceiling, got $SERVER"
[[ $SERVER == lockd || $PROFILER == perf ]] || die "--server node-ceiling needs --perf"

[[ $BUILD_FIRST -eq 1 ]] && build_project
ensure_client auto
PROFILE_DIR=$OUT/profile/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$PROFILE_DIR"
flags=$(case_flags "$SPEC")
kind=$SERVER-$FSYNC

if [[ $PROFILER == v8 ]]; then
  SERVER_NODE_FLAGS="--cpu-prof --cpu-prof-dir $PROFILE_DIR" start_server "$kind"
  # shellcheck disable=SC2086 # flags is a list of words
  run_load "$OUT/results-profile.jsonl" "\"suite\":\"profile\",\"server\":\"$kind\",\"case\":\"$SPEC\"" "$((DURATION + 2))" \
    --proto baton $flags -d "$DURATION" -w 1 -k 100000
  stop_server # SIGTERM: lockd exits cleanly and V8 writes the profile
  # One file per process and thread: lockd's main thread (.0.) serves; other processes compacted snapshots.
  for profile in "$PROFILE_DIR"/*.cpuprofile; do
    log "profile: $profile (open in Chrome DevTools > Performance, or speedscope)"
    node "$BUILD/profile-top.js" "$profile" --top 30
  done
  exit 0
fi

ensure_perf
# Started from the profile's folder: with --perf-basic-prof, V8 also writes a log per isolate into the
# working directory.
pushd "$PROFILE_DIR" >/dev/null
SERVER_NODE_FLAGS="--perf-basic-prof" start_server "$kind"
popd >/dev/null
perf_map=/tmp/perf-$SERVER_PID.map
samples=$PROFILE_DIR/perf.data
# The server's main thread has the process's id; after the load's warm-up second, for the measured part.
(sleep 1 && perf record -q -e cpu-clock -F 4000 -t "$SERVER_PID" -o "$samples" -- sleep "$DURATION" >/dev/null 2>&1) &
recorder=$!
# shellcheck disable=SC2086 # flags is a list of words
run_load "$OUT/results-profile.jsonl" "\"suite\":\"profile\",\"server\":\"$kind\",\"case\":\"$SPEC\"" "$((DURATION + 2))" \
  --proto baton $flags -d "$DURATION" -w 1 -k 100000
wait "$recorder" || die "perf record failed (is perf allowed here? see /proc/sys/kernel/perf_event_paranoid)"
log "samples: $samples; JavaScript's names: $PROFILE_DIR/${perf_map#/tmp/} (perf report reads them from $perf_map)"
# `head` closes the pipe early: not a failure of the report.
echo "== time by part of the server's main thread =="
perf report -i "$samples" --no-children --sort dso --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -8 || true
echo "== top symbols ([k] kernel, [.] user space; JS: JavaScript) =="
perf report -i "$samples" --no-children --sort sym --stdio 2>/dev/null | grep -v -e '^#' -e '^$' | head -30 || true
stop_server
# Every process started with the flag (lockd's compaction launcher too) left a map in /tmp; the V8 logs
# in the profile's folder name their process ids.
for v8_log in "$PROFILE_DIR"/isolate-*-v8.log; do
  pid=${v8_log%-v8.log}
  mv "/tmp/perf-${pid##*-}.map" "$PROFILE_DIR/" 2>/dev/null || true
done

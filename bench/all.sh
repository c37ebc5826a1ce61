#!/usr/bin/env bash
# all.sh: the whole measurement in one command, then BENCHMARKS.md and the plot regenerated from the
# results it wrote. Run it on a quiet machine (nothing else busy): it takes about 25 minutes.
#
#   bash bench/all.sh               # the final numbers (etcd included)
#   bash bench/all.sh --quick       # every step, briefly: checks the tooling end to end
#   bash bench/all.sh --no-etcd     # without etcd
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=()
ETCD=(--with-etcd)
ENTRIES=1000000
MICRO_MS=1000
for arg in "$@"; do
  case $arg in
    --quick) QUICK=(--quick) ENTRIES=100000 MICRO_MS=200 ;;
    --no-etcd) ETCD=() ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

npm run --silent bench:build
bash bench/compare.sh --no-build "${QUICK[@]}" "${ETCD[@]}"
bash bench/scaling.sh --no-build "${QUICK[@]}"
bash bench/recovery.sh --no-build --entries "$ENTRIES"
node bench/out/build/bench/micro.js --time "$MICRO_MS"
node bench/out/build/bench/report.js --latest --update BENCHMARKS.md
node bench/out/build/bench/plot.js --latest
echo "BENCHMARKS.md and bench/latency-throughput.svg regenerated from bench/out/results-*.jsonl"

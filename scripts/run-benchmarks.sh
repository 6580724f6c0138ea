#!/usr/bin/env bash
# Runs every benchmark in the given (release) build folder; results go to stdout and to
# out/bench/*.json, from which docs/benchmarks.md is written.
set -euo pipefail
build=${1:?usage: run-benchmarks.sh BUILD_DIR}
cd "$(dirname "$0")/.."
mkdir -p out/bench
for b in joule_bench joule_engine_bench joule_journal_bench; do
  "$build/bench/$b" --benchmark_out="out/bench/$b.json" --benchmark_out_format=json
done

# The twin: 30 days of france-1gw (target <= 60 s, <= 2 GB) and the Philly replay (<= 5 s), timed
# by GNU time; the figures and their summary.json land in out/bench/.
data=../shared/data/traces/philly/philly.csv
twin() {
  local name=$1
  shift
  /usr/bin/time -f "$name: %e s wall, %M KB peak" -o "out/bench/$name.time" "$build/apps/joule" sim "$@" \
    --out "out/bench/$name" >/dev/null
  cat "out/bench/$name.time"
}
twin france-30d --scenario scenarios/france-1gw.yaml --workload scenarios/france-1gw-workload.yaml --days 30 --seed 1
if [ -f "$data" ]; then
  for order in fifo sjf joule; do
    twin "philly-$order" --scenario scenarios/philly.yaml --workload "$data" --order "$order"
    twin "philly-8x-$order" --scenario scenarios/philly.yaml --workload "$data" --order "$order" --arrival-scale 0.125
  done
else
  echo "skipping the Philly replay: $data not found"
fi

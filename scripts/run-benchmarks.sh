#!/usr/bin/env bash
# Runs every benchmark in the given (release) build folder; results go to stdout and to
# out/bench/*.json, from which docs/benchmarks.md is written.
set -euo pipefail
build=${1:?usage: run-benchmarks.sh BUILD_DIR}
cd "$(dirname "$0")/.."
mkdir -p out/bench
for b in joule_bench joule_engine_bench; do
  "$build/bench/$b" --benchmark_out="out/bench/$b.json" --benchmark_out_format=json
done

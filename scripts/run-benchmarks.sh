#!/usr/bin/env bash
# Builds (via make) and runs every benchmark in the given build folder; results go to stdout and
# to out/bench/*.json for docs/benchmarks.md.
set -euo pipefail
build=${1:?usage: run-benchmarks.sh BUILD_DIR}
cd "$(dirname "$0")/.."
mkdir -p out/bench
"$build/bench/joule_bench" --benchmark_out=out/bench/joule_bench.json --benchmark_out_format=json

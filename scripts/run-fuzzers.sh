#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for SECONDS (default 20) from its
# seed corpus (the request path's seeds are made from the OpenAPI document). A crash, a sanitizer
# report or a broken invariant fails the run and leaves the input in build/fuzz/.
# Usage: scripts/run-fuzzers.sh [SECONDS]
set -euo pipefail
seconds="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build/fuzz"
cmake -S "$root/fuzz" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
python3 "$root/scripts/fuzz-seeds.py" "$root/api/openapi.json" "$build/corpus/http_api" >/dev/null
for target in job_spec_fuzz sbatch_fuzz state_bytes_fuzz agent_report_fuzz http_api_fuzz; do
  corpus="$build/corpus/${target%_fuzz}"
  mkdir -p "$corpus"
  cp -n "$root/fuzz/corpus/${target%_fuzz}/"* "$corpus/" 2>/dev/null || true
  echo "fuzz: $target for ${seconds} s"
  (cd "$build" && "./$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=0 "$corpus" 2>"$build/$target.log") ||
    { tail -40 "$build/$target.log"; echo "fuzz: $target failed (input saved in $build)"; exit 1; }
  grep -E "^Done|#[0-9]+ +DONE" "$build/$target.log" | tail -1 || true
done

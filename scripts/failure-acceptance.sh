#!/usr/bin/env bash
# Failure acceptance (docs/benchmarks.md): the france-1gw week with its failure model (Llama 3's
# rates and causes, correlated domain failures, rolling maintenance), four ways — pre-training with
# hot spares and 10-minute checkpoints (the workload as written), without spares, with hourly
# checkpoints, with neither — plus a campus that never fails. Writes out/bench/failures.csv: ETTR
# of jobs of 16,384+ and 1,025+ accelerators, interruptions, goodput, accelerator-hours lost.
# WORKLOAD=busy runs the week whose on-demand pool fills the campus (out/bench/failures-busy.csv):
# there a requeued gang waits for room, which is what hot spares save.
set -euo pipefail
build=${1:?usage: failure-acceptance.sh BUILD_DIR [DAYS] [SEED]}
days=${2:-7}
seed=${3:-1}
cd "$(dirname "$0")/.."
workload=scenarios/france-1gw-workload.yaml
name=failures
if [ "${WORKLOAD:-}" = busy ]; then
  workload=scenarios/france-1gw-busy-workload.yaml
  name=failures-busy
fi
out=out/bench/$name
csv=out/bench/$name.csv
mkdir -p "$out"
run() {
  local name=$1
  shift
  "$build/apps/joule" sim --scenario scenarios/france-1gw.yaml --workload "$workload" \
    --days "$days" --seed "$seed" --out "$out/$name" "$@" >/dev/null
}
# A field of the failures block, or of one of its ETTR groups.
failures() { python3 -c "import json,sys; f=json.load(open(sys.argv[1]))['failures']; print(eval(sys.argv[2]))" "$1" "$2"; }
echo "run,ettr_16k,jobs_16k,interruptions_per_16k_job,ettr_large,jobs_large,interruptions,restarts_on_spares,requeues,jobs_failed,lost_accelerator_hours,goodput" \
  >"$csv"
for spec in "spares-10min" "no-spares-10min --no-spares" "spares-60min --checkpoint-min 60" \
  "no-spares-60min --no-spares --checkpoint-min 60" "no-failures --failures none"; do
  name=${spec%% *}
  args=${spec#"$name"}
  # shellcheck disable=SC2086
  run "$name" $args
  s="$out/$name/summary.json"
  row="$name"
  for expr in "round(f['ettr_16k_jobs']['ettr'],4)" "f['ettr_16k_jobs']['jobs']" \
    "round(f['ettr_16k_jobs']['interruptions_per_job'],1)" "round(f['ettr_large_jobs']['ettr'],4)" \
    "f['ettr_large_jobs']['jobs']" "f['interruptions']" "f['restarts_on_spares']" "f['requeues']" "f['jobs_failed']" \
    "round(f['lost_accelerator_hours'])" "round(f['goodput'],4)"; do
    row="$row,$(failures "$s" "$expr")"
  done
  echo "$row" >>"$csv"
done
cat "$csv"

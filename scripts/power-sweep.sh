#!/usr/bin/env bash
# Power oversubscription sweep (docs/benchmarks.md): the busy france-1gw week with no budgets, then
# with the campus envelope shrunk to rated IT draw / (1 + P%) for P = 0, 5, ..., 40, then 50 and
# 60 to show where the envelope starts to cost work (PCTS overrides the list). Writes
# out/bench/power-sweep.csv: work done against the uncapped run, budget violations measured by the
# twin, accelerator-hours lost to caps, limit changes, peak IT draw.
set -euo pipefail
build=${1:?usage: power-sweep.sh BUILD_DIR [DAYS]}
days=${2:-7}
cd "$(dirname "$0")/.."
out=out/bench/power-sweep
mkdir -p "$out"
field() { sed -n "s/^ *\"$2\": \([0-9.e+-]*\),\{0,1\}$/\1/p" "$1" | head -1; }
# The mean JCT of all jobs: the first "mean" after the first "jct_s".
jct() { awk '/"jct_s"/ {on = 1} on && /"mean"/ {gsub(/[",]/, ""); print $2; exit}' "$1"; }
violations() { sed -n 's/^ *"violations": \([0-9]*\)$/\1/p' "$1" | awk '{s += $1} END {print s + 0}'; }
sweep() {
  local name=$1
  shift
  "$build/apps/joule" sim --scenario scenarios/france-1gw.yaml --workload scenarios/france-1gw-busy-workload.yaml \
    --days "$days" --seed 1 --failures none --out "$out/$name" "$@" >/dev/null
}
sweep uncapped --uncapped
base=$(field "$out/uncapped/summary.json" useful_accelerator_hours)
base_done=$(field "$out/uncapped/summary.json" completed_accelerator_hours)
echo "oversubscription_pct,campus_it_budget_mw,peak_it_mw,work_done_share,completed_share,mean_jct_s,violations,capping_lost_accelerator_hours,power_limit_changes" \
  >out/bench/power-sweep.csv
for p in ${PCTS:-0 5 10 15 20 25 30 35 40 50 60}; do
  sweep "p$p" --oversubscription "$p"
  s="$out/p$p/summary.json"
  peak_it=$(field "$s" campus)
  share=$(awk -v a="$(field "$s" useful_accelerator_hours)" -v b="$base" 'BEGIN {printf "%.4f", a / b}')
  done_share=$(awk -v a="$(field "$s" completed_accelerator_hours)" -v b="$base_done" 'BEGIN {printf "%.4f", a / b}')
  echo "$p,$(field "$s" campus_it_budget_mw),$peak_it,$share,$done_share,$(jct "$s"),$(violations "$s"),$(field "$s" capping_lost_accelerator_hours),$(field "$s" power_limit_changes)" \
    >>out/bench/power-sweep.csv
done
echo "uncapped: mean JCT $(jct "$out/uncapped/summary.json") s"
cat out/bench/power-sweep.csv

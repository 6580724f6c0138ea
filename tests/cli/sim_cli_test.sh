#!/usr/bin/env bash
# `joule sim` as a user runs it: a model and a job CSV on the dev campus give the three outputs,
# the same seed gives a byte-identical summary.json, bad input exits 2 naming file and line.
set -uo pipefail
source "$(dirname "$0")/common.sh"

cat >"$tmp/model.yaml" <<'YAML'
tenants:
  - tenant: lab-a
    jobs:
      - {class: train, per_day: 20, accelerators: [16, 64], per_worker: 8, type: h100-sxm, duration_h: [1, 6], checkpoint_min: 30, priority: 5}
      - {class: eval, per_day: 400, accelerators: [1, 8], per_worker: 4, duration_min: [5, 60]}
  - tenant: lab-b
    jobs:
      - {class: eval, per_day: 300, accelerators: [1, 4], per_worker: 4, duration_min: [5, 60], priority: 1}
      - {class: batch, per_day: 30, priority: 8, accelerators: [4, 8], per_worker: 4, duration_h: [1, 2], limit_factor: [1.1, 1.2], flexible_deadline_h: 24, work: inference}
    services:
      - {name: chat, replicas_at_peak: 6, accelerators_per_replica: 4, burstiness: 0.2, priority: 10}
YAML
printf 'submit_s,duration_s,gpus_per_worker,workers,tenant\n0,600,8,2,lab-a\n10,60,1,1,lab-b\n20,60,8,20,lab-b\n' >"$tmp/jobs.csv"
printf 'submit_s,duration_s,gpus_per_worker\n0,sixty,1\n' >"$tmp/bad.csv"

run() { "$joule" sim --scenario "$src/scenarios/dev.yaml" "$@"; }

run --workload "$tmp/model.yaml" --days 2 --seed 5 --out "$tmp/a" >"$tmp/out" || fail "model run: $(cat "$tmp/out")"
for f in summary.json timeseries.csv report.html; do [ -s "$tmp/a/$f" ] || fail "no $f"; done
grep -q "report: $tmp/a/report.html" "$tmp/out" || fail "no report path printed"
grep -q '"schema": "joule.sim.summary/1"' "$tmp/a/summary.json" || fail "no schema"
grep -q '<svg' "$tmp/a/report.html" || fail "report has no chart"
grep -q '<script' "$tmp/a/report.html" && fail "report carries a script"
[ "$(wc -l <"$tmp/a/timeseries.csv")" -eq 578 ] || fail "expected 577 samples over 2 days at 5 min, got $(($(wc -l <"$tmp/a/timeseries.csv") - 1))"
run --workload "$tmp/model.yaml" --days 2 --seed 5 --out "$tmp/b" >/dev/null
cmp -s "$tmp/a/summary.json" "$tmp/b/summary.json" || fail "same seed, different summary.json"
cmp -s "$tmp/a/report.html" "$tmp/b/report.html" || fail "same seed, different report.html"
run --workload "$tmp/model.yaml" --days 2 --seed 6 --out "$tmp/c" >/dev/null
cmp -s "$tmp/a/summary.json" "$tmp/c/summary.json" && fail "another seed, same summary.json"

{
  echo "Datetime (UTC),Carbon Intensity gCO2eq/kWh (direct)"
  for h in $(seq 0 48); do printf '%02d/01/2022 %02d:00,%d\n' $((h / 24 + 1)) $((h % 24)) $((20 + h)); done
} >"$tmp/grid.csv"
run --workload "$tmp/model.yaml" --days 2 --seed 5 --grid "$tmp/grid.csv" --out "$tmp/g" >"$tmp/out" || fail "grid run: $(cat "$tmp/out")"
grep -q "t CO2e" "$tmp/out" || fail "no carbon printed"
grep -q '"carbon_t": [0-9]' "$tmp/g/summary.json" || fail "no carbon in summary.json"
# Prices with a cheap (negative) night: flexible jobs wait for it and pay at least a fifth less per
# MWh than when they run at once (those arriving in the morning cannot reach it within the first
# half of their slack).
{
  echo "Datetime (UTC),Price (EUR/MWh)"
  for h in $(seq 0 48); do
    p=120
    [ $((h % 24)) -ge 1 ] && [ $((h % 24)) -le 5 ] && p=-5
    printf '%02d/01/2022 %02d:00,%d\n' $((h / 24 + 1)) $((h % 24)) $p
  done
} >"$tmp/price.csv"
run --workload "$tmp/model.yaml" --days 2 --seed 5 --price "$tmp/price.csv" --flexible-by price --out "$tmp/p" >"$tmp/out" || fail "price run: $(cat "$tmp/out")"
grep -q "kEUR" "$tmp/out" || fail "no cost printed"
run --workload "$tmp/model.yaml" --days 2 --seed 5 --price "$tmp/price.csv" --no-flexible --out "$tmp/p0" >/dev/null || fail "baseline price run"
eur() { sed -n 's/^ *"eur_per_mwh": \(.*\),$/\1/p' "$1/summary.json"; }
awk -v f="$(eur "$tmp/p")" -v b="$(eur "$tmp/p0")" 'BEGIN {exit !(f > -100 && f < 0.8 * b)}' ||
  fail "flexible jobs paid $(eur "$tmp/p") EUR/MWh, $(eur "$tmp/p0") when run at once"
run --workload "$tmp/model.yaml" --days 2 --flexible-by price --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "needs --price" "$tmp/err" || fail "price signal without prices: $(cat "$tmp/err")"
run --workload "$tmp/model.yaml" --days 3 --grid "$tmp/grid.csv" --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "covers 49 hours, the run needs 73" "$tmp/err" || fail "short grid series: $(cat "$tmp/err")"

# Power: an oversubscribed envelope is kept (the twin measures every budget itself); the
# baseline runs without budgets; an envelope below idle and contradictory flags are refused.
run --workload "$tmp/model.yaml" --days 2 --seed 5 --oversubscription 60 --out "$tmp/o" >"$tmp/out" || fail "oversubscribed run"
grep -q "power: campus IT budget .*; 0 budget violations" "$tmp/out" || fail "oversubscription: $(cat "$tmp/out")"
grep -q '"campus_it_budget_mw": [0-9]' "$tmp/o/summary.json" || fail "no campus budget in summary.json"
run --workload "$tmp/model.yaml" --days 2 --seed 5 --uncapped --out "$tmp/u" >"$tmp/out" || fail "uncapped run"
grep -q "power: no campus budget" "$tmp/out" || fail "uncapped: $(cat "$tmp/out")"
run --workload "$tmp/model.yaml" --days 2 --oversubscription 900 --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "below the fleet's idle IT draw" "$tmp/err" || fail "envelope below idle: $(cat "$tmp/err")"
run --workload "$tmp/model.yaml" --days 2 --oversubscription 10 --uncapped --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "exclude each other" "$tmp/err" || fail "contradictory power flags: $(cat "$tmp/err")"

# Failures: a campus failing often (a scenario's failures block), training with hot spares and
# restarts allowed: jobs are interrupted and recover, the report says so, the run is reproducible;
# a bad block, a bad flag and a trace without a horizon are refused.
{
  cat "$src/scenarios/dev.yaml"
  printf 'failures:\n  causes: {gpu: {per_accelerator_hour: 0.002, repair_median_h: 2}}\n'
  printf '  maintenance: {every_h: 12, racks: 1, drain_timeout_h: 1, duration_h: 2}\n'
} >"$tmp/failing.yaml"
sed 's/checkpoint_min: 30, priority: 5}/checkpoint_min: 30, priority: 5, max_restarts: 50, spares_per_1000_workers: 500}/' \
  "$tmp/model.yaml" >"$tmp/spares.yaml"
frun() { "$joule" sim --scenario "$tmp/failing.yaml" --workload "$tmp/spares.yaml" --days 2 --seed 5 "$@"; }
frun --out "$tmp/f" >"$tmp/out" || fail "failing run: $(cat "$tmp/out")"
grep -q "^failures: [1-9][0-9]* interruptions ([1-9][0-9]* on hot spares" "$tmp/out" || fail "failures line: $(cat "$tmp/out")"
grep -q '"restarts_on_spares": [1-9]' "$tmp/f/summary.json" || fail "no restarts on spares in summary.json"
grep -q '"maintenance_windows": 4' "$tmp/f/summary.json" || fail "maintenance windows: $(grep maintenance "$tmp/f/summary.json")"
grep -q 'job interruptions' "$tmp/f/report.html" || fail "no failure panel"
frun --out "$tmp/f2" >/dev/null
cmp -s "$tmp/f/summary.json" "$tmp/f2/summary.json" || fail "failures: same seed, different summary.json"
frun --no-spares --checkpoint-min 60 --out "$tmp/f3" >"$tmp/out" || fail "no-spares run"
grep -q '"restarts_on_spares": 0,' "$tmp/f3/summary.json" || fail "--no-spares still restarted on spares"
frun --failures none --out "$tmp/f4" >"$tmp/out" || fail "--failures none"
grep -q "^failures:" "$tmp/out" && fail "--failures none still injected failures"
frun --failures sometimes --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "must be scenario, default or none" "$tmp/err" || fail "bad --failures: $(cat "$tmp/err")"
"$joule" sim --scenario "$tmp/failing.yaml" --workload "$tmp/jobs.csv" --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "needs a horizon" "$tmp/err" || fail "trace with failures, no --days: $(cat "$tmp/err")"
{ cat "$src/scenarios/dev.yaml"; printf 'failures:\n  domains:\n    - {name: x, level: row, per_domain_hour: 1}\n'; } >"$tmp/badf.yaml"
"$joule" sim --scenario "$tmp/badf.yaml" --workload "$tmp/model.yaml" --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "failures.domains\[0\].level: must be nvlink_domain, rack or pod, got 'row'" "$tmp/err" ||
  fail "bad failures block: $(cat "$tmp/err")"

run --workload "$tmp/jobs.csv" --out "$tmp/csv" >"$tmp/out" || fail "csv run"
grep -q "3 jobs submitted, 2 started, 2 completed, 1 rejected" "$tmp/out" || fail "csv summary: $(cat "$tmp/out")"
grep -q "1 jobs could never run" "$tmp/out" || fail "rejected job not reported"
grep -qF "$tmp/jobs.csv:4: job 3: workers: needs 160 accelerators" "$tmp/out" || fail "rejected row not named: $(cat "$tmp/out")"
grep -qF "\"origin\": \"$tmp/jobs.csv:4\"" "$tmp/csv/summary.json" || fail "rejected row not in summary.json"

run --workload "$tmp/bad.csv" --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -qF "$tmp/bad.csv:2: duration_s: 'sixty'" "$tmp/err" || fail "bad row: $(cat "$tmp/err")"
run --workload "$tmp/none.yaml" --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "cannot open" "$tmp/err" || fail "missing model: $(cat "$tmp/err")"
run --workload "$tmp/jobs.csv" --order lifo --out "$tmp/x" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "unknown order 'lifo'" "$tmp/err" || fail "bad order: $(cat "$tmp/err")"

finish sim_cli

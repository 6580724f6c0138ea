#!/usr/bin/env bash
# `joule place` as a user runs it: bad flags and files exit 2 with a message; a small run works
# and is deterministic.
set -uo pipefail
source "$(dirname "$0")/common.sh"

printf 'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,4000,1024,1,1000,\nb,2000,512,1,300,\nc,8000,2048,8,1000,\n' >"$tmp/tasks.csv"
printf 'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\na,4000,1024,two,1000,\n' >"$tmp/bad.csv"

"$joule" place --scenario "$src/scenarios/dev.yaml" --pods "$tmp/tasks.csv" --policy tetris 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "unknown policy 'tetris'" "$tmp/err" || fail "unknown policy: $(cat "$tmp/err")"

"$joule" place --scenario "$src/scenarios/dev.yaml" --pods "$tmp/bad.csv" 2>"$tmp/err"
[ $? -eq 2 ] && grep -qF "$tmp/bad.csv:2: num_gpu: 'two' is not an integer" "$tmp/err" || fail "bad row: $(cat "$tmp/err")"

"$joule" place --scenario "$src/scenarios/dev.yaml" --pods "$tmp/none.csv" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "cannot open file" "$tmp/err" || fail "missing file: $(cat "$tmp/err")"

"$joule" place --scenario "$src/scenarios/dev.yaml" --pods "$tmp/tasks.csv" --seeds 0 2>"$tmp/err"
[ $? -eq 2 ] || fail "--seeds 0 accepted"

"$joule" place --scenario "$src/scenarios/dev.yaml" --pods "$tmp/tasks.csv" --policy all --seeds 3 --json >"$tmp/a.json" || fail "good run"
"$joule" place --scenario "$src/scenarios/dev.yaml" --pods "$tmp/tasks.csv" --policy all --seeds 3 --json >"$tmp/b.json"
cmp -s "$tmp/a.json" "$tmp/b.json" || fail "two runs differ"
grep -q '"schema": "joule.place.v1"' "$tmp/a.json" || fail "no schema in output"
[ "$(grep -c '"policy":' "$tmp/a.json")" -eq 6 ] || fail "expected six policies"

finish place_cli

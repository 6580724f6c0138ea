#!/usr/bin/env bash
# `joule fleet` as a user runs it: exit codes, the error line on bad input, the output on good input.
set -uo pipefail
source "$(dirname "$0")/common.sh"

# expect NAME WANT_RC WANT_STDERR_SUBSTRING command...
expect() {
  local name=$1 want_rc=$2 want_err=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want_rc" ] || { [ -n "$want_err" ] && ! grep -qF -- "$want_err" "$tmp/err"; }; then
    fail "$name: rc=$rc (want $want_rc), stderr: $(cat "$tmp/err")"
  else
    echo "ok   $name"
  fi
}

cat >"$tmp/bad.yaml" <<'YAML'
campus:
  name: t
  grid_connection_mw: 1
  pue: 1.1
  liquid_heat_capture: 0.8
  supply_temperature_c: 45
halls:
  - name: a
    rows: [{rack_type: hgx-h100-rack, racks: 1}]
  - name: b
    rows: [{rack_type: hgx-h100-rack, racks: 1}]
  - name: c
    rows:
      - rack_type: hgx-h100-rack
        racks: 0
YAML

expect bad-scenario 2 "$tmp/bad.yaml:15:16: halls[2].rows[0].racks: must be > 0" "$joule" fleet "$tmp/bad.yaml"
expect missing-file 2 "cannot open scenario file" "$joule" fleet "$tmp/none.yaml"
expect missing-arg 2 "scenario is required" "$joule" fleet
expect unknown-flag 2 "--bogus" "$joule" fleet "$src/scenarios/dev.yaml" --bogus
expect no-subcommand 2 "subcommand" "$joule"

expect good-text 0 "" "$joule" fleet "$src/scenarios/dev.yaml"
grep -q "104 accelerators" "$tmp/out" || fail "good-text: no accelerator count in: $(cat "$tmp/out")"
expect good-json 0 "" "$joule" fleet "$src/scenarios/dev.yaml" --json
grep -q '"schema": "joule.fleet.v1"' "$tmp/out" || fail "good-json: no schema line"
"$joule" fleet "$src/scenarios/dev.yaml" --json >"$tmp/a.json"
"$joule" fleet "$src/scenarios/dev.yaml" --json >"$tmp/b.json"
cmp -s "$tmp/a.json" "$tmp/b.json" || fail "json-deterministic: two runs differ"
finish fleet_cli

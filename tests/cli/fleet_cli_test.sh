#!/usr/bin/env bash
# `joule fleet` as a user runs it: exit codes, the error line on bad input, the output on good input.
set -uo pipefail
joule=${1:?usage: fleet_cli_test.sh JOULE_BINARY SOURCE_DIR}
src=${2:?usage: fleet_cli_test.sh JOULE_BINARY SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect NAME WANT_RC WANT_STDERR_SUBSTRING command...
expect() {
  local name=$1 want_rc=$2 want_err=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want_rc" ] || { [ -n "$want_err" ] && ! grep -qF -- "$want_err" "$tmp/err"; }; then
    echo "FAIL $name: rc=$rc (want $want_rc), stderr: $(cat "$tmp/err")"
    fails=$((fails + 1))
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
if ! grep -q "104 accelerators" "$tmp/out"; then
  echo "FAIL good-text: no accelerator count in: $(cat "$tmp/out")"
  fails=$((fails + 1))
fi
expect good-json 0 "" "$joule" fleet "$src/scenarios/dev.yaml" --json
if ! grep -q '"schema": "joule.fleet.v1"' "$tmp/out"; then
  echo "FAIL good-json: no schema line"
  fails=$((fails + 1))
fi
"$joule" fleet "$src/scenarios/dev.yaml" --json >"$tmp/a.json"
"$joule" fleet "$src/scenarios/dev.yaml" --json >"$tmp/b.json"
if ! cmp -s "$tmp/a.json" "$tmp/b.json"; then
  echo "FAIL json-deterministic: two runs differ"
  fails=$((fails + 1))
fi

echo "fleet_cli: $fails failed"
[ "$fails" -eq 0 ]

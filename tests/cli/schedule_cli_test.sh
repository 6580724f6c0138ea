#!/usr/bin/env bash
# `joule schedule` on bad event scripts: exit 2 and one line naming file:line:column and path.
set -uo pipefail
source "$(dirname "$0")/common.sh"
check() {  # check NAME SCRIPT_TEXT EXPECTED_STDERR_SUFFIX
  printf '%s' "$2" >"$tmp/$1.yaml"
  "$joule" schedule --scenario "$src/scenarios/dev.yaml" --events "$tmp/$1.yaml" 2>"$tmp/err" >/dev/null
  local rc=$?
  if [ $rc -ne 2 ] || ! grep -qF -- "$tmp/$1.yaml:$3" "$tmp/err"; then
    fail "$1: rc=$rc stderr: $(cat "$tmp/err")"
  fi
}
check tenant $'steps:\n  - at_ms: 0\n    submit:\n      - {id: 1, gpus: 8, tenant: nobody}\n' \
  "4:34: steps[0].submit[0].tenant: unknown tenant 'nobody'"
check order $'steps:\n  - at_ms: 5\n  - at_ms: 2\n' "3:12: steps[1].at_ms: steps must be in time order (previous step at 5)"
check node $'steps:\n  - at_ms: 0\n    drain: [nope]\n' "3:13: steps[0].drain[0]: unknown node 'nope'"
check key $'steps:\n  - at_ms: 0\n    submitt: []\n' "3:5: steps[0].submitt: unknown key"
check type $'steps:\n  - at_ms: 0\n    submit:\n      - {id: 1, gpus: 1, types: [k80]}\n' "4:34: steps[0].submit[0].types[0]: unknown accelerator type"
check topology $'steps:\n  - at_ms: 0\n    submit:\n      - {id: 1, topology: ring}\n' "4:27: steps[0].submit[0].topology: must be any, prefer-compact or require-nvlink-domain"
finish schedule_cli

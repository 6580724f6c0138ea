#!/usr/bin/env bash
# Golden scenario test: runs `joule schedule` on dev.yaml with one event script and compares
# every decision with the expected file beside it (expected files were checked by hand against
# the comments at the top of each script). Regenerate one only after reading its diff.
set -uo pipefail
joule=${1:?usage: run_golden.sh JOULE_BINARY SOURCE_DIR NAME}
src=${2:?usage: run_golden.sh JOULE_BINARY SOURCE_DIR NAME}
name=${3:?usage: run_golden.sh JOULE_BINARY SOURCE_DIR NAME}
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
"$joule" schedule --scenario "$src/scenarios/dev.yaml" --events "$src/tests/golden/$name.yaml" >"$actual" || exit 1
if ! diff -u "$src/tests/golden/$name.expected" "$actual"; then
  echo "golden $name: decisions differ from $name.expected"
  exit 1
fi
echo "golden $name: 1 passed, 0 failed"

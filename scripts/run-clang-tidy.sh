#!/usr/bin/env bash
# Runs clang-tidy over every tracked .cc file with the compile commands of the given build folder.
# Fails (xargs exits non-zero) when any file has a finding; .clang-tidy makes warnings errors.
set -euo pipefail
build=${1:?usage: run-clang-tidy.sh BUILD_DIR}
cd "$(dirname "$0")/.."
git ls-files '*.cc' | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>&1 | grep -v "warnings generated"
exit "${PIPESTATUS[1]}"

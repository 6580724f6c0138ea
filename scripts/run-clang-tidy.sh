#!/usr/bin/env bash
# Runs clang-tidy with the compile commands of the given build folder over the given .cc files,
# or every tracked .cc file. Fails when any file has a finding (.clang-tidy makes warnings
# errors); prints the findings.
set -uo pipefail
build=${1:?usage: run-clang-tidy.sh BUILD_DIR [FILE.cc ...]}
shift
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  files=$(printf '%s\n' "$@")
else
  files=$(git ls-files '*.cc')
fi
# The build's flags are GCC's: clang must not fail on a GCC-only warning option.
out=$(printf '%s\n' "$files" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet \
  --extra-arg=-Wno-unknown-warning-option 2>&1)
status=$?
printf '%s\n' "$out" | grep -v "warnings generated" || true
exit $status

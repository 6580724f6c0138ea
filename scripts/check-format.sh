#!/usr/bin/env bash
# Fails when a tracked C++ file is not clang-formatted; prints the files to fix (`make format`).
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
  [ -f "$f" ] || continue
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.h' '*.cc' 2>/dev/null)
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: not clang-formatted (run 'make format'):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi

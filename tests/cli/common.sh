# Shared by the CLI tests: `source` it with the test's arguments (JOULE_BINARY SOURCE_DIR).
# Gives $joule, $src, a temporary folder $tmp removed on exit, fail MESSAGE, and finish NAME
# (prints "NAME: N failed" and exits non-zero when any check failed).
joule=${1:?usage: $0 JOULE_BINARY SOURCE_DIR}
src=${2:?usage: $0 JOULE_BINARY SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
  echo "FAIL $*"
  fails=$((fails + 1))
}

finish() {
  echo "$1: $fails failed"
  [ "$fails" -eq 0 ]
  exit $?
}

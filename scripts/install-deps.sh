#!/usr/bin/env bash
# Installs the Debian packages Joule builds and tests with. Idempotent and quiet when everything
# is already present; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  clang-format clang-tidy
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev
  etcd-server               # high availability: the tests run a 3-member etcd cluster
  libboost-dev zlib1g-dev    # the control plane's event-driven HTTP server (Beast); compressed bodies
  libsimdjson-dev            # the agents' heartbeats, read at campus rates
  libcpp-httplib-dev libssl-dev   # the HTTP clients (CLI, agents, etcd's gateway); SHA-256 of tokens
  prometheus                # promtool checks the server's /metrics in the tests
  clang libclang-rt-14-dev  # libFuzzer targets for the job spec and batch script parsers
  time                      # GNU time: wall time and peak memory of the twin benchmarks
  python3                   # reads summary.json in the failure acceptance script
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js runs the OpenAPI validator the tests install from npm (tests/openapi/package.json).
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The OpenAPI validator, pinned by tests/openapi/package-lock.json.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -d "$root/tests/openapi/node_modules" ]; then
  echo "install-deps: installing the OpenAPI validator (npm ci in tests/openapi)"
  (cd "$root/tests/openapi" && npm ci --silent --no-audit --no-fund >/dev/null)
fi

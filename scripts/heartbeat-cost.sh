#!/usr/bin/env bash
# What an agent's heartbeat costs the server (issue 17's CPU target; figures in
# docs/benchmarks.md): `joule server` on the dev campus, heartbeats with eight GPUs' readings each
# (as `joule agent` sends them) at RATE a second over 32 keep-alive connections for SECONDS, and
# the server's CPU over them. A campus of 113,600 agents at the 30 s default sends 3,790 a second.
# Usage: scripts/heartbeat-cost.sh [BUILD_DIR]   (env: RATE, SECONDS_RUN)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build/release}" && pwd)"
joule="$build/apps/joule"
load="$build/bench/joule_server_load"
rate="${RATE:-4000}"
seconds="${SECONDS_RUN:-20}"
work="$root/out/heartbeat-cost"
rm -rf "$work" && mkdir -p "$work"
(umask 077 && printf %s agent-bench-node-key-0123456789abcdef > "$work/node.key")
cat > "$work/server.yaml" <<YAML
scenario: $root/scenarios/dev.yaml
listen: 127.0.0.1:0
state: state.db
tick_seconds: 1
tokens:
  - {name: ops, sha256: $(printf %s ops-token | sha256sum | cut -d' ' -f1)}
node_key_file: node.key
YAML
(cd "$work" && exec "$joule" server --config "$work/server.yaml" 2>"$work/server.log") &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q " replayed " "$work/server.log" && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/server.log")
nodes=$(curl -s -H "Authorization: Bearer ops-token" "$url/api/v1/nodes" | grep -o '"name":"[^"]*"' | cut -d'"' -f4 | paste -sd,)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
echo "heartbeat-cost: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$load" "$url" "$work/node.key" --connections 32 --seconds 3 --rate "$rate" --agents "$nodes" >/dev/null  # warm up
before=$(cpu_ticks)
echo "  $("$load" "$url" "$work/node.key" --connections 32 --seconds "$seconds" --rate "$rate" --agents "$nodes")"
after=$(cpu_ticks)
python3 -c "import sys, os
t = (int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf('SC_CLK_TCK')
print(f'  server CPU {t / float(sys.argv[4]):.2f} cores at {sys.argv[3]}/s: {t / float(sys.argv[4]) / float(sys.argv[3]) * 1e6:.0f} us a heartbeat')" \
  "$before" "$after" "$rate" "$seconds"

#!/usr/bin/env bash
# The server's CPU on the france-1gw campus (113,600 nodes): idle for 30 s (a pass every tick),
# then under 500 submits/s of 5-second one-GPU jobs for 20 s (passes on events). What a pass
# costs beyond the engine's step: the node view's refresh, the decisions applied.
# Usage: scripts/node-refresh-bench.sh [BUILD_DIR]   (default build/release; make bench runs it)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/release}"
joule="$build/apps/joule"
load="$build/bench/joule_server_load"
work="$root/out/node-refresh-bench"
rm -rf "$work" && mkdir -p "$work"
cat >"$work/server.yaml" <<YAML
scenario: $root/scenarios/france-1gw.yaml
listen: 127.0.0.1:0
state: state.db
tokens:
  - {name: bench, tenant: mistral-ai, sha256: $(printf %s bench-token | sha256sum | cut -d' ' -f1)}
YAML
"$joule" server --config "$work/server.yaml" 2>"$work/server.log" &
pid=$!
for _ in $(seq 300); do grep -q " replayed " "$work/server.log" && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/server.log" | head -1)
cpu() { awk '{print ($14 + $15) / 100}' /proc/$pid/stat; }
sleep 2
a=$(cpu); sleep 30; b=$(cpu)
echo "idle 30 s: $(echo "$b - $a" | bc) CPU-s"
"$load" "$url" bench-token --connections 16 --seconds 20 --rate 500 --spec '{"name":"c","resources":{"gpus":1},"time_limit":5,"command":["true"]}' | tail -1
c=$(cpu)
echo "500 submits/s for 20 s: $(echo "$c - $b" | bc) CPU-s; $(curl -s $url/metrics | grep -E '^joule_engine_steps_total')"
kill $pid; wait $pid || true

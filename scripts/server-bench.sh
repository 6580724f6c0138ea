#!/usr/bin/env bash
# The control plane's performance targets (docs/benchmarks.md), on loopback against a real server
# with its SQLite journal on local disk:
#   1. sustained durable submits per second, 64 connections as fast as they go (target >= 5,000);
#   2. submit latency at 1,000 submits/s, open loop (target p99 <= 20 ms);
#   3. `joule queue` over 100,000 jobs (target <= 1 s);
#   4. node agents' heartbeats (eight GPUs' readings each) at 2,000/s, then as fast as they go;
#   5. the same latency with 10,000 idle connections held open and 200 trickling a header;
# then how long a restart takes (its newest snapshot, then the records after it).
# Usage: scripts/server-bench.sh [BUILD_DIR]   (default build/release)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/release}"
joule="$build/apps/joule"
load="$build/bench/joule_server_load"
work="$root/out/server-bench"
rm -rf "$work" && mkdir -p "$work"
token=bench-token
sha=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
(umask 077 && printf %s agent-bench-node-key-0123456789abcdef > "$work/node.key")
cat > "$work/server.yaml" <<YAML
scenario: $root/scenarios/dev.yaml
listen: 127.0.0.1:0
state: state.db
tick_seconds: 1
tokens:
  - {name: bench, tenant: lab-a, sha256: $sha}
node_key_file: node.key
YAML
"$joule" server --config "$work/server.yaml" 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q " replayed " "$work/server.log" && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/server.log")
echo "server-bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "server-bench: latency at 1,000 submits/s, 32 connections, 30 s (from an empty queue)"
"$load" "$url" "$token" --connections 32 --seconds 30 --rate 1000
echo "server-bench: 10,000 idle connections held open (and 200 trickling a header byte a second), then latency at 1,000 submits/s"
python3 - "$url" >"$work/held.log" 2>&1 <<'PY' &
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port = int(sys.argv[1].rsplit(":", 1)[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(10_000)]
slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
for s in slow:
    s.sendall(b"GET /api/v1/jobs HTTP/1.1\r\n")
print("held", flush=True)
for _ in range(40):
    for s in slow:
        try:
            s.sendall(b"X")
        except OSError:
            pass
    time.sleep(1)
PY
holder=$!
for _ in $(seq 300); do grep -q held "$work/held.log" && break; sleep 0.1; done
curl -s "$url/metrics" | grep -E "^joule_http_connections_open"
"$load" "$url" "$token" --connections 32 --seconds 20 --rate 1000
curl -s "$url/metrics" | grep -E "^joule_http_(connections_open|timeouts_total)"
echo "  server RSS $(ps -o rss= -p "$server") KiB"
kill $holder 2>/dev/null || true
wait $holder 2>/dev/null || true
jobs_now() { curl -s "$url/metrics" | awk '/^joule_jobs\{/ {s += $2} END {print s}'; }
fill=$((100000 - $(jobs_now)))
[ "$fill" -gt 0 ] && "$load" "$url" "$token" --connections 64 --seconds 600 --total "$fill" >/dev/null
echo "server-bench: joule queue -t all over $(jobs_now) jobs (3 runs)"
for _ in 1 2 3; do
  /usr/bin/time -f "  %e s, %M KiB peak" "$joule" queue -t all --server "$url" --token "$token" >"$work/queue.txt"
done
echo "  $(($(wc -l <"$work/queue.txt") - 1)) rows"
echo "server-bench: throughput, 64 connections, 20 s (over a queue of 100,000+)"
"$load" "$url" "$token" --connections 64 --seconds 20
curl -s "$url/metrics" | grep -E "^joule_journal_(records|commits)_total|^joule_engine_step_max_seconds|^joule_engine_steps_total|^joule_engine_step_seconds_total"
nodes=$(curl -s -H "Authorization: Bearer $token" "$url/api/v1/nodes" | grep -o '"name":"[^"]*"' | cut -d'"' -f4 | paste -sd,)
echo "server-bench: heartbeats at 2,000/s over the fleet's $(echo "$nodes" | tr , '\n' | wc -l) nodes, 32 connections, 20 s"
"$load" "$url" "$work/node.key" --connections 32 --seconds 20 --rate 2000 --agents "$nodes"
echo "server-bench: heartbeats as fast as 64 connections go, 10 s"
"$load" "$url" "$work/node.key" --connections 64 --seconds 10 --agents "$nodes"
echo "server-bench: restart on the journal"
restart() {
  kill "$server"
  wait "$server" || true
  "$joule" server --config "$work/server.yaml" 2>"$work/server.log" &
  server=$!
  for _ in $(seq 600); do grep -q " replayed " "$work/server.log" && break; sleep 0.1; done
  grep replayed "$work/server.log"
  url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/server.log" | head -1)
}
restart
echo "server-bench: a snapshot of that state (snapshot_records: 1 takes one at the first pass), then a restart from it"
echo "snapshot_records: 1" >>"$work/server.yaml"
restart
for _ in $(seq 600); do
  [ "$(curl -s "$url/metrics" | awk '/^joule_snapshots_total/ {print $2}')" = 1 ] && break
  sleep 0.1
done
curl -s "$url/metrics" | grep -E "^joule_snapshot"
restart

#!/usr/bin/env bash
# The control plane at campus scale (issue 17's targets; figures in docs/benchmarks.md): a real
# `joule server` on france-1gw (113,600 nodes) with its SQLite journal, every node's agent played by
# one process (bench/agent_swarm.cc: the agents' long polls with their GPUs' readings, workers run
# for drawn durations, ends reported at once), a queue filled until PENDING jobs wait, then for
# MEASURE seconds: the server's CPU and memory, the agents' round trips, how soon a node that
# finished its work gets new work, and submits at 50/s (open loop) on the side.
# A parked long poll holds a descriptor in the server and one in the swarm: where a process may
# not open enough for every node (`ulimit -Hn`), the first PARKED agents hold long polls and the
# others post their heartbeat every HEARTBEAT seconds without waiting (they learn of new work then).
# Usage: scripts/campus-bench.sh [BUILD_DIR]   (env: NODES, PARKED, PENDING, HEARTBEAT, MEAN, MEASURE)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/release}"
joule="$build/apps/joule"
load="$build/bench/joule_server_load"
swarm="$build/bench/joule_agent_swarm"
nodes="${NODES:-0}"             # 0: every node of the campus
pending="${PENDING:-100000}"    # jobs left waiting once the campus is full
heartbeat="${HEARTBEAT:-30}"    # the agents' liveness interval (joule agent's default)
mean="${MEAN:-600}"             # mean run time of a job, seconds
measure="${MEASURE:-120}"
work="$root/out/campus-bench"
rm -rf "$work" && mkdir -p "$work"
# A campus's agents hold 113,600 connections: both processes need the descriptors.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
parked="${PARKED:-$(($(ulimit -n) - 4000))}"
token=bench-token
(umask 077 && printf %s agent-bench-node-key-0123456789abcdef > "$work/node.key")
cat > "$work/server.yaml" <<YAML
scenario: $root/scenarios/france-1gw.yaml
listen: 127.0.0.1:0
state: state.db
tick_seconds: 1
http: {max_connections: 250000}
agent_timeout_seconds: $((4 * heartbeat))
agents_required: true
tokens:
  - {name: bench, tenant: on-demand, sha256: $(printf %s "$token" | sha256sum | cut -d' ' -f1)}
node_key_file: node.key
YAML
"$joule" server --config "$work/server.yaml" 2>"$work/server.log" &
server=$!
trap 'kill $server $agents 2>/dev/null || true' EXIT
agents=
for _ in $(seq 600); do grep -q " replayed " "$work/server.log" && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/server.log" | head -1)
echo "campus-bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$server/stat"; }

"$swarm" --server "${url#http://}" --node-key "$work/node.key" --scenario "$root/scenarios/france-1gw.yaml" \
  --nodes "$nodes" --parked "$parked" --heartbeat-seconds "$heartbeat" --mean-seconds "$mean" --seconds 100000 \
  >"$work/swarm.log" 2>&1 &
agents=$!
want=$(python3 -c "import sys; print(int(sys.argv[1]) or 113600)" "$nodes")
for _ in $(seq 600); do
  [ "$(metric joule_agents 2>/dev/null || echo 0)" = "$want" ] && break
  sleep 1
done
# With fewer agents than nodes, the others are marked down once the agents' timeout has passed.
[ "$nodes" != 0 ] && sleep $((4 * heartbeat + 2 - ($(date +%s) - $(stat -c %Y "$work/server.yaml"))))
echo "campus-bench: $(metric joule_agents) agents registered ($parked with long polls; descriptors: $(ulimit -n)) after $(($(date +%s) - $(stat -c %Y "$work/server.log"))) s"

# Fill the campus, then the queue: submit until PENDING jobs wait.
waiting() { curl -s "$url/metrics" | awk '/^joule_jobs\{state="pending"\}/ {print $2}'; }
while [ "${w:=0}" -lt "$pending" ]; do
  "$load" "$url" "$token" --connections 32 --seconds 600 --total 20000 >/dev/null || true
  sleep 2
  w=$(waiting)
  echo "  $(metric 'joule_jobs{state="running"}') running, $w pending"
done
sleep 10
echo "campus-bench: measuring for $measure s"
cpu0=$(cpu_s)
steps0=$(metric joule_engine_steps_total)
passes0=$(metric joule_engine_passes_total)
: >"$work/measure.log"
tail -n0 -f "$work/swarm.log" >"$work/measure.log" &
tailer=$!
# Every 10 s: the accelerators healthy and idle while jobs wait, and why the 1,000 oldest waiting
# jobs wait (what keeps freed nodes idle, if anything does).
(while sleep 10; do
  m=$(curl -s "$url/metrics")
  idle=$(awk '$1 == "joule_accelerators" {t = $2} $1 == "joule_accelerators_allocated" {a = $2}
              $1 == "joule_accelerators_out_of_service" {o = $2} END {print t - a - o}' <<<"$m")
  reasons=$(curl -s -H "Authorization: Bearer $token" "$url/api/v1/jobs?state=pending&limit=1000&fields=reason" |
    python3 -c "import json, sys, collections; print(dict(collections.Counter(j['reason'] for j in json.load(sys.stdin)['jobs'])))")
  echo "  idle accelerators $idle; the 1,000 oldest waiting: $reasons"
done) >"$work/idle.log" 2>&1 &
sampler=$!
"$load" "$url" "$token" --connections 8 --seconds "$measure" --rate 50 >"$work/submits.txt" || true
kill $tailer $sampler
cpu1=$(cpu_s)
cat "$work/measure.log" "$work/idle.log"
echo "  submits at 50/s: $(cat "$work/submits.txt")"
echo "  server CPU: $(python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) / float(sys.argv[3]):.2f}')" "$cpu0" "$cpu1" "$measure") cores on average"
echo "  server memory: $(grep -E 'VmRSS|VmHWM' "/proc/$server/status" | tr -s ' ' | paste -sd' ')"
echo "  steps: $(( $(metric joule_engine_steps_total) - steps0 )), $(( $(metric joule_engine_passes_total) - passes0 )) with a pass;" \
  "longest since start $(metric joule_engine_step_max_seconds) s;" \
  "$(metric 'joule_jobs{state="running"}') running, $(waiting) pending; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s "$url/metrics" | grep -E "^joule_http_(connections_open|requests_total|timeouts_total)|^joule_snapshot|^joule_journal_(commits|records)_total" || true

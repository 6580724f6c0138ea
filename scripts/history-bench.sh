#!/usr/bin/env bash
# A restart with a million jobs of history (target: ready within 3 s; docs/benchmarks.md).
# A real `joule server` on the france-1gw campus (113,600 nodes) with its SQLite journal takes
# TOTAL one-GPU jobs over HTTP (64 connections); each ends at its 5 s time limit and is retired
# from the view JOB_RETENTION seconds later. Once every job has ended and retired, the server is
# stopped and started again, three times: each restart loads the newest snapshot and replays the
# records after it, and is timed from the process's start to `/readyz` answering 200.
# Usage: scripts/history-bench.sh [BUILD_DIR]   (default build/release; make bench runs it)
#        TOTAL=1000000 JOB_RETENTION=30 [SNAPSHOT_RECORDS=N] scripts/history-bench.sh
# (snapshot_records is the server's default unless SNAPSHOT_RECORDS is given)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/release}"
joule="$build/apps/joule"
load="$build/bench/joule_server_load"
total=${TOTAL:-1000000}
retention=${JOB_RETENTION:-30}
work="$root/out/history-bench"
rm -rf "$work" && mkdir -p "$work"
token=bench-token
cat >"$work/server.yaml" <<YAML
scenario: $root/scenarios/france-1gw.yaml
listen: 127.0.0.1:0
state: state.db
${SNAPSHOT_RECORDS:+snapshot_records: $SNAPSHOT_RECORDS}
compact_journal: true
job_retention_seconds: $retention
tokens:
  - {name: bench, tenant: mistral-ai, sha256: $(printf %s "$token" | sha256sum | cut -d' ' -f1)}
YAML
server=
start() {
  local begin
  begin=$(date +%s.%N)
  "$joule" server --config "$work/server.yaml" 2>"$work/server.log" &
  server=$!
  for _ in $(seq 3000); do
    url=$(grep -o "http://127.0.0.1:[0-9]*" "$work/server.log" | head -1 || true)
    [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && break
    sleep 0.02
  done
  echo "  ready after $(echo "$(date +%s.%N) - $begin" | bc) s: $(grep -o 'journal .* replayed .*' "$work/server.log")"
}
stop() {
  kill "$server"
  wait "$server" || true
}
trap 'kill $server 2>/dev/null || true' EXIT
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
jobs_in() { curl -s "$url/metrics" | awk -v s="$1" '$1 == "joule_jobs{state=\"" s "\"}" {print $2}'; }

echo "history-bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "history-bench: the first start (an empty journal)"
start
echo "history-bench: $total jobs (one GPU, 5 s time limit), 64 connections"
/usr/bin/time -f "  load: %e s" "$load" "$url" "$token" --connections 64 --seconds 100000 --total "$total" \
  --spec '{"name":"history","resources":{"gpus":1},"time_limit":5,"command":["true"]}'
echo "history-bench: waiting until every job has ended and retired"
for _ in $(seq 3000); do
  [ "$(metric joule_jobs_retired)" = "$total" ] && break
  sleep 1
done
echo "  retired $(metric joule_jobs_retired); pending $(jobs_in pending), running $(jobs_in running)"
curl -s "$url/metrics" | grep -E "^joule_(snapshot|journal_records_total|engine_steps_total)"
echo "  server RSS $(ps -o rss= -p "$server") KiB"
for run in 1 2 3; do
  echo "history-bench: restart $run"
  stop
  start
done
echo "  server RSS $(ps -o rss= -p "$server") KiB; state.db $(du -h "$work/state.db" | cut -f1)"
curl -s -H "Authorization: Bearer $token" "$url/api/v1/jobs/1" | head -c 400
echo

#!/usr/bin/env bash
# Joule and Slurm side by side on the same emulated GPU cluster (scripts/slurm_compare.py says
# how): Slurm 22.05 from Debian's packages, installed here if missing, one slurmd per node; Joule
# with one real agent per node. Writes a table per workload; figures in docs/benchmarks.md.
# Usage: scripts/slurm-compare.sh [BUILD_DIR]   (env: NODES, RUNS, WORKLOADS)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/release}"
if ! [ -x /usr/sbin/slurmctld-wlm ] || ! command -v munged >/dev/null; then
  apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null
fi
for workload in ${WORKLOADS:-backlog mix}; do
  python3 "$root/scripts/slurm_compare.py" "$build" --nodes "${NODES:-256}" --runs "${RUNS:-3}" --workload "$workload"
done

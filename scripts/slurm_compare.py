#!/usr/bin/env python3
"""Joule and Slurm side by side on the same emulated GPU cluster and the same jobs, jobs really
running (`sleep D`): Slurm 22.05 from Debian's packages, one slurmd per node on loopback
(shared/notes/slurm-emulation.md), and `joule server` with one real `joule agent` per node. The
backlog is held, then released in one step (Slurm: the partition set UP; Joule: the tenant's
borrowing limit raised), and each job's start and end are read from the schedulers' own records.
Writes one table (medians of RUNS runs, with their ranges). scripts/slurm-compare.sh runs it.

Workloads (a CSV of gpus,seconds per job, written to the work folder):
  mix      2,000 jobs: 60% 1 GPU, 20% 8, 15% 16-64, 5% 128-512; 2-20 s each
  backlog  1,000 one-GPU jobs of 600 s: how soon all have started
Usage: slurm_compare.py BUILD_DIR [--nodes N] [--workload mix|backlog] [--runs R] [--jobs J]"""

import argparse
import csv
import datetime
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
from harness import call, rss_kib  # noqa: E402
TAU = 10.0  # bounded slowdown's threshold, seconds


def workload(kind, jobs, seed, nodes):
    rng = random.Random(seed)
    rows = []
    for _ in range(jobs):
        if kind == "backlog":
            rows.append((1, 600))
            continue
        u = rng.random()
        gpus = 1 if u < 0.60 else 8 if u < 0.80 else rng.choice([16, 32, 64]) if u < 0.95 else rng.choice([128, 256, 512])
        rows.append((min(gpus, 8 * nodes), rng.randint(2, 20)))  # a smaller cluster: its size at most
    return rows


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def figures(rows, starts, ends, release, cpu):
    """rows: (gpus, seconds) by job index; starts/ends: seconds since the epoch by job index."""
    waits = [starts[i] - release for i in range(len(rows))]
    slow = [max(1.0, (waits[i] + max(rows[i][1], 0)) / max(rows[i][1], TAU)) for i in range(len(rows))]
    hold = [ends[i] - starts[i] - rows[i][1] for i in ends]
    return {"all started (s)": max(starts.values()) - release,
            "mean wait (s)": statistics.mean(waits),
            "bounded slowdown": statistics.mean(slow),
            "GPU hold beyond run (s)": statistics.mean(hold) if hold else float("nan"),
            "makespan (s)": (max(ends.values()) - release) if len(ends) == len(rows) else float("nan"),
            "controller CPU (s)": cpu}


def stop_all(procs, grace=15):
    """SIGTERM to every process, SIGKILL to those still there after `grace` seconds in all."""
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---- Slurm ----

class Slurm:
    def __init__(self, folder, nodes):
        self.dir = os.path.join(folder, "slurm")
        self.nodes = nodes
        self.procs = []
        os.makedirs(os.path.join(self.dir, "bin"), exist_ok=True)
        for name in ("slurmctld", "slurmd", "slurmstepd"):  # daemons by name (the notes' first trap)
            link = os.path.join(self.dir, "bin", name)
            if not os.path.exists(link):
                os.symlink(f"/usr/sbin/{name}-wlm", link)
        for g in range(8):
            path = os.path.join(self.dir, f"gpu{g}")
            if not os.path.exists(path):
                os.symlink("/dev/null", path)
        self.conf = os.path.join(self.dir, "slurm.conf")
        host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=compare
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={self.dir}/state
SlurmdSpoolDir={self.dir}/spool-%n
SlurmctldPidFile={self.dir}/slurmctld.pid
SlurmdPidFile={self.dir}/slurmd-%n.pid
SlurmctldLogFile={self.dir}/slurmctld.log
SlurmdLogFile={self.dir}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=error
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_continue,bf_interval=10,bf_max_job_test=2000,bf_window=60,default_queue_depth=1000
PriorityType=priority/basic
GresTypes=gpu
JobCompType=jobcomp/filetxt
JobCompLoc={self.dir}/jobcomp.txt
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
MaxJobCount=100000
NodeName=n[0001-{nodes:04d}] NodeHostname={host} NodeAddr=127.0.0.1 Port=20001-{20000 + nodes} Sockets=2 CoresPerSocket=32 Gres=gpu:8 State=UNKNOWN
PartitionName=all Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        with open(os.path.join(self.dir, "gres.conf"), "w") as f:
            f.write(f"AutoDetect=off\nName=gpu File={self.dir}/gpu[0-7]\n")
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def run(self, *args, check=True):
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=check)

    munged_started = False  # by this script: stopped when it ends (one munged serves every run)

    def start(self):
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            os.makedirs("/run/munge", exist_ok=True)
            subprocess.run(["munged", "--force"], check=True)
            Slurm.munged_started = True
            for _ in range(50):  # its socket answers
                if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
        shutil.rmtree(os.path.join(self.dir, "state"), ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "state"))
        for p in ("slurmctld.log", "jobcomp.txt"):
            if os.path.exists(os.path.join(self.dir, p)):
                os.remove(os.path.join(self.dir, p))
        bin_ = os.path.join(self.dir, "bin")
        self.ctld = subprocess.Popen([os.path.join(bin_, "slurmctld"), "-D", "-i", "-f", self.conf], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self.ctld)
        time.sleep(2)
        for n in range(1, self.nodes + 1):
            self.procs.append(subprocess.Popen(
                [os.path.join(bin_, "slurmd"), "-D", "-f", self.conf, "-N", f"n{n:04d}", "-d",
                 os.path.join(bin_, "slurmstepd")], env=self.env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        deadline = time.time() + 120
        while time.time() < deadline:
            out = self.run("sinfo", "-h", "-o", "%T %D", check=False).stdout.split()
            idle = sum(int(out[i + 1]) for i in range(0, len(out), 2) if out[i] == "idle")
            if idle == self.nodes:
                return
            time.sleep(1)
        raise SystemExit(f"slurm-compare: only some of {self.nodes} slurmd became idle: {out}")

    def stop(self):
        stop_all(self.procs)
        self.procs = []
        # Steps of cancelled jobs the daemons left behind, and their processes.
        subprocess.run(["pkill", "-KILL", "-f", os.path.join(self.dir, "bin", "slurmstepd")])
        subprocess.run(["pkill", "-KILL", "slurmstepd"])

    def measure(self, rows):
        self.run("scontrol", "update", "partitionname=all", "state=down")

        def submit(i):
            gpus, seconds = rows[i]
            nodes = max(1, gpus // 8)
            out = self.run("sbatch", "--parsable", "-J", f"c{i}", "-N", str(nodes), "--ntasks-per-node=1",
                           f"--gres=gpu:{min(gpus, 8)}", "-t", str(max(1, (seconds + 59) // 60 + 1)),
                           "-o", "/dev/null", "--wrap", f"sleep {seconds}").stdout.strip()
            return int(out.split(";")[0])

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(submit, range(len(rows))))
        index = {job: i for i, job in enumerate(ids)}
        cpu0 = cpu_seconds(self.ctld.pid)
        release = time.time()
        self.run("scontrol", "update", "partitionname=all", "state=up")
        log = os.path.join(self.dir, "slurmctld.log")
        starts, ends = {}, {}
        stamp = re.compile(r"^\[(\S+)\] (.*)$")
        started = re.compile(r"(?:sched: Allocate|_start_job: Started) JobId=(\d+)")
        done = re.compile(r"_job_complete: JobId=(\d+) done")
        deadline = time.time() + 1800
        offset = 0
        long_jobs = all(s >= 600 for _, s in rows)
        while time.time() < deadline:
            with open(log) as f:
                f.seek(offset)
                for line in f:
                    m = stamp.match(line)
                    if not m:
                        continue
                    when = datetime.datetime.fromisoformat(m.group(1)).timestamp()
                    if (s := started.search(m.group(2))) and int(s.group(1)) in index:
                        starts.setdefault(index[int(s.group(1))], when)
                    if (d := done.search(m.group(2))) and int(d.group(1)) in index:
                        ends.setdefault(index[int(d.group(1))], when)
                offset = f.tell()
            if len(starts) == len(rows) and (long_jobs or len(ends) == len(rows)):
                break
            time.sleep(0.5)
        cpu = cpu_seconds(self.ctld.pid) - cpu0
        if long_jobs:
            self.run("scancel", "--state=PENDING", check=False)
            self.run("scancel", "--state=RUNNING", check=False)
            for _ in range(60):  # until the nodes have stopped them
                if not self.run("squeue", "-h", check=False).stdout.strip():
                    break
                time.sleep(1)
        return figures(rows, starts, ends, release, cpu), rss_kib(self.ctld.pid) / 1024


# ---- Joule ----

class Joule:
    def __init__(self, build, folder, nodes):
        self.joule = os.path.join(os.path.abspath(build), "apps", "joule")
        self.dir = os.path.join(folder, "joule")
        self.nodes = nodes
        os.makedirs(self.dir, exist_ok=True)
        racks = nodes // 4
        with open(os.path.join(self.dir, "cluster.yaml"), "w") as f:
            f.write(f"""description: {nodes} HGX H100 servers of 8 GPUs, as Slurm's emulated nodes
campus: {{name: compare, grid_connection_mw: 100, pue: 1.1, liquid_heat_capture: 0.85, supply_temperature_c: 45}}
halls:
  - name: h
    power_budget_mw: 90
    rows:
      - {{name: r, rack_type: hgx-h100-rack, racks: {racks}, power_budget_kw: 100000}}
tenants:
  - {{name: bench, borrow_limit: 0}}
""")
        self.tokens = {"ops": "compare-ops", "bench": "compare-bench"}
        # Each agent presents its node's credential, issued from the node key as an operator would.
        key = os.path.join(self.dir, "node.key")
        if os.path.exists(key):
            os.remove(key)
        subprocess.run([self.joule, "node-token", "--key-file", key, "--new-key"], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run([self.joule, "node-token", "--key-file", key, "--scenario", f"{self.dir}/cluster.yaml",
                        "--out-dir", os.path.join(self.dir, "node-tokens")], check=True, stderr=subprocess.DEVNULL)

        def sha(t):
            import hashlib
            return hashlib.sha256(t.encode()).hexdigest()
        with open(os.path.join(self.dir, "server.yaml"), "w") as f:
            f.write(f"""scenario: {self.dir}/cluster.yaml
listen: 127.0.0.1:0
state: state.db
tokens:
  - {{name: ops, sha256: {sha(self.tokens['ops'])}}}
  - {{name: bench, tenant: bench, sha256: {sha(self.tokens['bench'])}}}
node_key_file: node.key
""")
        self.procs = []

    def start(self):
        for p in ("state.db", "state.db-wal", "state.db-shm", "state.db.lock", "server.log"):
            if os.path.exists(os.path.join(self.dir, p)):
                os.remove(os.path.join(self.dir, p))
        log = open(os.path.join(self.dir, "server.log"), "w")
        self.server = subprocess.Popen([self.joule, "server", "--config", os.path.join(self.dir, "server.yaml")],
                                       cwd=self.dir, stderr=log)
        self.procs.append(self.server)
        for _ in range(300):
            text = open(os.path.join(self.dir, "server.log")).read()
            if " replayed " in text:
                break
            time.sleep(0.1)
        self.url = re.search(r"http://127\.0\.0\.1:\d+", text).group(0)
        _, listing, _ = call(self.url, "GET", "/api/v1/nodes", self.tokens["ops"])
        for n in listing["nodes"]:
            self.procs.append(subprocess.Popen(
                [self.joule, "agent", "--server", self.url, "--node", n["name"], "--token-file",
                 os.path.join(self.dir, "node-tokens", n["name"] + ".token"),
                 "--telemetry", "simulated", "--accelerators", "8", "--workdir",
                 os.path.join(self.dir, "agents", n["name"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 120
        while time.time() < deadline:
            metrics = urllib.request.urlopen(self.url + "/metrics").read().decode()
            if f"joule_agents {self.nodes}" in metrics:
                return
            time.sleep(0.5)
        raise SystemExit("slurm-compare: not every joule agent registered")

    def stop(self):
        stop_all(self.procs)
        self.procs = []

    def measure(self, rows):
        def submit(i):
            gpus, seconds = rows[i]
            spec = {"name": f"c{i}", "workers": max(1, gpus // 8), "resources": {"gpus": min(gpus, 8)},
                    "time_limit": 60 * max(1, (seconds + 59) // 60 + 1), "command": ["sleep", str(seconds)]}
            status, job, _ = call(self.url, "POST", "/api/v1/jobs", self.tokens["bench"], spec)
            assert status == 201, job
            return job["id"]

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(submit, range(len(rows))))
        index = {job: i for i, job in enumerate(ids)}
        cpu0 = cpu_seconds(self.server.pid)
        release = time.time()
        status, answer, _ = call(self.url, "PATCH", "/api/v1/tenants/bench", self.tokens["ops"], {"borrow_limit": None})
        assert status in (200, 202), answer
        long_jobs = all(s >= 600 for _, s in rows)
        deadline = time.time() + 1800
        starts, ends = {}, {}

        def when(text):
            return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        while time.time() < deadline:
            after = 0
            while True:
                _, page, _ = call(self.url, "GET", f"/api/v1/jobs?limit=1000&after={after}&fields=id,started_at,ended_at",
                               self.tokens["ops"])
                for j in page["jobs"]:
                    if j["id"] in index and j["started_at"]:
                        starts[index[j["id"]]] = when(j["started_at"])
                    if j["id"] in index and j["ended_at"]:
                        ends[index[j["id"]]] = when(j["ended_at"])
                if page["next"] is None:
                    break
                after = page["next"]
            if len(starts) == len(rows) and (long_jobs or len(ends) == len(rows)):
                break
            time.sleep(1)
        cpu = cpu_seconds(self.server.pid) - cpu0
        rss = rss_kib(self.server.pid) / 1024
        if long_jobs:  # the agents stop their workers when told, not when they stop themselves
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda job: call(self.url, "POST", f"/api/v1/jobs/{job}/cancel", self.tokens["ops"]), ids))
            time.sleep(5)
        return figures(rows, starts, ends, release, cpu), rss


def number(v):
    """Two decimals, three below 1 (a backlog starts in milliseconds)."""
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"


def main():
    # Stopped (Ctrl-C, kill): the daemons are stopped too, by the measurement's `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--nodes", type=int, default=256)
    parser.add_argument("--workload", choices=["mix", "backlog"], default="mix")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args()
    jobs = args.jobs or (2000 if args.workload == "mix" else 1000)
    folder = os.path.join(ROOT, "out", "slurm-compare")
    os.makedirs(folder, exist_ok=True)
    rows = workload(args.workload, jobs, 17, args.nodes)
    with open(os.path.join(folder, f"{args.workload}.csv"), "w") as f:
        w = csv.writer(f)
        w.writerow(["gpus", "seconds"])
        w.writerows(rows)
    print(f"slurm-compare: {args.workload}, {jobs} jobs on {args.nodes} nodes x 8 GPUs, {args.runs} runs; "
          f"{os.cpu_count()} cores, load {open('/proc/loadavg').read().split()[:3]}", flush=True)
    results = {"Slurm 22.05": [], "Joule": []}
    try:
        measure_all(args, rows, folder, results)
    finally:
        if Slurm.munged_started:
            subprocess.run(["pkill", "-x", "munged"], check=False)
            for _ in range(100):  # gone before the next invocation looks for one
                if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
                    break
                time.sleep(0.1)
    table(args, results)


def measure_all(args, rows, folder, results):
    for run in range(args.runs):
        for name, system in (("Slurm 22.05", Slurm(folder, args.nodes)), ("Joule", Joule(args.build, folder, args.nodes))):
            system.start()
            try:
                got, rss = system.measure(rows)
            finally:
                system.stop()
            got["controller RSS (MiB)"] = rss
            results[name].append(got)
            print(f"  run {run + 1} {name}: " + ", ".join(f"{k} {number(v)}" for k, v in got.items()), flush=True)


def table(args, results):
    keys = list(results["Joule"][0].keys())
    print(f"\n| {args.workload}: median (range) of {args.runs} | Slurm 22.05 | Joule |")
    print("| --- | --- | --- |")
    for k in keys:
        cells = []
        for name in ("Slurm 22.05", "Joule"):
            values = [r[k] for r in results[name]]
            cells.append(f"{number(statistics.median(values))} ({number(min(values))}–{number(max(values))})")
        print(f"| {k} | {cells[0]} | {cells[1]} |")
    if args.workload != "backlog":
        return
    # How many times sooner Joule started everything, run by run (the backlog target's measure).
    ratios = [s["all started (s)"] / max(j["all started (s)"], 1e-3) for s, j in zip(results["Slurm 22.05"], results["Joule"])]
    print(f"| Slurm's all started / Joule's | {number(statistics.median(ratios))} ({number(min(ratios))}–{number(max(ratios))}) | |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""High availability's figures (docs/benchmarks.md, docs/ha.md): three `joule server` replicas on a
3-member etcd cluster, all on loopback.
  1. durable submits per second to the leader, 64 connections for 20 s (target >= 2,000), and the
     latency at 1,000 submits/s (p99 reported);
  2. the chaos loop: KILLS times, kill -9 of the leader under a load from 4 clients that know
     every replica, each submitting a job and cancelling it once acknowledged; each time, the seconds from the kill to another replica accepting a
     change (target <= 5 s), then the killed one restarted as a follower. At the end every
     acknowledged job must be there under its name (0 lost) and every submit sent again with its
     idempotency key must find its job, not make one (0 duplicated);
  3. etcd's database size after all that, and how many keys the servers keep in it.
Usage: scripts/ha-bench.py BUILD_DIR [--kills N]   (make bench runs it on build/release)"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import harness  # noqa: E402
from harness import LAB_A, OPERATOR, EtcdCluster, Server, Submitters, call, ha_config, spec  # noqa: E402


def leader_of(servers, besides=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for i, s in enumerate(servers):
            if i == besides or s is None or s.proc.poll() is not None:
                continue
            try:
                status, body, _ = call(s.url, "GET", "/readyz", timeout=1)
            except OSError:
                continue
            if status == 200 and body.startswith("ready: leader"):
                return i
        time.sleep(0.02)
    raise RuntimeError("no leader")


def submit(url, name, key):
    return call(url, "POST", "/api/v1/jobs", LAB_A, spec(name, gpus=1), headers={"Idempotency-Key": key}, timeout=30)


def throughput(build, url):
    load = os.path.join(build, "bench", "joule_server_load")
    print("ha-bench: latency at 1,000 submits/s to the leader, 32 connections, 20 s", flush=True)
    subprocess.run([load, url, LAB_A, "--connections", "32", "--seconds", "20", "--rate", "1000"], check=True)
    print("ha-bench: throughput to the leader, 64 connections, 20 s", flush=True)
    subprocess.run([load, url, LAB_A, "--connections", "64", "--seconds", "20"], check=True)


def chaos(folder, etcd, configs, servers, kills):
    lock = threading.Lock()

    def urls():
        with lock:
            return [s.url for s in servers if s is not None]

    def cancel(job):
        # Jobs come and go: without agents nothing ends by itself, and a queue that only grows
        # would make every replayed pass longer than the last.
        for _ in range(200):  # 10 s at most: long past any failover
            for url in urls():
                try:
                    status = call(url, "POST", f"/api/v1/jobs/{job}/cancel", LAB_A, timeout=30)[0]
                except OSError:
                    continue
                if status in (202, 409):
                    return
            time.sleep(0.05)

    load = Submitters(urls, "chaos", then=cancel)
    failovers = []
    for k in range(kills):
        time.sleep(0.5)
        lead = leader_of(servers)
        killed = time.time()
        servers[lead].proc.kill()
        servers[lead].proc.wait()
        new = leader_of(servers, besides=lead)
        while submit(servers[new].url, "probe", f"probe-{k}")[0] not in (200, 201):
            time.sleep(0.01)
        failovers.append(time.time() - killed)
        with lock:
            servers[lead] = None
        restarted = Server(configs[lead])
        with lock:
            servers[lead] = restarted
        print(f"  kill {k + 1}: failover {failovers[-1]:.2f} s, {len(load.acked)} acknowledged so far", flush=True)
    load.stop()
    acked, sent = load.acked, load.sent
    url = servers[leader_of(servers)].url
    lost = [key for key, job in acked.items()
            if call(url, "GET", f"/api/v1/jobs/{job}", LAB_A)[1].get("name") != sent[key]]
    wrong = 0
    for key, name in sent.items():
        status, body, _ = submit(url, name, key)
        if key in acked and (status, body.get("id")) != (200, acked[key]):
            wrong += 1
    names, after = [], 0
    while True:
        page = call(url, "GET", f"/api/v1/jobs?limit=100000&after={after}&fields=id,name", OPERATOR, timeout=120)[1]
        names += [j["name"] for j in page["jobs"] if j["name"].startswith("chaos-")]
        if page.get("next") is None:
            break
        after = page["next"]
    duplicated = len(names) - len(set(names))
    failovers.sort()
    print(f"ha-bench: {kills} leader kills under load: failover s min {failovers[0]:.2f} "
          f"p50 {statistics.median(failovers):.2f} p95 {failovers[int(0.95 * (len(failovers) - 1))]:.2f} "
          f"max {failovers[-1]:.2f}; {len(acked)} acknowledged, {len(sent)} sent; "
          f"{len(lost)} lost, {duplicated} duplicated, {wrong} retries not matched to their job")
    return not lost and not duplicated and not wrong and failovers[-1] <= 5.0


def etcd_size(etcd):
    """etcd's own account of its size (the default quota is 2 GB) and of the server's keys."""
    status = call(etcd.endpoints()[0], "POST", "/v3/maintenance/status", body={})[1]
    keys = call(etcd.endpoints()[0], "POST", "/v3/kv/range",
                body={"key": "Lw==", "range_end": "MA==", "count_only": True})[1]  # "/" to "0": every key
    mb = lambda v: int(v or 0) / 1e6  # noqa: E731
    print(f"ha-bench: etcd database {mb(status.get('dbSize')):.1f} MB on disk, "
          f"{mb(status.get('dbSizeInUse')):.1f} MB in use; {keys.get('count', 0)} keys", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--kills", type=int, default=50)
    args = parser.parse_args()
    harness.JOULE = os.path.join(os.path.abspath(args.build), "apps", "joule")
    folder = tempfile.mkdtemp(prefix="joule-ha-bench-")
    etcd = EtcdCluster(folder)
    configs = [ha_config(folder, etcd, f"s{i}.yaml") for i in range(3)]
    servers = [Server(c) for c in configs]
    ok = False
    try:
        print(f"ha-bench: {os.cpu_count()} cores; etcd {subprocess.run([harness.ETCD, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
        ok = chaos(folder, etcd, configs, servers, args.kills)
        throughput(os.path.abspath(args.build), servers[leader_of(servers)].url)
        etcd_size(etcd)
    finally:
        for s in servers:
            if s is not None and s.proc.poll() is None:
                s.stop(signal.SIGKILL)
        etcd.stop()
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

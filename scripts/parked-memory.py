#!/usr/bin/env python3
"""What a parked agent long poll costs the server in memory (docs/benchmarks.md): a server on the
dev campus, its nodes registered, then COUNT heartbeats sent as long polls (`known` = the node's
version, `wait_ms` 60 s, each with eight GPUs' readings as `joule agent` sends them) on a
connection each, all parked at once. Reports the server's RSS before and with them, per poll, and
what france-1gw's 113,600 agents would add at that rate. A process here may hold 20,000
descriptors at most, so COUNT stays below that.
Usage: scripts/parked-memory.py BUILD_DIR [--count N]   (make bench runs it)"""

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import harness  # noqa: E402
from harness import AGENT, OPERATOR, Server, call, rss_kib, write_config  # noqa: E402


def body():
    gpus = [{"index": g, "uuid": f"GPU-park-{g}", "model": "NVIDIA H100 80GB HBM3", "memory_mib": 81920,
             "power_watts": 70.5, "energy_joules": 1000, "temperature_c": 34, "utilization_percent": 0,
             "memory_used_mib": 0, "ecc_corrected": 0, "ecc_uncorrected": 0, "xid_errors": 0, "last_xid": 0,
             "power_limit_watts": 700.0} for g in range(8)]
    return json.dumps({"address": "10.0.0.1", "ended": [], "running": [],
                       "gpus": {"source": "simulated", "count": 8, "driver_version": "park", "devices": gpus}}).encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--count", type=int, default=15_000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(args.count, hard - 1_000)
    harness.JOULE = os.path.join(os.path.abspath(args.build), "apps", "joule")
    folder = tempfile.mkdtemp(prefix="joule-parked-")
    server = Server(write_config(folder))
    try:
        nodes = [n["name"] for n in call(server.url, "GET", "/api/v1/nodes", OPERATOR)[1]["nodes"]
                 if n["gpus"] >= 8]
        payload = body()
        versions = {}
        for n in nodes:
            status, answer, _ = call(server.url, "POST", f"/api/v1/agents/{n}/heartbeat", AGENT,
                                     json.loads(payload))
            assert status == 200, answer
            versions[n] = answer["version"]
        time.sleep(1)
        before = rss_kib(server.proc.pid)
        port = int(server.url.rsplit(":", 1)[1])
        held = []
        for i in range(count):
            n = nodes[i % len(nodes)]
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall((f"POST /api/v1/agents/{n}/heartbeat?known={versions[n]}&wait_ms=60000 HTTP/1.1\r\n"
                       f"Host: x\r\nAuthorization: Bearer {AGENT}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload)
            held.append(s)
        time.sleep(3)
        metrics = call(server.url, "GET", "/metrics")[1]
        open_now = next(line.split()[1] for line in metrics.splitlines()
                        if line.startswith("joule_http_connections_open"))
        with_polls = rss_kib(server.proc.pid)
        per = (with_polls - before) / count
        print(f"parked-memory: {count} long polls parked ({open_now} connections open): server RSS "
              f"{before / 1024:.0f} MiB before, {with_polls / 1024:.0f} MiB with them: {per:.1f} KiB a poll; "
              f"113,600 would add {per * 113_600 / 1024 / 1024:.2f} GiB")
        for s in held:
            s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How long a job holds its GPUs beyond its run, with real `joule agent` processes on loopback
(docs/benchmarks.md): a server on the dev campus with all but two 8-GPU nodes drained, an agent on
each of the two, and JOBS jobs of 8 GPUs that each run `sleep SECONDS`, queued at once. Reports
the makespan against the ideal (JOBS / 2 x SECONDS) and, per job, the time from its start to its
end beyond SECONDS: the server telling the agent, the agent starting and reaping the process,
reporting the end, the pass that frees the GPUs.
Usage: scripts/agent-latency.py BUILD_DIR [--jobs N] [--seconds S]   (make bench runs it)"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import harness  # noqa: E402
from harness import LAB_A, OPERATOR, Server, call, spec, start_agent, write_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    harness.JOULE = os.path.join(os.path.abspath(args.build), "apps", "joule")
    folder = tempfile.mkdtemp(prefix="joule-agent-latency-")
    config = write_config(folder)
    text = open(config).read().replace("tick_seconds: 0.1", "tick_seconds: 1")  # the default tick
    with open(config, "w") as f:
        f.write(text)
    server = Server(config)
    nodes = ["dev-hgx01-k00-n00", "dev-hgx01-k00-n01"]
    agents = []
    try:
        for n in call(server.url, "GET", "/api/v1/nodes", OPERATOR)[1]["nodes"]:
            if n["name"] not in nodes:
                call(server.url, "POST", f"/api/v1/nodes/{n['name']}/drain", OPERATOR, {"reason": "bench"})
        agents = [start_agent(folder, server.url, n) for n in nodes]
        time.sleep(2)
        ids = [call(server.url, "POST", "/api/v1/jobs", LAB_A,
                    spec(f"hold-{i}", gpus=8, command=["sleep", str(args.seconds)]))[1]["id"] for i in range(args.jobs)]
        deadline = time.time() + 60 + args.jobs * args.seconds * 5
        while True:
            jobs = [call(server.url, "GET", f"/api/v1/jobs/{i}", LAB_A)[1] for i in ids]
            if all(j["state"] == "completed" for j in jobs):
                break
            if time.time() > deadline:
                sys.exit(f"agent-latency: jobs did not complete: {[j['state'] for j in jobs]}")
            time.sleep(0.2)

        def t(s):
            return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

        held = [t(j["ended_at"]) - t(j["started_at"]) - args.seconds for j in jobs]
        makespan = max(t(j["ended_at"]) for j in jobs) - min(t(j["started_at"]) for j in jobs)
        print(f"agent-latency: {args.jobs} jobs of {args.seconds:g} s, 8 GPUs each, on 2 nodes: makespan "
              f"{makespan:.2f} s (ideal {args.jobs / 2 * args.seconds:.2f} s); GPUs held beyond the run: "
              f"mean {statistics.mean(held) * 1000:.0f} ms, max {max(held) * 1000:.0f} ms", flush=True)
    finally:
        for a in agents:
            a.terminate()
            a.wait(30)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

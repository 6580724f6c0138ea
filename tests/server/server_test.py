#!/usr/bin/env python3
"""The control plane end to end: a real `joule server` process on loopback with a real SQLite
journal, called over real HTTP by this test, by the `joule` CLI, by Node's OpenAPI validator and
by Debian's promtool. Usage: server_test.py JOULE_BINARY [unittest args]."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import harness
from harness import (HGX_NODE, node_token, write_secret, LAB_A, LAB_B, OPERATOR, ROOT, Server, call, free_port, sha256, spec,
                     start_agent, write_config)

JOULE = None  # set in main


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="joule-server-test-")
        cls.server = Server(write_config(cls.dir))
        cls.url = cls.server.url

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, f"server exit {rc}"

    def api(self, method, path, token=None, body=None, **kw):
        return call(self.url, method, path, token, body, **kw)

    def submit(self, token, body, **kw):
        status, job, _ = self.api("POST", "/api/v1/jobs", token, body, **kw)
        self.assertEqual(status, 201, job)
        return job

    def wait_state(self, token, job, states, timeout=20):
        deadline = time.time() + timeout
        while True:
            status, view, _ = self.api("GET", f"/api/v1/jobs/{job}", token)
            self.assertEqual(status, 200, view)
            if view["state"] in states:
                return view
            if time.time() > deadline:
                self.fail(f"job {job} stays {view['state']}, not {states}")
            time.sleep(0.05)

    def assertError(self, reply, status, field=None):
        code, body, _ = reply
        self.assertEqual(code, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body["error"]["status"], status)
        self.assertTrue(body["error"]["message"], body)
        if field is not None:
            self.assertEqual(body["error"]["field"], field, body)
        return body["error"]

    def cli(self, *args, token=LAB_A, stdin=None):
        env = dict(os.environ, JOULE_SERVER=self.url, JOULE_TOKEN=token, JOULE_CONFIG="/nonexistent")
        return subprocess.run([JOULE, *args], capture_output=True, text=True, env=env, input=stdin, timeout=120)

    # ---- probes and auth ----

    def test_probes_and_documents_need_no_token(self):
        self.assertEqual(self.api("GET", "/healthz")[0], 200)
        self.assertEqual(self.api("GET", "/readyz")[0], 200)
        status, doc, _ = self.api("GET", "/api/v1/openapi.json")
        self.assertEqual((status, doc["openapi"]), (200, "3.0.3"))

    def test_api_needs_a_valid_token(self):
        for path in ["/api/v1/jobs", "/api/v1/nodes", "/api/v1/fleet", "/api/v1/tenants", "/api/v1/audit"]:
            self.assertError(self.api("GET", path), 401, "Authorization")
            self.assertError(self.api("GET", path, "not-a-token"), 401, "Authorization")
        self.assertError(self.api("GET", "/api/v1/jobs", headers={"Authorization": "Basic abc"}), 401)

    # ---- jobs ----

    def test_submit_runs_and_cancels_a_job(self):
        status, job, headers = self.api("POST", "/api/v1/jobs", LAB_A, spec("train", command=["python", "train.py"]))
        self.assertEqual(status, 201, job)
        self.assertEqual(headers["Location"], f"/api/v1/jobs/{job['id']}")
        self.assertEqual((job["tenant"], job["queue"], job["priority_class"]), ("lab-a", "batch", "normal"))
        self.assertNotIn("spec", job)  # the job as listed; its own URL adds the spec
        self.assertEqual(self.api("GET", headers["Location"], LAB_A)[1]["spec"]["command"], ["python", "train.py"])
        view = self.wait_state(LAB_A, job["id"], ["running"])
        self.assertEqual(len(view["nodes"]), 1)
        status, events, _ = self.api("GET", f"/api/v1/jobs/{job['id']}/events", LAB_A)
        self.assertEqual(status, 200)
        self.assertTrue(events["events"][0]["what"].startswith("submitted by lab-a"), events)
        self.assertTrue(any(e["what"].startswith("started") for e in events["events"]), events)
        self.assertEqual(self.api("POST", f"/api/v1/jobs/{job['id']}/cancel", LAB_A)[0], 202)
        view = self.wait_state(LAB_A, job["id"], ["cancelled"])
        self.assertEqual(view["end_reason"], "cancelled")
        self.assertError(self.api("POST", f"/api/v1/jobs/{job['id']}/cancel", LAB_A), 409, "state")

    def test_yaml_specs_and_batch_scripts(self):
        job = self.submit(LAB_A, "name: from-yaml\nworkers: 1\nresources: {gpus: 4, gpu_type: gb200}\nqueue: gb200\n",
                          content_type="application/yaml")
        self.assertEqual((job["gpu_type"], job["queue"]), ("gb200", "gb200"))
        script = "#!/bin/bash\n#SBATCH --job-name=eval\n#SBATCH -N 2\n#SBATCH --gpus-per-node=4\n#SBATCH --time=30\nsrun eval\n"
        job = self.submit(LAB_A, script, content_type="text/x-shellscript")
        self.assertEqual((job["name"], job["workers"], job["gpus_per_worker"], job["time_limit_s"]), ("eval", 2, 4, 1800))
        self.assertIn("srun eval", self.api("GET", f"/api/v1/jobs/{job['id']}", LAB_A)[1]["spec"]["script"])
        bad = "#!/bin/bash\n#SBATCH --mem=10G\nsrun x\n"
        err = self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, bad, content_type="text/x-shellscript"), 400,
                               "--mem")
        self.assertIn("line 2", err["message"])

    def test_bad_specs_name_the_field_and_rule(self):
        cases = [
            ({"name": "x", "colour": "red"}, "colour"),
            ({"name": "n" * 64}, "name"),
            ({"name": "x", "resources": {"gpus": 9}}, "resources.gpus"),
            ({"name": "x", "resources": {"gpus": -1}}, "resources.gpus"),
            ({"name": "x", "queue": "nope"}, "queue"),
            ({"name": "x", "priority_class": "urgent"}, "priority_class"),
            ({"name": "x", "resources": {"gpu_type": "tpu"}}, "resources.gpu_type"),
            ({"name": "x", "queue": "gb200", "resources": {"gpus": 1, "gpu_type": "h100-sxm"}}, "resources.gpu_type"),
            ({"name": "x", "after_ok": [987654]}, "after_ok[0]"),
            ({"name": "x", "time_limit": "8-00:00:00"}, "time_limit"),
            ({"name": "x", "time_limit": "soon"}, "time_limit"),
            ({"name": "x", "args": ["a"]}, "args"),
        ]
        for body, field in cases:
            with self.subTest(field=field):
                self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, body), 400, field)
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, "{not json"), 400)
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, "name: x", content_type="text/plain"), 415,
                         "Content-Type")
        self.assertError(self.api("POST", "/api/v1/jobs", OPERATOR, spec()), 400, "tenant")
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, spec(tenant="lab-b")), 403, "tenant")
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, spec(), headers={"Idempotency-Key": "k" * 256}), 400,
                         "Idempotency-Key")
        huge = {"name": "x", "env": {f"V{i}": "v" * 1000 for i in range(1100)}}
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, huge), 413, "body")
        self.assertError(self.api("GET", "/api/v1/jobs?limit=0", LAB_A), 400, "limit")
        self.assertError(self.api("GET", "/api/v1/jobs?colour=red", LAB_A), 400, "colour")
        self.assertError(self.api("GET", "/api/v1/jobs/abc", LAB_A), 400, "id")
        self.assertError(self.api("GET", "/api/v1/nowhere", LAB_A), 404)

    def test_idempotency_key_makes_a_retry_safe(self):
        key = {"Idempotency-Key": "retry-1"}
        first = self.api("POST", "/api/v1/jobs", LAB_A, spec("retried"), headers=key)
        again = self.api("POST", "/api/v1/jobs", LAB_A, spec("retried"), headers=key)
        self.assertEqual((first[0], again[0]), (201, 200))
        self.assertEqual(first[1]["id"], again[1]["id"])
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_A, spec("other"), headers=key), 422, "Idempotency-Key")
        # Keys are per caller: another tenant's same key is another job.
        other = self.api("POST", "/api/v1/jobs", LAB_B, spec("retried"), headers=key)
        self.assertEqual(other[0], 201)
        self.assertNotEqual(other[1]["id"], first[1]["id"])

    def test_paging_and_filters(self):
        ids = [self.submit(LAB_B, spec(f"page-{i}", gpus=1, priority_class="low"))["id"] for i in range(5)]
        seen, after = [], 0
        while True:
            status, page, _ = self.api("GET", f"/api/v1/jobs?limit=2&after={after}", LAB_B)
            self.assertEqual(status, 200)
            seen += [j["id"] for j in page["jobs"]]
            if page["next"] is None:
                break
            after = page["next"]
        self.assertEqual(seen, sorted(seen))
        # The list's fast writer gives what the job's own view gives, less the spec (for ended jobs,
        # which stay as they are between the two reads).
        for job in ids[-2:]:
            self.assertEqual(self.api("POST", f"/api/v1/jobs/{job}/cancel", LAB_B)[0], 202)
            self.wait_state(LAB_B, job, ["cancelled"])
        _, page, _ = self.api("GET", "/api/v1/jobs?limit=100000", LAB_B)
        listed_ids = {j["id"]: j for j in page["jobs"]}
        for job in ids[-2:]:
            full = self.api("GET", f"/api/v1/jobs/{job}", LAB_B)[1]
            del full["spec"]
            self.assertEqual(listed_ids[job], full)
        self.assertTrue(set(ids) <= set(seen))
        status, page, _ = self.api("GET", "/api/v1/jobs?state=completed", LAB_B)
        self.assertTrue(all(j["state"] == "completed" for j in page["jobs"]))

    # ---- tenants see and act on their own jobs only, on every endpoint ----

    def test_tenant_isolation(self):
        job = self.submit(LAB_A, spec("secret", gpus=1))["id"]
        self.wait_state(LAB_A, job, ["running"])
        self.assertError(self.api("GET", f"/api/v1/jobs/{job}", LAB_B), 404, "id")
        self.assertError(self.api("GET", f"/api/v1/jobs/{job}/events", LAB_B), 404, "id")
        self.assertError(self.api("POST", f"/api/v1/jobs/{job}/cancel", LAB_B), 404, "id")
        self.assertError(self.api("POST", "/api/v1/jobs", LAB_B, spec(after_ok=[job])), 400, "after_ok[0]")
        _, page, _ = self.api("GET", "/api/v1/jobs?limit=100000", LAB_B)
        self.assertTrue(all(j["tenant"] == "lab-b" for j in page["jobs"]))
        _, page, _ = self.api("GET", "/api/v1/jobs?tenant=lab-a", LAB_B)
        self.assertEqual(page["jobs"], [])
        _, nodes, _ = self.api("GET", "/api/v1/nodes", LAB_B)
        self.assertTrue(all(job not in n["jobs"] for n in nodes["nodes"]))
        _, nodes, _ = self.api("GET", "/api/v1/nodes", LAB_A)
        self.assertTrue(any(job in n["jobs"] for n in nodes["nodes"]))
        self.assertError(self.api("GET", "/api/v1/tenants", LAB_B), 403)
        self.assertError(self.api("GET", "/api/v1/tenants/lab-a", LAB_B), 404)
        self.assertEqual(self.api("GET", "/api/v1/tenants/lab-b", LAB_B)[0], 200)
        self.assertError(self.api("PATCH", "/api/v1/tenants/lab-b", LAB_B, {"weight": 5}), 403)
        self.assertError(self.api("GET", "/api/v1/queues", LAB_B), 403)
        self.assertError(self.api("GET", "/api/v1/audit", LAB_B), 403)
        self.assertError(self.api("POST", f"/api/v1/nodes/{HGX_NODE}/drain", LAB_B, {"reason": "x"}), 403)
        self.assertError(self.api("POST", f"/api/v1/nodes/{HGX_NODE}/resume", LAB_B, {}), 403)
        self.assertEqual(self.api("GET", "/api/v1/fleet", LAB_B)[0], 200)
        # The operator sees everything.
        self.assertEqual(self.api("GET", f"/api/v1/jobs/{job}", OPERATOR)[0], 200)
        self.assertEqual(self.api("POST", f"/api/v1/jobs/{job}/cancel", OPERATOR)[0], 202)

    # ---- operators: nodes, quotas, audit ----

    def test_drain_and_resume(self):
        self.assertError(self.api("POST", f"/api/v1/nodes/{HGX_NODE}/drain", OPERATOR, {}), 400, "reason")
        self.assertError(self.api("POST", f"/api/v1/nodes/{HGX_NODE}/drain", OPERATOR, {"reason": "x", "force": 1}), 400,
                         "force")
        self.assertError(self.api("POST", "/api/v1/nodes/no-such-node/drain", OPERATOR, {"reason": "x"}), 404, "name")
        self.assertEqual(self.api("POST", f"/api/v1/nodes/{HGX_NODE}/drain", OPERATOR, {"reason": "fan"})[0], 202)
        deadline = time.time() + 20
        while self.api("GET", f"/api/v1/nodes/{HGX_NODE}", LAB_A)[1]["health"] != "drained":
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        node = self.api("GET", f"/api/v1/nodes/{HGX_NODE}", LAB_A)[1]
        self.assertEqual(node["reason"], "fan")
        self.assertIn(node["state"], ["drained", "draining"])
        self.assertEqual(self.api("POST", f"/api/v1/nodes/{HGX_NODE}/resume", OPERATOR, {})[0], 202)
        while self.api("GET", f"/api/v1/nodes/{HGX_NODE}", LAB_A)[1]["health"] != "healthy":
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        _, audit, _ = self.api("GET", "/api/v1/audit?limit=100000", OPERATOR)
        actions = [(e["who"], e["action"], e["target"]) for e in audit["entries"]]
        self.assertIn(("ops", "drained", f"node/{HGX_NODE}"), actions)
        self.assertIn(("ops", "resume", f"node/{HGX_NODE}"), actions)

    def test_quota_change(self):
        self.assertError(self.api("PATCH", "/api/v1/tenants/lab-b", OPERATOR, {"reserved": {"tpu": 1}}), 400,
                         "reserved.tpu")
        self.assertError(self.api("PATCH", "/api/v1/tenants/lab-b", OPERATOR, {"weight": 0}), 400, "weight")
        self.assertError(self.api("PATCH", "/api/v1/tenants/nobody", OPERATOR, {"weight": 1}), 404, "name")
        status, _, _ = self.api("PATCH", "/api/v1/tenants/lab-b", OPERATOR,
                                {"reserved": {"h100-sxm": 16}, "borrow_limit": None, "weight": 2})
        self.assertEqual(status, 202)
        _, tenant, _ = self.api("GET", "/api/v1/tenants/lab-b", LAB_B)
        self.assertEqual((tenant["reserved"], tenant["borrow_limit"], tenant["weight"]), ({"h100-sxm": 16}, None, 2))
        _, audit, _ = self.api("GET", "/api/v1/audit?limit=100000", OPERATOR)
        self.assertTrue(any(e["action"] == "quota" and e["target"] == "tenant/lab-b" and e["who"] == "ops"
                            for e in audit["entries"]))

    # ---- metrics, OpenAPI, tokens ----

    def test_metrics_pass_promtool(self):
        status, text, headers = self.api("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        for name in ["joule_jobs{", "joule_http_requests_total{", "joule_accelerators ", "joule_journal_commits_total"]:
            self.assertIn(name, text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_openapi_document_matches_the_server(self):
        check = subprocess.run(["node", os.path.join(ROOT, "tests/openapi/check.js"), self.url, OPERATOR, LAB_A, "lab-a",
                                "dev-hgx01-k00-n01", node_token("dev-hgx01-k00-n01")], capture_output=True, text=True, timeout=120)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_tokens_are_never_stored_or_logged(self):
        self.submit(LAB_A, spec("token-check", gpus=1))
        _, audit, _ = self.api("GET", "/api/v1/audit?limit=100000", OPERATOR)
        time.sleep(0.3)
        with open(os.path.join(self.dir, "state.db"), "rb") as f:
            journal = f.read()
        for wal in ["state.db-wal"]:
            path = os.path.join(self.dir, wal)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    journal += f.read()
        for token in [OPERATOR, LAB_A, LAB_B, node_token("dev-hgx01-k00-n01")]:
            self.assertNotIn(token.encode(), journal)
            self.assertNotIn(token, "".join(self.server.log))
            self.assertNotIn(token, json.dumps(audit))

    def test_history_replays_through_the_engine(self):
        job = self.submit(LAB_A, spec("replayed", gpus=2))["id"]
        view = self.wait_state(LAB_A, job, ["running"])
        r = subprocess.run([JOULE, "schedule", "--scenario", f"{ROOT}/scenarios/dev.yaml", "--journal",
                            os.path.join(self.dir, "state.db")], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        start = next(l for l in r.stdout.splitlines() if re.match(rf"t=\d+ start {job} ", l))
        self.assertEqual(re.findall(r" (\S+)\[", start), view["nodes"])
        r = subprocess.run([JOULE, "schedule", "--scenario", f"{ROOT}/scenarios/dev.yaml", "--journal",
                            os.path.join(self.dir, "missing.db")], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such journal", r.stderr)

    # ---- the CLI ----

    def test_cli(self):
        path = os.path.join(self.dir, "job.yaml")
        with open(path, "w") as f:
            f.write("name: cli-job\nworkers: 1\nresources: {gpus: 1}\ntime_limit: 10:00\n")
        r = self.cli("submit", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"Submitted batch job (\d+)\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        job = int(m.group(1))
        r = self.cli("submit", "--parsable", path)
        self.assertRegex(r.stdout, r"^\d+\n$")
        self.wait_state(LAB_A, job, ["running"])
        r = self.cli("queue")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["JOBID", "PARTITION", "NAME", "USER", "ST", "TIME", "NODES", "NODELIST(REASON)"])
        row = next(l.split() for l in lines[1:] if l.split()[0] == str(job))
        self.assertEqual((row[1], row[2], row[3], row[4], row[6]), ("batch", "cli-job", "lab-a", "R", "1"))
        r = self.cli("queue", "-o", "json")
        self.assertTrue(all(j["tenant"] == "lab-a" for j in json.loads(r.stdout)["jobs"]))
        r = self.cli("queue", "-o", "yaml")
        self.assertIn("cli-job", r.stdout)
        r = self.cli("show", "job", str(job))
        self.assertIn(f"id={job}", r.stdout)
        self.assertIn("name=cli-job", r.stdout)
        r = self.cli("nodes")
        self.assertEqual(r.stdout.splitlines()[0].split(), ["TYPE", "NODES", "STATE", "NODELIST"])
        self.assertIn("dev-nvl01-k00-n", r.stdout)
        r = self.cli("nodes", "-N")
        self.assertEqual(len(r.stdout.splitlines()), 1 + 22)
        r = self.cli("show", "node", HGX_NODE, "-o", "json")
        self.assertEqual(json.loads(r.stdout)["name"], HGX_NODE)
        r = self.cli("cancel", str(job))
        self.assertEqual((r.returncode, r.stdout), (0, ""))
        self.wait_state(LAB_A, job, ["cancelled"])
        r = self.cli("queue", "-t", "CA")
        self.assertIn(" CA ", r.stdout)
        # Refusals: the reason on standard error, exit 2.
        r = self.cli("cancel", "999999")
        self.assertEqual(r.returncode, 2)
        self.assertIn("job 999999 does not exist", r.stderr)
        r = self.cli("drain", HGX_NODE, token=OPERATOR)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--reason", r.stderr)
        r = self.cli("drain", HGX_NODE, "--reason", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("only operators", r.stderr)
        bad = os.path.join(self.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write("name: x\nresources: {gpus: 99}\n")
        r = self.cli("submit", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("resources.gpus", r.stderr)
        r = self.cli("queue", token="wrong")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bearer token", r.stderr)
        r = subprocess.run([JOULE, "queue", "--server", "http://127.0.0.1:1"], capture_output=True, text=True,
                           env=dict(os.environ, JOULE_CONFIG="/nonexistent"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no answer", r.stderr)
        # A client config file.
        config = os.path.join(self.dir, "client.yaml")
        with open(config, "w") as f:
            f.write(f"server: {self.url}\ntoken: {LAB_B}\n")
        r = subprocess.run([JOULE, "queue", "-o", "json"], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"], "JOULE_CONFIG": config})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(all(j["tenant"] == "lab-b" for j in json.loads(r.stdout)["jobs"]))


class BadConfigTest(unittest.TestCase):
    def test_bad_config_is_refused_with_its_place(self):
        folder = tempfile.mkdtemp(prefix="joule-server-test-")
        try:
            config = write_config(folder, "limits: {max_body_bytes: -1}\n")
            r = subprocess.run([JOULE, "server", "--config", config], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2)
            self.assertIn("limits.max_body_bytes", r.stderr)
            with open(config, "w") as f:
                f.write(f"scenario: {ROOT}/scenarios/dev.yaml\ntokens:\n  - {{name: a, tenant: nobody, sha256: {'0' * 64}}}\n")
            r = subprocess.run([JOULE, "server", "--config", config], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2)
            self.assertIn("tokens[0].tenant", r.stderr)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class DurabilityTest(unittest.TestCase):
    """Submit under load, kill -9 the server, restart it: every acknowledged job is there with its
    state, and retrying the unanswered submits with their idempotency keys duplicates nothing."""

    def test_kill_9_loses_nothing_acknowledged(self):
        folder = tempfile.mkdtemp(prefix="joule-durability-")
        try:
            config = write_config(folder)
            server = Server(config)
            acked, sent = {}, {}
            lock = threading.Lock()
            stop = threading.Event()

            def submitter(worker):
                n = 0
                while not stop.is_set():
                    key = f"w{worker}-{n}"
                    body = spec(f"load-{worker}-{n}", gpus=1 + n % 8, priority_class=["low", "normal", "high"][n % 3])
                    with lock:
                        sent[key] = body
                    try:
                        status, job, _ = call(server.url, "POST", "/api/v1/jobs", LAB_A, body,
                                              headers={"Idempotency-Key": key})
                    except OSError:
                        return  # the server is gone
                    if status == 201:
                        with lock:
                            acked[key] = job["id"]
                    n += 1

            threads = [threading.Thread(target=submitter, args=(w,)) for w in range(8)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            # What clients saw before the crash: states they were told of.
            _, before, _ = call(server.url, "GET", "/api/v1/jobs?limit=100000", OPERATOR)
            time.sleep(0.5)
            server.proc.kill()  # SIGKILL: no chance to flush anything
            server.proc.wait()
            stop.set()
            for t in threads:
                t.join(60)
            self.assertGreater(len(acked), 50, "the load was too light to mean anything")
            running = sum(j["state"] == "running" for j in before["jobs"])
            print(f"\ndurability: {len(acked)} acknowledged, {len(sent) - len(acked)} unanswered at the kill, "
                  f"{running} running before it", file=sys.stderr)

            server = Server(config)
            try:
                _, after, _ = call(server.url, "GET", "/api/v1/jobs?limit=100000", OPERATOR)
                by_id = {j["id"]: j for j in after["jobs"]}
                for key, job in acked.items():
                    self.assertIn(job, by_id, f"acknowledged job {job} ({key}) lost")
                    self.assertEqual(by_id[job]["name"], sent[key]["name"])
                order = ["pending", "running", "completed", "failed", "cancelled", "rejected"]
                for job in before["jobs"]:
                    now = by_id[job["id"]]
                    self.assertGreaterEqual(order.index(now["state"]) if now["state"] != "pending" else 0,
                                            order.index(job["state"]) if job["state"] != "pending" else 0,
                                            f"job {job['id']} went back from {job['state']} to {now['state']}")
                    if job["state"] == "running" and now["state"] == "running":
                        self.assertEqual(now["nodes"], job["nodes"])
                # Retry everything that was sent, answered or not: no job twice.
                for key, body in sent.items():
                    status, job, _ = call(server.url, "POST", "/api/v1/jobs", LAB_A, body,
                                          headers={"Idempotency-Key": key})
                    self.assertIn(status, (200, 201), job)
                    if key in acked:
                        self.assertEqual((status, job["id"]), (200, acked[key]))
                _, final, _ = call(server.url, "GET", "/api/v1/jobs?limit=100000", OPERATOR)
                names = [j["name"] for j in final["jobs"]]
                self.assertEqual(len(names), len(set(names)), "a job was duplicated")
                self.assertEqual(len(names), len(sent))
            finally:
                self.assertEqual(server.stop(), 0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


AGENT_NODES = ["dev-hgx01-k00-n00", "dev-hgx01-k00-n01", "dev-hgx01-k00-n02", "dev-hgx01-k00-n03"]
# promtool's lint of dcgm-exporter's own names (upper-case, camelCase labels, counters without
# _total): dashboards depend on those names, so the agent keeps them; nothing else may appear.
DCGM_LINT = re.compile(r'^DCGM_FI_\w+ (counter metrics should have "_total" suffix|'
                       r"label names should be written in 'snake_case' not 'camelCase')$")




class AgentTest(unittest.TestCase):
    """A server and four agents as separate processes on loopback, running real processes."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="joule-agent-test-")
        config = write_config(cls.dir, "agent_timeout_seconds: 2\n")
        cls.server = Server(config)
        cls.url = cls.server.url
        cls.worker = os.path.join(cls.dir, "gang_worker.py")
        shutil.copy(os.path.join(ROOT, "tests/server/gang_worker.py"), cls.worker)
        cls.results = os.path.join(cls.dir, "results")
        os.makedirs(cls.results)
        cls.metrics_port = free_port()
        cls.agents = {}
        for node in AGENT_NODES:
            extra = ["--metrics-listen", f"127.0.0.1:{cls.metrics_port}"] if node == AGENT_NODES[0] else []
            cls.agents[node] = start_agent(cls.dir, cls.url, node, *extra)

    @classmethod
    def tearDownClass(cls):
        for agent in cls.agents.values():
            agent.terminate()
            agent.wait(30)
        subprocess.run(["pkill", "-f", cls.worker], check=False)
        rc = cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert rc == 0, f"server exit {rc}"

    def token_file(self, node):
        return write_secret(os.path.join(self.dir, f"{node}.token"), node_token(node) + "\n")

    def kill_agent(self, node):
        """SIGKILL of the node's agent: the server hears nothing more; its workers live on."""
        self.agents[node].kill()
        self.agents[node].wait()

    def restart_agent(self, node):
        """A killed agent, then a new one on the same work folder."""
        self.kill_agent(node)
        self.agents[node] = start_agent(self.dir, self.url, node)

    def wait_gone(self, pid, why, timeout=15):
        """Until the process has exited (a zombie counts: its parent is gone or not reaping)."""
        deadline = time.time() + timeout
        while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
            self.assertLess(time.time(), deadline, why)
            time.sleep(0.1)

    def gang(self, name, **env):
        body = spec(name, workers=2, gpus=8, command=["python3", self.worker],
                    env=dict(RESULT_DIR=self.results, **env))
        status, job, _ = call(self.url, "POST", "/api/v1/jobs", LAB_A, body)
        self.assertEqual(status, 201, job)
        return job["id"]

    def wait(self, job, states, timeout=60):
        deadline = time.time() + timeout
        while True:
            view = call(self.url, "GET", f"/api/v1/jobs/{job}", LAB_A)[1]
            if view["state"] in states:
                return view
            self.assertLess(time.time(), deadline, f"job {job} stays {view['state']} ({view['reason']})")
            time.sleep(0.1)

    def pids(self, job, timeout=30):
        files = [os.path.join(self.results, f"pid-{job}-{r}") for r in (0, 1)]
        deadline = time.time() + timeout
        while not all(os.path.exists(p) and os.path.getsize(p) > 0 for p in files):
            self.assertLess(time.time(), deadline, "the workers did not start")
            time.sleep(0.1)
        return [int(open(p).read()) for p in files]

    def test_node_credentials_are_for_their_own_node_only(self):
        mine, other = AGENT_NODES[0], AGENT_NODES[1]
        self.assertEqual(call(self.url, "GET", "/api/v1/jobs", node_token(mine))[0], 403)
        # Tenants and operators do not report for nodes (the docs say agents only).
        for token in (LAB_A, OPERATOR):
            status, body, _ = call(self.url, "POST", f"/api/v1/agents/{mine}/heartbeat", token, {})
            self.assertEqual((status, body["error"]["field"]), (403, "Authorization"), body)
        # One node's credential reports for that node only: another node's heartbeat is 403, and
        # so the answer never carries that node's assignments (other tenants' specs and secrets).
        status, body, _ = call(self.url, "POST", f"/api/v1/agents/{other}/heartbeat", node_token(mine),
                               {"address": "10.0.0.9", "ended": [{"job": 1, "rank": 0, "run": 1, "exit_code": 1}]})
        self.assertEqual(status, 403, body)
        self.assertIn(f"node {mine}'s", body["error"]["message"])
        # A credential made with another key, a truncated one, one with a byte changed: 401.
        forged = node_token(mine, key="another-key-0123456789abcdef0123456789ab")
        for bad in (forged, node_token(mine)[:-1], node_token(mine)[:-1] + "0" if not node_token(mine).endswith("0")
                    else node_token(mine)[:-1] + "1"):
            self.assertEqual(call(self.url, "POST", f"/api/v1/agents/{mine}/heartbeat", bad, {})[0], 401, bad)
        self.assertEqual(call(self.url, "POST", "/api/v1/agents/nowhere/heartbeat", node_token("nowhere"), {})[0], 404)
        status, body, _ = call(self.url, "POST", f"/api/v1/agents/{mine}/heartbeat", node_token(mine),
                               {"ended": [{"job": 1, "rank": 0}]})
        self.assertEqual((status, body["error"]["field"]), (400, "ended[0].run"))

    def test_gang_exchanges_data_and_completes(self):
        job = self.gang("gang")
        view = self.wait(job, ["completed", "failed"])
        self.assertEqual(view["state"], "completed", view)
        with open(os.path.join(self.results, f"result-{job}")) as f:
            self.assertEqual(f.read(), "rank 1 of 2 on 0,1,2,3,4,5,6,7\n")
        events = [e["what"] for e in call(self.url, "GET", f"/api/v1/jobs/{job}/events", LAB_A)[1]["events"]]
        self.assertTrue(any(e.startswith("workers exited (all 0)") for e in events), events)
        self.assertGreater(view["energy_joules"], 0, "measured energy of the job's GPUs")
        for node in AGENT_NODES:  # output goes to per-job files
            for root, _, files in os.walk(os.path.join(self.dir, node)):
                if root.endswith(f"job-{job}"):
                    self.assertTrue(any(f.startswith("rank-") and f.endswith(".err") for f in files), files)

    def test_a_failed_worker_fails_the_job(self):
        body = spec("failing", workers=2, gpus=8, command=["python3", self.worker],
                    env={"RESULT_DIR": self.results, "EXIT": "3"}, failure_policy={"max_restarts": 0})
        status, job, _ = call(self.url, "POST", "/api/v1/jobs", LAB_A, body)
        self.assertEqual(status, 201, job)
        view = self.wait(job["id"], ["completed", "failed"])
        self.assertEqual(view["state"], "failed", view)

    def test_cancel_kills_every_process(self):
        job = self.gang("sleeper", SLEEP="600")
        pids = self.pids(job)
        self.assertEqual(call(self.url, "POST", f"/api/v1/jobs/{job}/cancel", LAB_A)[0], 202)
        self.wait(job, ["cancelled"])
        for pid in pids:
            self.wait_gone(pid, "a worker outlived its cancel")

    def test_starts_and_cancels_reach_the_agents_at_once(self):
        # The agents' heartbeats are long polls: a start and a cancel reach them within a pass,
        # not at their next heartbeat.
        job = self.gang("pushed", SLEEP="600")
        begin = time.time()
        pids = self.pids(job)
        self.assertLess(time.time() - begin, 3, "the start waited for something")
        begin = time.time()
        self.assertEqual(call(self.url, "POST", f"/api/v1/jobs/{job}/cancel", LAB_A)[0], 202)
        for pid in pids:
            self.wait_gone(pid, "a worker outlived its cancel", timeout=5)
        self.assertLess(time.time() - begin, 5)

    def test_an_agent_that_missed_a_change_converges(self):
        # An agent paused while its job is cancelled misses the answer to its poll; once it runs
        # again, its next poll (with the version it still runs) is answered at once with the
        # server's view, and it stops the worker.
        job = self.gang("missed", SLEEP="600")
        pids = self.pids(job)
        view = call(self.url, "GET", f"/api/v1/jobs/{job}", LAB_A)[1]
        paused = self.agents[view["nodes"][0]]
        paused.send_signal(signal.SIGSTOP)
        try:
            self.assertEqual(call(self.url, "POST", f"/api/v1/jobs/{job}/cancel", LAB_A)[0], 202)
            time.sleep(1)
        finally:
            paused.send_signal(signal.SIGCONT)
        self.wait(job, ["cancelled"])
        for pid in pids:
            self.wait_gone(pid, "the paused agent did not converge to the cancel")

    def test_agent_serves_dcgm_exporter_metrics(self):
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as res:
                    text = res.read().decode()
                if "DCGM_FI_DEV_POWER_USAGE{" in text:
                    break
            except OSError:
                pass
            self.assertLess(time.time(), deadline, "no GPU metrics from the agent")
            time.sleep(0.2)
        for name in ("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_TEMP",
                     "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_USED"):
            self.assertEqual(text.count(f"\n{name}{{"), 8, name)
        self.assertIn(f'Hostname="{AGENT_NODES[0]}"', text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        problems = [l for l in (check.stdout + check.stderr).splitlines() if l and not DCGM_LINT.match(l)]
        self.assertEqual(problems, [], "promtool found more than dcgm-exporter's naming")
        self.assertIn(check.returncode, (0, 3), "3: lint findings only; 1 would be a format error")

    def test_node_shows_its_agent_and_gpu_readings(self):
        deadline = time.time() + 30
        while True:
            node = call(self.url, "GET", f"/api/v1/nodes/{AGENT_NODES[2]}", OPERATOR)[1]
            if node["agent"] and len(node["agent"]["gpus"]) == 8:
                break
            self.assertLess(time.time(), deadline, node)
            time.sleep(0.2)
        self.assertEqual(node["agent"]["gpu_source"], "simulated")
        self.assertGreaterEqual(node["agent"]["power_watts"], 8 * 70)  # at least idle H100s
        self.assertEqual(node["agent"]["gpus"][3]["index"], 3)
        fleet = call(self.url, "GET", "/api/v1/fleet", OPERATOR)[1]
        self.assertGreaterEqual(fleet["agents"], 3)
        self.assertEqual(fleet["gpus_measured"], 8 * fleet["agents"])
        self.assertGreaterEqual(fleet["measured_gpu_power_watts"], 70 * fleet["gpus_measured"])
        metrics = call(self.url, "GET", "/metrics")[1]
        self.assertRegex(metrics, r"\njoule_gpu_measured_power_watts [0-9.e+]+\n")
        shown = subprocess.run([JOULE, "show", "node", AGENT_NODES[2], "--server", self.url, "--token", OPERATOR],
                               capture_output=True, text=True, check=True).stdout
        self.assertIn("gpu_source=simulated", shown)
        self.assertRegex(shown, r"\n   gpu=7 power_watts=[0-9.]+ power_limit_watts=700 ")

    def test_agent_refuses_a_bad_metrics_address(self):
        for bad in ("nohost", "127.0.0.1:70000", "127.0.0.1:99999999999999999999"):
            r = subprocess.run([JOULE, "agent", "--server", self.url, "--node", AGENT_NODES[3], "--workdir",
                                os.path.join(self.dir, "bad"), "--metrics-listen", bad],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn(f"--metrics-listen: '{bad}'", r.stderr)

    def test_agent_with_fewer_accelerators_than_its_node_is_refused(self):
        with open(os.path.join(self.dir, "few.log"), "w") as log:
            few = subprocess.run(
                [JOULE, "agent", "--server", self.url, "--token-file", self.token_file(AGENT_NODES[3]), "--node",
                 AGENT_NODES[3], "--workdir", os.path.join(self.dir, "few"), "--telemetry", "simulated", "--accelerators", "4"],
                stderr=log, timeout=30)
        self.assertEqual(few.returncode, 2)
        with open(os.path.join(self.dir, "few.log")) as log:
            self.assertIn("has 8 accelerators in the fleet (hgx-h100); its agent found 4", log.read())

    def test_restarted_agent_adopts_its_workers(self):
        job = self.gang("adopted", SLEEP="3")
        view = self.wait(job, ["running"])
        pids = self.pids(job)
        self.restart_agent(view["nodes"][1])
        view = self.wait(job, ["completed", "failed"])
        self.assertEqual((view["state"], view["restarts"]), ("completed", 0), view)
        with open(os.path.join(self.results, f"pid-{job}-1")) as f:
            self.assertEqual(int(f.read()), pids[1], "the worker ran once")

    def test_restarted_agent_stops_workers_cancelled_while_it_was_away(self):
        job = self.gang("orphan", SLEEP="600")
        view = self.wait(job, ["running"])
        pids = self.pids(job)
        node = view["nodes"][1]
        self.kill_agent(node)
        self.assertEqual(call(self.url, "POST", f"/api/v1/jobs/{job}/cancel", LAB_A)[0], 202)
        self.wait(job, ["cancelled"])
        self.assertTrue(os.path.exists(f"/proc/{pids[1]}"), "nobody stopped the worker while its agent was away")
        self.agents[node] = start_agent(self.dir, self.url, node)
        self.wait_gone(pids[1], "the new agent left a cancelled worker running")

    def test_z_agent_killed_node_down_job_requeued_and_completes(self):
        job = self.gang("survivor", SLEEP="3")
        view = self.wait(job, ["running"])
        pids = self.pids(job)
        lost = view["nodes"][1]
        # The node dies: its agent and its worker.
        self.kill_agent(lost)
        os.kill(pids[1], signal.SIGKILL)
        for r in (0, 1):
            os.remove(os.path.join(self.results, f"pid-{job}-{r}"))
        view = self.wait(job, ["completed", "failed"], timeout=90)
        self.assertEqual(view["state"], "completed", view)
        self.assertNotIn(lost, view["nodes"] or [])
        events = [e["what"] for e in call(self.url, "GET", f"/api/v1/jobs/{job}/events", LAB_A)[1]["events"]]
        self.assertTrue(any(e.startswith("requeued") for e in events), events)
        node = call(self.url, "GET", f"/api/v1/nodes/{lost}", LAB_A)[1]
        self.assertEqual(node["health"], "down")
        self.assertIn("agent silent", node["reason"])


class PowerLimitTest(unittest.TestCase):
    """The engine caps a gang under a tight row budget; an agent run with --apply-power-limits sets
    its GPUs' limits to the cap and restores them after; an agent without it only reads them."""

    def test_agent_applies_the_engines_cap_only_when_told(self):
        folder = tempfile.mkdtemp(prefix="joule-power-test-")
        with open(os.path.join(ROOT, "scenarios/dev.yaml")) as f:
            scenario = f.read().replace("power_budget_kw: 60", "power_budget_kw: 22")  # the HGX row
        self.assertIn("power_budget_kw: 22", scenario)
        with open(os.path.join(folder, "capped.yaml"), "w") as f:
            f.write(scenario)
        server = Server(write_config(folder, scenario=os.path.join(folder, "capped.yaml")))
        agents = []
        try:
            for node in ("dev-hgx01-k00-n02", "dev-hgx01-k00-n03"):
                call(server.url, "POST", f"/api/v1/nodes/{node}/drain", OPERATOR, {"reason": "no agent"})
            agents = [start_agent(folder, server.url, "dev-hgx01-k00-n00", "--apply-power-limits"),
                      start_agent(folder, server.url, "dev-hgx01-k00-n01")]
            status, job, _ = call(server.url, "POST", "/api/v1/jobs", LAB_A,
                                  spec("capped", workers=2, gpus=8, command=["sleep", "600"]))
            self.assertEqual(status, 201, job)

            def limits(node):
                agent = call(server.url, "GET", f"/api/v1/nodes/{node}", OPERATOR)[1]["agent"]
                return sorted({g["power_limit_watts"] for g in agent["gpus"]}) if agent else []

            def wait_for(node, watts):
                deadline = time.time() + 30
                while limits(node) != [watts]:
                    self.assertLess(time.time(), deadline, f"{node}: limits {limits(node)}, expected {watts}")
                    time.sleep(0.2)

            deadline = time.time() + 30
            while True:
                events = [e["what"] for e in call(server.url, "GET", f"/api/v1/jobs/{job['id']}/events", LAB_A)[1]["events"]]
                capped = [re.search(r"power capped at (\d+)‰", e) for e in events]
                capped = [int(m.group(1)) for m in capped if m]
                if capped:
                    break
                self.assertLess(time.time(), deadline, events)
                time.sleep(0.1)
            self.assertLess(capped[0], 1000)
            wait_for("dev-hgx01-k00-n00", 700 * capped[0] / 1000)  # a simulated H100's default: 700 W
            # The other node's agent may register after the job started (nodes need no agent here):
            # once it reports readings, they show the default limit, untouched.
            deadline = time.time() + 30
            while not limits("dev-hgx01-k00-n01"):
                self.assertLess(time.time(), deadline, "the second agent never reported its GPUs")
                time.sleep(0.1)
            time.sleep(1)  # a few polls later: it runs the capped job's worker, and must not cap
            self.assertEqual(limits("dev-hgx01-k00-n01"), [700.0], "read only without the switch")
            self.assertEqual(call(server.url, "POST", f"/api/v1/jobs/{job['id']}/cancel", LAB_A)[0], 202)
            wait_for("dev-hgx01-k00-n00", 700.0)
        finally:
            for a in agents:
                a.terminate()
                a.wait(30)
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(folder, ignore_errors=True)


class ServerRestartTest(unittest.TestCase):
    """The server killed mid-job and started again: the workers go on, the job finishes once."""

    def test_job_survives_a_server_restart_and_is_recorded_once(self):
        folder = tempfile.mkdtemp(prefix="joule-restart-test-")
        config = write_config(folder, "agent_timeout_seconds: 5\n", listen=f"127.0.0.1:{free_port()}")
        server = Server(config)
        agents = []
        try:
            for node in ("dev-hgx01-k00-n02", "dev-hgx01-k00-n03"):
                self.assertEqual(call(server.url, "POST", f"/api/v1/nodes/{node}/drain", OPERATOR,
                                      {"reason": "no agent"})[0], 202)
            agents = [start_agent(folder, server.url, n) for n in ("dev-hgx01-k00-n00", "dev-hgx01-k00-n01")]
            results = os.path.join(folder, "results")
            os.makedirs(results)
            body = spec("through-restart", workers=2, gpus=8, command=["python3", os.path.join(ROOT, "tests/server/gang_worker.py")],
                        env={"RESULT_DIR": results, "SLEEP": "4"})
            status, job, _ = call(server.url, "POST", "/api/v1/jobs", LAB_A, body)
            self.assertEqual(status, 201, job)
            pid_file = os.path.join(results, f"pid-{job['id']}-1")
            deadline = time.time() + 30
            while not (os.path.exists(pid_file) and os.path.getsize(pid_file) > 0):
                self.assertLess(time.time(), deadline, "the workers did not start")
                time.sleep(0.1)
            with open(pid_file) as f:
                pid = int(f.read())
            server.stop(signal.SIGKILL)
            time.sleep(1)
            self.assertTrue(os.path.exists(f"/proc/{pid}"), "a server restart must not stop running workers")
            server = Server(config)
            deadline = time.time() + 60
            while (view := call(server.url, "GET", f"/api/v1/jobs/{job['id']}", LAB_A)[1])["state"] == "running":
                self.assertLess(time.time(), deadline, view)
                time.sleep(0.1)
            self.assertEqual((view["state"], view["restarts"]), ("completed", 0), view)
            with open(pid_file) as f:
                self.assertEqual(int(f.read()), pid, "the worker ran once")
            audit = call(server.url, "GET", "/api/v1/audit?limit=1000", OPERATOR)[1]["entries"]
            finishes = [a for a in audit if a["action"] == "finish" and a["target"] == f"job/{job['id']}"]
            self.assertEqual(len(finishes), 1, finishes)
            # Every heartbeat after the end repeats nothing: the end stays recorded once.
            time.sleep(1)
            audit = call(server.url, "GET", "/api/v1/audit?limit=1000", OPERATOR)[1]["entries"]
            self.assertEqual(len([a for a in audit if a["action"] == "finish"]), 1)
        finally:
            for a in agents:
                a.terminate()
                a.wait(30)
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(folder, ignore_errors=True)


class HistoryTest(unittest.TestCase):
    """Ended jobs retire from the view after job_retention_seconds: found by id, listed with
    history=true, kept across a restart from a snapshot."""

    def test_ended_jobs_retire_and_stay_found(self):
        folder = tempfile.mkdtemp(prefix="joule-history-test-")
        config = write_config(folder, "job_retention_seconds: 0.5\nsnapshot_records: 5\n",
                              listen=f"127.0.0.1:{free_port()}")
        server = Server(config)
        try:
            ids = []
            for i in range(4):
                status, job, _ = call(server.url, "POST", "/api/v1/jobs", LAB_A,
                                      spec(f"short-{i}", gpus=1, time_limit=1 if i < 3 else 3600))
                self.assertEqual(status, 201, job)
                ids.append(job["id"])
            deadline = time.time() + 30
            while not all(call(server.url, "GET", f"/api/v1/jobs/{i}", LAB_A)[1].get("retired") for i in ids[:3]):
                self.assertLess(time.time(), deadline, "the short jobs did not retire")
                time.sleep(0.1)
            status, view, _ = call(server.url, "GET", f"/api/v1/jobs/{ids[0]}", LAB_A)
            self.assertEqual((status, view["name"], view["state"], view["end_reason"], view["retired"]),
                             (200, "short-0", "failed", "time limit", True), view)
            self.assertNotIn("spec", view)
            self.assertEqual(call(server.url, "GET", f"/api/v1/jobs/{ids[0]}", LAB_B)[0], 404)

            def listed(query):
                status, page, _ = call(server.url, "GET", "/api/v1/jobs" + query, OPERATOR)
                self.assertEqual(status, 200, page)
                return [j["id"] for j in page["jobs"] if j["id"] in ids]

            self.assertEqual(listed(""), ids[3:])
            cli = [harness.JOULE, "queue", "--server", server.url, "--token", LAB_A, "-t", "all"]
            shown = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
            self.assertNotIn("short-0", shown)
            self.assertIn("short-3", shown)
            shown = subprocess.run(cli + ["--history"], capture_output=True, text=True, check=True).stdout
            self.assertIn("short-0", shown)
            self.assertEqual(listed("?history=true"), ids)
            self.assertEqual(listed("?history=true&state=running"), ids[3:])
            self.assertEqual(listed("?history=true&state=failed"), ids[:3])
            status, error, _ = call(server.url, "GET", "/api/v1/jobs?history=yes", OPERATOR)
            self.assertEqual((status, error["error"]["field"]), (400, "history"), error)
            self.assertEqual(call(server.url, "POST", f"/api/v1/jobs/{ids[0]}/cancel", OPERATOR)[0], 409)
            metrics = call(server.url, "GET", "/metrics")[1]
            self.assertIn("joule_jobs_retired 3\n", metrics)
            self.assertEqual(server.stop(), 0)
            server = Server(config)
            deadline = time.time() + 10  # the line follows /readyz's 200 by a moment
            while not any("the snapshot at record" in line for line in server.log):
                self.assertLess(time.time(), deadline, server.log)
                time.sleep(0.05)
            self.assertEqual(call(server.url, "GET", f"/api/v1/jobs/{ids[1]}", LAB_A)[1]["retired"], True)
            self.assertEqual(listed("?history=true"), ids)
            self.assertIn("joule_jobs_retired 3\n", call(server.url, "GET", "/metrics")[1])
        finally:
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    JOULE = harness.JOULE = os.path.abspath(sys.argv.pop(1))
    unittest.main()

"""The control plane tried as an attacker would (docs/security.md): node-bound agent credentials,
workers' environment, hostile bytes in every part of a request, nonsense values, the open
metrics page, and the CLI's terminal. Each test names the finding it guards.

Usage: security_test.py JOULE_BINARY"""

import http.server
import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import (LAB_A, NODE_KEY, OPERATOR, Server, call, node_token, spec, start_agent, write_config,
                     write_secret)

AGENT_NODE = "dev-hgx01-k00-n00"


def raw(port, data, timeout=10):
    """Sends bytes as they are; returns the answer's status line and body (b"" if closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
    head, _, body = out.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], head, body


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="joule-security-")
        cls.server = Server(write_config(cls.dir, "agent_timeout_seconds: 3\n"))
        cls.url, cls.port = cls.server.url, cls.server.port
        # One agent, with a secret of its operator's in its environment and its credential in
        # JOULE_TOKEN: neither may reach a worker.
        env = dict(os.environ, JOULE_TOKEN=node_token(AGENT_NODE), OPERATORS_SECRET="s3cr3t-of-the-host",
                   LD_LIBRARY_PATH="/opt/cuda/lib64")
        log = open(os.path.join(cls.dir, "agent.log"), "a")
        cls.agent = subprocess.Popen(
            [harness.JOULE, "agent", "--server", cls.url, "--node", AGENT_NODE, "--workdir",
             os.path.join(cls.dir, AGENT_NODE), "--heartbeat-seconds", "0.2", "--telemetry", "simulated",
             "--accelerators", "8", "--worker-env", "LD_LIBRARY_PATH"], stderr=log, env=env)

    @classmethod
    def tearDownClass(cls):
        cls.agent.terminate()
        cls.agent.wait(30)
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def submit(self, token, body, content_type="application/json", headers=None):
        return call(self.url, "POST", "/api/v1/jobs", token, body, content_type, headers)

    def wait_state(self, job, states, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            _, view, _ = call(self.url, "GET", f"/api/v1/jobs/{job}", OPERATOR)
            if view["state"] in states:
                return view
            time.sleep(0.1)
        self.fail(f"job {job} not {states}: {view}")

    # ---- Per-node credentials; workers' environment ----

    def test_workers_get_a_clean_environment_never_the_agents_credential(self):
        # Finding: a tenant job printed JOULE_TOKEN=<the agents' token>.
        out = os.path.join(self.dir, "env.out")
        others = ["dev-hgx01-k00-n01", "dev-hgx01-k00-n02", "dev-hgx01-k00-n03"]  # no agent: keep the job off them
        for node in others:
            call(self.url, "POST", f"/api/v1/nodes/{node}/drain", OPERATOR, {"reason": "no agent"})
        self.addCleanup(lambda: [call(self.url, "POST", f"/api/v1/nodes/{n}/resume", OPERATOR, {}) for n in others])
        status, job, _ = self.submit(OPERATOR, {
            "name": "env", "tenant": "lab-a", "resources": {"gpus": 1, "gpu_type": "h100-sxm"}, "time_limit": 60,
            "command": ["bash", "-c", f"env > {out}"], "env": {"JOB_VAR": "from-the-job"}})
        self.assertEqual(status, 201, job)
        view = self.wait_state(job["id"], ["completed", "failed"])
        self.assertEqual(view["state"], "completed", view)
        deadline = time.time() + 10
        while not os.path.exists(out) and time.time() < deadline:
            time.sleep(0.1)
        env = dict(line.split("=", 1) for line in open(out).read().splitlines() if "=" in line)
        self.assertNotIn("JOULE_TOKEN", env)
        self.assertNotIn("OPERATORS_SECRET", env)
        self.assertNotIn(node_token(AGENT_NODE), open(out).read())
        self.assertEqual(env["JOB_VAR"], "from-the-job")
        self.assertEqual(env["LD_LIBRARY_PATH"], "/opt/cuda/lib64")  # --worker-env passes it on
        self.assertEqual(env["PATH"], "/usr/local/bin:/usr/bin:/bin")
        self.assertEqual(env["LANG"], "C.UTF-8")
        self.assertEqual(env["CUDA_VISIBLE_DEVICES"], "0")
        self.assertEqual(env["JOULE_JOB_ID"], str(job["id"]))

    def test_agent_credential_never_in_its_command_line(self):
        # Finding: `--token` was visible in ps.
        with open(f"/proc/{self.agent.pid}/cmdline", "rb") as f:
            self.assertNotIn(node_token(AGENT_NODE).encode(), f.read())
        r = subprocess.run([harness.JOULE, "agent", "--server", self.url, "--node", AGENT_NODE, "--token",
                            node_token(AGENT_NODE), "--workdir", os.path.join(self.dir, "argv")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--token would show the node's credential to every user of the machine", r.stderr)
        loose = os.path.join(self.dir, "loose.token")
        with open(loose, "w") as f:
            f.write(node_token(AGENT_NODE))
        os.chmod(loose, 0o644)
        r = subprocess.run([harness.JOULE, "agent", "--server", self.url, "--node", AGENT_NODE, "--token-file", loose,
                            "--workdir", os.path.join(self.dir, "argv")], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("others may read or write it: chmod 600 it", r.stderr)

    def test_one_nodes_credential_learns_nothing_of_another_node(self):
        # Finding: with the agents' token a heartbeat for any node returned other tenants' specs
        # (their secrets) and a forged `ended` failed their jobs.
        status, job, _ = self.submit(LAB_A, {"name": "victim", "resources": {"gpus": 8}, "time_limit": 600,
                                             "command": ["sleep", "600"], "env": {"HF_TOKEN": "hf_victims_secret"}})
        self.assertEqual(status, 201, job)
        view = self.wait_state(job["id"], ["running"])
        victim_node = view["nodes"][0]
        attacker = next(n for n in ("dev-hgx01-k00-n01", "dev-hgx01-k00-n02", "dev-hgx01-k00-n03")
                        if n != victim_node)
        status, body, _ = call(self.url, "POST", f"/api/v1/agents/{victim_node}/heartbeat", node_token(attacker),
                               {"address": "10.6.6.6", "ended": [{"job": job["id"], "rank": 0, "run": 1,
                                                                  "exit_code": 1}]})
        self.assertEqual(status, 403, body)
        self.assertNotIn("hf_victims_secret", json.dumps(body))
        # Its own node's heartbeat does not list the victim's worker, nor can it end it.
        status, body, _ = call(self.url, "POST", f"/api/v1/agents/{attacker}/heartbeat", node_token(attacker),
                               {"address": "10.6.6.6", "ended": [{"job": job["id"], "rank": 0, "run": 1,
                                                                  "exit_code": 1}]})
        self.assertEqual(status, 200, body)
        self.assertNotIn("hf_victims_secret", json.dumps(body))
        time.sleep(0.5)
        self.assertEqual(call(self.url, "GET", f"/api/v1/jobs/{job['id']}", OPERATOR)[1]["state"], "running")
        call(self.url, "POST", f"/api/v1/jobs/{job['id']}/cancel", LAB_A)

    def test_node_token_issues_credentials_offline(self):
        key = os.path.join(self.dir, "issued.key")
        r = subprocess.run([harness.JOULE, "node-token", "--key-file", key, "--new-key"], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        first = open(key).read()
        r = subprocess.run([harness.JOULE, "node-token", "--key-file", key, "--new-key"], capture_output=True,
                           text=True)
        self.assertEqual((r.returncode, open(key).read()), (0, first), "an existing key is kept")
        self.assertIn("exists: kept", r.stderr)
        r = subprocess.run([harness.JOULE, "node-token", "--key-file", key, "n1"], capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), node_token("n1", key=first.strip()))
        out = os.path.join(self.dir, "issued")
        r = subprocess.run([harness.JOULE, "node-token", "--key-file", key, "--scenario",
                            os.path.join(harness.ROOT, "scenarios/dev.yaml"), "--out-dir", out],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = sorted(os.listdir(out))
        self.assertIn(f"{AGENT_NODE}.token", files)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(out, files[0])).st_mode), 0o600)
        os.chmod(key, 0o640)
        r = subprocess.run([harness.JOULE, "node-token", "--key-file", key, "n1"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("others may read or write it", r.stderr)

    # ---- Every bad input a 4xx naming the field; no id consumed ----

    def next_id(self):
        status, job, _ = self.submit(LAB_A, spec("probe", gpus=1))
        self.assertEqual(status, 201, job)
        call(self.url, "POST", f"/api/v1/jobs/{job['id']}/cancel", LAB_A)
        return job["id"]

    def test_invalid_utf8_anywhere_is_a_400_and_takes_no_id(self):
        # Finding: 21 requests answered 500 (an error message echoing invalid UTF-8 threw), and an
        # Idempotency-Key of \xff\xfe threw after an id was taken.
        before = self.next_id()
        auth = f"Authorization: Bearer {OPERATOR}\r\n".encode()
        cases = [
            (b"GET /api/v1/nodes/%ff HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", b'"field":"path"'),
            (b"GET /api/v1/jobs?tenant=%ff HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", b'"field":"tenant"'),
            (b"GET /api/v1/jobs?fields=%ff HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", b'"field":"fields"'),
            (b"GET /api/v1/jobs?%ff=1 HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", b'"field":"query"'),
            (b"GET /api/v1/tenants/%c0%af HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n", b'"field":"path"'),
        ]
        for body, content_type, field in [
                (b"name: x\n\xff: 1\nresources: {gpus: 1}\n", b"application/yaml", b'"field":"body"'),
                (b'{"name":"\xed\xa0\x80","resources":{"gpus":1}}', b"application/json", b'"field":"body"'),
                (b"#!/bin/bash\n#SBATCH --nodes=\xff\nhostname\n", b"text/x-shellscript", b'"field":"body"')]:
            cases.append((b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: " + content_type +
                          b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body, field))
        body = b'{"name":"x","tenant":"lab-a","resources":{"gpus":1}}'
        cases.append((b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + b"Idempotency-Key: \xff\xfe\r\n"
                      b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                      b"\r\n\r\n" + body, b'"field":"Idempotency-Key"'))
        for request, field in cases:
            line, _, answer = raw(self.port, request)
            self.assertTrue(line.startswith(b"HTTP/1.1 400"), (request, line, answer))
            self.assertIn(field, answer, request)
        self.assertEqual(self.next_id(), before + 1, "a refused request consumed a job id")

    def test_malformed_heads_are_400s(self):
        # Findings: a token followed by \x00junk authenticated; two different Content-Lengths were
        # accepted; a wrong method answered 404.
        line, _, _ = raw(self.port, f"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}"
                                    .encode() + b"\x00junk\r\n\r\n")
        self.assertTrue(line.startswith(b"HTTP/1.1 400"), line)
        body = b'{"name":"x","resources":{"gpus":1}}'
        line, _, _ = raw(self.port, f"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LAB_A}\r\n"
                                    f"Content-Type: application/json\r\nContent-Length: 5\r\n"
                                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.assertTrue(line.startswith(b"HTTP/1.1 400"), line)
        line, head, answer = raw(self.port, f"DELETE /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                            f"{OPERATOR}\r\n\r\n".encode())
        self.assertTrue(line.startswith(b"HTTP/1.1 405"), line)
        self.assertIn(b"\r\nAllow: POST, GET", head)
        # Two tokens: which one acts? Neither.
        line, _, answer = raw(self.port, f"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LAB_A}\r\n"
                                         f"Authorization: Bearer {OPERATOR}\r\n\r\n".encode())
        self.assertTrue(line.startswith(b"HTTP/1.1 400"), line)
        self.assertIn(b'"field":"Authorization"', answer)

    def test_types_are_strict_and_numbers_checked(self):
        # Findings: "gpus": "8" was taken as 8; a heartbeat's exit_code 4294967296 read as 0.
        status, body, _ = self.submit(LAB_A, {"name": "x", "resources": {"gpus": "8"}})
        self.assertEqual((status, body["error"]["field"]), (400, "resources.gpus"), body)
        self.assertIn('not the string "8"', body["error"]["message"])
        status, body, _ = self.submit(LAB_A, 'name: x\nworkers: "2"\nresources: {gpus: 1}\n', "application/yaml")
        self.assertEqual((status, body["error"]["field"]), (400, "workers"), body)
        status, body, _ = call(self.url, "POST", f"/api/v1/agents/{AGENT_NODE}/heartbeat", node_token(AGENT_NODE),
                               {"ended": [{"job": 1, "rank": 0, "run": 1, "exit_code": 4294967296}]})
        self.assertEqual((status, body["error"]["field"]), (400, "ended[0].exit_code"), body)

    def test_quotas_are_checked_against_the_fleet(self):
        # Finding: a quota of 10,000,000 on a type the fleet has 32 of answered 202.
        status, body, _ = call(self.url, "PATCH", "/api/v1/tenants/lab-a", OPERATOR,
                               {"reserved": {"h100-sxm": 10000000}})
        self.assertEqual((status, body["error"]["field"]), (400, "reserved.h100-sxm"), body)
        self.assertIn("but the fleet has", body["error"]["message"])
        status, body, _ = call(self.url, "PATCH", "/api/v1/tenants/lab-a", OPERATOR, {"reserved": {"tpu-v9": 1}})
        self.assertEqual((status, body["error"]["field"]), (400, "reserved.tpu-v9"), body)

    def test_control_characters_never_reach_a_terminal(self):
        # Finding: an escape sequence passed the YAML path and #SBATCH --job-name, and `joule queue`
        # printed it raw.
        for body, content_type in [('name: "red\\e[31m"\nresources: {gpus: 1}\n', "application/yaml"),
                                   ("#!/bin/bash\n#SBATCH --job-name=red\x1b[31m\nhostname\n", "text/x-shellscript"),
                                   ('{"name":"red\\u009b31m","resources":{"gpus":1}}', "application/json")]:
            status, answer, _ = self.submit(LAB_A, body, content_type)
            self.assertEqual(status, 400, (body, answer))
            self.assertIn("control characters", answer["error"]["message"])
        status, answer, _ = call(self.url, "POST", "/api/v1/nodes/dev-hgx01-k00-n03/drain", OPERATOR,
                                 {"reason": "bad\x1b]0;owned\x07"})
        self.assertEqual((status, answer["error"]["field"]), (400, "reason"), answer)

    def test_cli_escapes_what_it_prints(self):
        # Whatever a server sends (an old journal's names, a hostile server), the CLI prints no
        # control character: a stand-in server answers a job list with escape sequences.
        page = {"jobs": [{"id": 7, "queue": "batch", "name": "red\x1b[31m", "tenant": "t\x9b2J", "state": "pending",
                          "reason": "Priority\x07", "end_reason": None, "started_at": None, "ended_at": None,
                          "workers": 1, "nodes": []}], "next": None}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = json.dumps(page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        try:
            r = subprocess.run([harness.JOULE, "queue", "--server", f"http://127.0.0.1:{fake.server_port}"],
                               capture_output=True, timeout=30, env=dict(os.environ, JOULE_CONFIG="/nonexistent"))
        finally:
            fake.shutdown()
        self.assertEqual(r.returncode, 0, r.stderr)
        for byte in (b"\x1b", b"\x07", b"\xc2\x9b"):
            self.assertNotIn(byte, r.stdout)
        self.assertIn(b"red\\x1b", r.stdout)

    # ---- /metrics ----

    def test_open_metrics_page_names_no_tenant(self):
        # Finding: /metrics without a token showed each tenant's accelerators in use.
        status, open_page, _ = call(self.url, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertNotIn("lab-a", open_page)
        self.assertNotIn('tenant="', open_page)
        status, full, _ = call(self.url, "GET", "/metrics", OPERATOR)
        self.assertIn('joule_tenant_accelerators_in_use{tenant="lab-a"', full)
        self.assertIn('joule_tenant_accelerators_in_use{tenant="lab-b"', full)
        status, own, _ = call(self.url, "GET", "/metrics", LAB_A)
        self.assertIn('tenant="lab-a"', own)
        self.assertNotIn('tenant="lab-b"', own)
        self.assertEqual(call(self.url, "GET", "/metrics", "not-a-token")[0], 401)
        for page in (open_page, full):
            check = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


class IncarnationTest(unittest.TestCase):
    """Finding: after the server's state was reset, a new job 1 failed with the old job 1's exit
    code and never ran. An agent binds its work folder to the journal's cluster id."""

    def test_an_agent_never_reports_another_incarnations_workers(self):
        root = tempfile.mkdtemp(prefix="joule-incarnation-")
        self.addCleanup(shutil.rmtree, root, True)
        node = "dev-hgx01-k00-n01"
        workdir = os.path.join(root, node)  # start_agent works in ROOT/NODE
        others = ["dev-hgx01-k00-n00", "dev-hgx01-k00-n02", "dev-hgx01-k00-n03"]

        def serve(name):
            folder = os.path.join(root, name)
            os.makedirs(folder)
            server = Server(write_config(folder, "agent_timeout_seconds: 1\nagents_required: true\n"))
            self.addCleanup(lambda: server.proc.poll() is not None or server.stop())
            return server

        def agent(server):
            proc = start_agent(root, server.url, node)
            self.addCleanup(lambda: proc.poll() is not None or (proc.kill(), proc.wait()))
            return proc

        def run(server, command):
            deadline = time.time() + 30  # nodes without an agent are marked down: the job goes to ours
            while any(call(server.url, "GET", f"/api/v1/nodes/{n}", OPERATOR)[1]["health"] != "down" for n in others):
                self.assertLess(time.time(), deadline, "nodes without agents were not marked down")
                time.sleep(0.1)
            status, job, _ = call(server.url, "POST", "/api/v1/jobs", LAB_A, {
                "name": "one", "resources": {"gpus": 8, "gpu_type": "h100-sxm"}, "time_limit": 60,
                "command": ["bash", "-c", command]})
            self.assertEqual(status, 201, job)
            return job["id"]

        def wait(server, job, states):
            deadline = time.time() + 60
            while True:
                view = call(server.url, "GET", f"/api/v1/jobs/{job}", OPERATOR)[1]
                if view["state"] in states:
                    return view
                self.assertLess(time.time(), deadline, view)
                time.sleep(0.1)

        old = serve("old")
        first = agent(old)
        job = run(old, "sleep 2; exit 3")
        self.assertEqual(job, 1)
        wait(old, job, ["running"])
        first.kill()  # the agent dies; its worker goes on and records exit 3 in the folder
        first.wait()
        old.stop()
        time.sleep(2.5)
        new = serve("new")  # the state is reset: a new journal, a new cluster id
        agent(new)
        marker = os.path.join(root, "ran")
        job = run(new, f"touch {marker}")
        self.assertEqual(job, 1, "the new incarnation's first job is job 1 too")
        view = wait(new, job, ["completed", "failed"])
        self.assertEqual(view["state"], "completed", view)
        self.assertTrue(os.path.exists(marker), "the new job 1 ran")
        stale = os.listdir(os.path.join(workdir, "stale"))
        self.assertEqual(len(stale), 1, stale)
        self.assertTrue(os.path.exists(os.path.join(workdir, "stale", stale[0], "job-1", "rank-0.run-1.exit")))


class TlsTest(unittest.TestCase):
    """Optional TLS on the listener, for anything beyond loopback: the server's certificate checked
    by the CLI and the agent against a CA file; plain HTTP gets no answer on a TLS port."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="joule-tls-")
        cls.cert, cls.key = os.path.join(cls.dir, "cert.pem"), os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", cls.key, "-out", cls.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        os.chmod(cls.key, 0o600)
        config = write_config(cls.dir, f"tls: {{certificate: {cls.cert}, key: {cls.key}}}\n")
        cls.proc = subprocess.Popen([harness.JOULE, "server", "--config", config], stderr=subprocess.PIPE, text=True)
        line = cls.proc.stderr.readline()
        m = re.search(r"listening on https://127\.0\.0\.1:(\d+)", line)
        assert m, line
        threading.Thread(target=lambda: [None for _ in cls.proc.stderr], daemon=True).start()
        cls.port = int(m.group(1))
        cls.url = f"https://127.0.0.1:{cls.port}"
        cls.trusted = ssl.create_default_context(cafile=cls.cert)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(cls.url + "/readyz", context=cls.trusted, timeout=5) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            assert time.time() < deadline, "the TLS server did not become ready"
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_clients_check_the_servers_certificate(self):
        with self.assertRaises(urllib.error.URLError):  # not signed by a CA this client trusts
            urllib.request.urlopen(self.url + "/readyz", context=ssl.create_default_context(), timeout=5)
        env = dict(os.environ, JOULE_TOKEN=OPERATOR, JOULE_CONFIG="/nonexistent")
        ok = subprocess.run([harness.JOULE, "queue", "--server", self.url, "--cacert", self.cert], env=env,
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("JOBID", ok.stdout)
        untrusted = subprocess.run([harness.JOULE, "queue", "--server", self.url], env=env, capture_output=True,
                                   text=True, timeout=60)
        self.assertEqual(untrusted.returncode, 1, untrusted.stdout)

    def test_plain_http_on_the_tls_port_gets_no_answer(self):
        line, _, _ = raw(self.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        self.assertFalse(line.startswith(b"HTTP/1.1 200"), line)

    def test_an_agent_reports_over_tls(self):
        node = "dev-hgx01-k00-n02"
        agent = start_agent(self.dir, self.url, node, "--cacert", self.cert)
        self.addCleanup(lambda: (agent.terminate(), agent.wait(30)))
        deadline = time.time() + 30
        while True:
            req = urllib.request.Request(self.url + f"/api/v1/nodes/{node}",
                                         headers={"Authorization": f"Bearer {OPERATOR}"})
            with urllib.request.urlopen(req, context=self.trusted, timeout=5) as r:
                if json.loads(r.read())["agent"] is not None:
                    break
            self.assertLess(time.time(), deadline, "the agent was not heard over TLS")
            time.sleep(0.1)

    def test_a_key_others_may_read_is_refused(self):
        loose = os.path.join(self.dir, "loose")
        os.makedirs(loose)
        key = shutil.copy(self.key, os.path.join(loose, "key.pem"))
        os.chmod(key, 0o644)
        config = write_config(loose, f"tls: {{certificate: {self.cert}, key: {key}}}\n")
        r = subprocess.run([harness.JOULE, "server", "--config", config], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("tls.key", r.stderr)
        self.assertIn("chmod 600", r.stderr)


if __name__ == "__main__":
    harness.JOULE = sys.argv.pop(1)
    unittest.main(verbosity=2)

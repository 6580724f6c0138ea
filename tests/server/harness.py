"""What the end-to-end tests share: a `joule server` process, HTTP calls, configs, agents.
The binary is set by each test program's main (harness.JOULE)."""

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOULE = None  # set by the test program's main

OPERATOR, LAB_A, LAB_B = "test-operator-token", "test-lab-a-token", "test-lab-b-token"
NODE_KEY = "test-node-key-0123456789abcdef0123456789abcdef"  # the servers' node_key_file
HGX_NODE = "dev-hgx01-k00-n02"


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def node_token(node, key=NODE_KEY):
    """Node `node`'s credential, derived here as docs/security.md specifies it (not by the binary)."""
    mac = hmac.new(key.encode(), b"joule node credential\n" + node.encode(), hashlib.sha256).hexdigest()
    return f"jn1.{node}.{mac}"


def write_secret(path, text):
    """A file only its owner may read, as the server and the agent require of secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def write_config(folder, extra="", listen="127.0.0.1:0", scenario=None, store="state: state.db",
                 name="server.yaml"):
    path = os.path.join(folder, name)
    write_secret(os.path.join(folder, "node.key"), NODE_KEY + "\n")
    with open(path, "w") as f:
        f.write(f"""scenario: {scenario or ROOT + '/scenarios/dev.yaml'}
listen: {listen}
{store}
tick_seconds: 0.1
tokens:
  - {{name: ops, sha256: {sha256(OPERATOR)}}}
  - {{name: lab-a, tenant: lab-a, sha256: {sha256(LAB_A)}}}
  - {{name: lab-b, tenant: lab-b, sha256: {sha256(LAB_B)}}}
node_key_file: node.key
queues:
  - {{name: batch, default_time: 3600, max_time: 7-00:00:00}}
  - {{name: gb200, gpu_types: [gb200]}}
{extra}""")
    return path


class Server:
    """A `joule server` process; its standard error is kept to check what it logs."""

    def __init__(self, config):
        self.proc = subprocess.Popen([JOULE, "server", "--config", config], stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not ready.wait(60) or self.port is None:
            raise RuntimeError("server did not start: " + "".join(self.log))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                if call(self.url, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                if self.proc.poll() is not None:
                    self.reader.join(10)
                    raise RuntimeError(f"server exited with {self.proc.returncode}: " + "".join(self.log))
            if time.time() > deadline:
                raise RuntimeError("server not ready: " + "".join(self.log))
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(60)
        self.reader.join(10)
        return self.proc.returncode


def call(url, method, path, token=None, body=None, content_type="application/json", headers=None, timeout=60):
    """(status, parsed JSON or text, headers)."""
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, raw, hdrs = res.status, res.read().decode(), res.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw, hdrs


def rss_kib(pid):
    """The process's resident memory, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def spec(name="job", gpus=8, workers=1, **extra):
    s = {"name": name, "workers": workers, "resources": {"gpus": gpus}, "time_limit": 3600}
    s.update(extra)
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(folder, url, node, *extra):
    """A `joule agent` for `node` with 8 simulated H100s, working in folder/node."""
    log = open(os.path.join(folder, f"{node}.log"), "a")
    token_file = write_secret(os.path.join(folder, f"{node}.token"), node_token(node) + "\n")
    return subprocess.Popen(
        [JOULE, "agent", "--server", url, "--token-file", token_file, "--node", node, "--workdir",
         os.path.join(folder, node),
         "--heartbeat-seconds", "0.2", "--grace-seconds", "2", "--telemetry", "simulated", "--accelerators", "8",
         *extra], stderr=log)


ETCD = shutil.which("etcd")


class EtcdCluster:
    """A 3-member etcd cluster from Debian's etcd-server on loopback; members can be killed and
    started again on their data."""

    def __init__(self, folder, members=3):
        self.folder = folder
        self.client = [free_port() for _ in range(members)]
        self.peer = [free_port() for _ in range(members)]
        self.cluster = ",".join(f"e{i}=http://127.0.0.1:{self.peer[i]}" for i in range(members))
        self.procs = [None] * members
        for i in range(members):
            self.start(i)
        deadline = time.time() + 30
        while not self.healthy():
            if time.time() > deadline:
                raise RuntimeError("etcd did not start")
            time.sleep(0.1)

    def endpoints(self):
        return [f"http://127.0.0.1:{p}" for p in self.client]

    def start(self, i):
        log = open(os.path.join(self.folder, f"etcd{i}.log"), "a")
        self.procs[i] = subprocess.Popen(
            [ETCD, "--name", f"e{i}", "--data-dir", os.path.join(self.folder, f"etcd{i}"),
             "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-cluster", self.cluster, "--initial-cluster-state", "new",
             "--initial-cluster-token", "joule-test"], stdout=log, stderr=log)

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait(10)

    def healthy(self):
        try:
            return call(self.endpoints()[0], "GET", "/health")[1].get("health") == "true"
        except (OSError, AttributeError):
            return False

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait(10)


def ha_config(folder, etcd, name, lease=2, extra=""):
    endpoints = ", ".join(etcd.endpoints())
    return write_config(folder, extra, name=name,
                        store=f"store: {{etcd: {{endpoints: [{endpoints}], prefix: /joule/test, "
                              f"lease_seconds: {lease}}}}}")


class Submitters:
    """Clients that submit jobs with idempotency keys to whichever server takes them (`urls()`
    gives the servers to try, in order) until stopped, each retrying a submit until it is
    acknowledged: `sent` (key → job name) and `acked` (key → job id) let a test check that nothing
    acknowledged is lost or made twice. `then(job)` runs after each acknowledgement."""

    def __init__(self, urls, prefix, workers=4, then=None):
        self.urls, self.prefix, self.then = urls, prefix, then
        self.sent, self.acked = {}, {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True) for w in range(workers)]
        for t in self.threads:
            t.start()

    def submit_once(self, name, key):
        for url in self.urls():
            try:
                status, body, _ = call(url, "POST", "/api/v1/jobs", LAB_A, spec(name, gpus=1),
                                       headers={"Idempotency-Key": key}, timeout=30)
            except OSError:
                continue
            if status in (200, 201):
                return body["id"]
        return None

    def run(self, worker):
        n = 0
        while not self.stopping.is_set():
            key = name = f"{self.prefix}-{worker}-{n}"
            with self.lock:
                self.sent[key] = name
            while not self.stopping.is_set():
                job = self.submit_once(name, key)
                if job is not None:
                    with self.lock:
                        self.acked[key] = job
                    if self.then:
                        self.then(job)
                    break
                time.sleep(0.05)
            n += 1

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60)

#!/usr/bin/env python3
"""One writer per state, and servers that keep serving through failures: real `joule server`
processes on loopback. Usage: ha_test.py JOULE_BINARY [unittest args]."""

import base64
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

import harness
from harness import (ETCD, LAB_A, OPERATOR, ROOT, EtcdCluster, Server, Submitters, call, ha_config, spec,
                     start_agent, write_config)


def run_server(config, *extra):
    """A server expected to refuse to start: (exit code, standard error)."""
    r = subprocess.run([harness.JOULE, "server", "--config", config, *extra], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stderr


class SingleWriterTest(unittest.TestCase):
    """A second server on the same state or the same port exits 2 naming why, and the first is
    left serving: before, both ran and split the clients between them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="joule-single-writer-")
        self.config = write_config(self.dir)
        self.server = Server(self.config)

    def tearDown(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_second_server_on_the_same_state_exits_naming_the_holder(self):
        code, err = run_server(self.config)
        self.assertEqual(code, 2, err)
        self.assertIn("state.db: the journal is held by another joule server "
                      f"(pid {self.server.proc.pid} on {socket.gethostname()})", err)
        status, _, _ = call(self.server.url, "POST", "/api/v1/jobs", LAB_A, spec("after"))
        self.assertEqual(status, 201)

    def test_second_server_on_the_same_port_exits(self):
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        code, err = run_server(write_config(other, listen=f"127.0.0.1:{self.server.port}"))
        self.assertEqual(code, 2, err)
        self.assertIn(f"cannot listen on 127.0.0.1:{self.server.port}: the port is in use", err)
        self.assertEqual(call(self.server.url, "GET", "/readyz")[0], 200)

    def test_bad_listen_flags_are_refused(self):
        for bad, why in (("127.0.0.1:abc", "the port must be a number from 0 to 65535"),
                         (":70000", "must be HOST:PORT"),
                         ("127.0.0.1:70000", "the port must be a number from 0 to 65535"),
                         ("::1:80", "an IPv6 host goes in brackets")):
            code, err = run_server(self.config, "--listen", bad)
            self.assertEqual(code, 2, bad)
            self.assertIn(f"--listen: '{bad}'", err)
            self.assertIn(why, err)


def submit(url, name, key, timeout=60):
    return call(url, "POST", "/api/v1/jobs", LAB_A, spec(name, gpus=1), headers={"Idempotency-Key": key},
                timeout=timeout)


@unittest.skipUnless(ETCD, "etcd-server is not installed (scripts/install-deps.sh installs it)")
class EtcdHaTest(unittest.TestCase):
    """Three servers on a 3-member etcd cluster: one leads, the others follow and take over."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="joule-ha-")
        self.etcd = EtcdCluster(self.dir)
        self.servers = [Server(ha_config(self.dir, self.etcd, f"s{i}.yaml")) for i in range(3)]

    def tearDown(self):
        for s in self.servers:
            if s.proc.poll() is None:
                if s.proc.returncode is None:
                    s.proc.send_signal(signal.SIGCONT)
                s.stop(signal.SIGKILL)
        self.etcd.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def roles(self):
        out = {}
        for i, s in enumerate(self.servers):
            if s.proc.poll() is not None:
                continue
            try:
                status, body, _ = call(s.url, "GET", "/readyz", timeout=1)
            except OSError:
                continue
            out[i] = body if status == 200 else f"{status}"
        return out

    def leader(self, timeout=10, besides=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            leaders = [i for i, r in self.roles().items() if isinstance(r, str) and r.startswith("ready: leader")
                       and i != besides]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.05)
        self.fail(f"no single leader: {self.roles()}")

    def test_one_leads_followers_redirect_changes_and_serve_reads(self):
        lead = self.leader()
        leader_url = self.servers[lead].url
        leaders = [i for i, r in self.roles().items() if str(r).startswith("ready: leader")]
        self.assertEqual(leaders, [lead])
        status, body, _ = submit(leader_url, "first", "k1")
        self.assertEqual(status, 201, body)
        job = body["id"]
        for i, s in enumerate(self.servers):
            if i == lead:
                continue
            status, body, headers = submit(s.url, "via-follower", "k2")
            self.assertEqual(status, 307, body)
            self.assertEqual(headers["Location"], leader_url + "/api/v1/jobs")
            deadline = time.time() + 5
            while call(s.url, "GET", f"/api/v1/jobs/{job}", LAB_A)[0] != 200:
                self.assertLess(time.time(), deadline, "the follower never showed the job")
                time.sleep(0.05)
        # The CLI given every server finds the leader by itself.
        urls = ",".join(s.url for s in reversed(self.servers))
        r = subprocess.run([harness.JOULE, "submit", "--server", urls, "--token", LAB_A, "--parsable", "-"],
                           input="name: cli\nresources: {gpus: 1}\n", capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(call(leader_url, "GET", f"/api/v1/jobs/{r.stdout.strip()}", LAB_A)[0], 200)

    def test_kill_9_of_the_leader_under_load_loses_and_duplicates_nothing(self):
        lead = self.leader()
        load = Submitters(lambda: [s.url for s in self.servers], "load")
        time.sleep(1.5)
        killed = time.time()
        self.servers[lead].proc.kill()
        new = self.leader(timeout=15, besides=lead)
        # Failover: from the kill to the new leader accepting a change.
        while submit(self.servers[new].url, "probe", f"probe-{time.time()}")[0] != 201:
            time.sleep(0.02)
        failover = time.time() - killed
        time.sleep(1)
        load.stop()
        acked, sent = load.acked, load.sent
        self.assertLess(failover, 5.0)
        print(f"\nfailover {failover:.2f} s, {len(acked)} acknowledged", file=sys.stderr)
        url = self.servers[new].url
        for key, job in acked.items():
            status, body, _ = call(url, "GET", f"/api/v1/jobs/{job}", LAB_A)
            self.assertEqual(status, 200, key)
            self.assertEqual(body["name"], sent[key])
        # Every submit sent again with its key: the acknowledged ones answer 200 with their job,
        # and no name appears twice.
        for key, name in sent.items():
            status, body, _ = submit(url, name, key)
            self.assertIn(status, (200, 201), body)
            if key in acked:
                self.assertEqual((status, body["id"]), (200, acked[key]))
        jobs = call(url, "GET", "/api/v1/jobs?limit=100000", OPERATOR)[1]["jobs"]
        names = [j["name"] for j in jobs if j["name"].startswith("load-")]
        self.assertEqual(len(names), len(set(names)))

    def test_a_paused_leader_never_writes_and_rejoins_as_follower(self):
        lead = self.leader()
        paused = self.servers[lead]
        status, body, _ = submit(paused.url, "before", "before")
        self.assertEqual(status, 201)
        # A change sent just before the pause is in flight while the lease runs out.
        result = {}
        paused.proc.send_signal(signal.SIGSTOP)
        def during():
            try:
                result["r"] = submit(paused.url, "during-pause", "during", timeout=120)
            except OSError as e:
                result["r"] = (0, str(e))

        t = threading.Thread(target=during)
        t.start()
        new = self.leader(timeout=15, besides=lead)
        status, body, _ = submit(self.servers[new].url, "after", "after")
        self.assertEqual(status, 201)
        time.sleep(0.5)
        paused.proc.send_signal(signal.SIGCONT)
        t.join(30)
        self.assertIn("r", result, "".join(paused.log))
        # The old leader's change was refused (fenced), or redirected: never acknowledged by it.
        self.assertIn(result["r"][0], (307, 503), "".join(paused.log))
        deadline = time.time() + 10
        while not str(self.roles().get(lead, "")).startswith("ready: follower"):
            self.assertLess(time.time(), deadline,
                            f"the old leader did not rejoin: {self.roles()}: {''.join(paused.log)}")
            time.sleep(0.05)
        jobs = call(self.servers[new].url, "GET", "/api/v1/jobs?limit=100000", OPERATOR)[1]["jobs"]
        self.assertEqual(sorted(j["name"] for j in jobs), ["after", "before"])
        # It learnt it no longer leads: from its lease keeper, or from etcd refusing its append.
        self.assertTrue(any(re.search(r"no longer lead|does not lead|was refused", line) for line in paused.log),
                        "".join(paused.log))

    def test_etcd_losing_members_then_quorum_and_getting_it_back(self):
        lead = self.leader()
        url = self.servers[lead].url
        self.etcd.kill(2)
        status, body, _ = submit(url, "one-member-down", "m1")
        self.assertEqual(status, 201, body)
        self.etcd.kill(1)
        refused = 0
        for n in range(3):
            status, body, _ = submit(url, f"no-quorum-{n}", f"q{n}")
            if status != 201:
                refused += 1
                self.assertIn(status, (307, 503), body)
        self.assertEqual(refused, 3)
        self.etcd.start(1)
        self.etcd.start(2)
        lead = self.leader(timeout=30)
        url = self.servers[lead].url
        deadline = time.time() + 20
        while submit(url, "quorum-back", "back")[0] not in (200, 201):
            self.assertLess(time.time(), deadline)
            time.sleep(0.1)
        jobs = call(url, "GET", "/api/v1/jobs?limit=100000", OPERATOR)[1]["jobs"]
        names = sorted(j["name"] for j in jobs)
        # Refused submits may have been committed after their callers heard 503; each is there at
        # most once, and a retry with its key finds it rather than making another.
        self.assertEqual(names.count("one-member-down"), 1)
        self.assertEqual(names.count("quorum-back"), 1)
        for n in range(3):
            self.assertLessEqual(names.count(f"no-quorum-{n}"), 1)


class ReplayingServerAnswersTest(unittest.TestCase):
    """The port opens before the journal is replayed: probes and clients hear 503 "replaying"
    rather than a refused connection, and the server turns ready once the replay is done."""

    def test_readyz_says_replaying_until_the_journal_is_read(self):
        folder = tempfile.mkdtemp(prefix="joule-replaying-")
        try:
            config = write_config(folder)
            server = Server(config)
            load = os.path.join(os.path.dirname(os.path.dirname(harness.JOULE)), "bench", "joule_server_load")
            subprocess.run([load, server.url, LAB_A, "--connections", "16", "--seconds", "120", "--total", "8000"],
                           check=True, capture_output=True, timeout=180)
            self.assertEqual(server.stop(), 0)
            proc = subprocess.Popen([harness.JOULE, "server", "--config", config], stderr=subprocess.PIPE, text=True)
            try:
                line = proc.stderr.readline()
                port = re.search(r"listening on http://127\.0\.0\.1:(\d+) \(replaying the journal\)", line)
                self.assertIsNotNone(port, line)
                url = f"http://127.0.0.1:{port.group(1)}"
                status, body, headers = call(url, "GET", "/readyz")
                self.assertEqual((status, body["error"]["message"]), (503, "not ready: replaying the journal"))
                status, body, headers = call(url, "GET", "/api/v1/jobs", LAB_A)
                self.assertEqual(status, 503, body)
                self.assertEqual(headers["Retry-After"], "1")
                self.assertIn("replayed (", proc.stderr.readline())
                deadline = time.time() + 30
                while call(url, "GET", "/readyz")[0] != 200:
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.05)
                self.assertEqual(call(url, "GET", "/api/v1/jobs?limit=1", LAB_A)[0], 200)
            finally:
                proc.terminate()
                proc.wait(60)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def etcd_count(etcd, prefix):
    """How many keys etcd holds under `prefix`."""
    key = base64.b64encode(prefix.encode()).decode()
    end = base64.b64encode(prefix[:-1].encode() + bytes([prefix.encode()[-1] + 1])).decode()
    answer = call(etcd.endpoints()[0], "POST", "/v3/kv/range", body={"key": key, "range_end": end, "count_only": True})
    return int(answer[1].get("count", 0))


@unittest.skipUnless(ETCD, "etcd-server is not installed (scripts/install-deps.sh installs it)")
class SnapshotsOnEtcdTest(unittest.TestCase):
    """Snapshots every 40 records: etcd keeps the newest and only the log keys after it, and a
    restarted follower and a new leader start from it with every job as before."""

    def test_snapshots_bound_etcd_and_restarts_start_from_them(self):
        folder = tempfile.mkdtemp(prefix="joule-ha-snapshots-")
        etcd = EtcdCluster(folder)
        configs = [ha_config(folder, etcd, f"s{i}.yaml", extra="snapshot_records: 40\n") for i in range(3)]
        servers = [Server(c) for c in configs]
        try:
            lead = next(i for i, s in enumerate(servers) if call(s.url, "GET", "/readyz")[1].startswith("ready: leader"))
            ids = []
            for n in range(200):
                status, body, _ = submit(servers[lead].url, f"snap-{n}", f"snap-{n}")
                self.assertEqual(status, 201, body)
                ids.append(body["id"])
            deadline = time.time() + 20
            while etcd_count(etcd, "/joule/test/snapshot/") == 0:
                self.assertLess(time.time(), deadline, "no snapshot was kept")
                time.sleep(0.1)
            metrics = call(servers[lead].url, "GET", "/metrics")[1]
            metric = lambda name: float(next(line.split()[1] for line in metrics.splitlines()
                                             if line.startswith(name + " ")))
            self.assertGreater(metric("joule_snapshots_total"), 0)
            # Compaction: one log key per group commit was written (200 submits one by one, and the
            # passes); those a snapshot covers are gone.
            commits = metric("joule_journal_commits_total")
            self.assertGreater(commits, 200)
            self.assertLess(etcd_count(etcd, "/joule/test/log/"), commits / 2)
            listing = lambda url: sorted(j["name"] for j in call(url, "GET", "/api/v1/jobs?limit=1000", LAB_A)[1]["jobs"])
            expected = listing(servers[lead].url)
            self.assertEqual(len(expected), 200)
            follower = next(i for i in range(3) if i != lead)
            servers[follower].proc.kill()
            servers[follower].proc.wait()
            servers[follower] = Server(configs[follower])
            deadline = time.time() + 10  # the line follows /readyz's 200 by a moment
            while not any("the snapshot at record" in line for line in servers[follower].log):
                self.assertLess(time.time(), deadline, "".join(servers[follower].log))
                time.sleep(0.05)
            deadline = time.time() + 10
            while listing(servers[follower].url) != expected:
                self.assertLess(time.time(), deadline, "the restarted follower does not show every job")
                time.sleep(0.1)
            servers[lead].proc.kill()
            deadline = time.time() + 15
            while True:
                others = [s for i, s in enumerate(servers) if i != lead]
                leaders = [s for s in others if str(call(s.url, "GET", "/readyz", timeout=2)[1]).startswith("ready: leader")]
                if leaders:
                    break
                self.assertLess(time.time(), deadline, "no new leader")
                time.sleep(0.05)
            self.assertEqual(listing(leaders[0].url), expected)
            status, body, _ = submit(leaders[0].url, "snap-0", "snap-0")  # a retry: found, not made again
            self.assertEqual((status, body["id"]), (200, ids[0]))
        finally:
            for s in servers:
                if s.proc.poll() is None:
                    s.stop(signal.SIGKILL)
            etcd.stop()
            shutil.rmtree(folder, ignore_errors=True)


@unittest.skipUnless(ETCD, "etcd-server is not installed (scripts/install-deps.sh installs it)")
class FailoverWithAgentsTest(unittest.TestCase):
    """A gang runs under two agents while its leader is killed: the workers go on, the new leader
    takes the agents' reports, and the job completes once, never restarted."""

    def test_gang_completes_once_through_a_failover(self):
        folder = tempfile.mkdtemp(prefix="joule-ha-agents-")
        etcd = EtcdCluster(folder)
        servers = [Server(ha_config(folder, etcd, f"s{i}.yaml")) for i in range(3)]
        agents = []
        try:
            urls = ",".join(s.url for s in servers)
            nodes = ["dev-hgx01-k00-n00", "dev-hgx01-k00-n01"]
            agents = [start_agent(folder, urls, node) for node in nodes]
            leader = next(s for s in servers if call(s.url, "GET", "/readyz")[1].startswith("ready: leader"))
            for node in ("dev-hgx01-k00-n02", "dev-hgx01-k00-n03"):
                status, body, _ = call(leader.url, "POST", f"/api/v1/nodes/{node}/drain", OPERATOR,
                                       {"reason": "no agent"})
                self.assertEqual(status, 202, body)
            worker = os.path.join(folder, "gang_worker.py")
            shutil.copy(os.path.join(ROOT, "tests/server/gang_worker.py"), worker)
            results = os.path.join(folder, "results")
            os.makedirs(results)
            body = spec("through-failover", workers=2, gpus=8, command=["python3", worker],
                        env={"RESULT_DIR": results, "SLEEP": "6"})
            status, job, _ = call(leader.url, "POST", "/api/v1/jobs", LAB_A, body)
            self.assertEqual(status, 201, job)
            job = job["id"]
            pid_files = [os.path.join(results, f"pid-{job}-{r}") for r in (0, 1)]
            deadline = time.time() + 30
            while not all(os.path.exists(p) and os.path.getsize(p) > 0 for p in pid_files):
                self.assertLess(time.time(), deadline, "the workers did not start")
                time.sleep(0.1)
            pids = [int(open(p).read()) for p in pid_files]
            leader.proc.kill()
            others = [s for s in servers if s is not leader]
            deadline = time.time() + 60
            while True:
                views = [call(s.url, "GET", f"/api/v1/jobs/{job}", LAB_A, timeout=5)[1] for s in others]
                if any(v.get("state") in ("completed", "failed") for v in views):
                    break
                self.assertLess(time.time(), deadline, f"the job did not end: {views}")
                time.sleep(0.2)
            view = next(v for v in views if v.get("state") in ("completed", "failed"))
            self.assertEqual(view["state"], "completed", view)
            self.assertEqual(view["restarts"], 0, view)
            with open(os.path.join(results, f"result-{job}")) as f:
                self.assertTrue(f.read().startswith("rank 1 of 2 on "))
            # The same processes ran to the end: nobody started them again.
            self.assertEqual([int(open(p).read()) for p in pid_files], pids)
            new = next(s for s in others if call(s.url, "GET", "/readyz")[1].startswith("ready: leader"))
            audit = call(new.url, "GET", "/api/v1/audit?limit=1000", OPERATOR)[1]["entries"]
            self.assertEqual([a["target"] for a in audit if a["action"] == "finish"], [f"job/{job}"])
        finally:
            for a in agents:
                a.terminate()
                a.wait(30)
            for s in servers:
                if s.proc.poll() is None:
                    s.stop(signal.SIGKILL)
            etcd.stop()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    harness.JOULE = os.path.abspath(sys.argv.pop(1))
    unittest.main()

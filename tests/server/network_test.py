#!/usr/bin/env python3
"""The API's network layer (api/http_server.h) as an attacker and a busy campus use it, against a
real `joule server` process on loopback: slow and idle clients, oversized, chunked and compressed
bodies, bodies sent without a valid token, heads too large, thousands of connections. Every
refusal is a 4xx with the API's JSON error body, the server's memory stays bounded (its RSS is
read from /proc), and other clients are still served meanwhile.
Usage: network_test.py JOULE_BINARY [unittest args]."""

import json
import os
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
import unittest
import zlib

import harness
from harness import LAB_A, node_token, Server, call, rss_kib, spec, write_config

MAX_BODY = 1 << 20


def raw(port, data, read=True, timeout=10):
    """Sends bytes on a fresh connection; returns (status, body) of the answer, or None if closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_answer(s) if read else None


def read_answer(s):
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                return None
            got += chunk
        head, body = got.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    except (ConnectionResetError, socket.timeout):
        return None
    status = int(head.split(b" ")[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def post_head(path, length, token=LAB_A, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n").encode()


class NetworkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        cls.folder = tempfile.mkdtemp(prefix="joule-network-test-")
        cls.server = Server(write_config(cls.folder, "http: {head_timeout_seconds: 1, body_timeout_seconds: 1, "
                                                     "idle_timeout_seconds: 3, max_connections: 6000}\n"))
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.folder, ignore_errors=True)

    def assertRefused(self, answer, status, field=None):
        self.assertIsNotNone(answer, "the connection was closed without an answer")
        self.assertEqual(answer[0], status, answer)
        self.assertEqual(answer[1]["error"]["status"], status, answer)
        if field is not None:
            self.assertEqual(answer[1]["error"]["field"], field, answer)

    def latency_ms(self, n=50):
        times = []
        for i in range(n):
            begin = time.time()
            status, _, _ = call(self.server.url, "GET", "/api/v1/jobs?limit=1", LAB_A)
            times.append((time.time() - begin) * 1000)
            self.assertEqual(status, 200)
        return statistics.quantiles(times, n=100)[98]

    def test_a_trickled_head_is_closed_at_its_deadline(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            begin = time.time()
            s.sendall(b"GET /api/v1/jobs HTTP/1.1\r\n")
            answer = None
            for _ in range(40):  # a header byte every 0.1 s: would take 4 s
                try:
                    s.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.1)
            self.assertIsNone(read_answer(s))  # closed
            self.assertLess(time.time() - begin, 3.5, "the trickle extended the head's deadline")

    def test_a_trickled_body_is_closed_at_its_deadline(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            body = json.dumps(spec("slow")).encode()
            s.sendall(post_head("/api/v1/jobs", len(body)))
            begin = time.time()
            for byte in body[:30]:
                try:
                    s.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.1)
            self.assertIsNone(read_answer(s))  # closed
            self.assertLess(time.time() - begin, 3.5, "the trickle extended the body's deadline")

    def test_idle_connections_are_closed_after_the_idle_timeout(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            begin = time.time()
            self.assertEqual(s.recv(1), b"")  # closed by the server, nothing sent
            self.assertGreater(time.time() - begin, 2.5)
            self.assertLess(time.time() - begin, 6)

    def test_a_declared_oversized_body_is_refused_unread(self):
        before = rss_kib(self.server.proc.pid)
        answer = raw(self.port, post_head("/api/v1/jobs", 50 * MAX_BODY) + b"{" * 65536)
        self.assertRefused(answer, 413, "body")
        self.assertLess(rss_kib(self.server.proc.pid) - before, 20_000)

    def test_a_chunked_body_past_the_limit_is_refused_while_read(self):
        before = rss_kib(self.server.proc.pid)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall((f"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LAB_A}\r\n"
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
            chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
            try:
                for _ in range(200):  # 12.5 MiB in all, 12 times the limit
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertRefused(read_answer(s), 413, "body")
        self.assertLess(rss_kib(self.server.proc.pid) - before, 20_000)

    def test_a_compressed_body_is_inflated_within_the_limit(self):
        body = json.dumps(spec("gzipped", gpus=1)).encode()
        packed = zlib.compress(body, wbits=31)  # gzip
        answer = raw(self.port, post_head("/api/v1/jobs", len(packed), extra="Content-Encoding: gzip\r\n") + packed)
        self.assertEqual(answer[0], 201, answer)
        self.assertEqual(answer[1]["name"], "gzipped")
        # A bomb: 200 MB of spaces in about 200 KB.
        before = rss_kib(self.server.proc.pid)
        bomb = zlib.compress(b" " * 200_000_000, 9)
        self.assertLess(len(bomb), MAX_BODY)
        answer = raw(self.port, post_head("/api/v1/jobs", len(bomb), extra="Content-Encoding: deflate\r\n") + bomb)
        self.assertRefused(answer, 413, "body")
        self.assertLess(rss_kib(self.server.proc.pid) - before, 20_000)
        answer = raw(self.port, post_head("/api/v1/jobs", 5, extra="Content-Encoding: gzip\r\n") + b"hello")
        self.assertRefused(answer, 400, "body")
        answer = raw(self.port, post_head("/api/v1/jobs", 5, extra="Content-Encoding: br\r\n") + b"hello")
        self.assertRefused(answer, 415, "Content-Encoding")

    def test_a_body_without_a_valid_token_is_not_read(self):
        # Expect: 100-continue: the server answers 401 instead of asking for the body.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(post_head("/api/v1/jobs", 900_000, token="forged", extra="Expect: 100-continue\r\n"))
            self.assertRefused(read_answer(s), 401, "Authorization")
        # Without it: still 401, the body read and dropped, not parsed.
        answer = raw(self.port, post_head("/api/v1/jobs", 900_000, token="forged") + b"x" * 900_000)
        self.assertRefused(answer, 401, "Authorization")

    def test_a_head_too_large_and_bad_requests(self):
        answer = raw(self.port, b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        self.assertRefused(answer, 431, "headers")
        self.assertRefused(raw(self.port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"), 404)
        self.assertRefused(raw(self.port, b"DELETE /api/v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n"), 405)
        body = b'{"name": "\xff\xfe"}'
        answer = raw(self.port, post_head("/api/v1/jobs", len(body)) + body)
        self.assertEqual(answer[0] // 100, 4, answer)
        self.assertRefused(raw(self.port, b"NOT HTTP AT ALL\r\n\r\n"), 400)  # as nginx answers garbage

    def test_thousands_of_idle_connections_cost_no_service(self):
        quiet = self.latency_ms()
        idle = []
        try:
            for _ in range(3000):
                idle.append(socket.create_connection(("127.0.0.1", self.port), timeout=10))
            time.sleep(0.5)
            metrics = call(self.server.url, "GET", "/metrics")[1]
            open_now = [line for line in metrics.splitlines() if line.startswith("joule_http_connections_open ")]
            self.assertGreaterEqual(int(open_now[0].split()[1]), 3000, open_now)
            busy = self.latency_ms()
            self.assertLess(busy, max(50.0, 5 * quiet), f"p99 {busy:.1f} ms with 3,000 idle connections")
        finally:
            for s in idle:
                s.close()

    def test_parked_long_polls_hold_no_threads(self):
        # 500 agents' long polls parked at once, far more than the 64 handler threads: every other
        # client is still served, and each poll is answered when its wait ends.
        nodes = [n["name"] for n in call(self.server.url, "GET", "/api/v1/nodes", harness.OPERATOR)[1]["nodes"]]
        body = json.dumps({"address": "10.0.0.9", "ended": [], "running": []}).encode()
        # A first heartbeat per node learns the version of its assignments; every poll sends it back.
        versions = {node: call(self.server.url, "POST", f"/api/v1/agents/{node}/heartbeat", node_token(node),
                               body.decode())[1]["version"] for node in nodes}
        quiet = self.latency_ms(20)
        polls = []
        try:
            for i in range(500):
                polls.append((socket.create_connection(("127.0.0.1", self.port), timeout=15), nodes[i % len(nodes)]))
            begin = time.time()
            for s, node in polls:
                s.sendall((f"POST /api/v1/agents/{node}/heartbeat?known={versions[node]}&wait_ms=2500 HTTP/1.1\r\n"
                           f"Host: x\r\nAuthorization: Bearer {node_token(node)}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            time.sleep(0.5)
            busy = self.latency_ms(20)
            self.assertLess(busy, max(50.0, 5 * quiet), f"p99 {busy:.1f} ms with 500 parked long polls")
            for s, node in polls:
                answer = read_answer(s)
                self.assertIsNotNone(answer)
                self.assertEqual((answer[0], answer[1]["version"]), (200, versions[node]), answer)
            self.assertGreater(time.time() - begin, 2.0)  # they waited
            self.assertLess(time.time() - begin, 10.0)
        finally:
            for s, _ in polls:
                s.close()

    def test_connections_past_the_limit_are_closed_at_once(self):
        folder = tempfile.mkdtemp(prefix="joule-network-limit-")
        server = Server(write_config(folder, "http: {max_connections: 20}\n"))
        held = []

        def refused(s):  # the server closed it at once rather than holding it
            time.sleep(0.1)
            s.setblocking(False)
            try:
                return s.recv(1) == b""
            except BlockingIOError:
                return False
            finally:
                s.setblocking(True)
        try:
            # 20 held open: a connection the harness made while starting the server may still count
            # for a moment (a busy machine), so those refused meanwhile are replaced.
            deadline = time.time() + 10
            while len(held) < 20 and time.time() < deadline:
                s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                if refused(s):
                    s.close()
                else:
                    held.append(s)
            self.assertEqual(len(held), 20)
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
                self.assertEqual(extra.recv(1), b"")
            for s in held:
                s.close()
            time.sleep(0.3)
            self.assertEqual(call(server.url, "GET", "/healthz")[0], 200)
            refused = [line for line in call(server.url, "GET", "/metrics")[1].splitlines()
                       if line.startswith("joule_http_connections_refused_total ")]
            self.assertGreaterEqual(int(refused[0].split()[1]), 1)
        finally:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    harness.JOULE = os.path.abspath(sys.argv.pop(1))
    unittest.main()

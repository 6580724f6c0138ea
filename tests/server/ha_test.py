#!/usr/bin/env python3
"""One writer per state, and servers that keep serving through failures: real `joule server`
processes on loopback. Usage: ha_test.py JOULE_BINARY [unittest args]."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import LAB_A, Server, call, spec, write_config


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


if __name__ == "__main__":
    harness.JOULE = os.path.abspath(sys.argv.pop(1))
    unittest.main()

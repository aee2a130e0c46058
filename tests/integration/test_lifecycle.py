#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Process lifecycle: the data directory lock, graceful stop, flags."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NodeStartError, NodeTestCase, run_tests, sanitizer_hits  # noqa: E402


def run_heraldd(args, timeout=30):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.run([harness.HERALDD] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class LifecycleTest(NodeTestCase):
    def test_second_node_on_same_data_dir_is_refused(self):
        a = self.new_node(name="a")
        ca = a.client()
        acks = [ca.append_ok("lk", "n%d" % i, "v%d" % i) for i in range(5)]
        b = self.new_node(name="b", data_dir=a.data, start=False)
        b.spawn()
        try:
            rc = b.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.fail("a second heraldd on the same data directory kept running:\n" + b.log())
        log = b.log()
        self.assertNotEqual(rc, 0, log)
        self.assertGreater(rc, 0, "killed by a signal:\n" + log)
        self.assertIn("LOCK", log, "the refusal does not mention LOCK:\n" + log)
        # b did not serve, and the first node is unharmed.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
        msgs = ca.read_all("lk")
        self.assertEqual([(m["seq"], m["ts"]) for m in msgs], acks)
        ca.append_ok("lk", "after", "after")
        # Once the first one stops, the second may start.
        a.terminate()
        b.start()
        self.assertEqual(len(b.client().read_all("lk")), 6)

    def test_sigterm_under_load_exits_0_and_keeps_acknowledged(self):
        n = self.new_node()
        acked = {}
        unknown = {}
        problems = []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(tid):
            c = n.client(timeout=30)
            i = 0
            while not stop.is_set():
                ch = "term-%d" % (tid % 4)
                nonce = "w%d-%d" % (tid, i)
                i += 1
                try:
                    r = c.append(ch, nonce, "payload %s" % nonce)
                except (OSError, http.client.HTTPException):
                    with lock:
                        unknown[(ch, nonce)] = 1
                    return
                with lock:
                    if r.status == 201:
                        acked[(ch, nonce)] = (r.json()["seq"], r.json()["ts"])
                    elif r.status == 503:
                        if "retry-after" not in r.headers:
                            problems.append(("503 without Retry-After", r))
                        unknown[(ch, nonce)] = 1
                        return
                    else:
                        problems.append(r)
                        return

        ws = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for w in ws:
            w.start()
        time.sleep(1.0)
        t0 = time.time()
        rc = n.terminate(timeout=30, expect_rc=None)
        took = time.time() - t0
        stop.set()
        for w in ws:
            w.join(30)
        self.assertEqual(rc, 0, "SIGTERM under load: exit %d\n%s" % (rc, n.log_tail()))
        self.assertLess(took, 10, "graceful stop took %.1fs" % took)
        self.assertEqual(problems, [])
        self.assertGreater(len(acked), 50)
        log = n.log()
        self.assertEqual(sanitizer_hits(log), [], log)
        n.start()
        c = n.client()
        where = {}
        for ch in ("term-%d" % i for i in range(4)):
            msgs = c.read_all(ch)
            self.assertChannelLog(msgs, ch)
            for m in msgs:
                where[(ch, m["nonce"])] = (m["seq"], m["ts"])
        for k, v in acked.items():
            self.assertEqual(where.get(k), v, "acknowledged %s lost or changed by SIGTERM" % (k,))
        for k in where:
            self.assertTrue(k in acked or k in unknown, "%s was never sent" % (k,))
        # Retry the unknown ones: exactly once.
        for ch, nonce in unknown:
            r = c.append(ch, nonce, "payload %s" % nonce)
            if (ch, nonce) in where:
                self.assertEqual((r.status, r.json()["seq"]), (200, where[(ch, nonce)][0]))
            else:
                self.assertEqual(r.status, 201, r)
        # SIGINT stops gracefully too.
        n.proc.send_signal(signal.SIGINT)
        self.assertEqual(n.proc.wait(30), 0, n.log_tail())
        n.start()
        self.assertEqual(len(n.client().read_all("term-0")), len([k for k in set(where) | set(unknown)
                                                                  if k[0] == "term-0"]))

    def test_repeated_sigterm_still_exits_0(self):
        """A supervisor may send SIGTERM again while the node stops; the
        node must still finish its graceful stop and exit 0 (a late signal
        once killed the final close)."""
        node = self.new_node()
        for round_ in range(8):
            node.proc.send_signal(signal.SIGTERM)
            time.sleep(0.003 * (round_ % 4))
            for _ in range(3):
                if node.proc.poll() is None:
                    node.proc.send_signal(signal.SIGTERM)
                time.sleep(0.005)
            rc = node.proc.wait(30)
            self.assertEqual(rc, 0, "round %d: exit %d\n%s" % (round_, rc, node.log_tail()))
            node.start()

    def test_identity_survives_restart(self):
        n = self.new_node()
        st1 = n.client().status()
        n.terminate()
        n.start()
        st2 = n.client().status()
        self.assertEqual((st1["node_id"], st1["cluster_id"]), (st2["node_id"], st2["cluster_id"]))
        self.assertEqual(len(st1["shards"]), len(st2["shards"]))
        r = n.client().get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn(b"herald_appends_committed_total", r.body)

    def test_help_and_version(self):
        rc, out, err = run_heraldd(["--help"])
        self.assertEqual(rc, 0, err)
        self.assertIn("--data", out)
        self.assertIn("--listen", out)
        self.assertEqual(sanitizer_hits(out + err), [])
        rc, out, err = run_heraldd(["--version"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out + err, r"[0-9]+\.[0-9]+\.[0-9]+")

    def test_bad_flags_exit_2(self):
        d = os.path.join(self.tmp, "unused")
        for args in (["--bogus"], ["--max-payload", "abc"], ["--max-payload", "0"],
                     ["--max-payload", "-5"], ["--max-body", "10"], ["--shards", "0"],
                     ["--shards", "99999"], ["--log-level", "loud"], ["--data"],
                     ["--max-connections", "1x"], ["--dedup-window", "0"], ["-x"]):
            rc, out, err = run_heraldd(["--data", d, "--listen", "127.0.0.1:1"] + args)
            self.assertEqual(rc, 2, "%r: exit %d\n%s%s" % (args, rc, out, err))
            self.assertTrue(err.strip(), "%r: no message on stderr" % (args,))
            self.assertEqual(sanitizer_hits(out + err), [], err)
        self.assertFalse(os.path.exists(os.path.join(d, "LOCK")),
                         "a bad command line still created the data directory")

    def test_unusable_listen_address_or_data_dir(self):
        # A port that is taken.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        try:
            rc, out, err = run_heraldd(["--data", os.path.join(self.tmp, "d1"),
                                        "--listen", "127.0.0.1:%d" % port])
        finally:
            s.close()
        self.assertGreater(rc, 0, out + err)
        self.assertEqual(sanitizer_hits(out + err), [], err)
        # A data directory that is a file.
        f = os.path.join(self.tmp, "a-file")
        open(f, "w").close()
        rc, out, err = run_heraldd(["--data", f, "--listen", "127.0.0.1:%d" % harness.free_port()])
        self.assertGreater(rc, 0, out + err)
        self.assertEqual(sanitizer_hits(out + err), [], err)
        # An unparsable address.
        rc, out, err = run_heraldd(["--data", os.path.join(self.tmp, "d2"), "--listen", "nonsense"])
        self.assertGreater(rc, 0, out + err)
        self.assertEqual(sanitizer_hits(out + err), [], err)


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Retention policies (heraldd --retention), on three-node clusters.

1. Channels under count, bytes, age and zero-count rules are trimmed by
   their shard's leader (--retention-interval 1): every node ends with the
   same first and last seq, the same reads byte for byte, and 410 gone
   below the first seq. A channel under `none`, and one no rule matches,
   keep everything. A channel emptied by age continues its seq. The trims
   are logged with their reason and counted in /metrics; /v1/status shows
   the same policy hash on every node.
2. The leader of the channels' shards is killed while appends go on: the
   new leaders trim by the same policy and every node converges to the
   same logs.
3. Bad --retention values are refused at start with the rule named.
4. herald cluster status warns when nodes' policies differ; herald channel
   info names the rule that applies on the node asked.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Client, Cluster, NodeTestCase, run_tests  # noqa: E402

POLICY = ["--retention-interval", "1",
          "--retention", "cnt:*=messages:5",
          "--retention", "byt:*=bytes:300",
          "--retention", "age:*=age:3s",
          "--retention", "zero:*=messages:0;keep:*=none"]


cli_path = harness.herald_cli


class RetentionPolicyTest(NodeTestCase):
    def new_cluster(self, args=POLICY):
        cl = Cluster(self, n=3, args=args)
        cl.start()
        cl.wait_settled()
        return cl

    def infos(self, cl, ch, nodes=None):
        return [Client(x.port).get_json("/v1/channels/%s" % ch) for x in (nodes or cl.nodes)]

    def wait_info(self, cl, ch, want, timeout=60, nodes=None):
        """Waits until every node's info of ch has these fields."""
        deadline = time.time() + timeout
        while True:
            infos = self.infos(cl, ch, nodes)
            if all(all(i[k] == v for k, v in want.items()) for i in infos):
                return infos[0]
            self.assertLess(time.time(), deadline, "nodes never reached %r on %s: %r"
                            % (want, ch, infos))
            time.sleep(0.2)

    def assert_identical(self, cl, ch, first, nodes=None):
        """Reads from first - 1 are the same bytes everywhere; below, 410."""
        nodes = nodes or cl.nodes
        path = "/v1/channels/%s/messages?after_seq=%d&limit=1000"
        reads = [Client(x.port).get(path % (ch, first - 1)) for x in nodes]
        self.assertTrue(all(r.status == 200 for r in reads), reads)
        self.assertEqual(len({r.body for r in reads}), 1, "reads of %s differ" % ch)
        if first > 1:
            for x in nodes:
                r = Client(x.port).get(path % (ch, first - 2))
                self.assertEqual(r.status, 410, r)
                self.assertEqual(r.json()["first_seq"], first)
        return reads[0].json()["messages"]

    def fill(self, cl, ch, n, size=100, via=0):
        c = Client(cl.nodes[via % len(cl.nodes)].port)
        for i in range(n):
            c.append_ok(ch, "%s-%d" % (ch, i), ("%s-%d-" % (ch, i)).ljust(size, "x"))

    def test_1_policies_trim_identically(self):
        cl = self.new_cluster()
        for ch in ("cnt:a", "byt:a", "free-a", "keep:a", "zero:a"):
            self.fill(cl, ch, 20)
        self.fill(cl, "age:a", 10)
        # messages:5 keeps 16..20; bytes:300 keeps three 100-byte payloads.
        self.wait_info(cl, "cnt:a", {"first_seq": 16, "last_seq": 20})
        self.assertEqual([m["seq"] for m in self.assert_identical(cl, "cnt:a", 16)],
                         list(range(16, 21)))
        self.wait_info(cl, "byt:a", {"first_seq": 18, "last_seq": 20})
        self.assertEqual(len(self.assert_identical(cl, "byt:a", 18)), 3)
        # messages:0 and age empty the channel; its seq goes on.
        self.wait_info(cl, "zero:a", {"first_seq": 21, "last_seq": 20})
        self.wait_info(cl, "age:a", {"first_seq": 11, "last_seq": 10, "epoch": 0})
        self.assertEqual(self.assert_identical(cl, "age:a", 11), [])
        self.assertEqual(Client(cl.nodes[2].port).append_ok("age:a", "late", "again")[0], 11)
        self.wait_info(cl, "age:a", {"last_seq": 11})
        # Untouched: `none`, and no rule at all.
        for ch in ("free-a", "keep:a"):
            i = self.wait_info(cl, ch, {"first_seq": 1, "last_seq": 20})
            self.assertEqual(len(self.assert_identical(cl, ch, 1)), 20)
        # Trims are logged with their reason and counted.
        logs = "".join(x.log() for x in cl.nodes)
        for reason in ("messages", "bytes", "age"):
            self.assertIn("(%s; it held" % reason, logs)
        total = {}
        for x in cl.nodes:
            for line in Client(x.port).get("/metrics").body.decode().splitlines():
                if line.startswith("herald_retention_trims_total{"):
                    k = line.split('"')[1]
                    total[k] = total.get(k, 0) + int(line.split()[-1])
        self.assertTrue(all(total.get(k, 0) >= 1 for k in ("age", "messages", "bytes")), total)
        # Every node shows the same policy.
        st = [cl.status(x)["retention"] for x in cl.nodes]
        self.assertEqual(len({s["hash"] for s in st}), 1, st)
        self.assertEqual(st[0]["interval_ms"], 1000)
        self.assertEqual(st[0]["policy"], "cnt:*=messages:5;byt:*=bytes:300;age:*=age:3s;"
                                          "zero:*=messages:0;keep:*=none")
        self.assertEqual(st[0]["rules"][1], {"pattern": "byt:*", "rule": "byt:*=bytes:300",
                                             "max_age_s": None, "max_messages": None,
                                             "max_bytes": 300})

    def test_2_leader_kill_converges(self):
        cl = self.new_cluster(["--retention-interval", "1", "--retention", "k:*=messages:10"])
        channels = ["k:%d" % i for i in range(8)]
        for ch in channels:
            self.fill(cl, ch, 15, size=20, via=1)
        lead, _ = cl.leaders()
        victim = cl[max(set(lead), key=lead.count)]  # leads the most shards
        survivors = [x for x in cl.nodes if x is not victim]
        victim.kill9()
        # Appends go on through the survivors (seqs 16..25); new leaders
        # take over the sweep.
        for ch in channels:
            c = Client(survivors[0].port, timeout=30)
            for i in range(15, 25):
                deadline = time.time() + 30
                while True:
                    r = c.append(ch, "%s-%d" % (ch, i), "late %d" % i)
                    if r.status in (200, 201):
                        break
                    self.assertEqual(r.status, 503, r)
                    self.assertLess(time.time(), deadline, r)
                    time.sleep(0.2)
        for ch in channels:
            self.wait_info(cl, ch, {"first_seq": 16, "last_seq": 25}, nodes=survivors)
        victim.restart()
        for ch in channels:
            self.wait_info(cl, ch, {"first_seq": 16, "last_seq": 25})
            msgs = self.assert_identical(cl, ch, 16)
            self.assertEqual([m["seq"] for m in msgs], list(range(16, 26)))

    def test_3_bad_policies_refused(self):
        for bad, words in (("chat:*", "PATTERN=LIMIT"), ("x=age:7y", "age must be"),
                           ("*=age:1d;chat:*=messages:1", "never applies"),
                           ("a=messages:1,messages:2", "given twice")):
            p = subprocess.run([harness.HERALDD, "--data", os.path.join(self.tmp, "bad"),
                                "--retention", bad], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn("--retention", p.stderr)
            self.assertIn(words, p.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad")))
        # The config file has the same key; a flag replaces the file's rules.
        conf = os.path.join(self.tmp, "r.conf")
        with open(conf, "w") as f:
            f.write("retention = chat:*=messages:10;*=age:30d\n")
        p = subprocess.run([harness.HERALDD, "--check-config", conf], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p)
        with open(conf, "w") as f:
            f.write("retention = chat:*=messages:ten\n")
        p = subprocess.run([harness.HERALDD, "--check-config", conf], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("r.conf:1", p.stderr)
        self.assertIn("messages must be", p.stderr)

    def test_4_cli(self):
        cl = Cluster(self, n=3, args=["--retention-interval", "1"])
        # Node 3 has another policy: cluster status must say so.
        for x in cl.nodes:
            x.args = list(x.args) + ["--retention",
                                     "cnt:*=messages:5" if x.node_id < 3 else "cnt:*=messages:6"]
        cl.start()
        cl.wait_settled()
        urls = ",".join("http://127.0.0.1:%d" % x.port for x in cl.nodes)
        p = subprocess.run([cli_path(), "--server", "http://127.0.0.1:%d" % cl.nodes[0].port,
                            "cluster", "status", "--servers", urls],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("retention policies differ", p.stdout + p.stderr, p)
        self.fill(cl, "cnt:x", 2)
        p = subprocess.run([cli_path(), "--server", "http://127.0.0.1:%d" % cl.nodes[0].port,
                            "channel", "info", "cnt:x"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p)
        j = json.loads(p.stdout)
        self.assertEqual(j["retention"], "cnt:*=messages:5")
        p = subprocess.run([cli_path(), "--server", "http://127.0.0.1:%d" % cl.nodes[0].port,
                            "channel", "info", "other"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(json.loads(p.stdout)["retention"], None)


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""GET /v1/shards and leader-aware appends, on a three-node cluster.

1. Every node's /v1/shards names itself, the shard count and each shard's
   leader exactly as its /v1/status does; other methods get 405.
2. `herald append --servers` (libherald's router) and `herald bench
   --leader-aware` send every append to its shard's leader: no node's
   forwarded counter moves. The same appends sent to one node without the
   map are forwarded (the counter moves), so the check can fail. Every
   node ends with the same logs, holding every acknowledged append.
3. A node of --servers that cannot be reached passes the append on to the
   next one.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Client, Cluster, NodeTestCase, free_port, herald_cli,  # noqa: E402
                     run_tests)

CHANNELS = ["route-%d" % i for i in range(12)]


class ShardsTest(NodeTestCase):

    def new_cluster(self):
        cl = Cluster(self, n=3)
        cl.start()
        cl.wait_settled(30)
        return cl

    def urls(self, cl):
        return ",".join("http://127.0.0.1:%d" % x.port for x in cl.nodes)

    def forwarded(self, cl):
        return {i: st["appends"]["forwarded"] for i, st in cl.statuses().items()}

    def cli(self, *args):
        return subprocess.run([herald_cli()] + list(args), capture_output=True, text=True,
                              timeout=120)

    def stable_leaders(self, cl, run):
        """run() with the same leaders before and after (an election under
        the sanitizers' load would move appends to a new leader's follower
        and make the forwarded counters prove nothing); retried once."""
        for _ in range(2):
            before = cl.wait_leaders(30)
            out = run()
            if cl.wait_leaders(30) == before:
                return out
        self.fail("leaders kept changing")

    def test_1_map_matches_status(self):
        cl = self.new_cluster()
        lead = cl.wait_leaders(30)
        for x in cl.nodes:
            c = Client(x.port)
            shards = c.get_json("/v1/shards")
            st = c.status()
            self.assertEqual(shards["node_id"], x.node_id)
            self.assertEqual(shards["shards"], len(st["shards"]))
            self.assertEqual(shards["shard_of"], "xxh3_64(channel) % shards")
            self.assertEqual(shards["leaders"], lead)
            self.assertError(c.request("POST", "/v1/shards", body=b"{}"), 405,
                             "method_not_allowed")
            c.close()

    def test_2_leader_aware_appends_are_not_forwarded(self):
        cl = self.new_cluster()
        urls = self.urls(cl)
        acked = {}

        def routed():
            f0 = self.forwarded(cl)
            for ch in CHANNELS:
                r = self.cli("append", ch, "routed to the leader of %s" % ch, "--servers", urls)
                self.assertEqual(r.returncode, 0, r.stderr)
                ans = json.loads(r.stdout)
                acked[(ch, ans["nonce"])] = ans["seq"]
            r = self.cli("bench", "--servers", urls, "--leader-aware", "--in-flight", "4",
                         "--channels", "8", "--duration", "1", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("leader-aware, channels per server", r.stderr)
            run = json.loads(r.stdout)["runs"][0]
            self.assertTrue(run["leader_aware"])
            self.assertGreater(run["acked"], 0)
            return f0, self.forwarded(cl)

        f0, f1 = self.stable_leaders(cl, routed)
        self.assertEqual(f0, f1, "leader-aware appends were forwarded")

        # The control: the same appends through node 1 alone are forwarded
        # for every channel node 1 does not lead.
        def through_node1():
            f0 = self.forwarded(cl)
            for ch in CHANNELS:
                r = self.cli("--server", "http://127.0.0.1:%d" % cl[1].port, "append", ch,
                             "through node 1")
                self.assertEqual(r.returncode, 0, r.stderr)
                ans = json.loads(r.stdout)
                acked[(ch, ans["nonce"])] = ans["seq"]
            return f0, self.forwarded(cl)

        f0, f1 = self.stable_leaders(cl, through_node1)
        lead = cl.wait_leaders(30)
        shard_of = self.shard_map(cl)
        not_led = [ch for ch in CHANNELS if lead[shard_of[ch]] != 1]
        self.assertTrue(not_led, "node 1 leads every channel's shard: nothing to compare")
        self.assertEqual(f1[1] - f0[1], len(not_led))

        logs = cl.wait_converged(CHANNELS, timeout=60)
        log = next(iter(logs.values()))
        for (ch, nonce), seq in acked.items():
            msgs = [m for m in log[ch] if m["nonce"] == nonce]
            self.assertEqual([m["seq"] for m in msgs], [seq], (ch, nonce))

    def shard_map(self, cl):
        """{channel: shard}, learned from the server: the shard whose
        last_index grows when the channel gets an append (the test's own
        oracle, independent of the client's hash)."""
        out = {}
        c = cl[1].client(timeout=10)
        for ch in CHANNELS:
            before = self.last_indexes(cl)
            c.append_ok(ch, "probe-%s-%d" % (ch, free_port()), "probe")
            after = self.last_indexes(cl)
            grown = [i for i in range(len(after)) if after[i] != before[i]]
            self.assertEqual(len(grown), 1, (ch, before, after))
            out[ch] = grown[0]
        return out

    def last_indexes(self, cl):
        st = cl.statuses()
        n = len(next(iter(st.values()))["shards"])
        return [max(v["shards"][i]["last_index"] for v in st.values()) for i in range(n)]

    def test_3_unreachable_node_is_passed_over(self):
        cl = self.new_cluster()
        dead = "http://127.0.0.1:%d" % free_port()
        r = self.cli("append", CHANNELS[0], "past a dead node", "--servers",
                     dead + "," + self.urls(cl))
        self.assertEqual(r.returncode, 0, r.stderr)
        ans = json.loads(r.stdout)
        logs = cl.wait_converged([CHANNELS[0]], timeout=60)
        for log in logs.values():
            self.assertEqual([m["seq"] for m in log[CHANNELS[0]] if m["nonce"] == ans["nonce"]],
                             [ans["seq"]])
        r = self.cli("append", CHANNELS[0], "nobody home", "--servers", dead)
        self.assertEqual(r.returncode, 1)
        self.assertIn("herald append:", r.stderr)


if __name__ == "__main__":
    run_tests()

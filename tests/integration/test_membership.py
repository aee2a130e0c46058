#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Membership on real clusters: a fourth node added and the first removed,
and a node whose disk was lost replaced by a new one. Small snapshot
intervals make the new node's catch-up copy shard state over the peer link.
Every surviving node must end with byte-for-byte identical channel logs."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

CHANNELS = ["room-%d" % i for i in range(6)]
SNAP = ["--snapshot-every", "32"]


class MembershipTest(NodeTestCase):

    def fill(self, node, prefix, n):
        """Appends n messages over CHANNELS through `node`; all must commit.
        A 503 (no leader yet, outcome unknown) is retried with the same
        nonce, as the contract says a client does."""
        c = node.client()
        for i in range(n):
            ch = CHANNELS[i % len(CHANNELS)]
            deadline = time.time() + 30
            while True:
                r = c.append(ch, "%s-%d" % (prefix, i), "payload %s %d" % (prefix, i))
                if r.status != 503 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn(r.status, (200, 201), "append %d: %r" % (i, r))
        return n

    def cluster_id(self, node):
        return node.client().status()["cluster_id"]

    def change(self, node, method, path, body=None):
        c = Client(node.port, timeout=300)
        try:
            r = c.request(method, path, json.dumps(body).encode() if body else None,
                          {"Content-Type": "application/json"} if body else None)
        finally:
            c.close()
        self.assertEqual(r.status, 200, "%s %s: %r" % (method, path, r))
        return r.json()

    def joiner(self, cid, node_id):
        n = Node(self.tmp, name="n%d" % node_id,
                 args=["--id", str(node_id), "--join", cid] + SNAP)
        n.node_id = node_id
        self.nodes.append(n)
        n.start()
        return n

    def voters(self, node):
        """Peers node sees, as ids (the node itself is not listed)."""
        return sorted(p["id"] for p in node.client().status()["peers"])

    def assert_total(self, logs, total):
        n = sum(len(logs[next(iter(logs))][ch]) for ch in CHANNELS)
        self.assertEqual(n, total)

    def test_add_fourth_then_remove_first(self):
        cl = Cluster(self, 3, args=SNAP).start()
        cl.wait_leaders()
        total = self.fill(cl[1], "a", 240)
        n4 = self.joiner(self.cluster_id(cl[1]), 4)
        out = self.change(cl[2], "POST", "/v1/cluster/nodes",
                          {"id": 4, "address": "127.0.0.1:%d" % n4.peer_port})
        self.assertEqual(out["result"], "added")
        # Every shard's log was compacted long ago: node 4 copied state.
        copied = "".join(n4.all_logs())
        self.assertIn("copying state", copied)
        self.assertEqual(self.voters(n4), [1, 2, 3])
        out = self.change(n4, "DELETE", "/v1/cluster/nodes/1")
        self.assertEqual(out["result"], "removed")
        total += self.fill(n4, "b", 60)
        nodes = [cl[2], cl[3], n4]
        logs = cl.wait_converged(CHANNELS, nodes=nodes, timeout=60)
        self.assert_total(logs, total)
        for x in nodes:
            self.assertNotIn(1, self.voters(x))
        for ch in CHANNELS:
            self.assertChannelLog(logs[4][ch], ch)

    def test_replace_node_after_disk_loss(self):
        cl = Cluster(self, 3, args=SNAP).start()
        cl.wait_leaders()
        total = self.fill(cl[1], "a", 150)
        cl[3].kill9()
        shutil.rmtree(cl[3].data)  # the disk is gone
        total += self.fill(cl[2], "b", 60)  # two of three still commit
        self.change(cl[1], "DELETE", "/v1/cluster/nodes/3")
        n4 = self.joiner(self.cluster_id(cl[1]), 4)
        self.change(cl[1], "POST", "/v1/cluster/nodes",
                    {"id": 4, "address": "127.0.0.1:%d" % n4.peer_port})
        total += self.fill(n4, "c", 60)
        logs = cl.wait_converged(CHANNELS, nodes=[cl[1], cl[2], n4], timeout=60)
        self.assert_total(logs, total)
        self.assertEqual(self.voters(n4), [1, 2])

    def test_add_refuses_lower_id_and_bad_body(self):
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        c = cl[1].client()
        r = c.post_json("/v1/cluster/nodes", {"id": 2, "address": "127.0.0.1:1"})
        self.assertError(r, 400, "bad_node_id")
        r = c.post_json("/v1/cluster/nodes", {"id": "x"})
        self.assertError(r, 400, "bad_request")


if __name__ == "__main__":
    run_tests()

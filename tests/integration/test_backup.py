#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Backup (POST /v1/backup, herald backup) and restore (heraldd --restore).

  backup     a node with messages, a trimmed channel and a deleted one
             answers a backup: DIR/backup.json and DIR/state, while it keeps
             taking appends; the same DIR again is 409, bad bodies 400.
  restore    three nodes restore that backup with --bootstrap: every
             channel's log, first seq and epoch equal the source's at the
             backup, byte for byte on every node; appends go on from the
             next seq; a retried nonce from before the backup answers its
             original seq; a fourth node added later copies the state; a
             restart with the same command line starts the node's own data.
  refusals   --restore into a directory that holds a node, with --join, or
             from a directory that is no backup: refused at start, with the
             reason.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, Node, NodeTestCase, free_port, run_tests  # noqa: E402

CHANNELS = ["orders", "chat:1", "chat:2", "trimmed", "deleted"]


def info(c, ch):
    return c.get_json("/v1/channels/%s" % ch)


class BackupTest(NodeTestCase):
    def fill_source(self):
        src = self.new_node()
        c = src.client()
        for i in range(30):
            c.append_ok(CHANNELS[i % 3], "pre-%d" % i, "message %d" % i)
        r = c.append("orders", "bin-1", payload_b64="AAEC/w==")
        self.assertEqual(r.status, 201, r)
        for i in range(10):
            c.append_ok("trimmed", "t-%d" % i, "t %d" % i)
            c.append_ok("deleted", "d-%d" % i, "d %d" % i)
        r = c.post_json("/v1/channels/trimmed/trim", {"before_seq": 6})
        self.assertEqual(r.status, 200, r)
        r = c.request("DELETE", "/v1/channels/deleted")
        self.assertEqual(r.status, 200, r)
        c.append_ok("deleted", "d-new", "after the delete")
        # The cluster's retention policy is shard 0's state: backups carry it.
        r = c.request("PUT", "/v1/retention", '{"rules": "audit:*=none"}')
        self.assertEqual(r.status, 200, r)
        return src, c

    def assert_cluster_policy(self, node):
        p = node.client().get_json("/v1/retention")
        self.assertEqual((p["policy"], p["source"]), ("audit:*=none", "cluster"), node.name)

    def snapshot_of(self, c):
        return {ch: (c.read_all(ch), info(c, ch)) for ch in CHANNELS}

    def backup(self, c, path):
        return c.post_json("/v1/backup", {"dir": path})

    def test_backup_then_restore_three_nodes(self):
        src, c = self.fill_source()
        before = self.snapshot_of(c)
        path = os.path.join(self.tmp, "backup-1")
        r = self.backup(c, path)
        self.assertEqual(r.status, 200, r)
        m = r.json()
        self.assertEqual((m["format"], m["node_id"], m["shards"], m["dir"]), (1, 1, 16, path))
        self.assertEqual(m["cluster_id"], c.status()["cluster_id"])
        on_disk = json.load(open(os.path.join(path, "backup.json")))
        self.assertEqual(on_disk["backup_id"], m["backup_id"])
        self.assertTrue(os.listdir(os.path.join(path, "state")))
        # The source goes on; the backup holds what it had when taken.
        c.append_ok("orders", "post-backup", "not in the backup")
        self.assertEqual(self.backup(c, path).status, 409)
        for body in ({"dir": "relative/path"}, {"dir": 5}, {"dir": path + "-x", "more": 1}, []):
            r = c.post_json("/v1/backup", body)
            self.assertEqual(r.status, 400, (body, r))
        self.assertFalse(os.path.exists(path + "-x"))

        cl = Cluster(self, n=3, args=["--restore", path]).start()
        cl.wait_settled(30)
        logs = cl.wait_converged(CHANNELS)
        for node_id, node_logs in logs.items():
            for ch in CHANNELS:
                self.assertEqual(node_logs[ch], before[ch][0], "node %d %s" % (node_id, ch))
        for x in cl.nodes:
            for ch in CHANNELS:
                got = info(x.client(), ch)
                self.assertEqual(got, before[ch][1], "node %d %s" % (x.node_id, ch))
        c1 = cl[1].client()
        new_id = c1.status()["cluster_id"]
        self.assertNotEqual(new_id, m["cluster_id"])
        self.assertIn("--restore: backup %s" % m["backup_id"], cl[1].log(0))
        for x in cl.nodes:
            self.assert_cluster_policy(x)
        # Appends go on from the restored heads; old nonces are remembered.
        last = before["orders"][0][-1]
        seq, ts = c1.append_ok("orders", "after-restore", "new")
        self.assertEqual(seq, last["seq"] + 1)
        self.assertGreater(ts, last["ts"])
        r = c1.append("chat:1", "pre-1", "message 1")
        self.assertEqual((r.status, r.json()["duplicate"]), (200, True))
        first = [m_ for m_ in before["chat:1"][0] if m_["nonce"] == "pre-1"][0]
        self.assertEqual((r.json()["seq"], r.json()["ts"]), (first["seq"], first["ts"]))

        # A node added later is sent the restored state, not a bare log.
        n4 = Node(self.tmp, name="n4", args=["--id", "4", "--join", new_id])
        self.nodes.append(n4)
        n4.node_id = 4
        n4.start()
        r = c1.post_json("/v1/cluster/nodes", {"id": 4, "address": "127.0.0.1:%d" % n4.peer_port})
        self.assertEqual(r.status, 200, r)
        cl.nodes.append(n4)
        logs = cl.wait_converged(CHANNELS, timeout=90)
        self.assertEqual(logs[4]["trimmed"], before["trimmed"][0])
        self.assertIn("copying state", "".join(n4.all_logs()))
        self.assert_cluster_policy(n4)  # with shard 0's state copy

        # The same command line again (unit files keep it): the node's own data.
        cl[1].terminate()
        cl[1].spawn(["--bootstrap", cl.members])
        cl[1].wait_ready(30)
        self.assertEqual(cl[1].client().status()["cluster_id"], new_id)
        self.assertIn("already holds node 1 of cluster %s" % new_id, cl[1].log())
        cl.wait_converged(CHANNELS)

    def test_refusals(self):
        src, c = self.fill_source()
        path = os.path.join(self.tmp, "backup-2")
        self.assertEqual(self.backup(c, path).status, 200)
        src.terminate()

        def refused(args, why):
            p = subprocess.run([harness.HERALDD, "--listen", "127.0.0.1:%d" % free_port()] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = p.stdout.decode("utf-8", "replace")
            self.assertNotEqual(p.returncode, 0, out)
            self.assertIn(why, out)

        # The source's own data directory already holds a node.
        refused(["--data", src.data, "--restore", path], "holds node 1 of cluster")
        refused(["--data", os.path.join(self.tmp, "j"), "--restore", path, "--join",
                 "0123456789abcdef0123456789ab0010"], "does not go with --join")
        refused(["--data", os.path.join(self.tmp, "n"), "--restore", self.tmp],
                "backup.json")
        refused(["--data", os.path.join(self.tmp, "s"), "--restore", path, "--shards", "8"],
                "the backup has 16 shards")


if __name__ == "__main__":
    run_tests()

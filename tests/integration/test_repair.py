#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Automatic repair of a damaged replica (--repair auto, the default).

A node of a 3-node cluster whose WAL was damaged (a flipped byte in an early
record, valid records after it), or whose RocksDB table is found damaged
while it runs, must repair itself when started again with the same command
line: its old id is removed from every shard, it rejoins under a new id,
catches up, and ends with logs byte for byte equal to the others'. So must
a node that joined with --join (no member on its command line): it asks the
members it kept in DATA/herald.members. A one-node cluster with the same
damage, or a joined node whose member file is damaged, still refuses to
start (exit 3)."""

import glob
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

CHANNELS = ["room-%d" % i for i in range(4)]
EXIT_CORRUPT = 3
EXIT_REPAIR = 6  # damage found running, marked for repair: a restart repairs


def flip_early_record(tc, data_dir):
    """Flips a byte inside a record that at least 3 group commits follow,
    in the newest WAL segment holding records. Returns (segment, offset)."""
    seg, recs = wal_newest_with_records(data_dir)
    tc.assertIsNotNone(seg, "no WAL records in %s" % data_dir)
    starts = [i for i, r in enumerate(recs) if r["flags"] & WAL_BATCH_START]
    picks = [i for i in range(len(recs))
             if sum(1 for s in starts if s > i) >= 3 and recs[i]["len"] > 0]
    tc.assertTrue(picks, "too few group commits in %s" % seg)
    r = recs[random.choice(picks)]
    off = r["off"] + WAL_REC_HDR + random.randrange(r["len"])
    flip_byte(seg, off)
    return seg, off


class RepairTest(NodeTestCase):

    def fill(self, node, prefix, n, size=0):
        """Appends n messages over CHANNELS through node; all must commit
        (a 503 is retried with the same nonce). size: random hex payloads
        of that many bytes (incompressible), else short text."""
        c = node.client()
        for i in range(n):
            ch = CHANNELS[i % len(CHANNELS)]
            payload = ("%x" % random.getrandbits(4 * size) if size else
                       "payload %s %d" % (prefix, i))
            deadline = time.time() + 60
            while True:
                r = c.append(ch, "%s-%d" % (prefix, i), payload)
                if r.status != 503 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn(r.status, (200, 201), "append %d: %r" % (i, r))
        return n

    def status_of(self, node):
        try:
            c = Client(node.port, timeout=5)
            try:
                r = c.get("/v1/status")
                return r.json() if r.status == 200 else None
            finally:
                c.close()
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def wait_repaired(self, node, old_id, timeout=180.0):
        """Waits until node serves under an id other than old_id (it may
        say "repairing" meanwhile). Returns its status."""
        deadline = time.time() + timeout
        seen_repairing = False
        while time.time() < deadline:
            if node.proc.poll() is not None:
                self.fail("node exited with %d instead of repairing:\n%s"
                          % (node.proc.returncode, node.all_logs()[-6000:]))
            st = self.status_of(node)
            if st is not None and st.get("state") == "repairing":
                seen_repairing = True
                self.assertEqual(st["repair"]["old_id"], old_id)
            elif st is not None and st.get("node_id") not in (None, old_id):
                st["seen_repairing"] = seen_repairing
                return st
            time.sleep(0.2)
        self.fail("node did not repair within %.0fs:\n%s" % (timeout, node.all_logs()[-6000:]))

    def shard_members(self, node):
        st = self.status_of(node) or {"shards": []}
        return {s["shard"]: {m["id"]: m["role"] for m in s["members"]} for s in st["shards"]}

    def wait_members(self, node, want, timeout=120.0):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = self.shard_members(node)
            if got and all(m == want for m in got.values()):
                return
            time.sleep(0.25)
        self.fail("shard members never became %r: %r" % (want, got))

    def metric(self, node, name):
        return int(metric(node.client(timeout=5), name))

    def check_repaired(self, cl, node, old_id, total, others=None):
        """node repaired itself: new id, counted, data kept aside, cluster
        configuration without the old id, logs equal on every node (node
        and others, by default cl[1] and cl[2])."""
        others = [cl[1], cl[2]] if others is None else others
        st = self.wait_repaired(node, old_id)
        new_id = st["node_id"]
        self.assertGreater(new_id, max([old_id] + [x.node_id for x in others]),
                           "the new id must exceed every member's")
        self.assertEqual(st["repairs"], 1)
        self.assertEqual(self.metric(node, "herald_repairs_total"), 1)
        logs = node.all_logs()
        self.assertIn("node %d retired from every shard, rejoining cluster" % old_id, logs)
        self.assertIn("as node %d" % new_id, logs)
        self.assertFalse(os.path.exists(os.path.join(node.data, "REPAIR_NEEDED")))
        aside = glob.glob(os.path.join(node.data, "damaged-*"))
        self.assertEqual(len(aside), 1, aside)
        self.assertTrue(os.path.isdir(os.path.join(aside[0], "wal")))
        node.node_id = new_id
        want = {x.node_id: "voter" for x in others + [node]}
        for x in others + [node]:
            self.wait_members(x, want)
        total += self.fill(node, "after", 40)  # it serves appends again
        logs = cl.wait_converged(CHANNELS, nodes=others + [node], timeout=120)
        self.assertEqual(sum(len(logs[new_id][ch]) for ch in CHANNELS), total)
        for ch in CHANNELS:
            self.assertChannelLog(logs[new_id][ch], ch)
        return new_id

    def test_wal_damage_repairs_under_new_id(self):
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        total = self.fill(cl[1], "a", 200)
        cl.wait_converged(CHANNELS, timeout=60)
        cl[3].kill9()
        flip_early_record(self, cl[3].data)
        total += self.fill(cl[1], "b", 40)  # two of three still commit
        cl[3].spawn(["--bootstrap", cl.members])  # the same command line
        new_id = self.check_repaired(cl, cl[3], 3, total)
        # A later start (same command line again) runs the repaired node.
        cl[3].terminate()
        cl[3].spawn(["--bootstrap", cl.members])
        cl[3].wait_ready(60)
        self.assertEqual(self.status_of(cl[3])["node_id"], new_id)
        self.assertEqual(self.status_of(cl[3])["repairs"], 1)

    def node3_stopped_with_tables(self, n):
        """A 3-node cluster holding n appends of 2000-byte incompressible
        payloads, node 3 stopped gracefully. Returns (cluster, appends
        made, node 3's largest RocksDB table)."""
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        total = self.fill(cl[1], "a", n, size=2000)
        cl.wait_converged(CHANNELS, timeout=60)
        cl[3].terminate()  # the final flush writes the state's tables
        tables = sorted(glob.glob(os.path.join(cl[3].data, "state", "*.sst")),
                        key=os.path.getsize)
        self.assertTrue(tables, "no RocksDB table after a graceful stop")
        return cl, total, tables[-1]

    def test_state_damage_found_running(self):
        cl, total, table = self.node3_stopped_with_tables(400)
        # Keys sort applied index, dedup keys, then messages, and the index
        # and filter blocks come last: the middle of a table of 800 KB of
        # incompressible payloads is a message block, which opening does
        # not read (start-up reads the applied index), so the damage is
        # found when a read reaches it.
        self.assertGreater(os.path.getsize(table), 400000)
        flip_byte(table, os.path.getsize(table) // 2)
        total += self.fill(cl[1], "b", 20)
        cl[3].spawn(["--bootstrap", cl.members])
        # Opening finds nothing, so it serves; catching up (a channel's head
        # is the last message key) may reach the damaged block before it
        # answers /v1/status, or else these reads do.
        try:
            cl[3].wait_ready(60)
        except NodeStartError:
            pass
        self.assertIn("serving http", cl[3].log())
        try:
            c = Client(cl[3].port, timeout=10)
            try:
                for ch in CHANNELS:
                    c.read_all(ch)
            finally:
                c.close()
        except (OSError, http.client.HTTPException, AssertionError):
            pass
        rc = cl[3].proc.wait(30)
        self.assertEqual(rc, EXIT_REPAIR, cl[3].log_tail())
        self.assertIn("marked for repair", cl[3].log())
        marker = os.path.join(cl[3].data, "REPAIR_NEEDED")
        self.assertTrue(os.path.exists(marker))
        with open(marker) as f:
            self.assertIn("Corruption", f.read())
        # The supervisor's restart, with the same command line.
        cl[3].spawn(["--bootstrap", cl.members])
        self.check_repaired(cl, cl[3], 3, total)

    def test_state_table_cut_short_repairs(self):
        """A RocksDB table cut short while the node was down: opening the
        state fails (RocksDB checks every table's size against its
        MANIFEST), which is damage, repaired at start like a WAL's."""
        cl, total, table = self.node3_stopped_with_tables(200)
        with open(table, "r+b") as f:
            f.truncate(os.path.getsize(table) * 2 // 3)
        total += self.fill(cl[1], "b", 20)
        cl[3].spawn(["--bootstrap", cl.members])
        self.check_repaired(cl, cl[3], 3, total)
        self.assertIn("Corruption", cl[3].all_logs())

    def test_damaged_identity_repairs(self):
        """herald.id fails its checksum: the cluster and the old id come
        from the command line (--bootstrap, --id)."""
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        total = self.fill(cl[1], "a", 60)
        cl[3].kill9()
        flip_byte(os.path.join(cl[3].data, "herald.id"), 12)
        cl[3].spawn(["--bootstrap", cl.members])
        self.check_repaired(cl, cl[3], 3, total)
        self.assertIn("herald.id is damaged", cl[3].all_logs())

    def test_no_quorum_keeps_asking(self):
        """With the other members down the damaged node serves nothing,
        says "repairing" and why, keeps asking, and repairs once they are
        back."""
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        total = self.fill(cl[1], "a", 200)
        cl.kill9_all()
        flip_early_record(self, cl[3].data)
        cl[3].spawn(["--bootstrap", cl.members])
        deadline = time.time() + 60
        st = None
        while time.time() < deadline:
            st = self.status_of(cl[3])
            if st and st.get("state") == "repairing" and st["repair"]["attempts"] >= 2 \
                    and "not reachable" in st["repair"]["last_error"]:
                break
            time.sleep(0.2)
        self.assertEqual((st or {}).get("state"), "repairing", st)
        self.assertIn("bad record", st["repair"]["reason"])
        self.assertEqual(self.metric(cl[3], "herald_repairing"), 1)
        r = cl[3].client().get("/v1/channels/room-0/messages")
        self.assertError(r, 503, "repairing")
        cl.start(nodes=[cl[1], cl[2]])
        self.check_repaired(cl, cl[3], 3, total)

    def known_members(self, node):
        """{id: address} of node's DATA/herald.members, checking its form
        (the unit test checks the checksum)."""
        with open(os.path.join(node.data, "herald.members")) as f:
            lines = f.read().splitlines()
        self.assertTrue(lines[0].startswith("cluster_id "), lines)
        self.assertTrue(lines[-1].startswith("crc32c "), lines)
        return {int(x.split()[1]): x.split()[2] for x in lines[1:-1]}

    def wait_known_members(self, node, want, timeout=30.0):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            try:
                got = self.known_members(node)
            except (OSError, IndexError):
                got = None
            if got == want:
                return
            time.sleep(0.2)
        self.fail("%s/herald.members never named %r: %r" % (node.data, want, got))

    def test_joined_node_repairs(self):
        """A fourth node joined with --join (only the cluster id on its
        command line) and got data; its WAL is damaged. With its member
        file damaged too it refuses (exit 3, saying why); with the file
        whole it repairs from the members the file names."""
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        cid = cl[1].client().status()["cluster_id"]
        n4 = Node(self.tmp, name="n4", args=["--id", "4", "--join", cid])
        n4.node_id = 4
        self.nodes.append(n4)
        n4.start()
        c = Client(cl[1].port, timeout=300)
        try:
            r = c.post_json("/v1/cluster/nodes",
                            {"id": 4, "address": "127.0.0.1:%d" % n4.peer_port})
        finally:
            c.close()
        self.assertEqual(r.status, 200, r)
        nodes = [cl[1], cl[2], cl[3], n4]
        self.wait_members(n4, {i: "voter" for i in (1, 2, 3, 4)})
        total = self.fill(n4, "a", 200)  # it takes appends: it has data
        cl.wait_converged(CHANNELS, nodes=nodes, timeout=60)
        addresses = {x.node_id: "127.0.0.1:%d" % x.peer_port for x in nodes}
        for x in nodes:  # every node keeps the members, the joiner too
            self.wait_known_members(x, addresses)
        n4.kill9()
        flip_early_record(self, n4.data)
        total += self.fill(cl[1], "b", 40)  # three of four still commit
        # The member file damaged as well: nobody to ask; it says why.
        members_file = os.path.join(n4.data, "herald.members")
        with open(members_file, "rb") as f:
            whole = f.read()
        flip_byte(members_file, len(whole) // 2)
        n4.spawn()  # the same command line: --id 4 --join CLUSTER_ID
        rc = n4.proc.wait(60)
        log = n4.log()
        self.assertEqual(rc, EXIT_CORRUPT, log)
        self.assertIn("herald.members: data is corrupt; not used", log)
        self.assertIn("no other member is known to repair from", log)
        self.assertFalse(os.path.exists(os.path.join(n4.data, "REPAIR_NEEDED")))
        self.assertEqual(glob.glob(os.path.join(n4.data, "damaged-*")), [])
        # The file whole again (as the node wrote it): it repairs by itself.
        with open(members_file, "wb") as f:
            f.write(whole)
        n4.spawn()
        new_id = self.check_repaired(cl, n4, 4, total, others=[cl[1], cl[2], cl[3]])
        self.assertIn("the members to ask, one at a time: 1=%s,2=%s,3=%s"
                      % (addresses[1], addresses[2], addresses[3]), n4.all_logs())
        # The members' files follow the change: the old id gone, the new one in.
        del addresses[4]
        addresses[new_id] = "127.0.0.1:%d" % n4.peer_port
        for x in nodes:
            self.wait_known_members(x, addresses)

    def test_single_node_damage_still_refuses(self):
        node = self.new_node()
        self.fill(node, "a", 120)
        node.kill9()
        seg, off = flip_early_record(self, node.data)
        node.spawn()
        rc = node.proc.wait(60)
        log = node.log()
        self.assertEqual(rc, EXIT_CORRUPT, log)
        self.assertIn(os.path.basename(seg), log)
        self.assertIn("one-node cluster", log)
        self.assertFalse(os.path.exists(os.path.join(node.data, "REPAIR_NEEDED")))
        self.assertEqual(glob.glob(os.path.join(node.data, "damaged-*")), [])
        self.assertTrue(os.path.isdir(os.path.join(node.data, "wal")))

    def test_repair_off_refuses(self):
        cl = Cluster(self, 3).start()
        cl.wait_leaders()
        self.fill(cl[1], "a", 200)
        cl[3].kill9()
        flip_early_record(self, cl[3].data)
        cl[3].spawn(["--bootstrap", cl.members, "--repair", "off"])
        rc = cl[3].proc.wait(60)
        self.assertEqual(rc, EXIT_CORRUPT, cl[3].log())
        self.assertIn("--repair off", cl[3].log())
        self.assertEqual(glob.glob(os.path.join(cl[3].data, "damaged-*")), [])
        self.assertEqual(sorted(self.shard_members(cl[1])[0]), [1, 2, 3])


if __name__ == "__main__":
    run_tests()

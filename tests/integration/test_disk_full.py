#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A full disk: the free-space reserve (--disk-reserve).

The data directory is a small tmpfs (as root; without root skipped, or
failed under HERALD_TEST_NO_SKIP=1). The WAL works there as on a disk:
tmpfs takes O_DIRECT and fallocate, and io_uring writes to it. A filler
file takes the file system below the reserve while the node runs; then
  - appends (HTTP, NDJSON batch, WebSocket) are refused with 507
    insufficient_storage and Retry-After, and nothing is written;
  - reads and SSE tails still answer;
  - /v1/status and /metrics say writes are refused and why;
  - deleting the filler resumes appends without a restart;
  - after a restart every acknowledged append is there, byte for byte.
In a 3-node cluster whose node 3 is short of space: node 3 refuses appends
(its own and, for the shards it leads, forwarded ones), the other nodes take
the rest, node 3 keeps replicating and serving reads, and once its space
returns it takes appends again and every node holds the same logs.
Below half the reserve (the floor) node 3 also stops storing what leaders
replicate to it: it falls behind instead of running out of space and
stopping, and catches up by itself once space returns.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, NodeTestCase, SSEReader, require, run_tests  # noqa: E402

MiB = 1 << 20
# Two preallocated 64 MiB WAL segments (the active one and the next), the
# state, and room for the filler to leave less than the reserve free.
TMPFS_SIZE = 256 * MiB
RESERVE = 32 * MiB


def free_bytes(path):
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize


class DiskFullTest(NodeTestCase):
    def setUp(self):
        require(os.geteuid() == 0, "root to mount a tmpfs")
        super().setUp()
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % TMPFS_SIZE, "tmpfs",
                        self.mnt], check=True)
        self.mounted = True

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            if self.mounted:
                subprocess.run(["umount", "-l", self.mnt], check=False)

    def fill(self, leave):
        """A filler file that leaves `leave` bytes free."""
        path = os.path.join(self.mnt, "filler")
        size = free_bytes(self.mnt) - leave
        self.assertGreater(size, 0)
        with open(path, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size)
        return path

    def append_recorded(self, c, ch, nonce, want, acked):
        """Appends through c, retrying 503s (a leader change) with the same
        nonce; the status must be one of want. An acknowledged append goes
        into acked as (seq, ts); a refusal must be insufficient_storage."""
        for _ in range(100):
            r = c.append(ch, nonce, nonce)
            if r.status != 503:
                break
            time.sleep(0.2)
        self.assertIn(r.status, want, r)
        if r.status in (200, 201):
            acked[(ch, nonce)] = (r.json()["seq"], r.json()["ts"])
        else:
            self.assertEqual(r.json()["error"]["code"], "insufficient_storage")
        return r.status

    def assert_logs_hold_exactly(self, logs, acked):
        """Every node's logs hold the acknowledged appends, with their seq
        and ts, and nothing else."""
        for node_logs in logs.values():
            got = {(m_ch, m["nonce"]): (m["seq"], m["ts"])
                   for m_ch, msgs in node_logs.items() for m in msgs}
            self.assertEqual(got, acked)

    def wait_writes(self, c, accepted, timeout=60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            w = c.status()["writes"]
            if w["accepted"] == accepted:
                return w
            time.sleep(0.1)
        self.fail("writes.accepted never became %r: %r" % (accepted, c.status()["writes"]))

    def test_reserve_refuses_then_resumes(self):
        data = os.path.join(self.mnt, "data")
        n = self.new_node(args=["--disk-reserve", str(RESERVE)], data_dir=data)
        c = n.client()
        w = c.status()["writes"]
        self.assertTrue(w["accepted"], w)
        self.assertIsNone(w["reason"])
        self.assertEqual(w["reserve_bytes"], RESERVE)
        acked = {}
        for i in range(40):
            acked[("df", "a%d" % i)] = c.append_ok("df", "a%d" % i, "before-%d" % i)

        filler = self.fill(RESERVE // 2)
        # The timer's next reading (within a second) sees it.
        w = self.wait_writes(c, False)
        self.assertEqual(w["reason"], "disk_full")
        self.assertLess(w["free_bytes"], RESERVE)
        r = c.append("df", "refused-1", "x")
        self.assertEqual(r.status, 507, r)
        self.assertEqual(r.json()["error"]["code"], "insufficient_storage")
        self.assertEqual(r.headers.get("retry-after"), "5")
        r = c.request("POST", "/v1/messages:batch",
                      body=b'{"channel":"df","nonce":"refused-2","payload":"y"}\n',
                      headers={"Content-Type": "application/x-ndjson"})
        self.assertEqual(r.status, 200, r)
        line = json.loads(r.body.decode().splitlines()[0])
        self.assertEqual(line["error"]["code"], "insufficient_storage", line)
        metrics = c.get("/metrics").body.decode()
        self.assertIn("\nherald_writes_refused 1\n", metrics)
        self.assertIn("\nherald_disk_reserve_bytes %d\n" % RESERVE, metrics)
        self.ws_append_refused(n)

        # Reads and tails go on; nothing refused was written.
        msgs = c.read_all("df")
        self.assertEqual([m["nonce"] for m in msgs], ["a%d" % i for i in range(40)])
        tail = SSEReader(n.port, "df", after_seq=0)
        tail.wait_count(40)
        tail.close()

        os.unlink(filler)
        self.wait_writes(c, True)
        for i in range(40, 60):
            acked[("df", "a%d" % i)] = c.append_ok("df", "a%d" % i, "after-%d" % i)
        # A refused nonce was never written: it appends now as new.
        r = c.append("df", "refused-1", "x")
        self.assertEqual(r.status, 201, r)
        before = c.read_all("df")
        self.assertEqual(len(before), 61)

        n.restart()
        after = n.client().read_all("df")
        self.assertEqual(after, before)  # byte for byte: seq, ts, nonce, payload
        for m in after:
            key = ("df", m["nonce"])
            if key in acked:
                self.assertEqual((m["seq"], m["ts"]), acked[key])
        self.assertIn("below the reserve", n.log(0))
        self.assertIn("accepting appends again", n.log(0))

    def test_cluster_node_short_of_space(self):
        cl = Cluster(self, n=3, args=["--disk-reserve", str(RESERVE)])
        cl[3].data = os.path.join(self.mnt, "n3-data")
        cl.start()
        cl.wait_settled(30)
        channels = ["dc%d" % i for i in range(8)]
        c1, c3 = cl[1].client(timeout=10), cl[3].client(timeout=10)
        acked = {}

        def append(c, ch, nonce, want):
            return self.append_recorded(c, ch, nonce, want, acked)

        for ch in channels:
            append(c1, ch, "pre-" + ch, (201,))
        filler = self.fill(RESERVE * 3 // 4)  # below the reserve, above the floor
        self.wait_writes(c3, False)
        refused_via_n1 = 0
        for ch in channels:
            for i in range(5):
                refused_via_n1 += append(c1, ch, "low-%s-%d" % (ch, i), (201, 507)) == 507
                append(c3, ch, "n3-%s-%d" % (ch, i), (507,))
        leads = sum(1 for sh in c3.status()["shards"] if sh["state"] == "leader")
        print("  node 3 leads %d shards; %d appends through node 1 refused by it"
              % (leads, refused_via_n1))
        if leads == 0:
            self.assertEqual(refused_via_n1, 0)
        # Node 3 still serves reads, and still replicates what the others took.
        cl.wait_converged(channels)

        os.unlink(filler)
        self.wait_writes(c3, True)
        for ch in channels:
            append(c3, ch, "post-" + ch, (201,))
        self.assert_logs_hold_exactly(cl.wait_converged(channels), acked)

    def test_follower_below_floor_falls_behind_then_catches_up(self):
        cl = Cluster(self, n=3, args=["--disk-reserve", str(RESERVE)])
        cl[3].data = os.path.join(self.mnt, "n3-data")
        cl.start()
        cl.wait_settled(30)
        c1, c3 = cl[1].client(timeout=10), cl[3].client(timeout=10)
        candidates = ["fl%d" % i for i in range(12)]
        acked = {}

        def append(ch, nonce, want):
            return self.append_recorded(c1, ch, nonce, want, acked)

        for ch in candidates:
            append(ch, "pre-" + ch, (201,))
        cl.wait_converged(candidates)
        filler = self.fill(RESERVE // 4)
        self.wait_writes(c3, False)
        # A shard that node 3 leads refuses (507: its leader is short of
        # space); the others commit on nodes 1 and 2 alone.
        channels = [ch for ch in candidates
                    if append(ch, "floor-%s-0" % ch, (201, 507)) == 201]
        self.assertTrue(channels)
        for ch in channels:
            for i in range(1, 5):
                append(ch, "floor-%s-%d" % (ch, i), (201,))
        w = c3.status()["writes"]
        self.assertFalse(w["replicating"], w)
        self.assertGreater(w["replication_refused"], 0, w)
        # Node 3 stored none of them, and it is still running.
        for ch in channels:
            got = [m["nonce"] for m in c3.read(ch)["messages"]]
            self.assertEqual(got, ["pre-" + ch], ch)
        self.assertTrue(cl[3].running())
        self.assertIn("no longer storing replicated entries", cl[3].log(0))
        self.assertIn(b"\nherald_replication_refused_disk_total ", c3.get("/metrics").body)

        os.unlink(filler)
        self.wait_writes(c3, True)
        self.assertTrue(c3.status()["writes"]["replicating"])
        self.assert_logs_hold_exactly(cl.wait_converged(candidates), acked)

    def ws_append_refused(self, n):
        try:
            from ws_client import WS
        except ImportError:
            return  # python3-websocket missing: the HTTP checks above stand
        ws = WS(n.port)
        ws.send({"type": "append", "id": "w1", "channel": "df", "nonce": "refused-3",
                 "payload": "z"})
        fr, _ = ws.recv_until(lambda f: f.get("id") == "w1")
        self.assertEqual(fr["type"], "error", fr)
        self.assertEqual(fr["code"], "insufficient_storage", fr)
        ws.close()


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A file system that fails under a running node: every I/O answers EIO.

The data directory is an ext4 image on a loop device (as root; without
root, xfs_io or mkfs.ext4 skipped, or failed under HERALD_TEST_NO_SKIP=1).
While appends stream in, `xfs_io -x -c shutdown` (without flushing) shuts
the file system down under the node: from then on every read, write and
sync answers EIO, the way a disk that died does. This is the moment a
power-cut ordering once gave the node, in which ASan caught a null read.
The node must stop cleanly with exit status 4 (a failed WAL write), logging
why, with no sanitizer report; nothing it acknowledged may be lost: after
the file system is mounted again and the node restarted, every acknowledged
append is there with its seq and ts.
"""

import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NodeTestCase, require, run_tests  # noqa: E402

IMAGE_MB = 512


class DiskErrorTest(NodeTestCase):
    def setUp(self):
        require(os.geteuid() == 0 and shutil.which("xfs_io") and shutil.which("mkfs.ext4"),
                "root, xfs_io and mkfs.ext4")
        super().setUp()
        self.image = os.path.join(self.tmp, "disk.img")
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        with open(self.image, "wb") as f:
            f.truncate(IMAGE_MB << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", self.image], check=True)
        self.mount()

    def mount(self):
        subprocess.run(["mount", "-o", "loop", self.image, self.mnt], check=True)
        self.mounted = True

    def unmount(self):
        subprocess.run(["umount", self.mnt], check=True)
        self.mounted = False
        # The loop device detaches a little after the unmount.
        for _ in range(300):
            out = subprocess.run(["losetup", "-j", self.image], stdout=subprocess.PIPE,
                                 text=True).stdout
            if not out.strip():
                return
            time.sleep(0.1)
        self.fail("loop device of %s still attached" % self.image)

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            if self.mounted:
                subprocess.run(["umount", "-l", self.mnt], check=False)

    def test_eio_everywhere_stops_with_exit_4(self):
        n = self.new_node(data_dir=os.path.join(self.mnt, "data"))
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()

        def writer(t):
            c = n.client(timeout=5)
            i = 0
            while not stop.is_set():
                ch, nonce = "de%d" % (i % 4), "w%d-%d" % (t, i)
                try:
                    r = c.append(ch, nonce, "payload %s" % nonce)
                except OSError:
                    return  # the node is gone
                if r.status == 201:
                    with lock:
                        acked[(ch, nonce)] = (r.json()["seq"], r.json()["ts"])
                i += 1

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        while len(acked) < 200:
            time.sleep(0.05)
        subprocess.run(["xfs_io", "-x", "-c", "shutdown", self.mnt], check=True)
        rc = n.proc.wait(60)
        stop.set()
        for th in threads:
            th.join(30)
        log = n.log()
        self.assertEqual(rc, 4, log[-3000:])
        self.assertIn("stopping the node (exit 4)", log)
        print("  %d appends acknowledged before the shutdown" % len(acked))

        self.unmount()
        self.mount()
        n.start()
        c = n.client()
        got = {}
        for ch in ("de0", "de1", "de2", "de3"):
            msgs = c.read_all(ch)
            self.assertEqual([m["seq"] for m in msgs], list(range(1, len(msgs) + 1)))
            for m in msgs:
                got[(ch, m["nonce"])] = (m["seq"], m["ts"])
        for key, val in acked.items():
            self.assertEqual(got.get(key), val, key)
        c.append_ok("de0", "after-restart", "x")

    def test_graceful_stop_on_a_shut_down_file_system(self):
        """SIGTERM after the file system died under an idle node: the node
        skips the final state flush (a failed state write would stop it
        with exit 5) and still stops cleanly, with status 0;
        the WAL has everything, so a restart loses nothing."""
        n = self.new_node(data_dir=os.path.join(self.mnt, "data"))
        c = n.client()
        acked = {("ds", "n%d" % i): c.append_ok("ds", "n%d" % i, "p%d" % i) for i in range(50)}
        subprocess.run(["xfs_io", "-x", "-c", "shutdown", self.mnt], check=True)
        self.assertEqual(c.read_all("ds")[-1]["nonce"], "n49")  # reads still answer
        rc = n.terminate(expect_rc=None)
        self.assertEqual(rc, 0, n.log()[-3000:])
        self.unmount()
        self.mount()
        n.start()
        got = {("ds", m["nonce"]): (m["seq"], m["ts"]) for m in n.client().read_all("ds")}
        self.assertEqual(got, acked)


if __name__ == "__main__":
    run_tests()

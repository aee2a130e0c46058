#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""hj-eiofs (jepsen/eiofs/eiofs.c) on a real FUSE mount: every operation
heraldd and RocksDB use on a data directory passes through to the backing
directory, and armed operations fail with EIO (and only those).

    test_eiofs.py PATH-TO-hj-eiofs

Needs root and /dev/fuse; exits 77 (skipped) without them, or 1 under
HERALD_TEST_NO_SKIP=1 (scripts/test.sh: there a skip counts as a failure)."""

import errno
import fcntl
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
from harness import require_or_exit  # noqa: E402

EIOFS = None


def eio(fn, *args):
    """Whether fn(*args) failed with EIO."""
    try:
        fn(*args)
    except OSError as e:
        if e.errno == errno.EIO:
            return True
        raise
    return False


class EioFs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="eiofs-test-")
        self.back = os.path.join(self.dir, "back")
        self.mnt = os.path.join(self.dir, "mnt")
        self.ctl = os.path.join(self.dir, "control")
        self.stats = os.path.join(self.dir, "stats")
        os.mkdir(self.back)
        os.mkdir(self.mnt)
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([EIOFS, "--backing=" + self.back, "--control=" + self.ctl,
                                      "--stats=" + self.stats, self.mnt, "-f"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mnt):
            self.assertIsNone(self.proc.poll(), "hj-eiofs exited: " + self.log_text())
            self.assertLess(time.monotonic(), deadline, "not mounted in 10 s")
            time.sleep(0.05)
        self.fds = []

    def tearDown(self):
        for fd in self.fds:
            os.close(fd)
        subprocess.run(["umount", self.mnt], check=False)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        text = self.log_text()
        self.log.close()
        shutil.rmtree(self.dir)
        self.assertEqual(code, 0, "hj-eiofs after umount: " + text)
        self.assertNotIn("Sanitizer", text)

    def log_text(self):
        self.log.flush()
        with open(os.path.join(self.dir, "log"), errors="replace") as f:
            return f.read()

    def arm(self, words):
        tmp = self.ctl + ".tmp"
        with open(tmp, "w") as f:
            f.write(words + "\n")
        os.replace(tmp, self.ctl)

    def open(self, rel, flags, mode=0o644):
        fd = os.open(os.path.join(self.mnt, rel), flags, mode)
        self.fds.append(fd)
        return fd

    def injected(self):
        with open(self.stats) as f:
            w = f.read().split()
        return dict(zip(w[0::2], (int(x) for x in w[1::2])))

    def test_passthrough_of_what_heraldd_and_rocksdb_use(self):
        os.makedirs(os.path.join(self.mnt, "data", "wal"))
        self.assertTrue(os.path.isdir(os.path.join(self.back, "data", "wal")))
        # The WAL: O_DIRECT, fallocate, 4 KiB-aligned RWF_DSYNC writes.
        fd = self.open("data/wal/wal-1.prep", os.O_CREAT | os.O_RDWR | os.O_DIRECT)
        os.posix_fallocate(fd, 0, 1 << 20)
        buf = mmap.mmap(-1, 4096)
        buf.write(b"r" * 4096)
        self.assertEqual(os.pwritev(fd, [buf], 4096, os.RWF_DSYNC), 4096)
        os.fdatasync(fd)
        self.assertEqual(os.pread(fd, 4096, 4096), b"r" * 4096)
        with open(os.path.join(self.back, "data/wal/wal-1.prep"), "rb") as f:
            f.seek(4096)
            self.assertEqual(f.read(4096), b"r" * 4096)
        self.assertEqual(os.fstat(fd).st_size, 1 << 20)
        os.ftruncate(fd, 8192)
        self.assertEqual(os.path.getsize(os.path.join(self.back, "data/wal/wal-1.prep")), 8192)
        # rename, directory fsync, hard links (RocksDB checkpoints), unlink
        os.rename(os.path.join(self.mnt, "data/wal/wal-1.prep"),
                  os.path.join(self.mnt, "data/wal/wal-1.seg"))
        dfd = self.open("data/wal", os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        os.link(os.path.join(self.mnt, "data/wal/wal-1.seg"), os.path.join(self.mnt, "data/x"))
        self.assertEqual(os.stat(os.path.join(self.mnt, "data/x")).st_nlink, 2)
        os.unlink(os.path.join(self.mnt, "data/x"))
        self.assertEqual(sorted(os.listdir(os.path.join(self.mnt, "data"))), ["wal"])
        self.assertEqual(os.listdir(os.path.join(self.mnt, "data/wal")), ["wal-1.seg"])
        # An open file unlinked stays usable and leaves nothing behind.
        t = self.open("data/tmp", os.O_CREAT | os.O_RDWR)
        os.unlink(os.path.join(self.mnt, "data/tmp"))
        os.write(t, b"abc")
        os.fsync(t)
        self.assertEqual(os.pread(t, 3, 0), b"abc")
        self.assertEqual(sorted(os.listdir(os.path.join(self.mnt, "data"))), ["wal"])
        # statfs is the backing file system's (the free-space reserve).
        a, b = os.statvfs(self.mnt), os.statvfs(self.back)
        self.assertEqual((a.f_blocks, a.f_bsize), (b.f_blocks, b.f_bsize))
        # flock (DATA/LOCK) and fcntl locks (RocksDB's LOCK) exclude others.
        lk = self.open("data/LOCK", os.O_CREAT | os.O_RDWR)
        fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lk2 = self.open("data/LOCK", os.O_RDWR)
        with self.assertRaises(BlockingIOError):
            fcntl.flock(lk2, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other = subprocess.run(
            [sys.executable, "-c",
             "import fcntl,os,sys\n"
             "fd=os.open(sys.argv[1],os.O_RDWR)\n"
             "try:\n fcntl.lockf(fd,fcntl.LOCK_EX|fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n sys.exit(3)\n",
             os.path.join(self.mnt, "data/LOCK")])
        self.assertEqual(other.returncode, 3, "another process took the fcntl lock")
        self.assertEqual(self.injected(), {"write": 0, "fsync": 0, "fallocate": 0})

    def test_write_armed(self):
        fd = self.open("f", os.O_CREAT | os.O_RDWR)
        os.write(fd, b"before")
        self.arm("write")
        self.assertTrue(eio(os.pwrite, fd, b"armed!", 0))
        self.assertTrue(eio(os.pwrite, fd, b"more", 6))
        with open(os.path.join(self.back, "f"), "rb") as f:
            self.assertEqual(f.read(), b"before")  # nothing reached the backing file
        os.fsync(fd)  # only writes are armed
        os.posix_fallocate(fd, 0, 4096)
        self.assertEqual(self.injected()["write"], 2)
        self.arm("")
        self.assertEqual(os.pwrite(fd, b"after!", 0), 6)
        self.assertIn("EIO injected: write /f", self.log_text())

    def test_fsync_armed(self):
        fd = self.open("f", os.O_CREAT | os.O_RDWR)
        dfd = self.open(".", os.O_RDONLY | os.O_DIRECTORY)
        direct = self.open("wal", os.O_CREAT | os.O_RDWR | os.O_DIRECT)
        buf = mmap.mmap(-1, 4096)
        buf.write(b"d" * 4096)
        self.arm("fsync")
        self.assertEqual(os.write(fd, b"buffered"), 8)  # a plain write is not a sync
        self.assertTrue(eio(os.fsync, fd))
        self.assertTrue(eio(os.fdatasync, fd))
        self.assertTrue(eio(os.fsync, dfd))
        # An O_DIRECT file's write is a write and a sync: it reaches the
        # backing file and fails, as a failed sync leaves it.
        self.assertTrue(eio(os.pwritev, direct, [buf], 0, os.RWF_DSYNC))
        with open(os.path.join(self.back, "wal"), "rb") as f:
            self.assertEqual(f.read(), b"d" * 4096)
        self.assertEqual(self.injected()["fsync"], 4)
        self.arm("")
        os.fsync(fd)
        os.fsync(dfd)
        self.assertEqual(os.pwritev(direct, [buf], 0, os.RWF_DSYNC), 4096)

    def test_once_fails_one_operation(self):
        fd = self.open("f", os.O_CREAT | os.O_RDWR)
        self.arm("write fsync once")
        self.assertTrue(eio(os.write, fd, b"a"))
        self.assertEqual(os.write(fd, b"b"), 1)
        os.fsync(fd)
        self.assertEqual(self.injected(), {"write": 1, "fsync": 0, "fallocate": 0})
        self.arm("fsync once")  # a new arming fires once again
        self.assertTrue(eio(os.fsync, fd))
        os.fsync(fd)

    def test_under_limits_the_errors_to_a_directory(self):
        os.makedirs(os.path.join(self.mnt, "data/state"))
        os.makedirs(os.path.join(self.mnt, "data/wal"))
        state = self.open("data/state/000001.sst", os.O_CREAT | os.O_RDWR)
        wal = self.open("data/wal/wal-1.seg", os.O_CREAT | os.O_RDWR)
        statex = self.open("data/statex", os.O_CREAT | os.O_RDWR)  # a name, not under it
        sdir = self.open("data/state", os.O_RDONLY | os.O_DIRECTORY)
        self.arm("write fsync under=/data/state/")
        self.assertTrue(eio(os.write, state, b"s"))
        self.assertTrue(eio(os.fsync, sdir))
        os.write(wal, b"w")
        os.fsync(wal)
        os.write(statex, b"x")
        self.assertEqual(self.injected(), {"write": 1, "fsync": 1, "fallocate": 0})
        self.assertIn("only under /data/state", self.log_text())

    def test_fallocate_armed_and_bad_control_keeps_state(self):
        fd = self.open("f", os.O_CREAT | os.O_RDWR)
        self.arm("fallocate")
        self.assertTrue(eio(os.posix_fallocate, fd, 0, 4096))
        os.write(fd, b"x")
        self.arm("write sometimes")  # not understood: still fallocate only
        self.assertTrue(eio(os.posix_fallocate, fd, 0, 4096))
        os.write(fd, b"x")
        self.assertIn("unknown word 'sometimes'", self.log_text())
        os.unlink(self.ctl)  # no control file: disarmed
        os.posix_fallocate(fd, 0, 4096)
        self.assertEqual(self.injected()["fallocate"], 2)


def main():
    global EIOFS
    if len(sys.argv) < 2:
        print("usage: test_eiofs.py PATH-TO-hj-eiofs", file=sys.stderr)
        return 2
    EIOFS = sys.argv.pop(1)
    require_or_exit("test_eiofs", os.geteuid() == 0 and os.path.exists("/dev/fuse"),
                    "root and /dev/fuse")
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

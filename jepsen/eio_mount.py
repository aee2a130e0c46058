# SPDX-License-Identifier: Apache-2.0
"""A node's data directory seen through hj-eiofs (jepsen/eiofs/eiofs.c): a
passthrough FUSE file system over the node's disk that fails writes or
fsyncs with EIO while armed, on a file system that is otherwise healthy.
Only runs with the disk-eio nemesis mount it; the others see the disk
directly."""

import os
import subprocess
import time

MOUNT_WAIT = 10.0


def binary_next_to(heraldd):
    """hj-eiofs of the same build tree as heraldd, or None."""
    path = os.path.join(os.path.dirname(os.path.dirname(heraldd)), "jepsen", "eiofs",
                        "hj-eiofs")
    return path if os.access(path, os.X_OK) else None


def unavailable(binary):
    """None, or why this machine cannot mount hj-eiofs."""
    if binary is None:
        return "hj-eiofs is not built next to heraldd (needs libfuse3-dev)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    with open("/proc/filesystems") as f:
        if not any(line.split()[-1:] == ["fuse"] for line in f):
            return "the kernel has no fuse file system"
    return None


class EioMount:
    """hj-eiofs mirroring `backing` at `mountpoint`; the control and stats
    files lie beside the mount point, outside it."""

    def __init__(self, binary, backing, mountpoint, log_path):
        self.binary = binary
        self.backing = backing
        self.mountpoint = mountpoint
        self.control = mountpoint + ".control"
        self.stats = mountpoint + ".stats"
        self.log_path = log_path
        self.proc = None

    def start(self):
        """Mounts it (disarmed) and waits until the mount is there."""
        self.arm("")
        os.makedirs(self.mountpoint, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--backing=" + self.backing, "--control=" + self.control,
                 "--stats=" + self.stats, self.mountpoint, "-f"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + MOUNT_WAIT
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None:
                raise RuntimeError("hj-eiofs on %s exited with %s (see %s)"
                                   % (self.mountpoint, self.proc.returncode, self.log_path))
            if time.monotonic() > deadline:
                raise RuntimeError("hj-eiofs: %s not mounted after %.0f s"
                                   % (self.mountpoint, MOUNT_WAIT))
            time.sleep(0.05)

    def stop(self):
        """Unmounts it; the process using it must be gone. A mount still
        busy after a few tries is detached lazily, so that the disk below
        can be unmounted."""
        if os.path.ismount(self.mountpoint):
            for _ in range(20):
                if subprocess.run(["umount", self.mountpoint],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def arm(self, words):
        """Which operations fail from the next one on: any of 'write',
        'fsync', 'fallocate', plus 'once'; '' disarms."""
        tmp = self.control + ".tmp"
        with open(tmp, "w") as f:
            f.write(words + "\n")
        os.replace(tmp, self.control)

    def injected(self):
        """{'write': n, 'fsync': n, 'fallocate': n}: errors injected so far
        by the current mount."""
        try:
            with open(self.stats) as f:
                w = f.read().split()
            return dict(zip(w[0::2], (int(x) for x in w[1::2])))
        except (OSError, ValueError):
            return {}

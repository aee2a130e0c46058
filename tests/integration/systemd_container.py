# SPDX-License-Identifier: Apache-2.0
"""A real systemd as PID 1 of a container of the test's own.

`unshare` makes new PID, mount, cgroup and UTS namespaces (the network is
the host's: units listen on loopback ports the test picks), and
systemd_container/init.sh lays the container out over the host's own
files and execs /lib/systemd/systemd. /etc, /usr/local and /var are
overlays with upper layers in a tmpfs of the namespace, /var/lib/herald is
the container directory's var-lib-herald, /run and /tmp are fresh tmpfs,
the cgroup tree is a cgroup v2 directory made for this container: whatever
runs inside (install.sh, useradd, systemctl) never writes the host's files.
Commands run inside through `nsenter`.

stop() kills the namespace's PID 1 (the kernel then kills everything in
it), kills what is left in its cgroup and removes the cgroup: nothing stays
running after a test, whatever state it failed in.
"""

import ctypes
import os
import re
import shutil
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INIT = os.path.join(HERE, "systemd_container", "init.sh")
UNITS = os.path.join(HERE, "systemd_container", "units")
SYSTEMD = "/lib/systemd/systemd"


def _cgroup2_mount():
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup on a
    unified host, /sys/fs/cgroup/unified on a hybrid one), or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split(" ")[0] == "cgroup2":
                return pre.split(" ")[4]
    return None


def unavailable_reason():
    """None when a container can run here, else why not (a skip reason)."""
    if os.geteuid() != 0:
        return "needs root (namespaces, mounts, a cgroup of its own)"
    for tool in (SYSTEMD, "/usr/bin/systemctl", "/usr/bin/journalctl"):
        if not os.access(tool, os.X_OK):
            return "%s missing (Debian package systemd)" % tool
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return "%s missing (Debian package util-linux)" % tool
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return "the kernel has no overlay file system"
    cg2 = _cgroup2_mount()
    if cg2 is None:
        return "no cgroup v2 hierarchy mounted (systemd needs one)"
    probe = os.path.join(cg2, "herald-itest-probe-%d" % os.getpid())
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as e:
        return "cannot make a cgroup in %s (%s)" % (cg2, e.strerror)
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount", "--cgroup", "--uts",
                            "--propagation", "private", "--mount-proc",
                            "mount", "-t", "tmpfs", "tmpfs", "/run"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if probe.returncode != 0:
        return "cannot make namespaces and mounts here (%s)" % probe.stdout.decode(
            "utf-8", "replace").strip()
    return None


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies (a
    CTest timeout, say); unshare --kill-child then kills the container."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)


def _remove_stale_cgroups(cg2):
    """Removes the cgroups of containers whose test process died without
    stop() (killed), after killing what they hold."""
    for name in os.listdir(cg2):
        m = re.match(r"^herald-itest-(\d+)-\d+$", name)
        if not m or os.path.exists("/proc/%s" % m.group(1)):
            continue
        _kill_and_remove(os.path.join(cg2, name), 10)


def _kill_and_remove(path, timeout):
    kill = os.path.join(path, "cgroup.kill")
    if os.path.exists(kill):
        with open(kill, "w") as f:
            f.write("1")
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for root, _, _ in os.walk(path, topdown=False):  # leaves first
            try:
                os.rmdir(root)
            except OSError as e:
                left.append("%s: %s" % (root, e.strerror))
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError("container cgroup %s not removable: %s" % (path, left))
        time.sleep(0.1)


class SystemdContainer:
    def __init__(self, workdir, keep=()):
        """keep: directories that must stay visible inside (the source tree
        and the build, when the checkout is under /tmp, which the
        container replaces with a fresh one)."""
        self.keep = [os.path.abspath(k) for k in keep]
        self.dir = os.path.join(workdir, "container")
        os.makedirs(self.dir)
        self.cgroup = os.path.join(_cgroup2_mount(), "herald-itest-%d-%d" % (
            os.getpid(), int(time.monotonic() * 1000)))
        self.proc = None   # unshare
        self.pid = None    # the container's PID 1 (systemd), as the host sees it

    # -- life --
    def start(self, timeout=60.0):
        _remove_stale_cgroups(os.path.dirname(self.cgroup))
        os.mkdir(self.cgroup)
        # The shell moves itself into the container's cgroup, then becomes
        # unshare: the new cgroup namespace is rooted there.
        script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
        self.log = open(os.path.join(self.dir, "unshare.log"), "wb")
        self.proc = subprocess.Popen(
            ["sh", "-c", script, "sh", self.cgroup,
             "unshare", "--pid", "--fork", "--kill-child", "--mount", "--cgroup", "--uts",
             "--propagation", "private", "--mount-proc", "sh", INIT, self.dir, UNITS]
            + self.keep,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("the container exited (%d) while booting:\n%s"
                                     % (self.proc.returncode, self.diagnostics()))
            if self.pid is None:
                self.pid = self._init_pid()
            elif self._is_systemd(self.pid):
                state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
            time.sleep(0.1)
        if state != "running":
            raise AssertionError("systemd in the container is %r after %.0fs:\n%s\n%s"
                                 % (state, timeout, self.run(["systemctl", "--failed",
                                                              "--no-pager"], check=False).stdout
                                    if self.pid else "", self.diagnostics()))
        return self

    def _init_pid(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    @staticmethod
    def _is_systemd(pid):
        try:
            return os.readlink("/proc/%d/exe" % pid).endswith("/systemd")
        except OSError:
            return False

    def stop(self):
        """Ends the container and everything in it, and removes its cgroup."""
        if self.pid is not None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
            self.log.close()
        if os.path.isdir(self.cgroup):
            _kill_and_remove(self.cgroup, 30)

    # -- inside --
    def run(self, argv, check=True, input=None, timeout=120):
        """Runs argv inside the container (its mounts, PIDs, cgroups, host
        name; as root, from /). Returns the CompletedProcess (text)."""
        p = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", "-C", "-u", "--"]
                           + list(argv), input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, universal_newlines=True)
        if check and p.returncode != 0:
            raise AssertionError("in the container: %s -> %d\n%s%s"
                                 % (" ".join(argv), p.returncode, p.stdout, p.stderr))
        return p

    def write(self, path, text, mode="0644", group="root"):
        """Writes a file inside the container (root:GROUP, MODE)."""
        self.run(["sh", "-c", 'cat > "$1" && chmod "$2" "$1" && chgrp "$3" "$1"', "sh",
                  path, mode, group], input=text)

    def systemctl(self, *args, check=True, timeout=300):
        return self.run(["systemctl", "--no-pager"] + list(args), check=check, timeout=timeout)

    def show(self, unit, *props):
        """{property: value} from `systemctl show -p ...`."""
        out = self.systemctl("show", "-p", ",".join(props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit):
        """The unit's journal (heraldd's stderr and systemd's lines about it)."""
        return self.run(["journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit]).stdout

    def notifications(self, unit):
        """What systemd received on the notification socket from the unit's
        processes, in order (it logs each at debug level): [(pid, text)]."""
        out = []
        pat = re.compile(r"^%s: Got notification message from PID (\d+) \((.*)\)$"
                         % re.escape(unit))
        text = self.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit]).stdout
        for line in text.splitlines():
            m = pat.match(line)
            if m:
                out.append((int(m.group(1)), m.group(2)))
        return out

    def diagnostics(self):
        parts = []
        for name in ("unshare.log", "console.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    parts.append("--- %s (tail)\n%s" % (name, f.read()[-8000:]))
        return "\n".join(parts)


def main():
    """By hand: boots a container and runs a shell in it (or the command
    given); leaving the shell ends the container."""
    import sys
    import tempfile
    why = unavailable_reason()
    if why:
        sys.stderr.write("systemd_container: no systemd can run here: %s\n" % why)
        return 2
    work = tempfile.mkdtemp(prefix="herald-systemd-")
    box = SystemdContainer(work)
    try:
        box.start()
        sys.stderr.write("systemd_container: systemd is PID %d (host view), files in %s; "
                         "leave the shell to end it\n" % (box.pid, box.dir))
        argv = sys.argv[1:] or ["bash", "-l"]
        return subprocess.call(["nsenter", "-t", str(box.pid), "-m", "-p", "-C", "-u",
                                "--wd=/", "--"] + argv)
    finally:
        box.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

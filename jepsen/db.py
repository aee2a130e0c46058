# SPDX-License-Identifier: Apache-2.0
"""The herald nodes under test: each one in its own namespace, with its data
directory on an ext4 image of its own (so that a power cut can drop what was
not fsynced), optionally with libfaketime preloaded (so that its wall clock
can jump and drift while it runs)."""

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time

import eio_mount
import hclient
import hosts

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
IMAGE_MB = 4096  # sparse; a 10-minute run at full speed wrote more than 1 GiB of WAL


class Node:
    def __init__(self, idx, root, heraldd, logdir, use_faketime, use_images):
        self.idx = idx                  # the namespace and address, fixed
        self.id = idx                   # the raft node id, new after a replace
        self.name = "n%d" % idx
        self.ns = hosts.node_ns(idx)
        self.ip = hosts.node_ip(idx)
        self.heraldd = heraldd
        self.image = os.path.join(root, self.name + ".img")
        self.mnt = os.path.join(root, self.name)
        self.data = os.path.join(self.mnt, "data")
        self.clock_file = os.path.join(root, self.name + ".faketime")
        self.log_path = os.path.join(logdir, self.name + ".log")
        self.use_faketime = use_faketime
        self.use_images = use_images
        self.proc = None
        self.paused = False
        self.removed_id = None
        self.supervised = False  # final.CrashWatcher restarts it if it dies
        self.damaged = False     # the corrupt nemesis damaged its disk
        self.disk_failed = False  # the disk-error nemesis shut its file system down
        self.disk_full = False    # the disk-full nemesis filled its disk
        self.eio = None           # disk-eio runs: hj-eiofs between the node and its disk
        self.eio_injected = {}    # errors it injected, summed over the fault windows
        self.held = False         # a process fault holds it (nemesis.Schedule)
        self.needs_replace = False
        # --repair runs: heraldd repairs damage itself (--repair auto) when
        # started with its first command line (--id origin, --bootstrap or
        # --join), asking the members it kept in DATA/herald.members too.
        self.repair = False
        self.origin_id = idx       # the id of that first command line
        self.bootstrap_spec = None  # its --bootstrap list; None once replaced by an operator
        self.join_spec = None       # the cluster id it joined with once replaced
        self.repair_pending = False  # restarted on damage: its new id is awaited
        self.tls_dir = None       # with --tls: the run's CA, certificates and tokens

    # ------------------------------------------------------------ disk ---

    def use_eiofs(self, binary, logdir):
        """The node sees its disk through hj-eiofs (the disk-eio nemesis):
        its data directory moves into the FUSE mount; the disk's own mount
        point (self.mnt) stays where the other nemeses shut it down, fill
        it and mount it again."""
        self.eio = eio_mount.EioMount(binary, self.mnt, self.mnt + ".eio",
                                      os.path.join(logdir, self.name + ".eiofs.log"))
        self.data = os.path.join(self.eio.mountpoint, "data")

    def make_disk(self):
        os.makedirs(self.mnt, exist_ok=True)
        if self.use_images:
            with open(self.image, "wb") as f:
                f.truncate(IMAGE_MB << 20)
            hosts.sh("mkfs.ext4", "-q", "-F", self.image)
            self.mount()
        elif self.eio:
            self.eio.start()

    def mount(self):
        hosts.sh("mount", "-o", "loop", self.image, self.mnt)
        if self.eio:
            self.eio.start()

    def unmount(self):
        if self.eio:
            self.eio.stop()  # it holds the disk's root open
        hosts.sh("umount", self.mnt)
        # The loop device goes away a little after the unmount; mounting the
        # image before it has would take the old device, and with it the old,
        # shut-down file system.
        deadline = time.monotonic() + 30
        while hosts.sh("losetup", "-j", self.image).strip():
            if time.monotonic() > deadline:
                raise RuntimeError("%s: loop device still attached 30 s after umount"
                                   % self.image)
            time.sleep(0.05)

    def power_cut(self):
        """The disk loses everything not yet fsynced: the ext4 shutdown ioctl
        without a journal flush (as a power cut would), then the process
        dies, and the file system is mounted again. Needs the image."""
        # The process dies first: a power cut gives it no moment on a file
        # system that answers EIO (dirty pages are still dropped below).
        self.kill()
        self.shut_down_disk()
        self.remount()

    def shut_down_disk(self):
        """Every I/O on the node's file system answers EIO from now on, and
        what was not fsynced is dropped (until remount())."""
        hosts.sh("xfs_io", "-x", "-c", "shutdown", self.mnt)

    def remount(self):
        """A shut-down file system mounted again; the process must be gone."""
        self.unmount()
        self.mount()
        probe = os.path.join(self.mnt, "remounted")
        with open(probe, "w"):  # EIO here: the old, shut-down mount is back
            pass
        os.unlink(probe)

    def wipe(self):
        shutil.rmtree(self.data, ignore_errors=True)
        self.damaged = False

    # --------------------------------------------------------- process ---

    def set_clock(self, spec):
        """A libfaketime spec: '+0', '+90s', '-30s', '+0 x1.05' (drift)."""
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(spec + "\n")
        os.replace(tmp, self.clock_file)

    def _env(self):
        env = ["ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:verify_asan_link_order=0",
               "UBSAN_OPTIONS=print_stacktrace=1"]
        if self.use_faketime:
            if not os.path.exists(self.clock_file):
                self.set_clock("+0")
            env += ["LD_PRELOAD=" + FAKETIME_LIB,
                    "FAKETIME_TIMESTAMP_FILE=" + self.clock_file,
                    "FAKETIME_CACHE_DURATION=1",
                    "FAKETIME_DONT_FAKE_MONOTONIC=1",
                    "NO_FAKE_STAT=1"]
        return env

    def start(self, bootstrap=None, join=None, supervised=True):
        assert not self.alive(), self.name
        if self.repair and not bootstrap and not join:
            bootstrap = self.bootstrap_spec  # every start: the same command line
            join = None if bootstrap else self.join_spec
        node_id = self.origin_id if self.repair and (bootstrap or join) else self.id
        args = [self.heraldd, "--id", str(node_id), "--data", self.data,
                "--listen", "%s:%d" % (self.ip, hclient.PORT),
                "--peer-listen", "%s:%d" % (self.ip, hclient.PORT + 1),
                "--repair", "auto" if self.repair else "off"]
        if self.tls_dir:  # TLS on both ports, tokens on
            pem, key = (os.path.join(self.tls_dir, self.name + x) for x in (".pem", ".key"))
            args += ["--auth-file", os.path.join(self.tls_dir, "tokens"),
                     "--tls-cert", pem, "--tls-key", key, "--peer-tls-cert", pem,
                     "--peer-tls-key", key, "--peer-tls-ca", os.path.join(self.tls_dir, "ca.pem")]
        else:  # the test network of namespaces, not loopback: open on purpose
            args += ["--insecure"]
        if bootstrap:
            args += ["--bootstrap", bootstrap]
        if join:
            args += ["--join", join]
        log = open(self.log_path, "ab")
        log.write(("=== %s start id %d: %s\n" % (time.strftime("%H:%M:%S"), self.id,
                                                 " ".join(args[1:]))).encode())
        log.flush()
        self.proc = subprocess.Popen(hosts.in_ns(self.ns) + ["env"] + self._env() + args,
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.paused = False
        self.supervised = supervised

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        self.supervised = False
        if self.proc is not None:
            if self.paused:
                self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.proc.wait()
        self.paused = False

    def stop(self, timeout=30.0):
        """A graceful stop; kill -9 if it does not finish in time."""
        self.supervised = False
        if self.proc is None:
            return None
        self.resume()
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return "no exit in %.0f s" % timeout

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused:
            self.signal(signal.SIGCONT)
        self.paused = False

    def status(self, timeout=2.0):
        return hclient.get_json(self.ip, "/v1/status", timeout)

    def exited_with(self):
        return None if self.proc is None else self.proc.poll()


class Cluster:
    def __init__(self, n, root, heraldd, logdir, use_faketime, use_images):
        self.root = root
        self.nodes = [Node(i, root, heraldd, logdir, use_faketime, use_images)
                      for i in range(1, n + 1)]
        self.next_id = n + 1
        self.cluster_id = None
        self.repair = False
        self.repairs = []  # one event per repair heraldd made (--repair runs)
        self.repair_lock = threading.Lock()

    def set_repair(self, on):
        """--repair: heraldd repairs damaged data itself; off: an operator
        replaces the node (cluster.replace)."""
        self.repair = on
        for nd in self.nodes:
            nd.repair = on

    def use_eiofs(self, binary, logdir):
        """Every node's disk through hj-eiofs (disk-eio runs); before
        bootstrap()."""
        for nd in self.nodes:
            nd.use_eiofs(binary, logdir)

    def use_tls(self, tls_dir):
        """TLS on both ports and tokens on (--tls): a throwaway CA and a
        certificate per node (scripts/make-cluster-pki.sh, with the node's
        address), an admin token; the clients use https and the token."""
        script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "scripts", "make-cluster-pki.sh")
        for nd in self.nodes:
            subprocess.run([script, tls_dir, nd.name, "IP:" + nd.ip], check=True)
            nd.tls_dir = tls_dir
        token = "hd_" + secrets.token_hex(32)
        with open(os.path.join(tls_dir, "tokens"), "w") as f:
            f.write("jepsen sha256:%s admin status append:* read:* subscribe:*\n"
                    % hashlib.sha256(token.encode()).hexdigest())
        hclient.use_tls(os.path.join(tls_dir, "ca.pem"), token)

    def bootstrap(self):
        spec = ",".join("%d=%s:%d" % (nd.id, nd.ip, hclient.PORT + 1) for nd in self.nodes)
        for nd in self.nodes:
            nd.bootstrap_spec = spec
            nd.make_disk()
        for nd in self.nodes:
            nd.start(bootstrap=spec)

    def wait_ready(self, timeout=60.0):
        """Waits until every live node answers and sees a leader for every
        shard; returns whether it happened in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = True
            for nd in self.nodes:
                if not nd.alive() or nd.paused:
                    continue
                st = nd.status()
                # A node under repair answers without shards: not ready yet.
                if st is None or not st.get("shards") or any(sh["leader"] == 0
                                                             for sh in st["shards"]):
                    ready = False
                    break
                self.cluster_id = st["cluster_id"]
            if ready:
                return True
            time.sleep(0.25)
        return False

    def leader_of_a_shard(self, rng):
        """The node a live node names as the leader of a random shard, or None."""
        for nd in self.nodes:
            if not nd.alive() or nd.paused:
                continue
            st = nd.status()
            if st is None or not st.get("shards"):
                continue
            leader = rng.choice(st["shards"])["leader"]
            return self.by_id(leader) if leader else None
        return None

    def by_id(self, node_id):
        for nd in self.nodes:
            if nd.id == node_id:
                return nd
        return None

    def member_change(self, method, path, body=None, timeout=60.0):
        """Sends a membership request to live members until one answers 200
        or `timeout` seconds have passed; returns None, or the last answer's
        description. Each request carries what is left of the deadline as
        the node's own `timeout_s`, so that a change that cannot finish (no
        quorum in some shard) ends on the node too, not only here."""
        deadline = time.monotonic() + timeout
        last = "no live member"
        while True:
            left = deadline - time.monotonic()
            if left < 1.0:
                return last
            for nd in self.nodes:
                if not nd.alive() or nd.paused or nd.id is None:
                    continue
                left = max(1, int(deadline - time.monotonic()))
                if body is None:
                    a = hclient.request(nd.ip, method, "%s?timeout_s=%d" % (path, left),
                                        timeout=left + 5.0)
                else:
                    a = hclient.request(nd.ip, method, path, body=dict(body, timeout_s=left),
                                        timeout=left + 5.0)
                if a.status == 200:
                    return None
                last = "%s %s via %s: %s %s" % (method, path, nd.name, a.status,
                                                (a.body or b"")[:200] or a.error)
                if a.status not in (None, 409, 503):
                    return last
                if time.monotonic() >= deadline:
                    return last
            time.sleep(1.0)

    def remove(self, nd):
        """Takes a node out of the cluster and its disk away: kill, remove
        its id through a live member, wipe. Returns None, or an error."""
        nd.removed_id = nd.id
        was_alive = nd.alive()
        nd.kill()
        err = self.member_change("DELETE", "/v1/cluster/nodes/%d" % nd.id)
        if err:
            if was_alive:
                nd.start()  # still a member: it keeps its disk and comes back
            return "remove %d: %s" % (nd.id, err)
        nd.wipe()
        nd.id = None
        return None

    def check_repaired(self, nd):
        """A node restarted on damage (--repair runs): once it serves under
        a new id, takes that id and records the repair. Returns the new id,
        or None while it still repairs (or did not need to)."""
        st = nd.status()
        if st is None or st.get("state") == "repairing" or st.get("node_id") in (None, nd.id):
            return None
        with self.repair_lock:
            old, nd.id = nd.id, st["node_id"]
            self.next_id = max(self.next_id, nd.id + 1)
            nd.damaged = False
            nd.repair_pending = False
            self.repairs.append({"node": nd.name, "old_id": old, "new_id": nd.id,
                                 "repairs_in_status": st.get("repairs")})
        return nd.id

    def add_back(self, nd):
        """Joins a wiped node under a new id (ids only grow: the lower id
        dials, so a newcomer's id must exceed every member's)."""
        nd.bootstrap_spec = None  # it is a joined member from now on
        nd.id = self.next_id
        self.next_id += 1
        nd.join_spec, nd.origin_id = self.cluster_id, nd.id
        nd.start(join=self.cluster_id)
        err = self.member_change("POST", "/v1/cluster/nodes",
                                 {"id": nd.id, "address": "%s:%d" % (nd.ip, hclient.PORT + 1)})
        return "add %d: %s" % (nd.id, err) if err else None

    def replace(self, nd):
        """What an operator does with a node whose disk is damaged."""
        return self.remove(nd) or self.add_back(nd)  # add only once removed

    def stop_all(self, timeout=30.0):
        """SIGTERM to every node at once; {name: exit status, or why not}."""
        for nd in self.nodes:
            nd.supervised = False
            nd.resume()
            nd.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        return {nd.name: nd.stop(max(0.1, deadline - time.monotonic())) for nd in self.nodes}

    def teardown(self):
        """Stops the nodes and removes their disks: images and mount points."""
        self.stop_all(timeout=20)
        for nd in self.nodes:
            if nd.eio:
                nd.eio.stop()
            if nd.use_images and os.path.ismount(nd.mnt):
                subprocess.run(["umount", nd.mnt], capture_output=True)
            if os.path.ismount(nd.mnt):
                continue  # still busy: unmount_leftovers() gets it next time
            shutil.rmtree(nd.mnt, ignore_errors=True)
            if nd.eio and not os.path.ismount(nd.eio.mountpoint):
                shutil.rmtree(nd.eio.mountpoint, ignore_errors=True)
            for path in (nd.image, nd.clock_file) + ((nd.eio.control, nd.eio.stats)
                                                     if nd.eio else ()):
                if os.path.exists(path):
                    os.unlink(path)

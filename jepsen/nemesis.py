# SPDX-License-Identifier: Apache-2.0
"""Faults, and the schedule that injects them.

Every nemesis has `unavailable()` (None, or why this machine cannot inject
it: the run then records it as skipped, never as passed), `start(rng)` and
`stop()`, both returning a description for nemesis.jsonl. A nemesis name
may carry a variant after a colon (`kill:all`, `partition:ring`) to pin it.
"""

import os
import random
import shutil
import signal
import subprocess
import threading
import time

import final
import hosts

# How long a nemesis's start or stop may take before it is recorded as failed
# and the schedule moves on (and heals). A fault that wedges its own
# injection, e.g. a membership change that needs the quorum a partition took,
# must not hold the partition in place for the rest of the run.
START_DEADLINE = 90.0
STOP_DEADLINE = 120.0

NODE_FAULTS = ("kill", "pause", "lose-unsynced", "corrupt", "disk-error", "disk-eio",
               "disk-full", "membership")
NET_FAULTS = ("partition", "client-partition", "net", "clock")


def _pick(rng, variant, choices):
    return variant if variant else rng.choice(choices)


def _subset(rng, nodes, how):
    """one / minority / all of the nodes, in random order."""
    nodes = list(nodes)
    rng.shuffle(nodes)
    if how == "one":
        return nodes[:1]
    if how == "minority":
        return nodes[:(len(nodes) - 1) // 2]
    return nodes


class Nemesis:
    name = ""

    def __init__(self, cluster, variant=None):
        self.cluster = cluster
        self.variant = variant

    def unavailable(self):
        return None

    def nodes(self):
        return self.cluster.nodes

    def free(self):
        """The nodes no other process fault holds: with --overlap, a second
        process fault takes other nodes than the first."""
        return [nd for nd in self.cluster.nodes if not nd.held]


# ---------------------------------------------------------------- network ---

def _firewall():
    """'nft' or 'iptables', whichever works inside a namespace, or None."""
    ns = hosts.node_ns(1)
    if shutil.which("nft") and subprocess.run(
            hosts.in_ns(ns) + ["nft", "list", "tables"],
            capture_output=True).returncode == 0:
        return "nft"
    if shutil.which("iptables") and subprocess.run(
            hosts.in_ns(ns) + ["iptables", "-L", "-n"],
            capture_output=True).returncode == 0:
        return "iptables"
    return None


def _nft_drop_from(node, sources, extra=""):
    """Drops packets between node and the given addresses, both ways, with
    an optional extra match (e.g. random loss) before the verdict."""
    if not sources:
        return
    addrs = ", ".join(sources)
    rules = ("table inet hj_fault {\n"
             " chain input { type filter hook input priority 0; ip saddr { %s } %s drop; }\n"
             " chain output { type filter hook output priority 0; ip daddr { %s } %s drop; }\n"
             "}\n" % (addrs, extra, addrs, extra))
    hosts.ns_exec(node.ns, "nft", "-f", "-", input=rules)


def _iptables_drop_from(node, sources, loss=None):
    stat = ["-m", "statistic", "--mode", "random", "--probability", "%.2f" % (loss / 100)] \
        if loss else []
    for ip in sources:
        hosts.ns_exec(node.ns, "iptables", "-A", "INPUT", "-s", ip, *stat, "-j", "DROP")
        hosts.ns_exec(node.ns, "iptables", "-A", "OUTPUT", "-d", ip, *stat, "-j", "DROP")


def _heal_all(nodes, fw):
    for nd in nodes:
        if fw == "nft":
            hosts.ns_exec(nd.ns, "nft", "delete", "table", "inet", "hj_fault", check=False)
        elif fw == "iptables":
            hosts.ns_exec(nd.ns, "iptables", "-F", check=False)


def grudge(kind, nodes, rng):
    """{node: [nodes it cannot hear]} for a partition of the given kind."""
    nodes = list(nodes)
    rng.shuffle(nodes)
    n = len(nodes)
    if kind == "isolate":
        groups = [nodes[:1], nodes[1:]]
    elif kind == "halves":
        groups = [nodes[:n // 2], nodes[n // 2:]]
    elif kind == "bridge":
        # two halves that only the middle node hears both of
        a, mid, b = nodes[:(n - 1) // 2], nodes[(n - 1) // 2], nodes[(n + 1) // 2:]
        g = {nd: set(b) for nd in a}
        g.update({nd: set(a) for nd in b})
        g[mid] = set()
        return g
    else:  # ring: every node hears its two neighbours only (a majority of 5)
        g = {}
        for i, nd in enumerate(nodes):
            near = {nodes[(i - 1) % n], nodes[(i + 1) % n], nd}
            g[nd] = set(nodes) - near
        return g
    g = {}
    for grp in groups:
        for nd in grp:
            g[nd] = set(nodes) - set(grp)
    return g


class Partition(Nemesis):
    name = "partition"
    KINDS = ("isolate", "halves", "bridge", "ring")

    def unavailable(self):
        self.fw = _firewall()
        return None if self.fw else "neither nft nor iptables works in a namespace"

    def start(self, rng):
        kind = _pick(rng, self.variant, self.KINDS)
        g = grudge(kind, self.nodes(), rng)
        for nd, deaf in g.items():
            ips = sorted(x.ip for x in deaf)
            if self.fw == "nft":
                _nft_drop_from(nd, ips)
            else:
                _iptables_drop_from(nd, ips)
        return "%s: %s" % (kind, "; ".join("%s x %s" % (nd.name, ",".join(sorted(x.name for x in d)))
                                          for nd, d in sorted(g.items(), key=lambda p: p[0].idx)
                                          if d))

    def stop(self):
        _heal_all(self.nodes(), self.fw)
        return "healed"


class ClientPartition(Nemesis):
    """Clients cut off from one node, a minority or a majority of them,
    while the nodes still hear each other: appends time out on some nodes
    and must be retried through others without loss or duplicate."""
    name = "client-partition"

    def unavailable(self):
        self.fw = _firewall()
        return None if self.fw else "neither nft nor iptables works in a namespace"

    def start(self, rng):
        how = _pick(rng, self.variant, ("one", "minority", "majority"))
        nodes = list(self.nodes())
        rng.shuffle(nodes)
        cut = {"one": 1, "minority": (len(nodes) - 1) // 2,
               "majority": len(nodes) // 2 + 1}[how]
        for nd in nodes[:cut]:
            if self.fw == "nft":
                _nft_drop_from(nd, [hosts.CLIENT_IP])
            else:
                _iptables_drop_from(nd, [hosts.CLIENT_IP])
        return "clients cut from %s (%s)" % (",".join(nd.name for nd in nodes[:cut]), how)

    def stop(self):
        _heal_all(self.nodes(), self.fw)
        return "healed"


class Net(Nemesis):
    """Packet loss between nodes (nft numgen or iptables statistic), delay
    with reordering through NFQUEUE and jepsen/netdelay (this kernel has no
    tc netem), and a bandwidth limit (tc tbf)."""
    name = "net"

    def __init__(self, cluster, variant=None, netdelay=None):
        super().__init__(cluster, variant)
        self.netdelay = netdelay
        self.procs = []

    def unavailable(self):
        self.fw = _firewall()
        return None if self.fw else "neither nft nor iptables works in a namespace"

    def kinds(self):
        kinds = ["loss"]
        if self.netdelay and os.access(self.netdelay, os.X_OK) and shutil.which("iptables"):
            kinds.append("delay")
        if shutil.which("tc"):
            kinds.append("bandwidth")
        return kinds

    def start(self, rng):
        kind = _pick(rng, self.variant, self.kinds())
        if kind == "loss":
            pct = rng.choice((5, 20, 40))
            for nd in self.nodes():
                others = [x.ip for x in self.nodes() if x is not nd]
                if self.fw == "nft":
                    _nft_drop_from(nd, others, "numgen random mod 100 < %d" % pct)
                else:
                    _iptables_drop_from(nd, others, pct)
            return "loss %d%% between nodes" % pct
        if kind == "bandwidth":
            rate = rng.choice(("1mbit", "10mbit"))
            for nd in self.nodes():  # every node's link out, clients' answers too
                hosts.ns_exec(nd.ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                              "rate", rate, "burst", "32kbit", "latency", "400ms")
            return "bandwidth %s out of every node (tc tbf)" % rate
        delay, jitter = rng.choice(((50, 0), (100, 80), (20, 20)))
        for nd in self.nodes():
            for other in self.nodes():
                if other is not nd:  # node to node only; clients are not slowed
                    hosts.ns_exec(nd.ns, "iptables", "-A", "OUTPUT", "-d", other.ip, "-j",
                                  "NFQUEUE", "--queue-num", "7", "--queue-bypass")
            self.procs.append(subprocess.Popen(
                hosts.in_ns(nd.ns) + [self.netdelay, "--queue", "7", "--delay-ms",
                 str(delay), "--jitter-ms", str(jitter), "--seed", str(rng.getrandbits(31))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return "delay %d±%d ms between nodes (reordering)" % (delay, jitter)

    def stop(self):
        _heal_all(self.nodes(), self.fw)
        for nd in self.nodes():
            hosts.ns_exec(nd.ns, "iptables", "-F", "OUTPUT", check=False)
            hosts.ns_exec(nd.ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        for p in self.procs:
            p.terminate()
            p.wait()
        self.procs = []
        return "healed"


class Clock(Nemesis):
    """Jumps and drift of the wall clock of one node, a minority, a shard's
    leader or every node (each its own), with libfaketime
    preloaded into them (the monotonic clock, which Raft's timers use, is
    left alone as it is in a real clock step)."""
    name = "clock"

    def unavailable(self):
        import db
        if not os.path.exists(db.FAKETIME_LIB):
            return "libfaketime is not installed (%s)" % db.FAKETIME_LIB
        return None

    def start(self, rng):
        # "all": every node its own offset, so every shard's leader is off
        how = rng.choice(("one", "minority", "leader", "all"))
        leader = self.cluster.leader_of_a_shard(rng) if how == "leader" else None
        self.victims = [leader] if leader else _subset(rng, self.nodes(), how)
        kind = _pick(rng, self.variant, ("jump", "drift"))
        out = []
        for nd in self.victims:
            if kind == "jump":
                spec = "%+ds" % rng.choice((-300, -60, -5, 5, 60, 300))
            else:
                spec = "+0 x%s" % rng.choice(("0.5", "0.9", "1.1", "2.0"))
            nd.set_clock(spec)
            out.append("%s %s" % (nd.name, spec))
        return "%s: %s" % (kind, ", ".join(out))

    def stop(self):
        for nd in self.victims:
            nd.set_clock("+0")
        return "clocks reset"


# ------------------------------------------------------------- processes ---

class Kill(Nemesis):
    name = "kill"

    def start(self, rng):
        how = _pick(rng, self.variant, ("one", "minority", "all"))
        self.victims = [nd for nd in _subset(rng, self.free(), how) if nd.alive()]
        for nd in self.victims:
            nd.kill()
        return "kill -9 %s (%s)" % (",".join(nd.name for nd in self.victims), how)

    def stop(self):
        for nd in self.victims:
            nd.start()
        return "restarted " + ",".join(nd.name for nd in self.victims)


class Pause(Nemesis):
    name = "pause"

    def start(self, rng):
        how = _pick(rng, self.variant, ("one", "minority", "leader"))
        if how == "leader":
            leader = self.cluster.leader_of_a_shard(rng)
            if leader is not None and leader.held:
                leader = None
            self.victims = [leader] if leader else _subset(rng, self.free(), "one")
        else:
            self.victims = _subset(rng, self.free(), how)
        for nd in self.victims:
            nd.pause()
        return "SIGSTOP %s (%s)" % (",".join(nd.name for nd in self.victims), how)

    def stop(self):
        for nd in self.victims:
            nd.resume()
        return "SIGCONT " + ",".join(nd.name for nd in self.victims)


class LoseUnsynced(Nemesis):
    """A power cut: what was not fsynced is gone (ext4 shutdown without a
    journal flush on the node's own image), the process dies with it."""
    name = "lose-unsynced"

    def unavailable(self):
        nd = self.nodes()[0]
        if not nd.use_images:
            return "data directories are not on their own ext4 images (no loop devices?)"
        if not shutil.which("xfs_io"):
            return "xfs_io (xfsprogs) is not installed"
        return None

    def start(self, rng):
        how = _pick(rng, self.variant, ("one", "minority", "all"))
        self.victims = _subset(rng, self.free(), how)
        for nd in self.victims:
            nd.power_cut()
        return "power cut %s (%s)" % (",".join(nd.name for nd in self.victims), how)

    def stop(self):
        for nd in self.victims:
            nd.start()
        return "restarted " + ",".join(nd.name for nd in self.victims)


def _last_nonzero(path):
    """The offset after the last non-zero byte: where a preallocated file's
    data ends."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = size
        while pos > 0:
            step = min(1 << 20, pos)
            f.seek(pos - step)
            block = f.read(step)
            stripped = block.rstrip(b"\0")
            if stripped:
                return pos - step + len(stripped)
            pos -= step
    return 0


def corrupt_file(rng, path):
    """Flips a few bits in the part of the file that holds data, or cuts
    the file short there. Returns what it did."""
    end = _last_nonzero(path)
    if end == 0:
        return "%s: empty, left alone" % path
    if rng.random() < 0.5:
        off = rng.randrange(end)
        os.truncate(path, off)
        return "truncated %s at %d of %d" % (os.path.basename(path), off, end)
    offs = sorted(rng.randrange(end) for _ in range(rng.randint(1, 4)))
    with open(path, "r+b") as f:
        for off in offs:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
    return "flipped bits in %s at %s" % (os.path.basename(path), offs)


class Corrupt(Nemesis):
    """Damages WAL segments or RocksDB tables of a minority of nodes while
    they are down. A node must either recover by itself or refuse to start;
    one that refuses is replaced the way an operator would (remove it, wipe
    the disk, add it back under a new id). With jepsen/run --repair the
    nodes run --repair auto and are only restarted: each must repair what
    it finds damaged by itself (a new id, counted in results.json)."""
    name = "corrupt"

    def start(self, rng):
        self.victims = _subset(rng, self.free(), _pick(rng, self.variant, ("one", "minority")))
        out = []
        for nd in self.victims:
            nd.kill()
            nd.damaged = True
            files = []
            for sub, ext in (("wal", ".seg"), ("state", ".sst")):
                d = os.path.join(nd.data, sub)
                if os.path.isdir(d):
                    files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(ext)]
            if files:
                out.append("%s: %s" % (nd.name, corrupt_file(rng, rng.choice(files))))
        return "; ".join(out) or "no files to corrupt"

    def stop(self):
        # --repair: nodes repair themselves, those an operator replaced
        # earlier (joined with --join) too: they ask the members they kept
        # in DATA/herald.members.
        repairing = [nd for nd in self.victims if nd.repair and (nd.bootstrap_spec or nd.join_spec)]
        others = [nd for nd in self.victims if nd not in repairing]
        out = [self._stop_repair(repairing)] if repairing else []
        if others:
            out.append(self._stop_operator(others))
        return "; ".join(out)

    def _stop_operator(self, victims):
        out = []
        for nd in victims:
            nd.start(supervised=False)  # it may rightly refuse to start
        time.sleep(5)
        for nd in victims:
            if nd.alive():
                nd.supervised = True
                out.append("%s restarted" % nd.name)
                continue
            code = nd.exited_with()
            err = self.cluster.replace(nd)
            out.append("%s refused to start (exit %s), replaced as id %s%s" %
                       (nd.name, code, nd.id, ": " + err if err else ""))
        return "; ".join(out)

    def _stop_repair(self, victims):
        """--repair: only restart the victims with their command line;
        heraldd repairs what it finds damaged (a new id) by itself. Damage
        it does not find at start (a RocksDB block not read yet) may stop
        it later with exit 3; final.CrashWatcher restarts it then."""
        out = []
        old = {nd.name: nd.id for nd in victims}
        for nd in victims:
            nd.repair_pending = True
            nd.start()
        deadline = time.monotonic() + 60
        waiting = list(victims)
        while waiting and time.monotonic() < deadline:
            for nd in list(waiting):
                self.cluster.check_repaired(nd)  # or final.CrashWatcher did
                if nd.id != old[nd.name]:
                    out.append("%s repaired itself: id %d -> %d" % (nd.name, old[nd.name], nd.id))
                    waiting.remove(nd)
                    continue
                st = nd.status()
                if (st is not None and st.get("node_id") == nd.id and st.get("state") != "repairing"
                        and time.monotonic() > deadline - 50):
                    out.append("%s restarted, no damage found at start" % nd.name)
                    nd.repair_pending = False
                    waiting.remove(nd)
            time.sleep(0.5)
        out += ["%s still repairing" % nd.name for nd in waiting]
        return "; ".join(out)


def _needs_images(nem):
    nd = nem.nodes()[0]
    if not nd.use_images:
        return "data directories are not on their own ext4 images (no loop devices?)"
    return None


class DiskError(Nemesis):
    """The disk fails under a running node: its file system is shut down
    (the ext4 shutdown ioctl) while the process keeps running, so every
    write and fsync from then on answers EIO. The node must stop with a
    disk exit status (never crash, never acknowledge what it could not
    write) or keep serving without writing; healing mounts the disk again
    and restarts it. (Single errors on a healthy file system: disk-eio.)"""
    name = "disk-error"

    def unavailable(self):
        if not shutil.which("xfs_io"):
            return "xfs_io (xfsprogs) is not installed"
        return _needs_images(self)

    def start(self, rng):
        live = [nd for nd in self.free() if nd.alive() and not nd.paused and nd.id is not None]
        self.victims = _subset(rng, live, _pick(rng, self.variant, ("one", "minority")))
        for nd in self.victims:
            nd.disk_failed = True  # final.CrashWatcher: a disk exit is expected
            nd.shut_down_disk()
        return "file system shut down under running %s" % ",".join(
            nd.name for nd in self.victims)

    def stop(self):
        out = []
        for nd in self.victims:
            code = nd.exited_with()
            if nd.alive():
                out.append("%s still running" % nd.name)
            nd.kill()
            nd.remount()
            nd.disk_failed = False
            nd.start()
            if code is not None:
                out.append("%s had stopped (exit %d)" % (nd.name, code))
        return "; ".join(out) + "; disk mounted again, restarted"


class DiskEio(Nemesis):
    """Single writes or fsyncs fail with EIO on a healthy file system under
    a running node: hj-eiofs (jepsen/eiofs), a passthrough FUSE file system
    between each node and its disk in runs with this nemesis, is armed on
    one node or a minority. Variants: `write` (every write fails, nothing
    reaches the disk), `fsync` (every fsync, and every O_DIRECT/O_DSYNC
    write such as the WAL's, fails after the data reached the disk), `both`,
    `once` (only the first write or fsync after arming fails: one transient
    error), and `state` (writes and fsyncs of RocksDB's files only, the WAL
    healthy: a background flush or compaction meets the error). The node
    must never acknowledge what it could not make durable and never crash:
    it stops with a disk exit status (4 or 5, counted as disk_stops) or
    keeps serving. Healing disarms, and restarts a node that stopped."""
    name = "disk-eio"
    KINDS = {"write": "write", "fsync": "fsync", "both": "write fsync",
             "once": None,  # "write once" or "fsync once"
             "state": "write fsync under=/data/state"}
    MIX = ("write", "fsync", "both", "once", "state")  # without a variant: one of these
    GRACE = 2.0  # after disarming: an error injected just before may still stop a node

    def unavailable(self):
        nd = self.nodes()[0]
        if nd.eio is None:
            return "the nodes' disks are not under hj-eiofs (see jepsen/run's log)"
        if self.variant and self.variant not in self.KINDS:
            return "unknown variant %r (known: %s)" % (self.variant, ", ".join(self.KINDS))
        return None

    def start(self, rng):
        kind = _pick(rng, self.variant, self.MIX)
        words = self.KINDS[kind] or rng.choice(("write", "fsync")) + " once"
        live = [nd for nd in self.free() if nd.alive() and not nd.paused and nd.id is not None]
        self.victims = _subset(rng, live, rng.choice(("one", "minority")))
        self.before = {}
        for nd in self.victims:
            self.before[nd.name] = nd.eio.injected()
            nd.disk_failed = True  # final.CrashWatcher: a disk exit is expected
            nd.eio.arm(words)
        return "EIO on '%s' under running %s" % (words, ",".join(nd.name for nd in self.victims))

    def stop(self):
        for nd in self.victims:
            nd.eio.arm("")
        time.sleep(self.GRACE)
        out = []
        for nd in self.victims:
            now, was = nd.eio.injected(), self.before.get(nd.name, {})
            delta = {k: v - was.get(k, 0) for k, v in now.items() if v - was.get(k, 0) > 0}
            for k, v in delta.items():
                nd.eio_injected[k] = nd.eio_injected.get(k, 0) + v
            what = ", ".join("%d %s" % (v, k) for k, v in sorted(delta.items())) or "no"
            if nd.alive():
                out.append("%s: %s errors, kept running" % (nd.name, what))
            else:
                # Let final.CrashWatcher count the stop (disk_stops) first.
                wait_until = time.monotonic() + 1.5
                while nd.supervised and time.monotonic() < wait_until:
                    time.sleep(0.1)
                code = nd.exited_with()
                nd.kill()  # reaps it, and keeps final.CrashWatcher away
                nd.start()
                out.append("%s: %s errors, had stopped (exit %s), restarted" % (nd.name, what, code))
            nd.disk_failed = False
        return "disarmed; " + "; ".join(out)


FILL_NAME = "disk-full.fill"
FILL_LEAVES = 64 << 20  # free bytes left: under heraldd's 256 MiB reserve


class DiskFull(Nemesis):
    """Fills the disk of one node or of a majority (one preallocated file
    that leaves 64 MiB free, under the node's reserve) while the workload
    runs. A node must refuse appends (507) rather than fail its WAL, keep
    serving reads, and take appends again by itself once the file is
    removed."""
    name = "disk-full"

    def unavailable(self):
        if not shutil.which("fallocate"):
            return "fallocate (util-linux) is not installed"
        return _needs_images(self)

    def start(self, rng):
        how = _pick(rng, self.variant, ("one", "majority"))
        nodes = [nd for nd in self.free() if nd.id is not None]
        rng.shuffle(nodes)
        self.victims = nodes[:1] if how == "one" else nodes[:len(nodes) // 2 + 1]
        out = []
        for nd in self.victims:
            st = os.statvfs(nd.mnt)
            fill = st.f_bavail * st.f_frsize - FILL_LEAVES
            if fill > 0:
                hosts.sh("fallocate", "-l", str(fill), os.path.join(nd.mnt, FILL_NAME))
            nd.disk_full = True  # final.CrashWatcher: a WAL stop on ENOSPC is expected
            out.append("%s (%d MiB taken)" % (nd.name, max(0, fill) >> 20))
        return "filled %s: %s" % (how, ", ".join(out))

    def stop(self):
        out = []
        for nd in self.victims:
            try:
                os.unlink(os.path.join(nd.mnt, FILL_NAME))
            except FileNotFoundError:
                pass
            # Durable, or a later disk-error or power cut (which drop what
            # was not synced) brings the file back and the disk stays full:
            # the node then rightly stays behind, and the run cannot end.
            fd = os.open(nd.mnt, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            nd.disk_full = False
            if nd.id is not None and not nd.alive() and not nd.supervised:
                nd.start()
                out.append("%s restarted" % nd.name)
        return "space given back on %s%s" % (",".join(nd.name for nd in self.victims),
                                             "; " + "; ".join(out) if out else "")


class Membership(Nemesis):
    """Removes a node from the cluster while other faults may run, then
    wipes it and adds it back under a new id."""
    name = "membership"

    def start(self, rng):
        live = [nd for nd in self.free() if nd.alive() and not nd.paused]
        self.victim = rng.choice(live)
        self.victims = [self.victim]
        err = self.cluster.remove(self.victim)
        return "removed %s (id %s)%s" % (self.victim.name, self.victim.removed_id,
                                         ": " + err if err else "")

    def stop(self):
        if self.victim.id is not None:
            return "%s was not removed; nothing to add back" % self.victim.name
        err = self.cluster.add_back(self.victim)
        return "added %s back as id %s%s" % (self.victim.name, self.victim.id,
                                             ": " + err if err else "")


NEMESES = {c.name: c for c in (Partition, ClientPartition, Net, Clock, Kill, Pause, LoseUnsynced, Corrupt,
                               DiskError, DiskEio, DiskFull, Membership)}


def _bounded(fn, seconds):
    """Runs fn() with a deadline: (True, its result), or (False, why not)
    when it raised or did not return in time. A call past its deadline is
    left to finish on its own thread (every step it takes has a timeout of
    its own); the schedule goes on without it."""
    out = {}

    def call():
        try:
            out["result"] = fn()
        except Exception as e:  # recorded, never fatal to the run
            out["error"] = str(e) or type(e).__name__

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        return False, "no answer in %g s" % seconds
    if "error" in out:
        return False, out["error"]
    return True, out["result"]


class Schedule:
    """Faults at random with heal periods between them: every period one
    fault, and now and then a second one of the other kind (network or
    clock with a process fault) on top. With `overlap` > 0, that share of
    the process faults gets a second process fault on other nodes, started
    while the first is still being injected (a kill during a membership
    change, a power cut during a catch-up). The seed fixes the choices."""

    def __init__(self, cluster, nemeses, rng, recorder, hold=(5, 15), heal=(4, 8),
                 overlap=0.0):
        self.cluster = cluster
        self.nemeses = nemeses
        self.rng = rng
        self.rec = recorder
        self.hold = hold
        self.heal = heal
        self.overlap = overlap
        self.active = []
        self.bag = []
        self.lock = threading.Lock()

    def _next(self):
        """Every nemesis once, in random order, before any comes again: a
        short run still sees each of them."""
        if not self.bag:
            self.bag = list(self.nemeses)
            self.rng.shuffle(self.bag)
        return self.bag.pop()

    def _start(self, nem, rng):
        ok, detail = _bounded(lambda: nem.start(rng), START_DEADLINE)
        if not ok:
            # A fault that failed to inject is reported as skipped, never
            # counted as survived; whatever part of it was injected is undone.
            self.rec.record({"fault": nem.name, "phase": "skip",
                             "detail": "failed to inject: %s" % detail})
            _bounded(nem.stop, STOP_DEADLINE)
            return
        self.rec.record({"fault": nem.name, "phase": "start", "detail": detail})
        with self.lock:
            self._hold(nem, True)
            self.active.append(nem)

    @staticmethod
    def _hold(nem, held):
        if nem.name in NODE_FAULTS:
            for nd in getattr(nem, "victims", None) or []:
                nd.held = held

    def _start_overlapping(self, first, second):
        """Starts `second` while `first` is being injected, on other nodes:
        each start chooses its nodes before it does anything slow, so the
        short wait is enough for `first` to hold its nodes."""
        rng2 = random.Random(self.rng.getrandbits(32))
        delay = self.rng.uniform(0.5, 3.0)
        t = threading.Thread(target=self._start, args=(first, self.rng), daemon=True)
        t.start()
        time.sleep(delay)
        self._hold(first, True)
        self._start(second, rng2)
        t.join(START_DEADLINE + STOP_DEADLINE)

    def heal_all(self):
        # Network and clock first: a node brought back (restarted, or
        # replaced, which copies state) does so over a healed network.
        self.active.sort(key=lambda n: n.name in NET_FAULTS)
        while self.active:
            nem = self.active.pop()
            ok, detail = _bounded(nem.stop, STOP_DEADLINE)
            if not ok:
                detail = "failed to heal: %s" % detail
            self._hold(nem, False)
            self.rec.record({"fault": nem.name, "phase": "stop", "detail": detail})

    def run(self, deadline, stop_event):
        if not self.nemeses:
            return
        stop_event.wait(self.rng.uniform(*self.heal))
        while time.monotonic() < deadline - 3 and not stop_event.is_set():
            final.replace_pending(self.cluster, self.rec)
            first = self._next()
            second = None
            if self.overlap and first.name in NODE_FAULTS:
                more = [n for n in self.nemeses if n.name in NODE_FAULTS and n is not first]
                if more and self.rng.random() < self.overlap:
                    second = self.rng.choice(more)
            if second is not None:
                self._start_overlapping(first, second)
            else:
                self._start(first, self.rng)
            others = [n for n in self.nemeses
                      if (n.name in NET_FAULTS) != (first.name in NET_FAULTS)]
            if others and self.rng.random() < 0.3:
                self._start(self.rng.choice(others), self.rng)
            hold = min(self.rng.uniform(*self.hold), max(0.0, deadline - time.monotonic()))
            stop_event.wait(hold)
            self.heal_all()
            stop_event.wait(self.rng.uniform(*self.heal))

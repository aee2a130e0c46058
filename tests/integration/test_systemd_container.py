#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""heraldd under a real systemd: systemd runs as PID 1 of a container of
the test's own (systemd_container.py), scripts/install.sh installs herald
in it as on a fresh machine (binaries, units, config, the herald user), and
the test drives ops/herald.service and ops/herald@.service, unedited, with
systemctl: start only once READY=1 came, appends, restarts with the same
command line (data kept, logs byte for byte the same), a SIGKILL under
Restart=on-failure, the watchdog, the hardening, a clean stop with
STOPPING=1. Then three nodes as herald@n1..n3, each restarted in turn.

Skipped, with the reason, only where no systemd can run (not root, no
systemd installed, no namespaces or cgroup v2); under HERALD_TEST_NO_SKIP=1
(scripts/test.sh) that fails instead."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Client, Cluster, NodeTestCase, free_ports, run_tests  # noqa: E402
import systemd_container  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INSTALL = os.path.join(ROOT, "scripts", "install.sh")
# Where install.sh puts things inside the container (its defaults).
CONF_DIR = "/etc/herald"
UNIT_DIR = "/etc/systemd/system"


def sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


class UnitNode:
    """A node that systemd runs, for harness.Cluster's reading helpers."""

    paused = False

    def __init__(self, box, unit, node_id, port, peer_port):
        self.box, self.unit = box, unit
        self.node_id, self.port, self.peer_port = node_id, port, peer_port

    def running(self):
        return self.box.show(self.unit, "ActiveState")["ActiveState"] == "active"


class SystemdContainerTest(NodeTestCase):
    @classmethod
    def setUpClass(cls):
        cls.unavailable = systemd_container.unavailable_reason()  # probes once, with unshare

    def setUp(self):
        # Per test, not in setUpClass: a failure there would count no test.
        harness.require(self.unavailable is None,
                        "systemd in a container, which cannot run here: %s" % self.unavailable)
        super().setUp()
        self.units = []
        self.box = systemd_container.SystemdContainer(
            self.tmp, keep=[ROOT, os.path.dirname(os.path.dirname(harness.HERALDD))])
        try:
            self.box.start()
        except BaseException:
            self.box.stop()  # tearDown does not run after a failed setUp
            raise

    def tearDown(self):
        problems = []
        try:
            for unit in self.units:
                text = self.box.journal(unit)
                hits = harness.sanitizer_hits(text)
                if hits or not self._outcome_ok():
                    sys.stderr.write("\n===== journal of %s =====\n%s\n" % (unit, text[-30000:]))
                if hits:
                    problems.append("%s: sanitizer/assertion report (%s) in its journal"
                                    % (unit, ", ".join(hits)))
        finally:
            self.box.stop()
            super().tearDown()
        if problems:
            self.fail("; ".join(problems))

    # -- helpers --
    def install(self):
        """scripts/install.sh as root into the container's real root, from
        the build under test, as an operator runs it on a fresh machine."""
        build = os.path.dirname(os.path.dirname(harness.HERALDD))
        if not os.access(os.path.join(build, "cli", "herald"), os.X_OK):
            self.skipTest("no herald CLI built in %s" % build)
        with open("/etc/passwd") as f:
            host_passwd = f.read()
        out = self.box.run(["bash", INSTALL, build]).stdout
        self.assertIn("created system user herald", out)
        self.assertIn("valid", out)
        with open("/etc/passwd") as f:
            self.assertEqual(f.read(), host_passwd, "install.sh in the container changed the host")
        self.assertEqual(self.box.run(["id", "-un", "herald"]).stdout.strip(), "herald")

    def sanitizer_dropin(self, unit):
        """A sanitizer build checks for leaks at exit by stopping its threads
        with ptrace, which the unit's SystemCallFilter denies: this drop-in
        allows ptrace (and nothing else) for such a build, so leaks are still
        reported. A release build runs the unit exactly as shipped."""
        if not sanitized(harness.HERALDD):
            return
        self.box.run(["mkdir", "-p", "%s/%s.d" % (UNIT_DIR, unit)])
        self.box.write("%s/%s.d/sanitizer.conf" % (UNIT_DIR, unit),
                       "[Service]\nSystemCallFilter=ptrace\n"
                       "Environment=ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "
                       "UBSAN_OPTIONS=print_stacktrace=1\n")

    def start_ok(self, *units):
        """systemctl start (which returns only once each unit is active: for
        Type=notify, after READY=1); checks each is active and serving."""
        self.box.systemctl("start", *units)
        pids = {}
        for unit in units:
            p = self.box.show(unit, "ActiveState", "SubState", "MainPID", "StatusText")
            self.assertEqual((p["ActiveState"], p["SubState"]), ("active", "running"), p)
            self.assertGreater(int(p["MainPID"]), 0, p)
            self.assertTrue(p["StatusText"].startswith("serving http://127.0.0.1:"), p)
            pids[unit] = int(p["MainPID"])
        return pids

    def stop_ok(self, *units):
        """systemctl stop: each tells systemd STOPPING=1, then exits 0."""
        pids = {u: int(self.box.show(u, "MainPID")["MainPID"]) for u in units}
        self.box.systemctl("stop", *units)
        for unit in units:
            self.assertEqual(self.box.show(unit, "ActiveState")["ActiveState"], "inactive")
            # The unit may be gone from memory once stopped (systemctl show
            # then has defaults): its journal says how its process ended.
            lines = self.journal_lines(unit)
            stopping = [i for i, l in enumerate(lines)
                        if l.startswith("%s: Got notification message from PID %d (STOPPING=1"
                                        % (unit, pids[unit]))]
            self.assertEqual(len(stopping), 1, lines[-30:])
            ends = [i for i, l in enumerate(lines) if "Main process exited" in l]
            self.assertGreater(ends[-1], stopping[0], lines[-30:])
            self.assertTrue(lines[ends[-1]].startswith(
                "%s: Main process exited, code=exited, status=0/SUCCESS" % unit), lines[ends[-1]])
            self.assertIn("%s: Deactivated successfully." % unit, lines[ends[-1]:])
            started = max(i for i, l in enumerate(lines) if l.startswith("Started "))
            self.assertTrue(any("signal 15: stopping gracefully" in l
                                for l in lines[started:stopping[0] + 1]), lines[started:])

    def journal_lines(self, unit):
        """The unit's journal, messages only, in order."""
        return self.box.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit]).stdout \
            .splitlines()

    def raw_log(self, port, channel):
        """A channel's whole log as the server's bytes (one page)."""
        c = Client(port)
        try:
            r = c.get("/v1/channels/%s/messages?after_seq=0&limit=1000" % channel)
        finally:
            c.close()
        self.assertEqual(r.status, 200, r)
        return r.body

    def append_retry(self, c, ch, nonce, payload):
        """Appends once (same nonce on every try) through a node, trying
        again while a shard has no leader (a leader handing shards over
        after a start); returns the seq."""
        deadline = time.time() + 30
        while True:
            r = c.append(ch, nonce, payload)
            if r.status in (200, 201):
                return r.json()["seq"]
            if r.status != 503 or time.time() > deadline:
                self.fail("append %s/%s -> %r" % (ch, nonce, r))
            time.sleep(0.1)

    def wait_restarted(self, unit, old_pid, restarts):
        deadline = time.time() + 60
        while True:
            p = self.box.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts")
            if (p["ActiveState"], p["SubState"]) == ("active", "running") and \
                    int(p["MainPID"]) not in (0, old_pid) and p["NRestarts"] == str(restarts):
                return int(p["MainPID"])
            if time.time() > deadline:
                self.fail("%s not back after SIGKILL: %r" % (unit, p))
            time.sleep(0.2)

    # -- one node: herald.service --
    def test_one_node_herald_service(self):
        unit = "herald.service"
        self.units.append(unit)
        port, peer = free_ports(2)
        self.install()
        # The operator's edit: this test's ports in the installed example config.
        conf = CONF_DIR + "/herald.conf"
        self.box.run(["sed", "-i", "-e", "s|^listen = .*|listen = 127.0.0.1:%d|" % port,
                      "-e", "s|^peer-listen = .*|peer-listen = 127.0.0.1:%d|" % peer, conf])
        # systemd's own reckoning of the unit's exposure, as shipped.
        sec = self.box.run(["systemd-analyze", "security", "--no-pager", unit]).stdout
        m = re.search(r"Overall exposure level for herald\.service: ([0-9.]+)", sec)
        self.assertIsNotNone(m, sec)
        self.assertLessEqual(float(m.group(1)), 1.2, sec)  # README: 1.2 with systemd 252

        self.sanitizer_dropin(unit)
        self.box.systemctl("daemon-reload")
        p = self.box.show(unit, "ActiveState", "Type", "ExecStart", "User")
        self.assertEqual(p["ActiveState"], "inactive")
        self.assertEqual(p["Type"], "notify")
        self.assertIn("argv[]=/usr/local/bin/heraldd --config /etc/herald/herald.conf ;",
                      p["ExecStart"])
        self.assertEqual(p["User"], "herald")

        pid = self.start_ok(unit)[unit]
        # The watchdog is armed (WatchdogSec=30s; heraldd pings every 15 s).
        self.assertEqual(self.box.show(unit, "WatchdogUSec")["WatchdogUSec"], "30s")
        # Active means serving: the API answers at once.
        c = Client(port)
        self.assertEqual(c.get("/v1/status").status, 200)
        # What heraldd reads of /proc (ProcSubset=pid leaves it /proc/self).
        metrics = c.get("/metrics").body.decode()
        fds = re.search(r"^process_open_fds ([0-9.e+]+)$", metrics, re.M)
        self.assertIsNotNone(fds, metrics[-2000:])
        self.assertGreater(float(fds.group(1)), 0)
        self.assertRegex(metrics, r"(?m)^process_resident_memory_bytes [1-9]")
        # systemd saw READY=1 from heraldd itself, after its STATUS= lines,
        # and only then counted the unit started.
        said = self.box.notifications(unit)
        self.assertTrue(said, self.box.journal(unit))
        texts = [t for _, t in said]
        ready = [i for i, t in enumerate(texts) if "READY=1" in t.split(", ")]
        self.assertEqual(len(ready), 1, texts)
        self.assertEqual(said[ready[0]][0], pid)
        self.assertTrue(any(t.startswith("STATUS=opening") for t in texts[:ready[0]]), texts)
        self.assertTrue(any("WATCHDOG=1" in t for t in texts[ready[0]:]), texts)
        lines = self.journal_lines(unit)
        got_ready = next(i for i, l in enumerate(lines)
                         if "Got notification message" in l and "READY=1" in l)
        started = next(i for i, l in enumerate(lines) if l.startswith("Started herald.service"))
        self.assertLess(got_ready, started, lines)
        self.assertTrue(any("systemd watchdog: WATCHDOG=1 every 15000 ms" in l for l in lines))
        # The hardening holds: heraldd runs as herald.
        self.assertEqual(self.box.run(["stat", "-c", "%U", "/proc/%d" % pid]).stdout.strip(),
                         "herald")

        # Appends, then a restart with the same command line: the data is
        # kept, every log byte for byte.
        channels = ["ops-a", "ops-b"]
        for i in range(20):
            for ch in channels:
                c.append_ok(ch, "%s-%d" % (ch, i), "m%d" % i)
        c.close()
        before = {ch: self.raw_log(port, ch) for ch in channels}
        self.box.systemctl("restart", unit)
        p = self.box.show(unit, "ActiveState", "SubState", "MainPID")
        self.assertEqual((p["ActiveState"], p["SubState"]), ("active", "running"), p)
        pid2 = int(p["MainPID"])
        self.assertNotEqual(pid2, pid)
        for ch in channels:
            self.assertEqual(self.raw_log(port, ch), before[ch], ch)
        c = Client(port)
        self.assertEqual(c.append_ok("ops-a", "after-restart", "x")[0], 21)
        c.close()
        before = {ch: self.raw_log(port, ch) for ch in channels}
        self.assertEqual(self.box.journal(unit).count("bootstrapping a 1-node cluster"), 1)

        # SIGKILL of the main process: Restart=on-failure brings it back.
        self.box.run(["kill", "-9", str(pid2)])
        pid3 = self.wait_restarted(unit, pid2, 1)
        log = self.box.journal(unit)
        self.assertIn("Main process exited, code=killed, status=9/KILL", log)
        for ch in channels:
            self.assertEqual(self.raw_log(port, ch), before[ch], ch)
        self.assertGreater(pid3, 0)

        self.stop_ok(unit)
        c = Client(port, timeout=5)
        with self.assertRaises(OSError):
            c.get("/v1/status")
        c.close()

    # -- three nodes: herald@n1..n3 --
    def test_three_nodes_herald_template(self):
        names = ["n1", "n2", "n3"]
        units = ["herald@%s.service" % n for n in names]
        self.units.extend(units)
        ports = free_ports(6)
        nodes = [UnitNode(self.box, u, i + 1, ports[2 * i], ports[2 * i + 1])
                 for i, u in enumerate(units)]
        members = ",".join("%d=127.0.0.1:%d" % (x.node_id, x.peer_port) for x in nodes)
        self.install()
        for name, x in zip(names, nodes):
            # One file per instance; the same lines on every start.
            path = "%s/%s.conf" % (CONF_DIR, name)
            self.box.write(path, "data = /var/lib/herald/%s\nlisten = 127.0.0.1:%d\n"
                           "peer-listen = 127.0.0.1:%d\nid = %d\nbootstrap = %s\n"
                           % (name, x.port, x.peer_port, x.node_id, members),
                           mode="0640", group="herald")
            self.box.run(["/usr/local/bin/heraldd", "--check-config", path])
        self.sanitizer_dropin("herald@.service")
        self.box.systemctl("daemon-reload")
        pids = self.start_ok(*units)
        cluster = Cluster.of(self, nodes)
        cluster.wait_settled(60)

        channels = ["room-%d" % i for i in range(4)]
        sent = {ch: 0 for ch in channels}

        def append_round(tag):
            for x in nodes:
                c = Client(x.port)
                try:
                    for ch in channels:
                        sent[ch] += 1
                        self.assertEqual(self.append_retry(c, ch, "%s-%d-%s" % (
                            tag, x.node_id, ch), tag), sent[ch])
                finally:
                    c.close()

        append_round("first")
        for name, x in zip(names, nodes):
            # The same unit command line (and --bootstrap in the config) on
            # a restart: heraldd starts the data that is there.
            self.box.systemctl("restart", x.unit)
            p = self.box.show(x.unit, "ActiveState", "SubState", "MainPID")
            self.assertEqual((p["ActiveState"], p["SubState"]), ("active", "running"), p)
            self.assertNotEqual(int(p["MainPID"]), pids[x.unit])
            log = self.box.journal(x.unit)
            self.assertIn("already holds node %d of cluster" % x.node_id, log)
            self.assertIn("starting it (nothing is bootstrapped again)", log)
            cluster.wait_settled(60)
            append_round("after-" + name)

        logs = cluster.wait_converged(channels, want=lambda l: all(
            len(l[ch]) == sent[ch] for ch in channels))
        self.assertEqual({ch: len(logs[1][ch]) for ch in channels}, sent)
        for ch in channels:
            raw = {x.node_id: self.raw_log(x.port, ch) for x in nodes}
            self.assertEqual(raw[1], raw[2], ch)
            self.assertEqual(raw[1], raw[3], ch)
        self.stop_ok(*units)


if __name__ == "__main__":
    run_tests()

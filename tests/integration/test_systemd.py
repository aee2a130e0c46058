#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""heraldd under a service manager, without one: the test plays systemd's
side of sd_notify on its own AF_UNIX datagram socket (NOTIFY_SOCKET), so
READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 are checked for real. Also
scripts/install.sh into a DESTDIR, and the unit file it installs."""

import http.client
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Client, NodeTestCase, run_tests  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class NotifyListener:
    """The service manager's end: records every datagram, and at READY=1
    asks the node's HTTP API at once whether it answers."""

    def __init__(self, path, http_port):
        self.path = path
        self.port = http_port
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []   # (monotonic time, text)
        self.ready_probe = None
        self.cond = threading.Condition()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            text = data.decode("utf-8", "replace")
            if "READY=1" in text.split("\n") and self.ready_probe is None:
                try:
                    c = Client(self.port, timeout=10)
                    self.ready_probe = c.get("/v1/status").status
                    c.close()
                except (OSError, http.client.HTTPException) as e:
                    self.ready_probe = repr(e)
            with self.cond:
                self.messages.append((time.monotonic(), text))
                self.cond.notify_all()

    def lines(self):
        with self.cond:
            return [(t, l) for t, m in self.messages for l in m.split("\n") if l]

    def wait_for(self, pred, timeout=30.0):
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.lines_locked()), timeout)

    def lines_locked(self):
        return [l for _, m in self.messages for l in m.split("\n") if l]

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


class SystemdTest(NodeTestCase):
    def test_notify_ready_watchdog_stopping(self):
        n = self.new_node(start=False)
        listener = NotifyListener(os.path.join(self.tmp, "notify.sock"), n.port)
        saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        os.environ["NOTIFY_SOCKET"] = listener.path
        os.environ["WATCHDOG_USEC"] = "400000"  # a ping every 200 ms
        try:
            n.spawn()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            self.assertTrue(listener.wait_for(lambda ls: "READY=1" in ls), n.log())
            # The API answered the moment READY=1 arrived.
            self.assertEqual(listener.ready_probe, 200, n.log())
            self.assertTrue(listener.wait_for(
                lambda ls: ls[ls.index("READY=1"):].count("WATCHDOG=1") >= 3), listener.lines())
            n.client().append_ok("sd", "n1", "hi")
            rc = n.terminate()
            self.assertEqual(rc, 0)
            self.assertTrue(listener.wait_for(lambda ls: "STOPPING=1" in ls, 10), listener.lines())
        finally:
            listener.close()
        lines = [l for _, l in listener.lines()]
        self.assertEqual(lines.count("READY=1"), 1, lines)
        ready, stopping = lines.index("READY=1"), lines.index("STOPPING=1")
        self.assertLess(ready, stopping, lines)
        statuses = [l for l in lines if l.startswith("STATUS=")]
        self.assertTrue(any(l.startswith("STATUS=opening state") for l in lines[:ready]), lines)
        self.assertTrue(any("serving http://127.0.0.1:%d" % n.port in l for l in statuses), lines)
        self.assertTrue(any(l.startswith("STATUS=stopping") for l in lines[stopping - 1:]), lines)
        self.assertIn("systemd watchdog: WATCHDOG=1 every 200 ms", n.log())

    def test_without_notify_socket_nothing_is_sent(self):
        n = self.new_node()  # the harness's environment has no NOTIFY_SOCKET
        self.assertNotIn("NOTIFY_SOCKET", os.environ)
        self.assertNotIn("watchdog", n.log())
        self.assertNotIn("systemd", n.log())

    def test_install_script_into_destdir(self):
        build = os.path.dirname(os.path.dirname(harness.HERALDD))
        if not os.access(os.path.join(build, "cli", "herald"), os.X_OK):
            self.skipTest("no herald CLI built in %s" % build)
        dest = os.path.join(self.tmp, "root")
        env = dict(os.environ, DESTDIR=dest, PREFIX="/opt/herald")
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")

        def install():
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install.sh"), build],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               timeout=120)
            out = p.stdout.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 0, out)
            return out

        out = install()
        for path, mode in (("opt/herald/bin/heraldd", 0o755), ("opt/herald/bin/herald", 0o755),
                           ("etc/systemd/system/herald.service", 0o644),
                           ("etc/systemd/system/herald@.service", 0o644),
                           ("etc/herald/herald.conf", 0o640), ("var/lib/herald", 0o750),
                           ("opt/herald/share/bash-completion/completions/herald", 0o644),
                           ("opt/herald/share/herald/grafana-herald.json", 0o644)):
            full = os.path.join(dest, path)
            self.assertTrue(os.path.exists(full), "%s missing:\n%s" % (path, out))
            self.assertEqual(stat.S_IMODE(os.stat(full).st_mode), mode, path)
        self.assertIn("valid", out)  # install.sh checks the config it leaves
        self.assertIn("not created", out)  # no user made on this machine by a DESTDIR run
        unit = open(os.path.join(dest, "etc/systemd/system/herald.service")).read()
        self.assertIn("\nExecStart=/opt/herald/bin/heraldd --config /etc/herald/herald.conf\n",
                      unit)
        for want in ("Type=notify", "WatchdogSec=", "User=herald", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "ReadWritePaths=/var/lib/herald", "PrivateTmp=yes",
                     "LimitNOFILE=", "io_uring_setup io_uring_enter io_uring_register"):
            self.assertIn(want, unit)
        template = open(os.path.join(dest, "etc/systemd/system/herald@.service")).read()
        self.assertIn("\nExecStart=/opt/herald/bin/heraldd --config /etc/herald/%i.conf\n",
                      template)
        with open(os.path.join(ROOT, "ops", "herald.conf")) as f:
            example = f.read()
        conf = os.path.join(dest, "etc/herald/herald.conf")
        self.assertEqual(open(conf).read(), example)
        # An operator's config survives the next install.
        with open(conf, "a") as f:
            f.write("max-connections = 100\n")
        out = install()
        self.assertIn("exists, kept", out)
        self.assertTrue(open(conf).read().endswith("max-connections = 100\n"))
        # systemd's own reading of the unit: no unknown directive, no
        # unknown system call in the filter (the binary path made real).
        analyze = shutil.which("systemd-analyze")
        if analyze:
            for name, text in (("herald.service", unit), ("herald@n1.service", template)):
                local = os.path.join(self.tmp, name)
                with open(local, "w") as f:
                    f.write(text.replace("ExecStart=/opt/herald/bin/heraldd", "ExecStart="
                                         + os.path.join(dest, "opt/herald/bin/heraldd")))
                p = subprocess.run([analyze, "verify", local], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=60)
                out = p.stdout.decode("utf-8", "replace")
                for bad in ("Unknown", "Failed to parse", "ignoring", "Invalid"):
                    self.assertNotIn(bad, out, out)

    def test_template_unit_is_the_unit_per_instance(self):
        """ops/herald@.service is ops/herald.service but for the lines that
        name the instance: the hardening and the rest have one source."""
        def body(name):
            with open(os.path.join(ROOT, "ops", name)) as f:
                text = f.read()
            return text[text.index("[Unit]\n"):].splitlines()
        unit, template = body("herald.service"), body("herald@.service")
        instance = {
            "Description=herald node (durable, replicated log of channels)":
                ["Description=herald node %i (durable, replicated log of channels)"],
            "ExecStart=/usr/local/bin/heraldd --config /etc/herald/herald.conf":
                ["ExecStart=/usr/local/bin/heraldd --config /etc/herald/%i.conf"],
            # Each instance writes its own data directory, which systemd makes.
            "ReadWritePaths=/var/lib/herald":
                ["StateDirectory=herald/%i", "StateDirectoryMode=0750"],
        }
        want = []
        for line in unit:
            want.extend(instance.get(line, [line]))
        self.assertEqual(template, want)
        for line in instance:
            self.assertIn(line, unit)


if __name__ == "__main__":
    run_tests()

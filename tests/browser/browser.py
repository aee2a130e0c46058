# SPDX-License-Identifier: Apache-2.0
"""What the browser tests share: finding Chromium, driving it over the
DevTools protocol on a pipe, where artifacts go, and the command line
(--heraldd, --artifacts DIR; exit 77, skipped, when no Chromium is
installed, or 1 under HERALD_TEST_NO_SKIP=1: see harness.require)."""

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402


def find_chromium():
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


class CdpError(Exception):
    pass


class Chromium:
    """Headless Chromium and one page, over the DevTools protocol on a pipe:
    JSON messages ending in NUL, our commands on the browser's fd 3, its
    answers and events on its fd 4."""

    def __init__(self, exe, workdir, log_path):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()
        # High numbers, so that moving them to 3 and 4 cannot clobber each other.
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 20)
        hi_w = fcntl.fcntl(out_w, fcntl.F_DUPFD, 20)
        os.close(cmd_r)
        os.close(out_w)
        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio",
                "--hide-scrollbars", "--window-size=1100,900",
                "--user-data-dir=" + self.profile, "--remote-debugging-pipe", "about:blank"]
        self.log = open(log_path, "ab")
        env = dict(os.environ)
        env.setdefault("HOME", self.profile)  # CI may have none; Chromium wants one
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (hi_r, hi_w, hi_r, hi_w)]
            + args, pass_fds=(hi_r, hi_w), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env=env, start_new_session=True)
        os.close(hi_r)
        os.close(hi_w)
        self.next_id = 0
        self.answers = {}
        self.events = queue.Queue()
        self.console = []  # every console / log line of the page
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.session = None

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.out_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cond:
                    self.answers[None] = "eof"
                    self.cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw.decode("utf-8"))
                if "id" in msg:
                    with self.cond:
                        self.answers[msg["id"]] = msg
                        self.cond.notify_all()
                else:
                    self._event(msg)

    def _event(self, msg):
        p = msg.get("params", {})
        if msg.get("method") == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append("console.%s: %s" % (p.get("type"), text))
        elif msg.get("method") == "Log.entryAdded":
            e = p.get("entry", {})
            self.console.append("%s/%s: %s" % (e.get("source"), e.get("level"), e.get("text")))
        elif msg.get("method") == "Runtime.exceptionThrown":
            self.console.append("exception: %s" % json.dumps(p.get("exceptionDetails", {}))[:2000])

    def call(self, method, params=None, session=True, timeout=30.0):
        with self.cond:
            self.next_id += 1
            mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session is not None:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode("utf-8") + b"\0"
        while data:
            n = os.write(self.cmd_w, data)
            data = data[n:]
        deadline = time.time() + timeout
        with self.cond:
            while mid not in self.answers:
                if None in self.answers:
                    raise CdpError("chromium exited (see its log)")
                left = deadline - time.time()
                if left <= 0:
                    raise CdpError("no answer to %s in %.0fs" % (method, timeout))
                self.cond.wait(left)
            ans = self.answers.pop(mid)
        if "error" in ans:
            raise CdpError("%s: %s" % (method, ans["error"]))
        return ans.get("result", {})

    def open_page(self):
        """A fresh tab, attached; page, runtime and log events on."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        att = self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                        session=False)
        self.session = att["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(m)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        self.target = target["targetId"]

    def close_page(self):
        self.call("Target.closeTarget", {"targetId": self.target}, session=False)
        self.session = None

    def navigate(self, url):
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CdpError("navigate %s: %s" % (url, r["errorText"]))

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise CdpError("evaluate %s: %s" % (expr, r["exceptionDetails"]))
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except CdpError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)  # the browser's own process group
            self.proc.wait(timeout=10)
        os.close(self.cmd_w)
        self.reader.join(timeout=5)
        os.close(self.out_r)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def artifacts_dir():
    """Where screenshots and logs go: --artifacts, or a new temp dir."""
    d = os.environ.get("HERALD_BROWSER_ARTIFACTS") or tempfile.mkdtemp(prefix="herald-browser-")
    os.makedirs(d, exist_ok=True)
    return d


def main():
    args = sys.argv[1:]
    if "--artifacts" in args:
        i = args.index("--artifacts")
        os.environ["HERALD_BROWSER_ARTIFACTS"] = os.path.abspath(args[i + 1])
        del args[i:i + 2]
    harness.require_or_exit(os.path.basename(sys.argv[0]), find_chromium() is not None,
                            "Chromium, which scripts/install-deps.sh installs")
    sys.argv = [sys.argv[0]] + args
    harness.run_tests()

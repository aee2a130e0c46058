#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""heraldd's built-in status page (GET /) in a real browser.

Headless Chromium (driven as in test_browser_cors.py, over the DevTools
pipe) loads / from a running node while a thread appends. The rendered DOM
must show the node id, one row per shard with its leader, and an append
rate that is not zero while appends run and falls to 0.0 once they stop:
the page polls /v1/status and turns counters into rates. The page must load
nothing from elsewhere (its Content-Security-Policy would block it; the
console stays free of errors). A screenshot is kept in --artifacts.

  python3 tests/browser/test_browser_status_page.py --heraldd build/heraldd/heraldd --artifacts /tmp/a
"""

import json
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
from harness import NodeTestCase  # noqa: E402
from browser import Chromium, artifacts_dir, find_chromium, main  # noqa: E402


# What the page shows, read from its DOM in one go; null while the page
# (not about:blank) has not loaded yet.
READ_DOM = """JSON.stringify(!document.getElementById('node-id') ? null : {
  node: document.getElementById('node-id').textContent,
  cluster: document.getElementById('cluster-id').textContent,
  appendRate: document.getElementById('append-rate').textContent,
  wal: document.getElementById('disk-wal').textContent,
  sessions: document.getElementById('sessions').textContent,
  error: document.getElementById('error').textContent,
  shards: Array.from(document.querySelectorAll('#shards tbody tr')).map(
    tr => Array.from(tr.cells).map(td => td.textContent)),
})"""


class Appender(threading.Thread):
    """Appends to a few channels until stopped."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.stop = threading.Event()
        self.count = 0
        self.failure = None

    def run(self):
        c = self.node.client()
        try:
            while not self.stop.is_set():
                c.append_ok("page-%d" % (self.count % 8), "a%d" % self.count, "x")
                self.count += 1
        except Exception as e:  # reported by the test
            self.failure = e
        finally:
            c.close()


class StatusPageTest(NodeTestCase):

    @classmethod
    def setUpClass(cls):
        cls.artifacts = artifacts_dir()
        cls.workdir = tempfile.mkdtemp(prefix="herald-browser-", dir="/tmp")
        cls.browser = Chromium(find_chromium(), cls.workdir,
                               os.path.join(cls.artifacts, "chromium-status-page.log"))
        cls.browser.call("Browser.getVersion", session=False, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()

    def wait_dom(self, what, pred, timeout=60.0):
        """Reads the DOM until pred(dom) holds; returns that dom."""
        deadline = time.time() + timeout
        dom = None
        while time.time() < deadline:
            dom = json.loads(self.browser.evaluate(READ_DOM))
            if dom is not None and pred(dom):
                return dom
            time.sleep(0.2)
        self.fail("page never showed %s; last DOM: %s\nconsole: %s"
                  % (what, json.dumps(dom)[:3000], "\n".join(self.browser.console)))

    def test_live_figures(self):
        node = self.new_node()
        st = node.client().status()
        n_shards = len(st["shards"])
        appender = Appender(node)
        appender.start()
        b = self.browser
        b.open_page()
        b.console.clear()
        try:
            b.navigate("http://127.0.0.1:%d/" % node.port)
            dom = self.wait_dom("the node and its shards",
                                lambda d: d["node"] == str(st["node_id"])
                                and len(d["shards"]) == n_shards)
            self.assertEqual(dom["cluster"], st["cluster_id"])
            for i, row in enumerate(dom["shards"]):
                self.assertEqual(row[0], str(i))       # shard
                self.assertEqual(row[1], "leader")     # state
                self.assertEqual(row[2], str(st["node_id"]))  # leader
                self.assertEqual(int(row[6]), int(row[4]) - int(row[5]))  # lag
            self.assertNotEqual(dom["wal"], "–")
            self.assertEqual(dom["sessions"], "0")  # no tail or WebSocket open
            running = self.wait_dom("a non-zero append rate",
                                    lambda d: d["appendRate"] not in ("–", "0.0"))
            self.assertGreater(float(running["appendRate"]), 0)
            shot = os.path.join(self.artifacts, "status-page.png")
            b.screenshot(shot)
            print("screenshot of the status page under load: %s" % shot)
            appender.stop.set()
            appender.join(30)
            self.assertIsNone(appender.failure)
            self.assertGreater(appender.count, 0)
            # Appends stopped: the rate the page computes falls to zero.
            self.wait_dom("the append rate falling to 0.0", lambda d: d["appendRate"] == "0.0")
            # The commit index it shows has caught up with the appends made.
            final = node.client().status()
            dom = self.wait_dom("the final commit indexes",
                                lambda d: [r[4] for r in d["shards"]]
                                == [str(s["commit_index"]) for s in final["shards"]])
            self.assertEqual(dom["error"], "")
            b.screenshot(os.path.join(self.artifacts, "status-page-idle.png"))
            errors = [line for line in b.console if "error" in line.lower()]
            self.assertEqual(errors, [], "console errors (a blocked or failed load?)")
        finally:
            appender.stop.set()
            b.close_page()


if __name__ == "__main__":
    main()

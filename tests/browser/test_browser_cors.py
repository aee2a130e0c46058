#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A real browser uses herald from another origin.

Headless Chromium, driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: no port, no driver, no Python package), opens
site/cors_page.html, served by this process on one port of 127.0.0.1, while
heraldd listens on another port: a cross-origin page, as a web application
would be. The page records what it receives in window.__result; this test
reads it back and checks it against what heraldd stored.

  allowed  heraldd --cors-origins <the page's origin>: one-channel and
           multi-channel EventSource, WebSocket subscribe and append (acks
           with seq/ts), fetch appends (preflighted); every message arrives
           once, in seq order, everywhere.
  refused  heraldd --cors-origins <another origin>: the browser blocks the
           EventSources and fetches (CORS) and the WebSocket handshake is
           refused (403).
  no flag  heraldd without --cors-origins: EventSources and fetches blocked,
           the WebSocket accepted (the documented default).
  deleted  a channel deleted under EventSources: each gets event: gone, the
           one-channel tail's own reconnect is answered 410 and stays
           closed, the multi-channel stream goes on with its other channel.

Screenshots, the results and Chromium's log go to --artifacts. Exits 77
(CTest: skipped) when no Chromium is installed at all; under
HERALD_TEST_NO_SKIP=1 (scripts/test.sh) that fails instead.

  python3 tests/browser/test_browser_cors.py --heraldd build/heraldd/heraldd --artifacts /tmp/a
"""

import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import NodeTestCase, TS_RE  # noqa: E402
from browser import Chromium, artifacts_dir, find_chromium, main  # noqa: E402

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


class BrowserCorsTest(NodeTestCase):
    @classmethod
    def setUpClass(cls):
        cls.artifacts = artifacts_dir()
        handler = functools.partial(QuietHandler, directory=os.path.join(HERE, "site"))
        cls.site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        cls.site_port = cls.site.server_address[1]
        cls.site_thread = threading.Thread(target=cls.site.serve_forever, daemon=True)
        cls.site_thread.start()
        cls.origin = "http://127.0.0.1:%d" % cls.site_port
        cls.workdir = tempfile.mkdtemp(prefix="herald-browser-", dir="/tmp")
        t0 = time.time()
        cls.browser = Chromium(find_chromium(), cls.workdir,
                               os.path.join(cls.artifacts, "chromium.log"))
        cls.browser.call("Browser.getVersion", session=False, timeout=60)
        print("chromium up in %.1fs, page origin %s" % (time.time() - t0, cls.origin))

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.site.shutdown()
        cls.site.server_close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def run_page(self, node, mode, name, timeout=45.0):
        """Loads the page against node; returns window.__result once done."""
        b = self.browser
        b.open_page()
        b.console.clear()
        run = "%d%d" % (int(time.time() * 1000) % 10**9, os.getpid())
        url = "%s/cors_page.html?api=http://127.0.0.1:%d&mode=%s&run=%s" % (
            self.origin, node.port, mode, run)
        t0 = time.time()
        b.navigate(url)
        deadline = time.time() + timeout
        res = None
        while time.time() < deadline:
            res = json.loads(b.evaluate("JSON.stringify(window.__result || null)") or "null")
            if res and res.get("done"):
                break
            time.sleep(0.1)
        time.sleep(0.1)  # the last render
        b.screenshot(os.path.join(self.artifacts, "browser-%s.png" % name))
        res = res or {}
        res["console"] = list(b.console)
        with open(os.path.join(self.artifacts, "browser-%s.json" % name), "w") as f:
            json.dump(res, f, indent=1, ensure_ascii=False)
        b.close_page()
        print("  page '%s' (%s) finished in %.1fs" % (name, mode, time.time() - t0))
        self.assertTrue(res.get("done"), "page did not finish: %s" % json.dumps(res)[:3000])
        self.assertIsNone(res.get("error"), "page failed: %s\nconsole: %s"
                          % (res.get("error"), "\n".join(res["console"])))
        return res

    # ------------------------------------------------------------ cases ---

    def test_deleted_channel(self):
        """EventSources of a channel that is deleted: an event: gone each;
        the one-channel tail's own reconnect (Last-Event-ID of the old epoch)
        gets 410 and stays closed, rather than resuming at that seq in the
        new epoch; the multi-channel stream goes on with the other channel;
        a new tail sees the new epoch's ids."""
        node = self.new_node(args=["--cors-origins", self.origin])
        res = self.run_page(node, "deleted", "deleted")
        chA, chB = res["channels"]
        gone = {"channel": chA, "first_seq": 1, "epoch": 1}
        self.assertEqual(res["es1"]["gone"], [gone])
        self.assertEqual([(m["seq"], m["payload"]) for m in res["es1"]["messages"]],
                         [(1, "old0"), (2, "old1"), (3, "old2")])
        self.assertEqual(res["es1"]["readyState"], 2, "the tail reconnected and was not closed")
        self.assertEqual(res["esMulti"]["gone"], [gone])
        self.assertEqual([(m["channel"], m["seq"]) for m in res["esMulti"]["messages"]],
                         [(chA, 1), (chA, 2), (chA, 3), (chB, 1), (chB, 2)])
        self.assertEqual([(m["seq"], m["payload"]) for m in res["esNew"]["messages"]],
                         [(1, "new0")])
        self.assertEqual(res["esNew"]["ids"], ["1@1"])

    def test_allowed_origin(self):
        node = self.new_node(args=["--cors-origins", "https://other.example," + self.origin])
        res = self.run_page(node, "allowed", "allowed")
        self.assertEqual(res["origin"], self.origin)
        chA, chB = res["channels"]
        c = node.client()
        # What heraldd stored is the truth; the appends were made one at a
        # time, so each channel's order is the order the page sent them.
        truth = {ch: [(m["seq"], m["payload"]) for m in c.read_all(ch)] for ch in (chA, chB)}
        sent = {ch: [a["payload"] for a in res["appended"] if a["channel"] == ch]
                for ch in (chA, chB)}
        self.assertEqual(len(sent[chA]), 7)
        self.assertEqual(len(sent[chB]), 3)
        for ch in (chA, chB):
            self.assertEqual([p for _, p in truth[ch]], sent[ch], ch)
            self.assertEqual([s for s, _ in truth[ch]], list(range(1, len(sent[ch]) + 1)), ch)

        def got(msgs, ch):
            return [(m["seq"], m["payload"]) for m in msgs if m["channel"] == ch]

        self.assertEqual(got(res["es1"]["messages"], chA), truth[chA], "EventSource, one channel")
        self.assertEqual(len(res["es1"]["messages"]), len(truth[chA]))
        for ch in (chA, chB):
            self.assertEqual(got(res["esMulti"]["messages"], ch), truth[ch], "EventSource /v1/tail")
            self.assertEqual(got(res["ws"]["messages"].get(ch, []), ch), truth[ch], "WebSocket")
        self.assertEqual(len(res["esMulti"]["messages"]), 10)
        self.assertTrue(all(res["esMulti"]["ids"]), "every multi-channel event has an id")
        # Every WebSocket append was acknowledged with its seq and ts.
        acks = [a for a in res["appended"] if a["via"] == "ws"]
        self.assertEqual(len(acks), 8)
        stored = {ch: {p: (s, m["ts"]) for (s, p), m in zip(truth[ch], c.read_all(ch))}
                  for ch in (chA, chB)}
        for a in acks:
            ack = a["ack"]
            self.assertEqual(ack.get("type"), "ack", a)
            self.assertEqual(ack.get("channel"), a["channel"])
            self.assertIs(ack.get("duplicate"), False)
            self.assertRegex(ack.get("ts", ""), TS_RE)
            self.assertEqual((ack["seq"], ack["ts"]), stored[a["channel"]][a["payload"]], a)
        self.assertEqual(res["ws"]["errors"], [])
        # fetch: two appends (both preflighted) and a read, all readable.
        self.assertEqual([(f["what"], f.get("status")) for f in res["fetch"]],
                         [("POST json", 201), ("POST raw", 201), ("GET read", 200)])
        self.assertEqual(res["fetch"][0]["body"]["seq"], 6)
        self.assertEqual(res["fetch"][1]["body"]["seq"], 7)

    def assertBlocked(self, res, ws_refused):
        self.assertEqual(res["es1"]["messages"], [])
        self.assertEqual(res["esMulti"]["messages"], [])
        self.assertFalse(res["es1"]["open"])
        self.assertFalse(res["esMulti"]["open"])
        # A CORS failure closes an EventSource for good (no reconnect).
        self.assertEqual(res["es1"]["readyState"], 2)
        self.assertEqual(res["esMulti"]["readyState"], 2)
        for f in res["fetch"]:
            self.assertIn("TypeError", f.get("error", ""), f)
        console = "\n".join(res["console"])
        self.assertIn("CORS policy", console)
        if ws_refused:
            self.assertFalse(res["ws"]["open"])
            self.assertEqual(res["ws"]["close"]["code"], 1006)
            self.assertIn("403", console)  # "Unexpected response code: 403"
        else:
            self.assertTrue(res["ws"]["open"])

    def test_refused_origin(self):
        node = self.new_node(args=["--cors-origins", "https://other.example"])
        res = self.run_page(node, "blocked", "refused")
        self.assertBlocked(res, ws_refused=True)
        # heraldd was there all along, and wrote nothing.
        c = node.client()
        c.status()
        chA = res["channels"][0]
        self.assertEqual(c.read(chA)["messages"], [])

    def test_no_flag(self):
        node = self.new_node(args=[])
        res = self.run_page(node, "blocked", "no-flag")
        self.assertBlocked(res, ws_refused=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""CORS (--cors-origins): the headers of every kind of v1 answer (plain,
errors, the engine's own errors, SSE streams), preflights, the WebSocket
handshake's origin check, '*', and no CORS at all without the flag."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NodeTestCase, parse_raw_response, raw_exchange, run_tests  # noqa: E402

ALLOWED = "http://app.test:8080"
OTHER = "http://evil.test:8080"


def raw_head(port, method, path, headers=(), body=b"", timeout=5.0):
    """Sends one request; returns (status, headers, body) of the answer,
    reading only what arrives first (enough for a stream's head)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % kv for kv in headers]
    if body:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    out = raw_exchange(port, data, timeout=timeout, read_until_close=False)
    return parse_raw_response(out)


def ws_headers(origin=None):
    h = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
         ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
    if origin is not None:
        h.append(("Origin", origin))
    return h


class CorsTest(NodeTestCase):
    def assertAllowed(self, headers, origin, what=""):
        self.assertEqual(headers.get("access-control-allow-origin"), origin, what)
        self.assertIn("origin", headers.get("vary", "").lower(), what)
        self.assertIn("retry-after", headers.get("access-control-expose-headers", "").lower(),
                      what)

    def assertNotAllowed(self, headers, what=""):
        self.assertNotIn("access-control-allow-origin", headers, what)
        self.assertNotIn("access-control-expose-headers", headers, what)

    def test_listed_origins(self):
        n = self.new_node(args=["--cors-origins", "%s, https://b.test" % ALLOWED])
        c = n.client()
        # Plain answers, success and error.
        r = c.get("/v1/status", headers={"Origin": ALLOWED})
        self.assertEqual(r.status, 200)
        self.assertAllowed(r.headers, ALLOWED, "status")
        r = c.append("general", "n-1", "hi")
        self.assertEqual(r.status, 201)
        self.assertNotAllowed(r.headers, "no Origin")
        self.assertEqual(r.headers.get("vary"), "Origin")
        r = c.post_json("/v1/channels/general/messages", {"nonce": "n-2", "payload": "x"},
                        headers={"Origin": "https://b.test"})
        self.assertEqual(r.status, 201)
        self.assertAllowed(r.headers, "https://b.test", "append")
        r = c.get("/v1/channels/general/messages?after_seq=0", headers={"Origin": OTHER})
        self.assertEqual(r.status, 200)  # the server answers; the browser hides it
        self.assertNotAllowed(r.headers, "other origin")
        self.assertEqual(r.headers.get("vary"), "Origin")
        r = c.get("/v1/nope", headers={"Origin": ALLOWED})
        self.assertError(r, 404, "not_found")
        self.assertAllowed(r.headers, ALLOWED, "404")
        r = c.get("/v1/channels/bad!/messages", headers={"Origin": ALLOWED})
        self.assertError(r, 400, "bad_channel")
        self.assertAllowed(r.headers, ALLOWED, "400")
        # Outside the v1 API: nothing.
        r = c.get("/metrics", headers={"Origin": ALLOWED})
        self.assertEqual(r.status, 200)
        self.assertNotAllowed(r.headers, "/metrics")
        self.assertNotIn("vary", r.headers)
        # An error the HTTP engine answers by itself (body over --max-body).
        st, h, body = raw_head(n.port, "POST", "/v1/channels/general/messages",
                               [("Origin", ALLOWED), ("Content-Length", "999999999")])
        self.assertEqual(st, 413)
        self.assertAllowed(h, ALLOWED, "engine 413")
        # Streams: one channel and many.
        for path in ("/v1/channels/general/tail?after_seq=0", "/v1/tail?channels=general:0"):
            st, h, _ = raw_head(n.port, "GET", path, [("Origin", ALLOWED)])
            self.assertEqual(st, 200, path)
            self.assertEqual(h.get("content-type"), "text/event-stream")
            self.assertAllowed(h, ALLOWED, path)
            st, h, _ = raw_head(n.port, "GET", path, [("Origin", OTHER)])
            self.assertEqual(st, 200, path)
            self.assertNotAllowed(h, path)

    def test_preflight(self):
        n = self.new_node(args=["--cors-origins", ALLOWED])
        c = n.client()
        for path in ("/v1/channels/general/messages", "/v1/channels/general/tail",
                     "/v1/tail", "/v1/subscribe", "/v1/messages:batch", "/v1/cluster/nodes/2"):
            r = c.request("OPTIONS", path, headers={
                "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,idempotency-key"})
            self.assertEqual(r.status, 204, path)
            self.assertEqual(r.body, b"")
            self.assertAllowed(r.headers, ALLOWED, path)
            self.assertEqual(r.headers.get("access-control-allow-methods"),
                             "GET, POST, PUT, DELETE, OPTIONS")
            self.assertEqual(r.headers.get("access-control-allow-headers"),
                             "Content-Type, Idempotency-Key, Last-Event-ID, Authorization")
            self.assertTrue(int(r.headers.get("access-control-max-age", "0")) > 0)
        r = c.request("OPTIONS", "/v1/channels/general/messages", headers={
            "Origin": OTHER, "Access-Control-Request-Method": "POST"})
        self.assertError(r, 403, "origin_not_allowed")
        self.assertNotAllowed(r.headers)
        self.assertNotIn("access-control-allow-methods", r.headers)
        # A plain OPTIONS (no Origin) is told what the API takes.
        r = c.request("OPTIONS", "/v1/status")
        self.assertEqual(r.status, 204)
        self.assertNotAllowed(r.headers)
        self.assertEqual(r.headers.get("allow"), "GET, POST, PUT, DELETE, OPTIONS")
        # The connection goes on after a preflight.
        self.assertEqual(c.get("/v1/status", headers={"Origin": ALLOWED}).status, 200)

    def test_websocket_origin(self):
        n = self.new_node(args=["--cors-origins", ALLOWED])
        st, h, body = raw_head(n.port, "GET", "/v1/subscribe", ws_headers(OTHER))
        self.assertEqual(st, 403)
        self.assertEqual(json.loads(body)["error"]["code"], "origin_not_allowed")
        for origin in (ALLOWED, None):  # None: not a browser; no origin to judge
            st, h, _ = raw_head(n.port, "GET", "/v1/subscribe", ws_headers(origin))
            self.assertEqual(st, 101, origin)
            self.assertEqual(h.get("upgrade", "").lower(), "websocket")

    def test_star(self):
        n = self.new_node(args=["--cors-origins", "*"])
        c = n.client()
        for origin in (ALLOWED, OTHER, "null"):
            r = c.get("/v1/status", headers={"Origin": origin})
            self.assertAllowed(r.headers, origin, origin)
            r = c.request("OPTIONS", "/v1/tail", headers={"Origin": origin})
            self.assertEqual(r.status, 204)
            st, _, _ = raw_head(n.port, "GET", "/v1/subscribe", ws_headers(origin))
            self.assertEqual(st, 101, origin)
        r = c.get("/v1/status")
        self.assertNotAllowed(r.headers)

    def test_no_flag_no_cors(self):
        n = self.new_node()
        c = n.client()
        r = c.get("/v1/status", headers={"Origin": ALLOWED})
        self.assertEqual(r.status, 200)
        self.assertNotAllowed(r.headers)
        self.assertNotIn("vary", r.headers)
        r = c.request("OPTIONS", "/v1/channels/general/messages", headers={"Origin": ALLOWED})
        self.assertError(r, 405, "method_not_allowed")
        self.assertNotAllowed(r.headers)
        st, h, _ = raw_head(n.port, "GET", "/v1/channels/general/tail", [("Origin", ALLOWED)])
        self.assertEqual(st, 200)
        self.assertNotAllowed(h)
        # Today's behaviour: any origin may open a WebSocket.
        st, _, _ = raw_head(n.port, "GET", "/v1/subscribe", ws_headers(OTHER))
        self.assertEqual(st, 101)

    def test_bad_flag(self):
        for bad in ("https://app.test/", "app.test", "*,https://a.test", ",", "null"):
            p = subprocess.run([harness.HERALDD, "--data", os.path.join(self.tmp, "d"),
                                "--cors-origins", bad], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 2, bad)
            self.assertIn(b"--cors-origins", p.stderr, bad)
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "d")), bad)


if __name__ == "__main__":
    run_tests()

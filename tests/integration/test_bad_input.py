#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Malformed and hostile requests: each gets the right status and a JSON
error, changes nothing, and leaves the node serving with a clean log."""

import base64
import json
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NodeTestCase, Resp, SSEReader, parse_raw_response,  # noqa: E402
                     raw_exchange, run_tests)

MAX_PAYLOAD = 1000
MAX_BODY = 65536


class BadInputTest(NodeTestCase):
    node_args = ("--max-payload", str(MAX_PAYLOAD), "--max-body", str(MAX_BODY))

    def setUp(self):
        super().setUp()
        self.node = self.new_node()
        self.c = self.node.client()
        # Some history, so that "nothing changed" has something to compare.
        for ch in ("probe", "a"):
            for i in range(3):
                self.c.append_ok(ch, "seed-%d" % i, "seed %d" % i)

    # -- "nothing changed" --
    def state(self):
        st = self.c.status()
        last = sorted((s["shard"], s["last_index"], s["applied_index"]) for s in st["shards"])
        committed = st["appends"]["committed"]
        logs = {ch: self.c.read_all(ch) for ch in ("probe", "a")}
        return committed, last, logs

    def assertUnchanged(self, before, what):
        after = self.state()
        self.assertEqual(after[0], before[0], "%s: an append was committed" % what)
        self.assertEqual(after[2], before[2], "%s: a channel changed" % what)
        self.assertEqual(after[1], before[1], "%s: a Raft entry was written" % what)

    def post_append(self, ch, body, ctype="application/json", extra=None):
        h = {"Content-Type": ctype}
        h.update(extra or {})
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        return self.c.request("POST", "/v1/channels/%s/messages" % ch, body, h)

    def assertServes(self):
        s, _ = self.c.append_ok("probe", "alive-%f" % time.time(), "still alive")
        self.assertGreater(s, 0)

    # ------------------------------------------------------------ tests ---
    def test_bad_channel_ids(self):
        bad = ["", "x" * 129, "a%2Fb", "a%20b", "%zz", "a%00b", "%C3%A9t%C3%A9", "a+b",
               "a%0Ab", "a;b", "a,b", "a*b", "a%ffb"]
        before = self.state()
        for ch in bad:
            r = self.post_append(ch, {"nonce": "n", "payload": "x"})
            self.assertError(r, 400)
            r = self.c.get("/v1/channels/%s/messages?after_seq=0" % ch)
            self.assertError(r, 400)
            r = self.c.get("/v1/channels/%s/tail?after_seq=0" % ch)
            self.assertError(r, 400)
        # A literal '/' makes another path: an error either way.
        r = self.post_append("a/b", {"nonce": "n", "payload": "x"})
        self.assertIn(r.status, (400, 404), r)
        self.assertError(r, r.status)
        # A literal space breaks the request line.
        out = raw_exchange(self.node.port, b"POST /v1/channels/a b/messages HTTP/1.1\r\n"
                           b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n"
                           b'{"nonce":"n","payload":"xyz"}')
        self.assertTrue(out, "no answer to a request line with a space")
        st, _, body = parse_raw_response(out)
        self.assertEqual(st, 400, out)
        self.assertIn("error", json.loads(body), out)
        self.assertUnchanged(before, "bad channel ids")
        # Boundaries that are valid.
        ok = "A" * 128
        r = self.post_append(ok, {"nonce": "n", "payload": "x"})
        self.assertEqual(r.status, 201, r)
        r = self.post_append("az.AZ_09:-", {"nonce": "n", "payload": "x"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual([m["payload"] for m in self.c.read_all(ok)], ["x"])

    def test_bad_nonces(self):
        before = self.state()
        bodies = [
            {"payload": "no nonce"},
            {"nonce": "", "payload": "empty"},
            {"nonce": "n" * 129, "payload": "long"},
            {"nonce": "with space", "payload": "x"},
            {"nonce": " lead", "payload": "x"},
            {"nonce": "tab\there", "payload": "x"},
            {"nonce": "nl\nhere", "payload": "x"},
            {"nonce": "nul\u0001", "payload": "x"},
            {"nonce": "é", "payload": "x"},
            {"nonce": 42, "payload": "x"},
            {"nonce": None, "payload": "x"},
            {"nonce": ["a"], "payload": "x"},
        ]
        for b in bodies:
            r = self.post_append("a", b)
            self.assertError(r, 400)
        # Raw bodies: the Idempotency-Key is the nonce.
        for key in ("n" * 129, "a b"):
            r = self.c.request("POST", "/v1/channels/a/messages", b"raw",
                               {"Content-Type": "application/octet-stream", "Idempotency-Key": key})
            self.assertError(r, 400)
        r = self.c.request("POST", "/v1/channels/a/messages", b"raw",
                           {"Content-Type": "application/octet-stream"})
        self.assertError(r, 400)
        # In a batch, a bad nonce is an error line, not a write.
        lines = [json.dumps({"channel": "a", "nonce": "", "payload": "x"}),
                 json.dumps({"channel": "a", "nonce": "n" * 129, "payload": "x"}),
                 json.dumps({"channel": "a", "payload": "x"})]
        r = self.c.request("POST", "/v1/messages:batch", "\n".join(lines) + "\n",
                           {"Content-Type": "application/x-ndjson"})
        if r.status == 200:
            out = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
            self.assertEqual(len(out), 3, out)
            for o in out:
                self.assertIn("error", o)
        else:
            self.assertError(r, 400)
        self.assertUnchanged(before, "bad nonces")
        r = self.post_append("a", {"nonce": "n" * 128, "payload": "longest nonce"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.c.read_all("a")[-1]["nonce"], "n" * 128)

    def test_payload_over_limit_and_body_over_limit(self):
        before = self.state()
        r = self.post_append("a", {"nonce": "big", "payload": "x" * (MAX_PAYLOAD + 1)})
        self.assertError(r, 400)
        # The limit is in bytes, not characters.
        r = self.post_append("a", {"nonce": "big2", "payload": "é" * (MAX_PAYLOAD // 2 + 1)})
        self.assertError(r, 400)
        r = self.post_append("a", {"nonce": "big3",
                                   "payload_b64": base64.b64encode(b"\0" * (MAX_PAYLOAD + 1)).decode()})
        self.assertError(r, 400)
        r = self.c.request("POST", "/v1/channels/a/messages", b"r" * (MAX_PAYLOAD + 1),
                           {"Content-Type": "application/octet-stream", "Idempotency-Key": "big4"})
        self.assertError(r, 400)
        line = json.dumps({"channel": "a", "nonce": "big5", "payload": "x" * (MAX_PAYLOAD + 1)})
        r = self.c.request("POST", "/v1/messages:batch", line + "\n",
                           {"Content-Type": "application/x-ndjson"})
        if r.status == 200:
            self.assertIn("error", json.loads(r.body.decode().splitlines()[0]))
        else:
            self.assertError(r, 400)
        # Missing or non-string payloads.
        for b in ({"nonce": "np"}, {"nonce": "np", "payload": 5},
                  {"nonce": "np", "payload": None}, {"nonce": "np", "payload_b64": 5}):
            self.assertError(self.post_append("a", b), 400)
        # Bodies over --max-body: 413, also when the client does not wait.
        r = self.post_append("a", {"nonce": "huge", "payload": "x" * (MAX_BODY + 10)})
        self.assertError(r, 413)
        out = raw_exchange(self.node.port,
                           b"POST /v1/channels/a/messages HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{")
        st, _, body = parse_raw_response(out)
        self.assertEqual(st, 413, out)
        self.assertIn("error", json.loads(body))
        # Chunked bodies count too.
        chunk = b"x" * 8192
        req = (b"POST /v1/channels/a/messages HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/octet-stream\r\nIdempotency-Key: chunky\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        req += b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(MAX_BODY // 8192 + 2))
        req += b"0\r\n\r\n"
        out = raw_exchange(self.node.port, req)
        st, _, body = parse_raw_response(out)
        self.assertEqual(st, 413, out[:300])
        self.assertUnchanged(before, "over-limit payloads")
        # The boundary is accepted: exactly max-payload bytes.
        r = self.post_append("a", {"nonce": "exact", "payload": "y" * MAX_PAYLOAD})
        self.assertEqual(r.status, 201, r)
        r = self.post_append("a", {"nonce": "exact2",
                                   "payload_b64": base64.b64encode(b"\xff" * MAX_PAYLOAD).decode()})
        self.assertEqual(r.status, 201, r)
        msgs = self.c.read_all("a")
        self.assertEqual(msgs[-2]["payload"], "y" * MAX_PAYLOAD)
        self.assertEqual(base64.b64decode(msgs[-1]["payload_b64"]), b"\xff" * MAX_PAYLOAD)

    def test_bad_json(self):
        before = self.state()
        bodies = [
            b'{"nonce":"j1","payload":',
            b'{"nonce":"j1","payload":"x"',
            b'{"nonce":"j1" "payload":"x"}',
            b'{nonce:"j1",payload:"x"}',
            b"",
            b"   ",
            b"[]",
            b'["nonce","payload"]',
            b'"just a string"',
            b"42",
            b"null",
            b"true",
            b'{"nonce":"j1","payload":"x"} trailing',
            b'{"nonce":"j1","payload":"x"}{"nonce":"j2","payload":"y"}',
            b'{"nonce":"j1","payload":"\xff\xfe"}',             # invalid UTF-8
            b'{"nonce":"j1","payload":"\xc0\xaf"}',             # overlong encoding
            b'{"nonce":"j1","payload":"\xed\xa0\x80"}',         # encoded surrogate
            b'{"nonce":"j1","payload":"a\x00b"}',              # raw NUL in a string
            b'{"nonce":"j1","payload":"\\ud800"}',              # lone surrogate escape
            b'{"nonce":"j1","payload":"bad \\q escape"}',
            b'\xef\xbb\xbf\xff{"nonce":"j1","payload":"x"}',
            b'{"nonce":"j1","payload":"x",}',
            b"[" * 5000,                                         # deep nesting
        ]
        for b in bodies:
            r = self.post_append("a", b)
            self.assertError(r, 400)
        # Batch lines with the same faults: error lines in place, valid
        # lines around them still written.
        lines = [b'{"channel":"a","nonce":"bj1","payload":"ok1"}',
                 b'{"channel":"a","nonce":"bj2","payload":"\xff"}',
                 b'[1,2]',
                 b'{"channel":"a","nonce":"bj3","payload":"ok3"}']
        r = self.c.request("POST", "/v1/messages:batch", b"\n".join(lines) + b"\n",
                           {"Content-Type": "application/x-ndjson"})
        self.assertEqual(r.status, 200, r)
        out = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
        self.assertEqual(len(out), 4, out)
        self.assertEqual(out[0]["seq"], 4)
        self.assertIn("error", out[1])
        self.assertIn("error", out[2])
        self.assertEqual(out[3]["seq"], 5)
        # Bodies that are not batches at all.
        for b in (b"", b"\n\n"):
            r = self.c.request("POST", "/v1/messages:batch", b,
                               {"Content-Type": "application/x-ndjson"})
            self.assertError(r, 400)
        msgs = self.c.read_all("a")
        self.assertEqual([m["nonce"] for m in msgs], ["seed-0", "seed-1", "seed-2", "bj1", "bj3"])
        self.assertEqual(self.c.read_all("probe"), before[2]["probe"])

    def test_bad_base64(self):
        before = self.state()
        for b64 in ("AP8*", "AP8 ", "A===", "AP8==", "=AP8", "AP=8", "AAAA=AAA", "@@@@",
                    "QUJD\x00", "QUJDRA=", "QUJDRA==="):
            r = self.post_append("a", {"nonce": "b64", "payload_b64": b64})
            self.assertError(r, 400)
        self.assertUnchanged(before, "bad base64")
        r = self.post_append("a", {"nonce": "b64ok", "payload_b64": "QUJDRA=="})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.c.read_all("a")[-1]["payload"], "ABCD")

    def test_unknown_routes_and_methods(self):
        before = self.state()
        for path in ("/index.html", "/v1", "/v2/status", "/v1/channels", "/v1/channels/a/trimX",
                     "/v1/channels/a/messagesX", "/v1/channels/a/messages/1",
                     "/v1/channels/a/tails", "/v1/statusX", "/metrics/x", "/v1/messages:batchx",
                     "/v1/channels/a/messages/../../status"):
            for m in ("GET", "POST"):
                r = self.c.request(m, path, b"{}" if m == "POST" else None,
                                   {"Content-Type": "application/json"} if m == "POST" else None)
                self.assertError(r, 404)
        for m, path in (("DELETE", "/v1/channels/a/messages"), ("PUT", "/v1/channels/a/messages"),
                        ("PATCH", "/v1/channels/a/messages"), ("GET", "/v1/messages:batch"),
                        ("POST", "/v1/status"), ("POST", "/metrics"),
                        ("POST", "/v1/channels/a/tail"), ("DELETE", "/v1/status"),
                        ("POST", "/v1/channels/a"), ("GET", "/v1/channels/a/trim")):
            r = self.c.request(m, path, b"{}" if m != "GET" else None,
                               {"Content-Type": "application/json"})
            self.assertError(r, 405)
            allow = r.headers.get("allow")
            if allow is not None:
                self.assertNotIn(m, [a.strip() for a in allow.split(",")])
        self.assertUnchanged(before, "unknown routes")

    def test_huge_headers(self):
        before = self.state()
        body = b'{"nonce":"hh","payload":"x"}'
        big = (b"POST /v1/channels/a/messages HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nX-Big: " + b"b" * 20000 + b"\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        out = raw_exchange(self.node.port, big)
        st, _, rb = parse_raw_response(out)
        self.assertEqual(st, 431, out[:300])
        self.assertIn("error", json.loads(rb))
        many = (b"POST /v1/channels/a/messages HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n" +
                b"".join(b"X-H%d: v\r\n" % i for i in range(200)) +
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
        out = raw_exchange(self.node.port, many)
        st, _, rb = parse_raw_response(out)
        self.assertEqual(st, 431, out[:300])
        # A long URL.
        out = raw_exchange(self.node.port, b"GET /v1/channels/a/messages?x=" + b"1" * 70000 +
                           b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out, "no answer to a 70 KB request line")
        st, _, rb = parse_raw_response(out)
        self.assertIn(st, (414, 431), out[:300])
        self.assertUnchanged(before, "huge headers")

    def test_garbage_on_the_socket(self):
        before = self.state()
        rnd = random.Random(1234)
        blobs = [
            bytes(rnd.getrandbits(8) for _ in range(2000)),
            b"\x00" * 512,
            b"\r\n" * 100,
            b"GET / HTTP/9.9\r\n\r\n",
            b"HELLO WORLD\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100,  # TLS hello
            b"POST /v1/channels/a/messages HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
            b"POST /v1/channels/a/messages HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
            b"POST /v1/channels/a/messages HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
            b"POST /v1/channels/a/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 10\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"POST /v1/channels/a/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"fffffffffffffffffff\r\n",
            b"GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
            b"GET /v1/status HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
            b"GET\x00/v1/status HTTP/1.1\r\n\r\n",
            b"G" * 100000,
        ]
        for i in range(30):
            blobs.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300))))
        for i, blob in enumerate(blobs):
            try:
                out = raw_exchange(self.node.port, blob, timeout=3)
            except (ConnectionResetError, BrokenPipeError):
                continue
            if out:
                self.assertTrue(out.startswith(b"HTTP/1.1 "), (i, out[:200]))
                st, _, _ = parse_raw_response(out)
                self.assertGreaterEqual(st, 400, (i, blob[:100], out[:300]))
        self.assertUnchanged(before, "garbage")
        self.assertServes()

    def test_slow_client_does_not_block_others(self):
        body = b'{"nonce":"slow-1","payload":"slowly"}'
        req = (b"POST /v1/channels/slow/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        result = {}

        def slow():
            s = socket.create_connection(("127.0.0.1", self.node.port), timeout=30)
            try:
                for b in req:
                    s.sendall(bytes([b]))
                    time.sleep(0.02)
                data = b""
                while b"\r\n\r\n" not in data or len(data) < 40:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                    st, h, rb = parse_raw_response(data)
                    if len(rb) >= int(h.get("content-length", 0)):
                        break
                result["out"] = data
            except Exception as e:  # noqa: BLE001
                result["err"] = e
            finally:
                s.close()

        slow_clients = [threading.Thread(target=slow) for _ in range(1)]
        # A few more idle slow connections that only send part of a header.
        idle = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", self.node.port), timeout=30)
            s.sendall(b"POST /v1/channels/idle/mess")
            idle.append(s)
        for t in slow_clients:
            t.start()
        worst = 0.0
        n = 0
        while any(t.is_alive() for t in slow_clients):
            t0 = time.time()
            self.c.append_ok("fast", "f%d" % n, "fast %d" % n)
            self.c.read("fast", after_seq=max(0, n - 5))
            worst = max(worst, time.time() - t0)
            n += 1
        for t in slow_clients:
            t.join()
        for s in idle:
            s.close()
        self.assertNotIn("err", result, result)
        st, _, rb = parse_raw_response(result["out"])
        self.assertEqual(st, 201, result["out"])
        self.assertGreater(n, 20, "other clients were served only %d times in ~4 s" % n)
        self.assertLess(worst, 1.0, "an append+read took %.2fs while a client was slow" % worst)
        self.assertEqual([m["nonce"] for m in self.c.read_all("slow")], ["slow-1"])
        self.assertEqual(len(self.c.read_all("fast")), n)

    def test_disconnect_mid_body(self):
        before = self.state()
        body = json.dumps({"nonce": "cut", "payload": "z" * 900}).encode()
        head = (b"POST /v1/channels/a/messages HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        full = head + body
        cuts = [5, len(head) - 2, len(head), len(head) + 1, len(head) + 100, len(full) - 1]
        cuts += random.sample(range(1, len(full) - 1), 10)
        for i, cut in enumerate(cuts):
            s = socket.create_connection(("127.0.0.1", self.node.port), timeout=5)
            s.sendall(full[:cut])
            if i % 2:
                # RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        # Batch bodies cut too.
        lines = b"".join(json.dumps({"channel": "a", "nonce": "bc%d" % i, "payload": "p"}).encode()
                         + b"\n" for i in range(50))
        bh = (b"POST /v1/messages:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
              b"Content-Length: %d\r\n\r\n" % len(lines))
        for cut in (len(bh) + 10, len(bh) + len(lines) // 2, len(bh) + len(lines) - 1):
            s = socket.create_connection(("127.0.0.1", self.node.port), timeout=5)
            s.sendall((bh + lines)[:cut])
            s.close()
        time.sleep(0.3)
        self.assertUnchanged(before, "cut bodies")
        self.assertServes()

    def test_disconnect_mid_tail(self):
        for i in range(200):
            self.c.append_ok("tl", "h%d" % i, "history %d " % i + "h" * 500)
        stop = threading.Event()
        errors = []

        def writer():
            c = self.node.client()
            k = 0
            while not stop.is_set():
                try:
                    c.append_ok("tl", "live%d" % k, "live %d" % k)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                    return
                k += 1

        w = threading.Thread(target=writer)
        w.start()
        try:
            for i in range(30):
                s = socket.create_connection(("127.0.0.1", self.node.port), timeout=5)
                s.sendall(b"GET /v1/channels/tl/tail?after_seq=%d HTTP/1.1\r\nHost: x\r\n"
                          b"Accept: text/event-stream\r\n\r\n" % (i * 5))
                if i % 3:
                    s.recv(random.randint(1, 5000))
                if i % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            # One that stays and must still see everything.
            sse = SSEReader(self.node.port, "tl", after_seq=0)
            self.assertGreaterEqual(sse.wait_count(250, 30), 250)
            sse.close()
        finally:
            stop.set()
            w.join()
        self.assertEqual(errors, [])
        msgs = self.c.read_all("tl")
        self.assertChannelLog(msgs, "tl")
        # The closed tails go away.
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.c.status()["appends"]["tails"] == 0:
                break
            time.sleep(0.1)
        self.assertEqual(self.c.status()["appends"]["tails"], 0, "tails leaked after disconnects")
        self.assertServes()


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Appends, retries, raw and binary payloads, batches and reads on one node."""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NodeTestCase, metric, msg_payload_bytes, run_tests, ts_key)  # noqa: E402


class AppendTest(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.node = self.new_node()
        self.c = self.node.client()

    def test_process_metrics(self):
        """The standard process metrics agree with what /proc says of the node."""
        cpu0 = metric(self.c, "process_cpu_seconds_total")
        for i in range(300):
            self.assertEqual(self.c.append("pm", "pm-%d" % i, "x" * 100).status, 201)
        cpu1 = metric(self.c, "process_cpu_seconds_total")
        self.assertGreater(cpu1, cpu0, "300 appends took no CPU?")
        pid = self.node.proc.pid
        with open("/proc/%d/statm" % pid) as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        got = metric(self.c, "process_resident_memory_bytes")
        self.assertLess(abs(got - rss), rss * 0.5 + (8 << 20), (got, rss))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        got = metric(self.c, "process_open_fds")
        self.assertLessEqual(abs(got - fds), 3, (got, fds))

    def test_append_answers_seq_and_ts(self):
        got = []
        for i in range(5):
            r = self.c.append("alpha", "n%d" % i, "hello %d" % i)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
            j = r.json()
            self.assertEqual(j["channel"], "alpha")
            self.assertEqual(j["seq"], i + 1)
            self.assertIs(j["duplicate"], False)
            self.assertIsInstance(j["ts"], str)
            got.append((j["seq"], j["ts"]))
        keys = [ts_key(ts) for _, ts in got]
        self.assertEqual(keys, sorted(set(keys)), "ts not strictly increasing: %r" % got)
        msgs = self.c.read_all("alpha")
        self.assertChannelLog(msgs, "alpha")
        self.assertEqual([(m["seq"], m["ts"], m["nonce"], m["payload"]) for m in msgs],
                         [(s, t, "n%d" % i, "hello %d" % i) for i, (s, t) in enumerate(got)])
        # Another channel has its own sequence.
        self.assertEqual(self.c.append_ok("beta", "n0", "x")[0], 1)

    def test_same_nonce_is_a_duplicate_and_writes_nothing(self):
        s1, t1 = self.c.append_ok("dup", "nonce-1", "first")
        s2, t2 = self.c.append_ok("dup", "nonce-2", "second")
        dup_before = metric(self.c, "herald_appends_duplicate_total")
        committed_before = metric(self.c, "herald_appends_committed_total")
        for _ in range(3):
            r = self.c.append("dup", "nonce-1", "first")
            self.assertEqual(r.status, 200, r)
            j = r.json()
            self.assertEqual((j["channel"], j["seq"], j["ts"], j["duplicate"]),
                             ("dup", s1, t1, True))
        # Also a retry over a fresh connection.
        c2 = self.node.client()
        j = c2.append("dup", "nonce-2", "second").json()
        self.assertEqual((j["seq"], j["ts"], j["duplicate"]), (s2, t2, True))
        msgs = self.c.read_all("dup")
        self.assertEqual([(m["seq"], m["ts"], m["nonce"], m["payload"]) for m in msgs],
                         [(s1, t1, "nonce-1", "first"), (s2, t2, "nonce-2", "second")])
        self.assertEqual(metric(self.c, "herald_appends_duplicate_total") - dup_before, 4)
        self.assertEqual(metric(self.c, "herald_appends_committed_total"), committed_before)
        # The same nonce in another channel is a different append.
        r = self.c.append("dup2", "nonce-1", "other")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["seq"], 1)
        # A new append after the retries continues the sequence.
        self.assertEqual(self.c.append_ok("dup", "nonce-3", "third")[0], 3)

    def test_raw_body_with_idempotency_key(self):
        raw = b"raw \x00\x01\xfe\xff bytes\r\n{not json}"
        hdr = {"Content-Type": "application/octet-stream", "Idempotency-Key": "raw-key-1"}
        r = self.c.request("POST", "/v1/channels/raw/messages", raw, hdr)
        self.assertEqual(r.status, 201, r)
        j = r.json()
        self.assertEqual((j["seq"], j["duplicate"]), (1, False))
        r2 = self.c.request("POST", "/v1/channels/raw/messages", raw, hdr)
        self.assertEqual(r2.status, 200, r2)
        j2 = r2.json()
        self.assertEqual((j2["seq"], j2["ts"], j2["duplicate"]), (1, j["ts"], True))
        text = "plain text body ✓".encode("utf-8")
        r3 = self.c.request("POST", "/v1/channels/raw/messages", text,
                            {"Content-Type": "text/plain", "Idempotency-Key": "raw-key-2"})
        self.assertEqual(r3.status, 201, r3)
        msgs = self.c.read_all("raw")
        self.assertEqual(len(msgs), 2, msgs)
        self.assertEqual(msgs[0]["nonce"], "raw-key-1")
        self.assertIn("payload_b64", msgs[0], "invalid UTF-8 must read back as payload_b64")
        self.assertEqual(msg_payload_bytes(msgs[0]), raw)
        self.assertEqual(msgs[1]["nonce"], "raw-key-2")
        self.assertEqual(msg_payload_bytes(msgs[1]), text)
        self.assertEqual(msgs[1].get("payload"), text.decode("utf-8"))

    def test_payload_b64_roundtrip(self):
        cases = [
            bytes(range(256)),                  # every byte, NUL and invalid UTF-8
            b"\x00",
            b"\x00\x00\x00abc\x00",
            b"\xc3\x28",                        # invalid 2-byte sequence
            b"\xed\xa0\x80",                    # UTF-16 surrogate encoded: invalid
            b"\xf8\x88\x80\x80\x80",            # 5-byte form: invalid
            os.urandom(4096),
        ]
        for i, p in enumerate(cases):
            r = self.c.append("bin", "b%d" % i, payload_b64=base64.b64encode(p).decode())
            self.assertEqual(r.status, 201, (i, r))
            self.assertEqual(r.json()["seq"], i + 1)
        texts = ["héllo wörld ✓ 🎉", "tab\tnewline\nquote\" backslash\\", "x" * 1000]
        for i, t in enumerate(texts):
            r = self.c.append("bin", "t%d" % i, t)
            self.assertEqual(r.status, 201, r)
        msgs = self.c.read_all("bin")
        self.assertEqual(len(msgs), len(cases) + len(texts))
        for i, p in enumerate(cases):
            m = msgs[i]
            self.assertEqual(m["nonce"], "b%d" % i)
            self.assertEqual(msg_payload_bytes(m), p, "payload %d changed" % i)
            try:
                p.decode("utf-8")
            except UnicodeDecodeError:
                self.assertIn("payload_b64", m, "invalid UTF-8 must come back as payload_b64")
        for i, t in enumerate(texts):
            m = msgs[len(cases) + i]
            self.assertEqual(m.get("payload"), t)
        # Reading the same data through a tail gives the same bytes.
        from harness import SSEReader
        sse = SSEReader(self.node.port, "bin", after_seq=0)
        try:
            self.assertEqual(sse.wait_count(len(msgs), 20), len(msgs))
            for ev, m in zip(sse.snapshot(), msgs):
                d = dict(ev["data"])
                self.assertEqual(d.pop("channel", "bin"), "bin")
                self.assertEqual(d, m)
        finally:
            sse.close()

    def test_batch_ndjson_with_bad_line(self):
        self.c.append_ok("bat", "pre", "before")
        lines = [
            json.dumps({"channel": "bat", "nonce": "a", "payload": "one"}),
            json.dumps({"channel": "bat2", "nonce": "a", "payload": "other channel"}),
            "{this is not json",
            json.dumps({"channel": "bad channel", "nonce": "z", "payload": "x"}),
            json.dumps({"channel": "bat", "nonce": "b", "payload": "two"}),
            json.dumps({"channel": "bat", "nonce": "pre", "payload": "before"}),
            json.dumps({"channel": "bat", "nonce": "a", "payload": "one"}),
            json.dumps(["not", "an", "object"]),
            json.dumps({"channel": "bat", "nonce": "c", "payload_b64": base64.b64encode(b"\x00\xff").decode()}),
        ]
        body = ("\n".join(lines) + "\n").encode()
        r = self.c.request("POST", "/v1/messages:batch", body,
                           {"Content-Type": "application/x-ndjson"})
        self.assertEqual(r.status, 200, r)
        out = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
        self.assertEqual(len(out), len(lines), out)
        self.assertEqual((out[0]["channel"], out[0]["seq"], out[0]["duplicate"]), ("bat", 2, False))
        self.assertEqual((out[1]["channel"], out[1]["seq"], out[1]["duplicate"]), ("bat2", 1, False))
        self.assertIn("error", out[2])
        self.assertIn("code", out[2]["error"])
        self.assertIn("error", out[3])
        self.assertEqual((out[4]["seq"], out[4]["duplicate"]), (3, False))
        self.assertEqual((out[5]["seq"], out[5]["duplicate"]), (1, True))
        # The same nonce twice inside one batch: the second is the first's duplicate.
        self.assertEqual((out[6]["seq"], out[6]["ts"], out[6]["duplicate"]),
                         (2, out[0]["ts"], True))
        self.assertIn("error", out[7])
        self.assertEqual((out[8]["seq"], out[8]["duplicate"]), (4, False))
        msgs = self.c.read_all("bat")
        self.assertChannelLog(msgs, "bat")
        self.assertEqual([(m["nonce"], msg_payload_bytes(m)) for m in msgs],
                         [("pre", b"before"), ("a", b"one"), ("b", b"two"), ("c", b"\x00\xff")])
        self.assertEqual(msgs[1]["ts"], out[0]["ts"])
        self.assertEqual(msgs[2]["ts"], out[4]["ts"])
        self.assertEqual([m["nonce"] for m in self.c.read_all("bat2")], ["a"])

    def test_reads_after_seq_limit_and_after_ts(self):
        acks = [self.c.append_ok("rd", "r%02d" % i, "m%02d" % i) for i in range(25)]
        j = self.c.read("rd", after_seq=0, limit=10)
        self.assertEqual(j["channel"], "rd")
        self.assertEqual([m["seq"] for m in j["messages"]], list(range(1, 11)))
        self.assertEqual(j["next_seq"], 11)
        j = self.c.read("rd", after_seq=10, limit=10)
        self.assertEqual([m["seq"] for m in j["messages"]], list(range(11, 21)))
        j = self.c.read("rd", after_seq=20, limit=10)
        self.assertEqual([m["seq"] for m in j["messages"]], list(range(21, 26)))
        self.assertEqual(j["next_seq"], 26)
        j = self.c.read("rd", after_seq=25, limit=10)
        self.assertEqual(j["messages"], [])
        j = self.c.read("rd", after_seq=3, limit=1)
        self.assertEqual([m["seq"] for m in j["messages"]], [4])
        j = self.c.read("rd", after_seq=0, limit=1000)
        self.assertEqual(len(j["messages"]), 25)
        for m, (s, t) in zip(j["messages"], acks):
            self.assertEqual((m["seq"], m["ts"]), (s, t))
        j = self.c.read("rd")  # no parameters: from the start
        self.assertEqual(j["messages"][0]["seq"], 1)
        # after_ts: strictly after the given time.
        t10 = acks[9][1]
        j = self.c.read("rd", after_ts=t10, limit=5)
        self.assertEqual([m["seq"] for m in j["messages"]], list(range(11, 16)))
        k = ts_key(t10) - 1
        just_before = "%d.%06d" % (k // 1000000, k % 1000000)
        j = self.c.read("rd", after_ts=just_before, limit=2)
        self.assertEqual([m["seq"] for m in j["messages"]], [10, 11])
        j = self.c.read("rd", after_ts="0.000000", limit=3)
        self.assertEqual([m["seq"] for m in j["messages"]], [1, 2, 3])
        j = self.c.read("rd", after_ts=acks[-1][1])
        self.assertEqual(j["messages"], [])
        # An unknown channel is empty, not an error.
        j = self.c.read("never-written", after_seq=0)
        self.assertEqual((j["channel"], j["messages"], j["next_seq"]), ("never-written", [], 1))
        # Bad read parameters are 400 with a JSON error.
        for q in ("after_seq=abc", "after_seq=-1", "limit=abc", "after_ts=yesterday"):
            r = self.c.get("/v1/channels/rd/messages?" + q)
            self.assertError(r, 400)
        # Over the page limit: refused or clamped, never more than 1000.
        r = self.c.get("/v1/channels/rd/messages?after_seq=0&limit=5000")
        if r.status != 400:
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.json()["messages"]), 1000)

    def test_pipelined_requests_answer_in_order(self):
        from harness import raw_exchange
        reqs = b""
        for i in range(10):
            body = json.dumps({"nonce": "pipe%d" % i, "payload": "p%d" % i}).encode()
            reqs += (b"POST /v1/channels/pipe/messages HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            reqs += b"GET /v1/channels/pipe/messages?after_seq=%d&limit=1 HTTP/1.1\r\nHost: x\r\n\r\n" % i
        reqs += b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = raw_exchange(self.node.port, reqs, timeout=20)
        answers = []
        rest = out
        while rest:
            head, sep, rest = rest.partition(b"\r\n\r\n")
            self.assertTrue(sep, "truncated response: %r" % head[:200])
            lines = head.decode("latin-1").split("\r\n")
            hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
            n = int(hdrs["content-length"])
            answers.append((int(lines[0].split()[1]), json.loads(rest[:n])))
            rest = rest[n:]
        self.assertEqual(len(answers), 21, answers)
        for i in range(10):
            st, j = answers[2 * i]
            self.assertEqual((st, j["seq"]), (201, i + 1))
            st, j = answers[2 * i + 1]
            self.assertEqual(st, 200)
            self.assertEqual([m["nonce"] for m in j["messages"]], ["pipe%d" % i])
        self.assertIn("shards", answers[20][1])

    def test_expect_100_continue(self):
        from harness import raw_exchange
        import socket
        body = json.dumps({"nonce": "cont", "payload": "after 100"}).encode()
        s = socket.create_connection(("127.0.0.1", self.node.port), timeout=10)
        try:
            s.sendall(b"POST /v1/channels/cont/messages HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            first = s.recv(4096)
            self.assertTrue(first.startswith(b"HTTP/1.1 100"), first)
            s.sendall(body)
            data = b""
            while b"}" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertIn(b" 201 ", data.split(b"\r\n")[0], data)
        finally:
            s.close()
        self.assertEqual([m["payload"] for m in self.c.read_all("cont")], ["after 100"])

    def test_persists_across_restart(self):
        acks = [self.c.append_ok("keep", "k%d" % i, "v%d" % i) for i in range(10)]
        before = self.c.read_all("keep")
        self.node.terminate()
        self.node.start()
        c = self.node.client()
        self.assertEqual(c.read_all("keep"), before)
        j = c.append("keep", "k3", "v3").json()
        self.assertEqual((j["seq"], j["ts"], j["duplicate"]), (4, acks[3][1], True))
        s, t = c.append_ok("keep", "k10", "v10")
        self.assertEqual(s, 11)
        self.assertGreater(ts_key(t), ts_key(acks[-1][1]))


if __name__ == "__main__":
    run_tests()

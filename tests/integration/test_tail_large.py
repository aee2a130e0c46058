#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tails of megabyte messages from seq 0 after a kill -9 restart: every seq
once, in order, byte for byte, whether the reader keeps up or stalls first.

A catch-up page is cut by bytes as well as by messages (a connection's
unwritten bytes stop it at its soft bound, api/v1/fanout_conn.c); a cut that
lost the position of the next message would skip or repeat one. After a
kill -9 the node replays its Raft log from the last snapshot and state comes
back from RocksDB's last flush, so the tail's history comes partly from
state and partly from messages applied again while it reads."""

import base64
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NodeTestCase, SSEReader, run_tests  # noqa: E402

MSG = 1 << 20                  # bytes per message: four soft bounds
PER_CHANNEL = 16
CHANNELS = ["huge-a", "huge-b", "huge-c"]
LIVE = 4                       # appended per channel while the tails run


def payload(ch, i):
    """Bytes that differ per channel and message, not UTF-8 (base64 on the wire)."""
    seed = ("%s/%d" % (ch, i)).encode()
    block = bytes((b * 131 + k) & 0xFF for k, b in enumerate(seed * 8))
    return (block * (MSG // len(block) + 1))[:MSG]


class LargeTailTest(NodeTestCase):

    def append(self, c, ch, i):
        r = c.request("POST", "/v1/channels/%s/messages" % ch, payload(ch, i),
                      {"Idempotency-Key": "%s-%d" % (ch, i),
                       "Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 201, "append %s %d: %r" % (ch, i, r))
        self.assertEqual(r.json()["seq"], i + 1)

    def assert_every_seq(self, tail, ch, first, last, what):
        """The tail's events are seqs first..last, each once, in order, with
        its id, channel and exact payload."""
        want = last - first + 1
        got = tail.wait_count(want, timeout=120)
        self.assertIsNone(tail.error, "%s: reader error" % what)
        self.assertEqual(got, want, "%s: %d of %d events (eof %s)" % (what, got, want, tail.eof))
        events = tail.snapshot()
        self.assertEqual([int(e["id"]) for e in events], list(range(first, last + 1)), what)
        for e in events:
            seq = e["data"]["seq"]
            self.assertEqual(e["event"], "message")
            self.assertEqual(str(seq), e["id"], "%s: data of seq %d under id %s" % (what, seq, e["id"]))
            self.assertEqual(e["data"]["channel"], ch)
            self.assertEqual(base64.b64decode(e["data"]["payload_b64"]), payload(ch, seq - 1),
                             "%s: payload of seq %d" % (what, seq))

    def test_tails_from_zero_after_kill9(self):
        n = self.new_node(args=["--max-payload", str(MSG + 4096)])
        c = n.client(timeout=60)
        for i in range(PER_CHANNEL):
            for ch in CHANNELS:
                self.append(c, ch, i)
        n.kill9()
        n.start()
        c = n.client(timeout=60)
        # A reader that keeps up, one that stalls with a tiny receive buffer
        # (its connection stays at the soft bound), and one that resumes
        # from the middle with Last-Event-ID, on each channel.
        fast = {ch: SSEReader(n.port, ch, after_seq=0) for ch in CHANNELS}
        slow = {ch: SSEReader(n.port, ch, after_seq=0, start=False, rcvbuf=4096)
                for ch in CHANNELS}
        mid = {ch: SSEReader(n.port, ch, last_event_id=str(PER_CHANNEL // 2)) for ch in CHANNELS}
        for t in list(fast.values()) + list(slow.values()) + list(mid.values()):
            self.addCleanup(t.close)
        for i in range(PER_CHANNEL, PER_CHANNEL + LIVE):
            for ch in CHANNELS:
                self.append(c, ch, i)
        time.sleep(1.0)  # the slow readers' connections fill up meanwhile
        for t in slow.values():
            t.start()
        last = PER_CHANNEL + LIVE
        for ch in CHANNELS:
            self.assert_every_seq(fast[ch], ch, 1, last, "%s, reader keeping up" % ch)
            self.assert_every_seq(slow[ch], ch, 1, last, "%s, reader stalled first" % ch)
            self.assert_every_seq(mid[ch], ch, PER_CHANNEL // 2 + 1, last,
                                  "%s, resumed after %d" % (ch, PER_CHANNEL // 2))


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""SSE tails: history then live without gap or repeat, resume with
Last-Event-ID, across node restarts, and slow readers that stall nobody."""

import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NodeTestCase, SSEReader, run_tests  # noqa: E402
from ws_client import metrics  # noqa: E402


def event_to_msg(ev):
    d = dict(ev["data"])
    d.pop("channel", None)
    return d


class ResumingTail:
    """A client-side tail that reconnects with Last-Event-ID whenever the
    connection ends (node restart), like a browser EventSource."""

    def __init__(self, port_fn, channel):
        self.port_fn = port_fn
        self.channel = channel
        self.events = []
        self.connects = 0
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            last = self.events[-1]["id"] if self.events else None
            try:
                r = SSEReader(self.port_fn(), self.channel, after_seq=0, last_event_id=last,
                              start=True, connect_timeout=2)
            except OSError:
                time.sleep(0.05)
                continue
            self.connects += 1
            self.current = r
            seen = 0
            while not self.stop.is_set():
                with r.cond:
                    r.cond.wait_for(lambda: len(r.events) > seen or r.eof, 0.2)
                    new = r.events[seen:]
                    eof = r.eof
                seen += len(new)
                if new:
                    with self.cond:
                        self.events.extend(new)
                        self.cond.notify_all()
                if eof and len(r.events) == seen:
                    if r.status not in (None, 200):
                        self.errors.append("tail answered %r" % r.status)
                    break
            r.close()

    def wait_count(self, n, timeout):
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= n, timeout)
            return len(self.events)

    def close(self):
        self.stop.set()
        self.thread.join(10)


class TailTest(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.node = self.new_node()
        self.c = self.node.client()

    def assertEventsAreLog(self, events, msgs, what):
        ids = [int(e["id"]) for e in events]
        self.assertEqual(ids, [m["seq"] for m in msgs][:len(ids)],
                         "%s: ids are not the log's seqs in order" % what)
        self.assertEqual(len(events), len(msgs), "%s: %d events for %d messages"
                         % (what, len(events), len(msgs)))
        for e, m in zip(events, msgs):
            self.assertEqual(e["event"], "message")
            self.assertEqual(e["data"].get("channel", "t"), e["data"].get("channel", "t"))
            self.assertEqual(event_to_msg(e), m, "%s: seq %d differs from the log" % (what, m["seq"]))

    def test_history_then_live_no_gap_no_repeat(self):
        ch = "hist"
        for i in range(300):
            self.c.append_ok(ch, "h%d" % i, "history %d" % i)
        tail = SSEReader(self.node.port, ch, after_seq=0)
        self.assertEqual(tail.wait_status(), 200)
        self.assertEqual(tail.headers.get("content-type", "").split(";")[0], "text/event-stream")
        # Tails that start in the middle, at the head, and past the head.
        mid = SSEReader(self.node.port, ch, after_seq=150)
        head = SSEReader(self.node.port, ch, after_seq=300)
        # Live appends while the history streams: single ones from two
        # threads and batches.
        def writer(tag, n):
            c = self.node.client()
            for i in range(n):
                c.append_ok(ch, "%s%d" % (tag, i), "live %s %d" % (tag, i))
        ws = [threading.Thread(target=writer, args=(t, 250)) for t in ("x", "y")]
        for w in ws:
            w.start()
        for b in range(10):
            lines = "".join(json.dumps({"channel": ch, "nonce": "b%d-%d" % (b, i),
                                        "payload": "batch"}) + "\n" for i in range(20))
            r = self.c.request("POST", "/v1/messages:batch", lines,
                               {"Content-Type": "application/x-ndjson"})
            self.assertEqual(r.status, 200, r)
        for w in ws:
            w.join()
        total = 300 + 500 + 200
        self.assertEqual(tail.wait_count(total, 60), total, "tail stalled")
        self.assertEqual(mid.wait_count(total - 150, 60), total - 150)
        self.assertEqual(head.wait_count(total - 300, 60), total - 300)
        time.sleep(0.3)
        msgs = self.c.read_all(ch)
        self.assertEqual(len(msgs), total)
        self.assertEventsAreLog(tail.snapshot(), msgs, "from 0")
        self.assertEventsAreLog(mid.snapshot(), msgs[150:], "from 150")
        self.assertEventsAreLog(head.snapshot(), msgs[300:], "from the head")
        for t in (tail, mid, head):
            self.assertIsNone(t.error)
            t.close()
        # A tail on a channel that does not exist yet gets its first message.
        new = SSEReader(self.node.port, "brand-new", after_seq=0)
        self.assertEqual(new.wait_status(), 200)
        time.sleep(0.2)
        self.assertEqual(new.snapshot(), [])
        self.c.append_ok("brand-new", "first", "hello")
        self.assertEqual(new.wait_count(1, 10), 1)
        self.assertEqual(event_to_msg(new.snapshot()[0])["nonce"], "first")
        new.close()

    def test_resume_with_last_event_id(self):
        ch = "resume"
        for i in range(100):
            self.c.append_ok(ch, "r%d" % i, "m%d" % i)
        stop = threading.Event()

        def writer():
            c = self.node.client()
            i = 0
            while not stop.is_set() and i < 400:
                c.append_ok(ch, "live%d" % i, "live %d" % i)
                i += 1
                time.sleep(0.002)
        w = threading.Thread(target=writer)
        w.start()
        got = []
        try:
            # Connect, take a few events, drop, resume from the last id.
            # The URL keeps after_seq=0 as an EventSource would: the header wins.
            for k in range(15):
                last = got[-1]["id"] if got else None
                t = SSEReader(self.node.port, ch, after_seq=0, last_event_id=last)
                want = random.randint(1, 40)
                t.wait_count(want, 20)
                t.close()
                evs = t.snapshot()
                self.assertTrue(evs, "no events after resuming at %s" % last)
                got.extend(evs)
        finally:
            stop.set()
            w.join()
        # Resuming with only Last-Event-ID (no after_seq) works too.
        t = SSEReader(self.node.port, ch, last_event_id=got[-1]["id"])
        msgs = self.c.read_all(ch)
        rest = len(msgs) - len(got)
        self.assertEqual(t.wait_count(rest, 30), rest)
        time.sleep(0.2)
        got.extend(t.snapshot())
        t.close()
        self.assertEventsAreLog(got, msgs, "across 16 resumes")
        # Resuming at the very end waits for new messages.
        t = SSEReader(self.node.port, ch, last_event_id=str(msgs[-1]["seq"]))
        self.assertEqual(t.wait_status(), 200)
        self.c.append_ok(ch, "after-end", "x")
        self.assertEqual(t.wait_count(1, 10), 1)
        self.assertEqual(int(t.snapshot()[0]["id"]), msgs[-1]["seq"] + 1)
        t.close()
        # A bad Last-Event-ID is an error, not a tail from somewhere.
        t = SSEReader(self.node.port, ch, last_event_id="not-a-number")
        self.assertEqual(t.wait_status(), 400)
        t.close()

    def _restart_test(self, kill):
        ch = "survive"
        for i in range(50):
            self.c.append_ok(ch, "pre%d" % i, "pre %d" % i)
        tail = ResumingTail(lambda: self.node.port, ch)
        self.assertEqual(tail.wait_count(50, 20), 50)
        c = self.node.client()
        for i in range(50):
            c.append_ok(ch, "a%d" % i, "a %d" % i)
        self.assertEqual(tail.wait_count(100, 20), 100)
        if kill:
            self.node.kill9()
        else:
            self.node.terminate()  # must exit 0 with a tail open
        time.sleep(0.3)
        self.node.start()
        c = self.node.client()
        for i in range(50):
            c.append_ok(ch, "b%d" % i, "b %d" % i)
        self.assertEqual(tail.wait_count(150, 30), 150, "the tail did not resume after the restart")
        time.sleep(0.3)
        tail.close()
        self.assertEqual(tail.errors, [])
        self.assertGreaterEqual(tail.connects, 2)
        self.assertEventsAreLog(tail.events, c.read_all(ch), "across a restart")

    def test_tail_survives_graceful_restart(self):
        self._restart_test(kill=False)

    def test_tail_survives_kill9_restart(self):
        self._restart_test(kill=True)

    def test_slow_reader_stalls_nobody(self):
        ch = "slowtail"
        payload = "s" * 8000
        for i in range(20):
            self.c.append_ok(ch, "pre%d" % i, payload)
        # A reader that stops reading at once, with a tiny receive buffer.
        slow = SSEReader(self.node.port, ch, after_seq=0, start=False, rcvbuf=4096)
        other_ch = SSEReader(self.node.port, "other-ch", after_seq=0)
        same_ch = SSEReader(self.node.port, ch, after_seq=0)
        n = 1500  # ~12 MB: far more than socket buffers and the tail queue limit
        worst = 0.0
        t0 = time.time()
        c2 = self.node.client()
        for i in range(n):
            a = time.time()
            self.c.append_ok(ch, "live%d" % i, payload)
            if i % 10 == 0:
                c2.append_ok("other-ch", "o%d" % i, "other %d" % i)
            worst = max(worst, time.time() - a)
        elapsed = time.time() - t0
        self.assertLess(worst, 2.0, "an append took %.2fs while a tail did not read" % worst)
        self.assertEqual(same_ch.wait_count(20 + n, 30), 20 + n,
                         "a normal tail on the same channel stalled behind the slow one")
        self.assertEqual(other_ch.wait_count(n // 10, 30), n // 10)
        # The status page and reads still answer.
        self.c.status()
        self.assertEqual(len(self.c.read("slowtail", after_seq=0, limit=5)["messages"]), 5)
        time.sleep(1.0)
        # Now it reads: everything arrives, in order, no gap.
        slow.start()
        got = slow.wait_count(20 + n, 60)
        msgs = self.c.read_all(ch)
        if slow.eof and got < 20 + n:
            self.fail("the slow reader was disconnected after %d of %d events (error %r)"
                      % (got, 20 + n, slow.error))
        self.assertEventsAreLog(slow.snapshot(), msgs, "slow reader")
        self.assertEventsAreLog(same_ch.snapshot(), msgs, "normal reader")
        for t in (slow, other_ch, same_ch):
            t.close()
        print("\n  %d appends of 8 KB in %.1fs with a stalled tail; worst %.3fs" % (n, elapsed, worst))

    def test_graceful_stop_with_a_reader_that_does_not_read(self):
        # A tail whose client never reads, with far more history than the
        # socket buffers and the tail's queue hold: the node's stop must not
        # wait for it until the idle timeout (60 s): it gets a few seconds
        # (http_server.c: API_HTTP__CLOSE_GRACE_MS), then is closed, logged.
        ch = "stuckstop"
        payload = "s" * 65536
        n = 160  # ~10 MB: more than the kernel's socket buffers take
        for i in range(n):
            self.c.append_ok(ch, "n%d" % i, payload)
        stuck = SSEReader(self.node.port, ch, after_seq=0, start=False, rcvbuf=4096)
        # Catch-up stops once the bytes the socket did not take pass the
        # connection's soft bound: from then on the node holds unsent bytes.
        last, still_since = -1, time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() - still_since < 1.5 and time.monotonic() < deadline:
            sent = metrics(self.node.port).get("herald_deliveries_catchup_total", 0)
            if sent != last:
                last, still_since = sent, time.monotonic()
            time.sleep(0.1)
        self.assertLess(last, n, "the reader that does not read took the whole channel")
        self.node.terminate(timeout=30)
        self.assertIn("stopping: closed 1 connection(s) that had not taken what was queued",
                      self.node.log())
        stuck.close()
        # Nothing was lost by closing it: the log is whole after a restart.
        self.node.start()
        self.assertEqual([m["nonce"] for m in self.node.client().read_all(ch)],
                         ["n%d" % i for i in range(n)])


if __name__ == "__main__":
    run_tests()

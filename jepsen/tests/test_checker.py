#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tests of jepsen/checker.py on hand-made histories.

Each anomaly test starts from a clean run and breaks exactly one thing, then
asserts that exactly that anomaly kind is reported, about the right
channel/nonce/seq, with the history records involved, and that the run is
invalid.  Run as: python3 jepsen/tests/test_checker.py
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import checker  # noqa: E402  (the checker next to this folder, nothing else)

NODES = ["n1", "n2", "n3"]
BASE_TS = 1732234567_000000

COUNTER_OF = checker.KIND_COUNTER


def ts_of(micros):
    """Formats integer micros the way herald does: "SECONDS.MICROS"."""
    return "%d.%06d" % (micros // 1_000_000, micros % 1_000_000)


class RunBuilder:
    """Builds a consistent run (history, logs, tails, nemesis) step by step.

    The logs it keeps are what a correct cluster would hold; final() copies
    them to every node, so a fresh builder always checks clean and a test
    only has to break the one thing it is about.
    """

    def __init__(self, channels=("chanA",)):
        self.channels = list(channels)
        self.history = []
        self.tails = []
        self.nemesis = []
        self.logs = {ch: [] for ch in self.channels}
        self.t = 0.0
        self.next_ts = BASE_TS

    def tick(self, t=None):
        """Advances the clock (or jumps it to t) and returns it."""
        self.t = self.t + 0.1 if t is None else t
        return self.t

    def record(self, **fields):
        """Appends a history record with the next index."""
        fields["i"] = len(self.history)
        fields.setdefault("t", self.tick())
        self.history.append(fields)
        return fields

    def write(self, ch, nonce, payload):
        """Puts a message in the channel's true log and returns it."""
        self.next_ts += 1000
        msg = {"seq": len(self.logs[ch]) + 1, "ts": ts_of(self.next_ts),
               "nonce": nonce, "payload": payload}
        self.logs[ch].append(msg)
        return msg

    def append(self, ch, nonce, payload=None, outcome="ok", written=None, process=0,
               node="n1", attempt=1, duplicate=False, t=None, error="timeout"):
        """Records one append attempt; writes it to the log when it took effect.

        written defaults to True for ok and False otherwise.  A duplicate ok
        answers where the nonce already sits.
        """
        payload = payload if payload is not None else "payload-" + nonce
        inv = self.record(process=process, type="invoke", f="append", node=node, channel=ch,
                          nonce=nonce, payload=payload, attempt=attempt,
                          **({"t": t} if t is not None else {}))
        if written is None:
            written = outcome == "ok" and not duplicate
        msg = None
        if duplicate:
            msg = next(m for m in self.logs[ch] if m["nonce"] == nonce)
        elif written:
            msg = self.write(ch, nonce, payload)
        if outcome == "ok":
            done = self.record(process=process, type="ok", f="append", node=node, channel=ch,
                               nonce=nonce, seq=msg["seq"], ts=msg["ts"],
                               duplicate=duplicate, t=inv["t"] + 0.01)
        elif outcome is None:
            done = None
        else:
            done = self.record(process=process, type=outcome, f="append", node=node,
                               channel=ch, nonce=nonce, error=error, t=inv["t"] + 0.01)
        return inv, done

    def read(self, ch, after, node="n2", process=50, messages=None):
        """Records a read returning the true log after `after` (or given messages)."""
        inv = self.record(process=process, type="invoke", f="read", node=node, channel=ch,
                          after_seq=after)
        if messages is None:
            messages = copy.deepcopy(self.logs[ch][after:])
        done = self.record(process=process, type="ok", f="read", node=node, channel=ch,
                           messages=messages, t=inv["t"] + 0.01)
        return inv, done

    def tail_connect(self, tailer, ch, after, node="n1"):
        """Records a tailer (re)connecting after seq `after`."""
        ev = {"t": self.tick(), "tailer": tailer, "node": node, "channel": ch,
              "event": "connect", "after": after}
        self.tails.append(ev)
        return ev

    def tail_message(self, tailer, ch, seq, node="n1", msg=None):
        """Records a tailer receiving the true message at seq (or msg)."""
        m = dict(msg if msg is not None else self.logs[ch][seq - 1])
        ev = {"t": self.tick(), "tailer": tailer, "node": node, "channel": ch,
              "event": "message", "seq": m["seq"], "ts": m["ts"], "nonce": m["nonce"],
              "payload": m["payload"]}
        self.tails.append(ev)
        return ev

    def tail_disconnect(self, tailer, ch, node="n1"):
        """Records a tailer losing its connection."""
        self.tails.append({"t": self.tick(), "tailer": tailer, "node": node, "channel": ch,
                           "event": "disconnect", "error": "eof"})

    def fault(self, name, phase, t, detail=""):
        """Records a nemesis event."""
        self.nemesis.append({"t": t, "fault": name, "phase": phase, "detail": detail})

    def final(self):
        """Every node holding the true logs, as final.json after healing."""
        return {"nodes": {n: copy.deepcopy(self.logs) for n in NODES}, "converged": True}

    def run(self):
        """run.json contents."""
        return {"seed": 7, "time": 60, "nemeses": ["partition", "kill"], "nodes": NODES,
                "channels": self.channels, "faulty_build": None}

    def check(self, final=None):
        """Runs the in-memory checker on what was built."""
        return checker.check_history(self.history, self.tails,
                                     final if final is not None else self.final(),
                                     self.nemesis, self.run())


def clean_builder():
    """A small healthy run touching every feature: retries, reads, tails, faults."""
    b = RunBuilder(channels=("chanA", "chanB"))
    b.append("chanA", "a1")
    b.append("chanA", "a2", process=1, node="n2")
    # Outcome unknown, but it was written: fine.
    b.append("chanA", "a3", outcome="info", written=True, process=2)
    # Outcome unknown, then retried elsewhere: answers the original position.
    b.append("chanA", "a4", outcome="info", written=True, process=3)
    b.append("chanA", "a4", duplicate=True, process=4, node="n3", attempt=2)
    # Definitely failed, retried, written once.
    b.append("chanA", "a5", outcome="fail", error="unavailable", process=5)
    b.append("chanA", "a5", process=5, attempt=2)
    # Outcome unknown and never written: fine too.
    b.append("chanA", "a6", outcome="info", written=False, process=6)
    b.append("chanB", "b1", process=7)
    b.append("chanB", "b2", process=7)
    b.append("chanB", "b3", outcome=None, written=False, process=8)  # run ended
    b.read("chanA", 0)
    b.read("chanA", 2, node="n3")
    b.read("chanA", 5)  # empty read at the end
    b.read("chanB", 1)
    b.tail_connect(1, "chanA", 0)
    b.tail_message(1, "chanA", 1)
    b.tail_message(1, "chanA", 2)
    b.tail_disconnect(1, "chanA")
    b.tail_connect(1, "chanA", 2, node="n2")
    b.tail_message(1, "chanA", 3, node="n2")
    b.tail_message(1, "chanA", 4, node="n2")
    b.tail_connect(2, "chanB", 0)
    b.tail_message(2, "chanB", 1)
    b.fault("partition", "start", 0.25)
    b.fault("partition", "stop", 0.65)
    return b


class CheckerTestCase(unittest.TestCase):
    """Shared assertions."""

    def assert_only(self, results, kind, count=1):
        """Exactly `count` anomalies, all of `kind`, and the run invalid."""
        self.assertFalse(results["valid"], results["anomalies"])
        self.assertEqual(results["anomaly_kinds"], {kind: count}, results["anomalies"])
        for name in checker.SAFETY_COUNTERS:
            expected = count if name == COUNTER_OF[kind] else 0
            self.assertEqual(results[name], expected, name)
        return [a for a in results["anomalies"] if a["kind"] == kind]

    def assert_has_records(self, anomaly, *records):
        """The anomaly's ops include these history records."""
        for rec in records:
            self.assertIn(rec, anomaly["ops"])


class CleanRunTest(CheckerTestCase):
    """A healthy run is valid with every safety counter at 0."""

    def test_clean_history_is_valid(self):
        r = clean_builder().check()
        self.assertTrue(r["valid"], r["anomalies"])
        for name in checker.SAFETY_COUNTERS:
            self.assertEqual(r[name], 0, name)
        self.assertEqual(r["anomalies"], [])
        self.assertEqual(r["anomalies_truncated"], 0)
        self.assertEqual(r["acked"], 6)  # a1 a2 a4 a5 b1 b2
        self.assertEqual(r["attempts"], {"ok": 6, "fail": 1, "info": 4, "unfinished": 1})
        self.assertEqual(r["reads"]["ok"], 4)
        self.assertEqual(r["tail_messages"], 5)
        self.assertEqual(r["reference"]["chanA"]["length"], 5)
        self.assertTrue(r["complete"])
        self.assertEqual(r["warnings"], [])

    def test_empty_run_is_valid(self):
        r = checker.check_history([], [], {"nodes": {}, "converged": True}, [], {})
        self.assertTrue(r["valid"])
        self.assertIsNone(r["availability_overall"])


class LostTest(CheckerTestCase):
    """Acknowledged appends missing from the reference log."""

    def test_acked_append_missing_from_every_final_log(self):
        b = clean_builder()
        inv, done = b.append("chanA", "gone", process=9)
        final = b.final()
        for node in NODES:
            final["nodes"][node]["chanA"].pop()  # the last write vanished everywhere
        (a,) = self.assert_only(b.check(final), "lost")
        self.assertEqual((a["channel"], a["nonce"]), ("chanA", "gone"))
        self.assert_has_records(a, inv, done)

    def trimmed_run(self, command):
        """Three acked appends; the first two are gone from every final log."""
        b = RunBuilder(channels=("chanT",))
        for n in ("t1", "t2", "t3"):
            b.append("chanT", n)
        if command is not None:
            f, extra, outcome = command
            b.record(process=5, type="invoke", f=f, node="n1", channel="chanT", **extra)
            b.record(process=5, type=outcome, f=f, node="n1", channel="chanT", **extra)
        final = b.final()
        for node in NODES:
            del final["nodes"][node]["chanT"][:2]
        return b.check(final)

    def test_trim_and_delete_are_not_losses(self):
        for command in (("trim", {"before_seq": 3}, "ok"), ("trim", {"before_seq": 3}, "info"),
                        ("delete", {}, "ok"), ("delete", {}, "info")):
            r = self.trimmed_run(command)
            if command[0] == "trim":
                self.assertTrue(r["valid"], (command, r["anomalies"]))
            self.assertEqual(r["anomaly_kinds"].get("lost"), None, (command, r["anomalies"]))
            self.assertTrue(any("trim or delete" in w for w in r["warnings"]), command)

    def test_failed_or_short_trim_still_loses(self):
        self.assertEqual(self.trimmed_run(None)["anomaly_kinds"].get("lost"), 2)
        self.assertEqual(self.trimmed_run(("trim", {"before_seq": 3}, "fail"))
                         ["anomaly_kinds"].get("lost"), 2)
        self.assertEqual(self.trimmed_run(("trim", {"before_seq": 2}, "ok"))
                         ["anomaly_kinds"].get("lost"), 1)

    def test_lost_with_a_node_unreadable(self):
        b = clean_builder()
        b.append("chanA", "x", process=9)
        final = b.final()
        for node in NODES:
            final["nodes"][node]["chanA"].pop()
        final["nodes"]["n2"] = None  # unreadable node is ignored, not a divergence
        r = b.check(final)
        self.assert_only(r, "lost")
        self.assertEqual(r["unreadable_nodes"], ["n2"])
        self.assertTrue(any("unreadable on n2" in w for w in r["warnings"]))


class DuplicatedTest(CheckerTestCase):
    """A nonce twice in one log, final or read."""

    def test_nonce_twice_in_final_logs(self):
        b = clean_builder()
        inv, done = b.append("chanA", "dup", process=9)
        # The server wrote the same nonce again, on every node.
        b.write("chanA", "dup", "payload-dup")
        (a,) = self.assert_only(b.check(), "duplicated")
        self.assertEqual((a["channel"], a["nonce"]), ("chanA", "dup"))
        self.assertEqual(a["nodes"], NODES)
        self.assert_has_records(a, inv, done)

    def test_nonce_twice_in_one_read(self):
        b = clean_builder()
        msgs = copy.deepcopy(b.logs["chanB"])  # seq 1 b1, 2 b2
        msgs.append(dict(msgs[0], seq=3))      # b1 again at seq 3, as read from n2
        inv, done = b.read("chanB", 0, node="n2", messages=msgs)
        r = b.check()
        # A read past the reference end is also a divergence; only count duplicates here.
        kinds = r["anomaly_kinds"]
        self.assertEqual(kinds.get("duplicated"), 1, r["anomalies"])
        self.assertFalse(r["valid"])
        (a,) = [x for x in r["anomalies"] if x["kind"] == "duplicated"]
        self.assertEqual(a["nonce"], "b1")
        self.assertEqual(a["where"][0]["source"], "read")
        self.assertIn(inv, a["ops"])

    def test_duplicate_inside_reference_range_read(self):
        b = clean_builder()
        msgs = copy.deepcopy(b.logs["chanA"][:2])
        msgs[1] = dict(msgs[0], seq=2)  # a1 at seq 1 and 2
        b.read("chanA", 0, node="n3", messages=msgs)
        r = b.check()
        # seq 2 is a2 in the reference (divergent), and a1's ts repeats (ts_order).
        self.assertEqual(r["anomaly_kinds"], {"duplicated": 1, "divergent": 1, "ts_order": 1})
        self.assertFalse(r["valid"])


class PhantomTest(CheckerTestCase):
    """Messages no client appended, or with another payload."""

    def test_nonce_never_invoked(self):
        b = clean_builder()
        b.write("chanB", "ghost", "boo")
        (a,) = self.assert_only(b.check(), "phantom")
        self.assertEqual((a["channel"], a["nonce"]), ("chanB", "ghost"))
        self.assertEqual(a["nodes"], NODES)

    def test_nonce_invoked_on_another_channel(self):
        b = clean_builder()
        b.write("chanB", "a1", "payload-a1")  # a1 was appended to chanA only
        (a,) = self.assert_only(b.check(), "phantom")
        self.assertEqual((a["channel"], a["nonce"]), ("chanB", "a1"))

    def test_payload_differs_from_invoked(self):
        b = clean_builder()
        inv, done = b.append("chanA", "p", payload="hello", process=9)
        b.logs["chanA"][-1]["payload"] = "hellO"
        (a,) = self.assert_only(b.check(), "phantom")
        self.assertEqual(a["nonce"], "p")
        self.assertIn("hellO", a["detail"])
        self.assert_has_records(a, inv, done)

    def test_payload_b64_decoded_before_comparing(self):
        b = clean_builder()
        b.append("chanA", "u", payload="héllo", process=9)
        msg = b.logs["chanA"][-1]
        del msg["payload"]
        msg["payload_b64"] = "aMOpbGxv"  # base64 of UTF-8 "héllo"
        self.assertTrue(b.check()["valid"])


class RetryMismatchTest(CheckerTestCase):
    """ok answers that disagree with each other or with the log."""

    def test_ok_answers_disagree(self):
        b = clean_builder()
        inv1, done1 = b.append("chanA", "r", process=9)
        inv2, done2 = b.append("chanA", "r", duplicate=True, process=10, attempt=2)
        done2["ts"] = ts_of(BASE_TS + 999_999_999)  # same seq, another ts
        (a,) = self.assert_only(b.check(), "retry_mismatch")
        self.assertEqual((a["channel"], a["nonce"]), ("chanA", "r"))
        self.assert_has_records(a, inv1, done1, inv2, done2)

    def test_ok_seq_differs_from_reference(self):
        b = clean_builder()
        inv, done = b.append("chanA", "r", process=9)
        done["seq"] = 1
        (a,) = self.assert_only(b.check(), "retry_mismatch")
        self.assertEqual(a["nonce"], "r")
        self.assert_has_records(a, inv, done)

    def test_two_fresh_writes_claimed(self):
        b = clean_builder()
        b.append("chanA", "r", process=9)
        inv, done = b.append("chanA", "r", duplicate=True, process=10, attempt=2)
        done["duplicate"] = False
        (a,) = self.assert_only(b.check(), "retry_mismatch")
        self.assertIn("duplicate:false", a["detail"])

    def test_ts_compared_as_integer_micros(self):
        b = clean_builder()
        b.append("chanA", "r", process=9)
        inv, done = b.append("chanA", "r", duplicate=True, process=10, attempt=2)
        done["ts"] = done["ts"].rstrip("0") or done["ts"]  # "….000100" -> "….0001"
        self.assertTrue(b.check()["valid"])


class FailedButWrittenTest(CheckerTestCase):
    """Definite failures that were written anyway."""

    def test_definite_failure_in_log(self):
        b = clean_builder()
        inv, done = b.append("chanB", "f", outcome="fail", error="unavailable", written=True,
                             process=9)
        (a,) = self.assert_only(b.check(), "failed_but_written")
        self.assertEqual((a["channel"], a["nonce"]), ("chanB", "f"))
        self.assert_has_records(a, inv, done)

    def test_failure_seen_only_in_a_read(self):
        b = clean_builder()
        b.append("chanB", "f", outcome="fail", written=True, process=9)
        b.read("chanB", 2, node="n1")  # the read sees it
        b.logs["chanB"].pop()           # ... but the final logs do not
        r = b.check()
        self.assertEqual(r["failed_but_written"], 1)
        self.assertEqual(r["divergent"], 1)  # the read saw beyond the reference end

    def test_info_then_fail_written_is_fine(self):
        b = clean_builder()
        b.append("chanB", "f", outcome="info", written=True, process=9)
        b.append("chanB", "f", outcome="fail", process=9, attempt=2)
        self.assertTrue(b.check()["valid"])


class OrderTest(CheckerTestCase):
    """seq gaps, seq going back, ts not increasing."""

    def test_seq_gap_in_final_log(self):
        b = clean_builder()
        b.append("chanB", "b4", process=9)
        done = b.append("chanB", "b5", process=9)[1]
        b.logs["chanB"][-1]["seq"] = done["seq"] = 5  # 1, 2, 3, 5 on every node
        (a,) = self.assert_only(b.check(), "seq_gap")
        self.assertEqual((a["channel"], a["seq"], a["nonce"]), ("chanB", 5, "b5"))
        self.assertEqual(a["nodes"], NODES)

    def test_seq_order_in_read(self):
        b = clean_builder()
        msgs = copy.deepcopy(b.logs["chanA"][2:5])  # seqs 3,4,5
        msgs[0], msgs[1] = msgs[1], msgs[0]         # 4,3,5
        inv, done = b.read("chanA", 2, node="n3", messages=msgs)
        r = b.check()
        # 4 where 3 was expected (gap), back to 3 (order, and its ts goes back too),
        # 5 where 4 was expected (gap).
        self.assertEqual(r["anomaly_kinds"], {"seq_gap": 2, "seq_order": 1, "ts_order": 1},
                         r["anomalies"])
        self.assertEqual(r["order_anomalies"], 4)
        self.assertFalse(r["valid"])
        order = [x for x in r["anomalies"] if x["kind"] == "seq_order"][0]
        self.assertEqual(order["ops"][0], inv)
        self.assertEqual(order["ops"][1]["messages_count"], 3)

    def test_read_not_starting_after_after_seq(self):
        b = clean_builder()
        msgs = copy.deepcopy(b.logs["chanA"][1:])  # seqs 2.. for after_seq=2
        b.read("chanA", 2, node="n2", messages=msgs)
        (a,) = self.assert_only(b.check(), "seq_order")
        self.assertEqual(a["seq"], 2)
        self.assertEqual(a["nodes"], ["n2"])

    def test_ts_not_increasing(self):
        b = clean_builder()
        b.append("chanB", "b4", process=9)
        done = b.append("chanB", "b5", process=9)[1]
        b.logs["chanB"][-1]["ts"] = done["ts"] = b.logs["chanB"][-2]["ts"]  # equal ts
        (a,) = self.assert_only(b.check(), "ts_order")
        self.assertEqual((a["channel"], a["seq"], a["nonce"]), ("chanB", 4, "b5"))
        self.assertEqual(a["nodes"], NODES)

    def test_ts_compared_numerically_not_as_text(self):
        b = RunBuilder()
        b.append("chanA", "x")
        b.append("chanA", "y")
        b.logs["chanA"][0]["ts"] = "999999999.000001"   # sorts after as text
        b.logs["chanA"][1]["ts"] = "1000000000.000001"
        for h in b.history:
            if h.get("type") == "ok":
                h["ts"] = b.logs["chanA"][h["seq"] - 1]["ts"]
        self.assertTrue(b.check()["valid"])


class DivergentTest(CheckerTestCase):
    """Nodes or readers seeing different sequences."""

    def test_final_logs_disagree_at_a_seq(self):
        b = clean_builder()
        b.append("chanB", "c1", outcome="info", written=False, process=9)
        b.append("chanB", "c2", process=10)  # seq 3
        final = b.final()
        final["nodes"]["n2"]["chanB"][2] = dict(final["nodes"]["n2"]["chanB"][2],
                                                nonce="c1", payload="payload-c1")
        (a,) = self.assert_only(b.check(final), "divergent")
        self.assertEqual((a["channel"], a["seq"]), ("chanB", 3))
        self.assertIn("n2", a["nodes"])

    def test_final_logs_differ_in_length(self):
        b = clean_builder()
        final = b.final()
        final["nodes"]["n3"]["chanA"].pop()
        (a,) = self.assert_only(b.check(final), "divergent")
        self.assertEqual(a["nodes"], ["n1", "n3"])
        self.assertIn("identical", a["detail"])

    def test_read_differs_from_reference(self):
        b = clean_builder()
        msgs = copy.deepcopy(b.logs["chanA"][:2])
        msgs[1]["ts"] = ts_of(BASE_TS + 1500)  # still increasing, but not what was agreed
        inv, done = b.read("chanA", 0, node="n3", messages=msgs)
        (a,) = self.assert_only(b.check(), "divergent")
        self.assertEqual((a["seq"], a["nodes"]), (2, ["n3"]))
        self.assertEqual(a["ops"][0], inv)
        self.assertEqual(a["ops"][1]["messages_excerpt"][0]["seq"], 2)

    def test_read_beyond_reference_end(self):
        b = clean_builder()
        b.append("chanB", "late", outcome="info", written=True, process=9)
        b.read("chanB", 2, node="n1")
        b.logs["chanB"].pop()  # the write was seen by a reader, then rolled back
        (a,) = self.assert_only(b.check(), "divergent")
        self.assertEqual((a["seq"], a["nonce"]), (3, "late"))
        self.assertIn("beyond", a["detail"])

    def test_same_bad_read_repeated_is_one_anomaly(self):
        b = clean_builder()
        msgs = copy.deepcopy(b.logs["chanA"][:1])
        msgs[0]["ts"] = ts_of(BASE_TS + 1)
        for _ in range(5):
            b.read("chanA", 0, node="n3", messages=copy.deepcopy(msgs))
        (a,) = self.assert_only(b.check(), "divergent")
        self.assertEqual(a["occurrences"], 5)

    def test_reference_tie_broken_by_majority(self):
        b = clean_builder()
        b.append("chanB", "c1", outcome="info", written=False, process=9)
        final = b.final()
        final["nodes"]["n1"]["chanB"][1] = dict(final["nodes"]["n1"]["chanB"][1],
                                                nonce="c1", payload="payload-c1")
        r = b.check(final)
        self.assertEqual(r["reference"]["chanB"]["node"], "n2")
        self.assert_only(r, "divergent")


class TailTest(CheckerTestCase):
    """Tailers skipping, repeating, mismatching, or resuming wrongly."""

    def test_skip(self):
        b = clean_builder()
        b.tail_connect(3, "chanA", 0)
        b.tail_message(3, "chanA", 1)
        ev = b.tail_message(3, "chanA", 3)
        (a,) = self.assert_only(b.check(), "tail_skip")
        self.assertEqual((a["channel"], a["seq"], a["tailer"]), ("chanA", 3, 3))
        self.assertIn(ev, a["ops"])

    def test_repeat_across_reconnect(self):
        b = clean_builder()
        b.tail_connect(3, "chanA", 0)
        b.tail_message(3, "chanA", 1)
        b.tail_message(3, "chanA", 2)
        b.tail_disconnect(3, "chanA")
        b.tail_connect(3, "chanA", 2, node="n3")
        ev = b.tail_message(3, "chanA", 2, node="n3")
        (a,) = self.assert_only(b.check(), "tail_repeat")
        self.assertEqual((a["seq"], a["nodes"]), (2, ["n3"]))
        self.assertIn(ev, a["ops"])

    def test_resumed_after_x_but_got_x(self):
        b = clean_builder()
        b.tail_connect(3, "chanA", 3)  # fresh tailer starting after 3
        b.tail_message(3, "chanA", 3)
        (a,) = self.assert_only(b.check(), "tail_repeat")
        self.assertIn("resumed after 3", a["detail"])

    def test_mismatch(self):
        b = clean_builder()
        b.tail_connect(3, "chanA", 0)
        wrong = dict(b.logs["chanA"][0], nonce="a2", payload="payload-a2")
        ev = b.tail_message(3, "chanA", 1, msg=wrong)
        (a,) = self.assert_only(b.check(), "tail_mismatch")
        self.assertEqual((a["seq"], a["nonce"]), (1, "a2"))
        self.assertIn(ev, a["ops"])

    def test_resume_not_after_last_received(self):
        b = clean_builder()
        b.tail_connect(3, "chanA", 0)
        b.tail_message(3, "chanA", 1)
        b.tail_disconnect(3, "chanA")
        ev = b.tail_connect(3, "chanA", 3)  # should have been 1
        b.tail_message(3, "chanA", 4)
        (a,) = self.assert_only(b.check(), "tail_resume")
        self.assertEqual((a["tailer"], a["seq"]), (3, 3))
        self.assertIn(ev, a["ops"])


class TrimTest(CheckerTestCase):
    """A run with a trim (jepsen/run --trims): what readers and tailers saw
    below it cannot be compared, a gone must follow a trim, and the final
    logs start at the trim."""

    def build(self, before_seq=4, outcome="ok"):
        """Five acked appends, a read and a tail of all of them, then a trim
        below before_seq that the final logs reflect."""
        b = RunBuilder(channels=("chanT",))
        for n in range(1, 6):
            b.append("chanT", "t%d" % n)
        b.read("chanT", 0)
        b.tail_connect(1, "chanT", 0)
        for seq in range(1, 6):
            b.tail_message(1, "chanT", seq)
        b.record(process=5, type="invoke", f="trim", node="n1", channel="chanT",
                 before_seq=before_seq)
        b.record(process=5, type=outcome, f="trim", node="n1", channel="chanT")
        return b

    def trimmed_final(self, b, first):
        final = b.final()
        for node in NODES:
            del final["nodes"][node]["chanT"][:first - 1]
        return final

    def test_reads_and_tails_below_the_trim_are_not_divergent(self):
        b = self.build()
        r = b.check(self.trimmed_final(b, 4))
        self.assertTrue(r["valid"], r["anomalies"])

    def test_a_read_below_the_trim_still_has_to_be_gapless(self):
        b = self.build()
        bad = copy.deepcopy(b.logs["chanT"][:3])
        del bad[1]  # seq 2 missing: the read skipped a message
        b.read("chanT", 0, messages=bad)
        r = b.check(self.trimmed_final(b, 4))
        self.assertFalse(r["valid"])
        self.assertIn("seq_gap", r["anomaly_kinds"])

    def test_gone_after_a_trim_resumes_the_tailer(self):
        b = self.build()
        b.tail_connect(2, "chanT", 1)
        b.tails.append({"t": b.tick(), "tailer": 2, "node": "n2", "channel": "chanT",
                        "event": "gone", "first_seq": 4})
        b.tail_disconnect(2, "chanT", node="n2")
        b.tail_connect(2, "chanT", 3)
        b.tail_message(2, "chanT", 4)
        r = b.check(self.trimmed_final(b, 4))
        self.assertTrue(r["valid"], r["anomalies"])

    def test_gone_beyond_every_trim_is_an_anomaly(self):
        b = self.build(before_seq=3)
        b.tail_connect(2, "chanT", 1)
        ev = {"t": b.tick(), "tailer": 2, "node": "n2", "channel": "chanT",
              "event": "gone", "first_seq": 5}
        b.tails.append(ev)
        (a,) = self.assert_only(b.check(self.trimmed_final(b, 3)), "tail_gone")
        self.assertEqual((a["tailer"], a["seq"]), (2, 5))
        self.assertIn(ev, a["ops"])

    def test_gone_after_a_failed_trim_is_an_anomaly(self):
        b = self.build(outcome="fail")
        b.tail_connect(2, "chanT", 1)
        b.tails.append({"t": b.tick(), "tailer": 2, "node": "n2", "channel": "chanT",
                        "event": "gone", "first_seq": 4})
        self.assert_only(b.check(), "tail_gone")

    def test_final_logs_starting_past_every_trim_lose_messages(self):
        b = self.build(before_seq=3)
        r = b.check(self.trimmed_final(b, 4))
        self.assertFalse(r["valid"])
        self.assertEqual(r["anomaly_kinds"].get("lost"), 1)


class AvailabilityTest(CheckerTestCase):
    """Per-fault and overall availability and recovery figures."""

    def build(self):
        """Appends around two partition/kill windows and a skipped clock fault."""
        b = RunBuilder()
        plan = [(5, "ok"), (12, "fail"), (15, "info"), (18, "ok"), (21, "fail"), (23, "ok"),
                (31, "fail"), (35, "ok"), (50, "ok")]
        for n, (t, outcome) in enumerate(plan):
            b.append("chanA", "n%d" % n, outcome=outcome, written=False if outcome != "ok"
                     else None, t=float(t), process=n)
        b.fault("partition", "start", 10.0)
        b.fault("partition", "stop", 20.0)
        b.fault("kill", "start", 30.0)
        b.fault("kill", "stop", 33.0)
        b.fault("kill", "start", 45.0)        # never stopped: lasts to the end
        b.fault("clock", "skip", 0.0, "no CAP_SYS_TIME")
        b.fault("clock", "skip", 0.0, "no CAP_SYS_TIME")
        return b

    def test_per_fault_figures(self):
        r = self.build().check()
        self.assertTrue(r["valid"], r["anomalies"])
        p = r["faults"]["partition"]
        self.assertEqual((p["occurrences"], p["attempts"], p["ok"]), (1, 3, 1))
        self.assertAlmostEqual(p["seconds"], 10.0)
        self.assertAlmostEqual(p["availability"], 0.3333)
        self.assertEqual(p["recovery_s"]["list"], [3.0])  # stop 20, first ok invoked at 23
        self.assertEqual((p["recovery_s"]["median"], p["recovery_s"]["max"]), (3.0, 3.0))
        k = r["faults"]["kill"]
        self.assertEqual((k["occurrences"], k["attempts"], k["ok"]), (2, 2, 1))  # 31, 50
        self.assertAlmostEqual(k["seconds"], 3.0 + (60 - 45))  # run.json time is 60
        self.assertEqual(k["recovery_s"]["list"], [2.0])  # only the stopped window
        self.assertEqual(r["skipped_faults"], ["clock"])
        self.assertNotIn("clock", r["faults"])

    def test_overall_and_healthy(self):
        r = self.build().check()
        self.assertAlmostEqual(r["availability_overall"], 5 / 9, places=4)
        # Outside every window: t=5 ok, 21 fail, 23 ok, 35 ok.
        self.assertEqual(r["healthy_attempts"], 4)
        self.assertAlmostEqual(r["healthy_availability"], 0.75)
        self.assertEqual(r["attempts"], {"ok": 5, "fail": 3, "info": 1, "unfinished": 0})

    def test_overlapping_windows_count_attempts_once(self):
        b = self.build()
        b.fault("partition", "start", 11.0)
        b.fault("partition", "stop", 19.0)
        p = b.check()["faults"]["partition"]
        self.assertEqual((p["occurrences"], p["attempts"]), (2, 3))

    def test_never_recovered(self):
        b = RunBuilder()
        b.append("chanA", "x", t=1.0)
        b.append("chanA", "y", outcome="fail", t=9.0)
        b.fault("pause", "start", 2.0)
        b.fault("pause", "stop", 4.0)
        rec = b.check()["faults"]["pause"]["recovery_s"]
        self.assertEqual((rec["list"], rec["median"], rec["unrecovered"]), ([None], None, 1))


class TruncationTest(CheckerTestCase):
    """The anomaly list is capped without hiding a kind."""

    def test_cap_keeps_every_kind(self):
        b = clean_builder()
        for n in range(250):
            b.write("chanB", "ghost%d" % n, "x")
        b.append("chanA", "gone", process=9)
        final = b.final()
        for node in NODES:
            final["nodes"][node]["chanA"].pop()
        r = b.check(final)
        self.assertEqual((r["phantoms"], r["lost"]), (250, 1))
        self.assertEqual(len(r["anomalies"]), checker.ANOMALY_CAP)
        self.assertEqual(r["anomalies_truncated"], 251 - checker.ANOMALY_CAP)
        self.assertEqual(r["anomalies"][0]["kind"], "lost")


class RunFolderTest(CheckerTestCase):
    """check(run_dir) and the CLI on files."""

    def write_run(self, b, final=None, folder=None):
        """Writes the builder's run as a run folder."""
        folder = folder or tempfile.mkdtemp(prefix="herald-checker-test-")
        with open(os.path.join(folder, "run.json"), "w") as fh:
            json.dump(b.run(), fh)
        for name, recs in (("history", b.history), ("tails", b.tails),
                           ("nemesis", b.nemesis)):
            with open(os.path.join(folder, name + ".jsonl"), "w") as fh:
                for rec in recs:
                    fh.write(json.dumps(rec) + "\n")
        with open(os.path.join(folder, "final.json"), "w") as fh:
            json.dump(final if final is not None else b.final(), fh)
        return folder

    def run_cli(self, folder):
        """Runs checker.py as the harness would."""
        return subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE),
                                                            "checker.py"), folder],
                              capture_output=True, text=True, check=False)

    def test_clean_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.write_run(clean_builder(), folder=tmp)
            r = checker.check(tmp)
            self.assertTrue(r["valid"])
            with open(os.path.join(tmp, "results.json")) as fh:
                self.assertEqual(json.load(fh)["acked"], 6)
            with open(os.path.join(tmp, "summary.txt")) as fh:
                self.assertTrue(fh.read().startswith("herald jepsen check: VALID"))
            proc = self.run_cli(tmp)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("partition", proc.stdout)

    def test_invalid_folder_exits_1(self):
        b = clean_builder()
        b.write("chanB", "ghost", "boo")
        with tempfile.TemporaryDirectory() as tmp:
            self.write_run(b, folder=tmp)
            with open(os.path.join(tmp, "history.jsonl"), "a") as fh:
                fh.write('{"i": 999, "t": 9')  # torn last line from a killed harness
            proc = self.run_cli(tmp)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertIn("INVALID", proc.stdout)
            self.assertIn("phantom channel=chanB nonce=ghost", proc.stdout)
            with open(os.path.join(tmp, "results.json")) as fh:
                r = json.load(fh)
            self.assertEqual(r["phantoms"], 1)
            self.assertTrue(any("malformed" in w for w in r["warnings"]))

    def test_missing_history_exits_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(self.run_cli(tmp).returncode, 2)

    def test_missing_final_is_incomplete(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.write_run(clean_builder(), folder=tmp)
            os.remove(os.path.join(tmp, "final.json"))
            r = checker.check(tmp)
            self.assertFalse(r["complete"])
            self.assertEqual(r["lost"], 0)
            self.assertTrue(any("final.json missing" in w for w in r["warnings"]))



class StreamingTest(CheckerTestCase):
    """The checker streams history and tails; results must not depend on it."""

    write_run = RunFolderTest.write_run

    def test_failure_after_a_read_saw_it(self):
        b = clean_builder()
        inv = b.record(process=9, type="invoke", f="append", node="n1", channel="chanB",
                       nonce="f", payload="payload-f", attempt=1)
        b.write("chanB", "f", "payload-f")
        b.read("chanB", 2, node="n1")  # sees it while the append is still open
        done = b.record(process=9, type="fail", f="append", node="n1", channel="chanB",
                        nonce="f", error="unavailable")
        b.logs["chanB"].pop()
        r = b.check()
        self.assertEqual((r["failed_but_written"], r["divergent"]), (1, 1), r["anomalies"])
        (a,) = [x for x in r["anomalies"] if x["kind"] == "failed_but_written"]
        self.assert_has_records(a, inv, done)  # recorded after the read

    def test_retry_after_a_read_clears_the_failure(self):
        b = clean_builder()
        b.record(process=9, type="invoke", f="append", node="n1", channel="chanB",
                 nonce="f", payload="payload-f", attempt=1)
        b.write("chanB", "f", "payload-f")
        b.read("chanB", 2, node="n1")
        b.record(process=9, type="fail", f="append", node="n1", channel="chanB",
                 nonce="f", error="unavailable")
        b.append("chanB", "f", duplicate=True, process=9, attempt=2)
        r = b.check()
        self.assertTrue(r["valid"], r["anomalies"])

    def test_reads_reported_in_invoke_order(self):
        b = clean_builder()
        bad = copy.deepcopy(b.logs["chanA"][:1])
        bad[0]["ts"] = ts_of(BASE_TS + 1)
        first = b.record(process=60, type="invoke", f="read", node="n3", channel="chanA",
                         after_seq=0)
        second, _ = b.read("chanA", 0, node="n3", process=61, messages=copy.deepcopy(bad))
        b.record(process=60, type="ok", f="read", node="n3", channel="chanA", messages=bad)
        (a,) = self.assert_only(b.check(), "divergent")
        self.assertEqual(a["occurrences"], 2)
        self.assertEqual([w["read_i"] for w in a["where"]], [first["i"], second["i"]])
        self.assertEqual(a["ops"][0], first)

    def rich_builder(self):
        """A run with an anomaly of every kind, reads overlapping each other."""
        b = clean_builder()
        b.append("chanA", "gone", process=9)
        b.append("chanB", "r", process=10)
        b.append("chanB", "r", duplicate=True, process=11, attempt=2)[1]["seq"] = 1
        b.append("chanB", "f", outcome="fail", written=True, process=12)
        b.write("chanB", "ghost", "boo")
        b.write("chanB", "b1", "payload-b1")
        b.record(process=60, type="invoke", f="read", node="n3", channel="chanA",
                 after_seq=0)
        msgs = copy.deepcopy(b.logs["chanA"][:3])
        msgs[1], msgs[2] = msgs[2], msgs[1]
        b.read("chanA", 0, node="n2", process=61, messages=msgs)
        b.record(process=60, type="ok", f="read", node="n3", channel="chanA",
                 messages=copy.deepcopy(b.logs["chanA"][:2]) + [dict(b.logs["chanA"][0],
                                                                      seq=3)])
        b.tail_connect(3, "chanA", 0)
        b.tail_message(3, "chanA", 2)
        b.tail_message(3, "chanA", 2)
        b.tail_message(3, "chanA", 3, msg=dict(b.logs["chanA"][2], nonce="a1"))
        b.tail_disconnect(3, "chanA")
        b.tail_connect(3, "chanA", 1)
        b.tail_connect(4, "chanB", 0)  # told gone with no trim in the history
        b.tails.append({"t": b.tick(), "tailer": 4, "node": "n2", "channel": "chanB",
                        "event": "gone", "first_seq": 2})
        final = b.final()
        for node in NODES:
            final["nodes"][node]["chanA"].remove(
                next(m for m in final["nodes"][node]["chanA"] if m["nonce"] == "gone"))
        final["nodes"]["n3"]["chanB"].pop()
        return b, final

    def test_folder_matches_in_memory(self):
        b, final = self.rich_builder()
        expected = json.loads(json.dumps(b.check(final)))
        for kind in checker.KIND_COUNTER:
            self.assertIn(kind, expected["anomaly_kinds"])
        with tempfile.TemporaryDirectory() as tmp:
            self.write_run(b, final=final, folder=tmp)
            self.assertEqual(checker.check(tmp, write=False), expected)
            # Streamed in small blocks, final.json gives the same run.
            block = checker.JsonReader.BLOCK
            checker.JsonReader.BLOCK = 5
            try:
                self.assertEqual(checker.check(tmp, write=False), expected)
            finally:
                checker.JsonReader.BLOCK = block

    def test_final_json_streaming_matches_json_load(self):
        b, final = self.rich_builder()
        final["nodes"]["n2"] = None
        final["odd"] = [{"seq": True, "x": [1.0, {"y": None}]}, "\u00e9", -0.5e-3]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "final.json")
            for text in (json.dumps(final), json.dumps(final, indent=2, ensure_ascii=False)):
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
                got = checker.read_json(path, [], object_hook=checker.intern_messages(),
                                        streaming=True)
                self.assertEqual(json.dumps(got), json.dumps(json.loads(text)))
            for torn in (text[:len(text) // 2], text + "x", ""):
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(torn)
                streamed, loaded = [], []
                self.assertIsNone(checker.read_json(path, streamed, streaming=True))
                checker.read_json(path, loaded)
                self.assertEqual(streamed, loaded)
                self.assertIn("final.json unreadable", streamed[0])

if __name__ == "__main__":
    unittest.main()

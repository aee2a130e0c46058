#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tests of jepsen/check_deletes.py on hand-made delete histories.

A clean run checks clean; each other test breaks exactly one thing and
asserts that exactly that anomaly kind is reported, and that checker.py's
check() of a run folder holding it is invalid.
Run as: python3 jepsen/tests/test_check_deletes.py
"""

import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import check_deletes  # noqa: E402
import checker  # noqa: E402

CH = "del0"
NODES = ["n1", "n2", "n3"]


class DeleteRun:
    """One delete channel's records and the log a correct cluster would end
    with: the appender (process 1000) and deleter (2000) of workload.py."""

    def __init__(self):
        self.records = []
        self.tail = []                # what a tailer that saw everything saw
        self.t = 0.0
        self.epoch = 0
        self.log = []
        self.ts = 1732234567_000000
        self.n = 0

    def record(self, **fields):
        self.t += 0.1
        fields.update(i=len(self.records), t=round(self.t, 6), channel=CH)
        self.records.append(fields)

    def written(self, nonce, payload):
        """The message a write adds, and the tailer's copy of it."""
        self.ts += 1000
        m = {"seq": len(self.log) + 1, "ts": "%d.%06d" % divmod(self.ts, 10**6),
             "nonce": nonce, "payload": payload}
        self.log.append(m)
        ev = dict(m, tailer="d0", node="n1", channel=CH, event="message")
        if self.epoch:
            ev["epoch"] = self.epoch
        self.tail.append(ev)

    def append(self, outcome="ok", write=True):
        """One logical append of one attempt; write: it took effect."""
        self.n += 1
        nonce, payload = "d0-%d" % self.n, "p%d" % self.n
        base = {"process": 1000, "f": "append", "nonce": nonce}
        self.record(type="invoke", payload=payload, **base)
        if write:
            self.written(nonce, payload)
        if outcome == "ok":
            m = self.log[-1]
            self.record(type="ok", seq=m["seq"], ts=m["ts"], duplicate=False, **base)
        else:
            self.record(type=outcome, error="x", **base)
        return nonce

    def resend(self, nonce, duplicate=False):
        """Sends an acknowledged nonce again (one attempt, ok); a new write
        unless duplicate."""
        payload = "p" + nonce.split("-")[1]
        base = {"process": 1000, "f": "append", "nonce": nonce}
        self.record(type="invoke", payload=payload, attempt=0, **base)
        if not duplicate:
            self.written(nonce, payload)
        m = next(m for m in self.log if m["nonce"] == nonce) if not duplicate else self.log[0]
        self.record(type="ok", seq=m["seq"], ts=m["ts"], duplicate=duplicate, **base)

    def read(self, after=0, epoch=None):
        """A read with consistency=leader of what the channel holds now."""
        base = {"process": 3000, "f": "read", "node": "n3"}
        self.record(type="invoke", after_seq=after, **base)
        self.record(type="ok", epoch=self.epoch if epoch is None else epoch,
                    messages=[dict(m) for m in self.log[after:]], **base)

    def delete(self, outcome="ok", apply=True):
        base = {"process": 2000, "f": "delete"}
        self.record(type="invoke", **base)
        if apply:
            self.epoch += 1
            self.log = []
            self.tail.append({"tailer": "d0", "node": "n2", "channel": CH, "event": "gone",
                              "first_seq": 1, "epoch": self.epoch})
        if outcome == "ok":
            self.record(type="ok", epoch=self.epoch, **base)
        else:
            self.record(type=outcome, error="x", **base)

    def final(self, epoch=None, log=None):
        view = {"epoch": self.epoch if epoch is None else epoch,
                "log": self.log if log is None else log}
        return {"deleted": {n: {CH: json.loads(json.dumps(view))} for n in NODES}}


def clean_run():
    r = DeleteRun()
    for _ in range(3):
        r.append()
    r.read(after=1)
    r.delete()
    r.read()
    r.append()
    r.append(outcome="info")          # took effect, outcome unknown
    r.delete(outcome="info", apply=False)
    r.append(outcome="fail", write=False)
    r.append()
    r.delete()
    r.append()
    r.resend("d0-1")                  # deleted: written anew
    r.append()
    r.read()
    return r


class CheckDeletesTest(unittest.TestCase):
    def check(self, r, final=None):
        warnings = []
        d = check_deletes.check(r.records, r.tail, final or r.final(), warnings,
                                checker.parse_ts)
        self.assertEqual(warnings, [])
        return d

    def assertOnly(self, d, kind):
        kinds = {a["kind"] for a in d["anomalies"]}
        self.assertEqual(kinds, {kind}, d["anomalies"])

    def test_clean(self):
        r = clean_run()
        d = self.check(r)
        self.assertEqual(d["anomaly_count"], 0, d["anomalies"])
        c = d["channels"][CH]
        self.assertEqual((c["final_epoch"], c["final_length"]), (2, 3))
        self.assertEqual(c["deletes"], {"ok": 2, "fail": 0, "info": 1, "unfinished": 0})
        self.assertEqual((d["tail_messages"], d["reads"]), (9, 3))
        # d0-2, -3, -4 and -7 were written only before the last delete
        # (d0-1 again after it, d0-5 of unknown outcome, d0-6 never); the
        # re-send of d0-1 wrote anew; it, d0-8 and d0-9 are checked kept
        self.assertEqual((d["checked_deleted"], d["checked_fresh"], d["checked_kept"]),
                         (4, 1, 3))

    def test_resurrected(self):
        r = clean_run()
        old = {"seq": 4, "ts": "9999999999.000000", "nonce": "d0-2", "payload": "p2"}
        d = self.check(r, r.final(log=r.log + [old]))
        self.assertOnly(d, "resurrected")
        self.assertEqual(d["anomalies"][0]["nonce"], "d0-2")

    def test_dedup_kept_by_delete(self):
        r = clean_run()
        r.resend("d0-2", duplicate=True)  # answered from before the delete
        d = self.check(r)
        kinds = {a["kind"]: a for a in d["anomalies"]}
        self.assertEqual(set(kinds), {"dedup_after_delete", "lost"})  # not where it was acked
        self.assertEqual(kinds["dedup_after_delete"]["nonce"], "d0-2")

    def test_lost_after_last_delete(self):
        r = clean_run()
        d = self.check(r, r.final(log=r.log[:1]))
        lost = [a for a in d["anomalies"] if a["kind"] == "lost"]
        self.assertEqual({a["nonce"] for a in lost}, {"d0-1", "d0-9"})
        # and the tailer and the last read got d0-1 where the final log ends
        self.assertEqual({a["kind"] for a in d["anomalies"]}, {"lost", "tail", "read"})

    def test_delete_applied_twice(self):
        r = DeleteRun()               # no delete of unknown outcome to hide it
        r.append()
        r.delete()
        r.delete()
        r.records[-1]["epoch"] += 1   # one delete, two epochs
        d = self.check(r, r.final(epoch=r.epoch + 1))
        self.assertOnly(d, "delete_epoch")

    def test_failed_delete_took_effect(self):
        r = DeleteRun()
        r.append()
        r.delete(outcome="fail")      # said it did nothing, but it applied
        d = self.check(r)
        self.assertOnly(d, "delete_epoch")

    def test_gap_in_final_log(self):
        r = clean_run()
        r.log[1]["seq"] = 3
        d = self.check(r)
        self.assertIn("delete_log", {a["kind"] for a in d["anomalies"]})

    def test_phantom_in_final_log(self):
        r = clean_run()
        r.log[0]["payload"] = "never sent"
        d = self.check(r)
        self.assertIn("delete_log", {a["kind"] for a in d["anomalies"]})

    def test_tail_skipped_a_message(self):
        r = clean_run()
        del r.tail[1]
        d = self.check(r)
        self.assertOnly(d, "tail")

    def test_tail_crossed_a_delete_without_gone(self):
        r = clean_run()
        r.tail = [ev for ev in r.tail if ev["event"] != "gone" or ev["epoch"] != 2]
        d = self.check(r)
        self.assertOnly(d, "tail")

    def test_tail_got_what_the_final_log_has_not(self):
        r = clean_run()
        r.tail[-1]["nonce"], r.tail[-1]["payload"] = "d0-2", "p2"  # appended, but not there
        d = self.check(r)
        # and the last read, which got the right one, disagrees with the tail
        self.assertEqual({a["kind"] for a in d["anomalies"]}, {"tail", "read"})

    def test_tail_gone_past_the_final_epoch(self):
        r = clean_run()
        r.tail.append({"tailer": "d0", "node": "n3", "channel": CH, "event": "gone",
                       "first_seq": 1, "epoch": 3})
        d = self.check(r)
        self.assertOnly(d, "tail_gone")

    def test_tailers_disagree(self):
        r = clean_run()
        other = [dict(ev, tailer="d1") for ev in r.tail[:2]]
        other[1]["ts"] = "1.000000"
        r.tail += other
        d = self.check(r)
        self.assertOnly(d, "tail")

    def test_read_older_than_an_acknowledged_delete(self):
        r = clean_run()
        r.read(epoch=1)               # the second delete was acknowledged before
        d = self.check(r)
        self.assertOnly(d, "read")

    def test_read_of_an_epoch_no_delete_began(self):
        r = clean_run()
        r.read(epoch=4)               # only 3 deletes began
        d = self.check(r)
        self.assertOnly(d, "read")

    def test_read_disagrees_with_the_tail(self):
        r = clean_run()
        r.read()
        r.records[-1]["messages"][0]["ts"] = "1.000000"
        d = self.check(r)
        self.assertOnly(d, "read")

    def test_divergent_nodes(self):
        r = clean_run()
        final = r.final()
        final["deleted"]["n2"][CH]["epoch"] = 1
        d = self.check(r, final)
        self.assertOnly(d, "divergent")

    def test_unreadable_everywhere(self):
        r = clean_run()
        d = self.check(r, {"deleted": {n: None for n in NODES}})
        self.assertOnly(d, "incomplete")

    def test_run_folder_invalid(self):
        r = clean_run()
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "run.json"), "w") as fh:
                json.dump({"deletes": True, "channels": []}, fh)
            for name in ("history", "tails", "nemesis"):
                open(os.path.join(tmp, name + ".jsonl"), "w").close()
            with open(os.path.join(tmp, "deletes.jsonl"), "w") as fh:
                fh.writelines(json.dumps(rec) + "\n" for rec in r.records)
            with open(os.path.join(tmp, "del_tails.jsonl"), "w") as fh:
                fh.writelines(json.dumps(ev) + "\n" for ev in r.tail)
            final = r.final(log=r.log[:1])
            final["nodes"] = {n: {} for n in NODES}
            with open(os.path.join(tmp, "final.json"), "w") as fh:
                json.dump(final, fh)
            res = checker.check(tmp)
            self.assertFalse(res["valid"])
            with open(os.path.join(tmp, "summary.txt")) as fh:
                text = fh.read()
            self.assertIn("INVALID (4 safety anomalies)", text)
            self.assertIn("lost channel=del0", text)


if __name__ == "__main__":
    unittest.main()

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
        self.t = 0.0
        self.epoch = 0
        self.log = []
        self.ts = 1732234567_000000
        self.n = 0

    def record(self, **fields):
        self.t += 0.1
        fields.update(i=len(self.records), t=round(self.t, 6), channel=CH)
        self.records.append(fields)

    def append(self, outcome="ok", write=True):
        """One logical append of one attempt; write: it took effect."""
        self.n += 1
        nonce, payload = "d0-%d" % self.n, "p%d" % self.n
        base = {"process": 1000, "f": "append", "nonce": nonce}
        self.record(type="invoke", payload=payload, **base)
        if write:
            self.ts += 1000
            self.log.append({"seq": len(self.log) + 1, "ts": "%d.%06d" % divmod(self.ts, 10**6),
                             "nonce": nonce, "payload": payload})
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
            self.ts += 1000
            self.log.append({"seq": len(self.log) + 1, "ts": "%d.%06d" % divmod(self.ts, 10**6),
                             "nonce": nonce, "payload": payload})
        m = next(m for m in self.log if m["nonce"] == nonce) if not duplicate else self.log[0]
        self.record(type="ok", seq=m["seq"], ts=m["ts"], duplicate=duplicate, **base)

    def delete(self, outcome="ok", apply=True):
        base = {"process": 2000, "f": "delete"}
        self.record(type="invoke", **base)
        if apply:
            self.epoch += 1
            self.log = []
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
    r.delete()
    r.append()
    r.append(outcome="info")          # took effect, outcome unknown
    r.delete(outcome="info", apply=False)
    r.append(outcome="fail", write=False)
    r.append()
    r.delete()
    r.append()
    r.resend("d0-1")                  # deleted: written anew
    r.append()
    return r


class CheckDeletesTest(unittest.TestCase):
    def check(self, r, final=None):
        warnings = []
        d = check_deletes.check(r.records, final or r.final(), warnings, checker.parse_ts)
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
        self.assertOnly(d, "lost")
        self.assertEqual({a["nonce"] for a in d["anomalies"]}, {"d0-1", "d0-9"})

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
            final = r.final(log=r.log[:1])
            final["nodes"] = {n: {} for n in NODES}
            with open(os.path.join(tmp, "final.json"), "w") as fh:
                json.dump(final, fh)
            res = checker.check(tmp)
            self.assertFalse(res["valid"])
            with open(os.path.join(tmp, "summary.txt")) as fh:
                text = fh.read()
            self.assertIn("INVALID (2 safety anomalies)", text)
            self.assertIn("lost channel=del0", text)


if __name__ == "__main__":
    unittest.main()

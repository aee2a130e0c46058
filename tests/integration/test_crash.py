#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""kill -9 at random moments, and damaged WAL tails.

(a) appends stream in while the node is killed; after a restart every
    acknowledged append is there unchanged, nothing is invented or doubled,
    and retries of the unanswered ones are exactly-once;
(b) the end of the newest WAL segment is zeroed from a random offset;
(c) a byte of the last record is flipped;
(d) a byte of an early record, followed by valid group commits, is flipped:
    the node must refuse to start.
In (b) and (c) fsynced bytes are destroyed on purpose: the log must stay a
consistent prefix of what was there, not complete.
"""

import hashlib
import http.client
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (WAL_BATCH_START, WAL_BLOCK, WAL_REC_HDR, NodeStartError,  # noqa: E402
                     NodeTestCase, flip_byte, metric, msg_payload_bytes, run_tests,
                     wal_newest_with_records, wal_segments, zero_range)

CHANNELS = ["crash-%d" % i for i in range(6)]


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Writers:
    """Threads appending to CHANNELS until the node dies or stop()."""

    def __init__(self, node, tag, n=6, known=None):
        self.node = node
        self.tag = tag
        self.acked = {}      # (ch, nonce) -> (seq, ts, payload)
        self.inflight = {}   # (ch, nonce) -> payload, no answer
        self.known = known if known is not None else {}
        self.problems = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, tid):
        rnd = random.Random("%s-%d" % (self.tag, tid))
        c = self.node.client(timeout=30)
        i = 0
        while not self.stopping.is_set():
            ch = CHANNELS[rnd.randrange(len(CHANNELS))]
            nonce = "%s-w%d-%05d" % (self.tag, tid, i)
            i += 1
            payload = "%s %s" % (nonce, "x" * rnd.choice((0, 10, 100, 1000, 5000)))
            with self.lock:
                self.inflight[(ch, nonce)] = payload
                self.known[(ch, nonce)] = payload
            try:
                r = c.append(ch, nonce, payload)
            except (OSError, http.client.HTTPException):
                return  # the node is gone: the outcome is unknown
            if r.status == 503:
                continue  # outcome unknown: stays in flight
            if r.status != 201:
                with self.lock:
                    self.problems.append("append %s/%s -> %r" % (ch, nonce, r))
                return
            j = r.json()
            with self.lock:
                del self.inflight[(ch, nonce)]
                self.acked[(ch, nonce)] = (j["seq"], j["ts"], payload)

    def stop(self):
        self.stopping.set()
        self.join()

    def join(self):
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "writer hung"


class CrashTest(NodeTestCase):

    # ------------------------------------------------------------ helpers ---
    def read_logs(self, c, channels=CHANNELS):
        return {ch: c.read_all(ch) for ch in channels}

    def check_logs(self, logs, known):
        """Gapless, increasing, unique; nothing that no client sent."""
        for ch, msgs in logs.items():
            self.assertChannelLog(msgs, ch)
            for m in msgs:
                self.assertIn((ch, m["nonce"]), known,
                              "%s seq %d: nonce %r was never sent" % (ch, m["seq"], m["nonce"]))
                self.assertEqual(msg_payload_bytes(m), known[(ch, m["nonce"])].encode(),
                                 "%s seq %d: payload differs from what was sent" % (ch, m["seq"]))

    def retry_all(self, c, logs, nonces, known):
        """Retries (ch, nonce) in order: one in the log answers duplicate with
        its stored seq/ts, one not in the log commits now at the next seq.
        Returns the expected logs afterwards and the new acks."""
        expect = {ch: list(msgs) for ch, msgs in logs.items()}
        where = {(ch, m["nonce"]): m for ch, msgs in logs.items() for m in msgs}
        acks = {}
        for ch, nonce in nonces:
            payload = known[(ch, nonce)]
            try:
                r = c.append(ch, nonce, payload)
            except (OSError, http.client.HTTPException) as e:
                node = self.nodes[-1]
                time.sleep(0.5)
                self.fail("retry of %s/%s: the node dropped the connection (%r); exit code %r; "
                          "log tail:\n%s" % (ch, nonce, e, node.proc.poll(), node.log_tail(15)))
            if (ch, nonce) in where:
                m = where[(ch, nonce)]
                self.assertEqual(r.status, 200, "retry of stored %s/%s: %r" % (ch, nonce, r))
                j = r.json()
                self.assertEqual((j["seq"], j["ts"], j["duplicate"]), (m["seq"], m["ts"], True),
                                 "retry of %s/%s" % (ch, nonce))
            else:
                self.assertEqual(r.status, 201, "retry of lost %s/%s: %r" % (ch, nonce, r))
                j = r.json()
                self.assertEqual(j["seq"], len(expect[ch]) + 1,
                                 "retry of %s/%s committed at the wrong seq" % (ch, nonce))
                m = {"seq": j["seq"], "ts": j["ts"], "nonce": nonce, "payload": payload}
                expect[ch].append(m)
                where[(ch, nonce)] = m
            acks[(ch, nonce)] = (j["seq"], j["ts"], payload)
        return expect, acks

    def retry_set(self, before, after, sample=150):
        """Every message lost by the damage, then a sample of survivors
        (the last few of each channel always), in log order per channel."""
        out = []
        for ch in CHANNELS:
            keep = len(after[ch])
            idx = set(range(max(0, keep - 5), len(before[ch])))
            idx |= set(random.sample(range(keep), min(keep, sample // len(CHANNELS))))
            out += [(ch, before[ch][i]["nonce"]) for i in sorted(idx)]
        return out

    def assertSameLogs(self, got, want, what):
        for ch in want:
            self.assertEqual(len(got[ch]), len(want[ch]), "%s: %s length" % (what, ch))
            for a, b in zip(got[ch], want[ch]):
                self.assertEqual(a, b, "%s: %s seq %d differs" % (what, ch, b["seq"]))

    # ---------------------------------------------------------------- (a) ---
    def kill_rounds(self, args, rounds):
        node = self.new_node(args=args)
        known = {}
        acked_all = {}
        logs = {ch: [] for ch in CHANNELS}
        for rnd in range(rounds):
            w = Writers(node, "r%d" % rnd, n=6, known=known)
            time.sleep(random.uniform(0.3, 1.5))
            # What any reader saw before the crash is committed: it must survive.
            seen = self.read_logs(node.client())
            time.sleep(random.uniform(0, 0.3))
            node.kill9()
            w.join()
            self.assertEqual(w.problems, [])
            self.assertGreater(len(w.acked), 0, "round %d: nothing was acknowledged" % rnd)
            if rnd == 2:
                # Also a crash during recovery itself.
                node.spawn()
                time.sleep(random.uniform(0.05, 0.4))
                node.kill9()
            node.start()
            c = node.client()
            after = self.read_logs(c)
            self.check_logs(after, known)
            for ch in CHANNELS:
                self.assertEqual(after[ch][:len(logs[ch])], logs[ch],
                                 "round %d: %s: history before the round changed" % (rnd, ch))
                self.assertEqual(after[ch][:len(seen[ch])], seen[ch],
                                 "round %d: %s: messages read before the kill changed or vanished"
                                 % (rnd, ch))
            where = {(ch, m["nonce"]): m for ch, msgs in after.items() for m in msgs}
            acked_all.update(w.acked)
            for key, (seq, ts, payload) in acked_all.items():
                self.assertIn(key, where, "round %d: acknowledged %s lost" % (rnd, key))
                m = where[key]
                self.assertEqual((m["seq"], m["ts"], msg_payload_bytes(m)),
                                 (seq, ts, payload.encode()),
                                 "round %d: acknowledged %s changed" % (rnd, key))
            # Only this round's nonces can be new, and only acked or in flight ones.
            for ch in CHANNELS:
                for m in after[ch][len(logs[ch]):]:
                    key = (ch, m["nonce"])
                    self.assertTrue(key in w.acked or key in w.inflight,
                                    "round %d: %s appeared but was neither acked nor in flight"
                                    % (rnd, key))
            committed_inflight = sum(1 for k in w.inflight if k in where)
            expect, acks = self.retry_all(c, after, sorted(w.inflight), known)
            acked_all.update(acks)
            logs = self.read_logs(c)
            self.assertSameLogs(logs, expect, "round %d after retries" % rnd)
            print("\n  round %d: %d acked, %d in flight at the kill (%d had committed), log %d"
                  % (rnd, len(w.acked), len(w.inflight), committed_inflight,
                     sum(len(v) for v in logs.values())), end="")
        # A clean stop and start changes nothing, byte for byte.
        raw_before = {ch: node.client().get("/v1/channels/%s/messages?after_seq=0&limit=1000" % ch).body
                      for ch in CHANNELS}
        node.terminate()
        node.start()
        c = node.client()
        self.assertSameLogs(self.read_logs(c), logs, "after a clean restart")
        for ch in CHANNELS:
            self.assertEqual(c.get("/v1/channels/%s/messages?after_seq=0&limit=1000" % ch).body,
                             raw_before[ch], "%s: read bytes changed across a restart" % ch)
        print()

    def test_a_kill9_rounds_uring(self):
        self.kill_rounds((), 5)

    def test_a_kill9_rounds_no_uring(self):
        self.kill_rounds(("--no-uring",), 5)
        self.assertNotIn("WAL on io_uring", self.nodes[0].log(),
                         "--no-uring was ignored")

    def test_a_kill9_rounds_frequent_snapshots(self):
        # A snapshot every 16 entries: the kills land while shards snapshot
        # together and wait for one state flush between them.
        self.kill_rounds(("--snapshot-every", "16"), 3)
        node = self.nodes[0]
        w = Writers(node, "after", n=6)
        time.sleep(1.5)
        w.stop()
        self.assertEqual(w.problems, [])
        c = node.client()
        snapshots = metric(c, "herald_snapshots_total")
        flushes = metric(c, "herald_snapshot_flushes_total")
        self.assertGreater(snapshots, 10, "too few snapshots to tell")
        self.assertLess(flushes, snapshots, "every snapshot flushed on its own")

    # ---------------------------------------------------------------- (b) ---
    def fill(self, node, tag, n_concurrent=4, n_single=20):
        """Some appends: single ones, then concurrent ones (multi-record group
        commits). Returns the acks."""
        c = node.client()
        known = {}
        acks = {}
        for i in range(n_single):
            ch = CHANNELS[i % 3]
            nonce = "%s-s%03d" % (tag, i)
            payload = "%s %s" % (nonce, "s" * random.randint(0, 3000))
            known[(ch, nonce)] = payload
            acks[(ch, nonce)] = c.append_ok(ch, nonce, payload)
        w = Writers(node, tag, n=n_concurrent, known=known)
        time.sleep(0.3)
        w.stop()
        self.assertEqual(w.problems, [])
        self.assertEqual(w.inflight, {})
        acks.update({k: v[:2] for k, v in w.acked.items()})
        return known, acks

    def test_b_wal_tail_cut_at_random_offsets(self):
        node = self.new_node()
        known = {}
        logs = {ch: [] for ch in CHANNELS}
        cuts = 0
        lost_total = 0
        damaged = {}
        for it in range(7):
            k, _ = self.fill(node, "b%d" % it)
            known.update(k)
            c = node.client()
            before = self.read_logs(c)
            self.check_logs(before, known)
            for ch in CHANNELS:
                self.assertEqual(before[ch][:len(logs[ch])], logs[ch])
            node.kill9()
            seg, recs = wal_newest_with_records(node.data, damaged)
            self.assertTrue(recs, "no WAL records found")
            end = recs[-1]["off"] + recs[-1]["size"]
            # Somewhere in the last 1-3 written blocks (not the header block).
            lo = max(WAL_BLOCK, (end - 1) // WAL_BLOCK * WAL_BLOCK - random.randint(0, 2) * WAL_BLOCK)
            off = random.randrange(lo, end)
            dirty_end = (end + WAL_BLOCK - 1) // WAL_BLOCK * WAL_BLOCK
            zero_range(seg, off, dirty_end)
            damaged.setdefault(seg, []).append(off)
            cuts += 1
            try:
                node.start()
            except NodeStartError as e:
                self.fail("iteration %d: restart after zeroing %s from %d (data end %d) failed: %s"
                          % (it, os.path.basename(seg), off, end, e))
            c = node.client()
            after = self.read_logs(c)
            self.check_logs(after, known)
            for ch in CHANNELS:
                self.assertPrefix(before[ch], after[ch], "it %d %s (cut at %d of %d)"
                                  % (it, ch, off, end))
            lost = sum(len(before[ch]) - len(after[ch]) for ch in CHANNELS)
            lost_total += lost
            # Every message that was there before is retried: survivors answer
            # duplicate at their place, lost ones commit again, once.
            expect, _ = self.retry_all(c, after, self.retry_set(before, after), known)
            logs = self.read_logs(c)
            self.assertSameLogs(logs, expect, "it %d after retries" % it)
            print("\n  cut %s at %d (data end %d): %d messages lost"
                  % (os.path.basename(seg), off, end, lost), end="")
        # And the result survives a clean restart.
        node.terminate()
        node.start()
        self.assertSameLogs(self.read_logs(node.client()), logs, "after a clean restart")
        print()

    def test_b2_wal_tail_cut_after_graceful_stop(self):
        """After SIGTERM the state store may be flushed ahead of what the WAL
        keeps once its tail is cut. The node must then either refuse to
        start with a clear message, or serve a consistent log in which new
        acknowledged appends survive further crashes."""
        node = self.new_node()
        known, _ = self.fill(node, "g")
        before = self.read_logs(node.client())
        node.terminate()
        seg, recs = wal_newest_with_records(node.data)
        end = recs[-1]["off"] + recs[-1]["size"]
        lo = max(WAL_BLOCK, (end - 1) // WAL_BLOCK * WAL_BLOCK - WAL_BLOCK)
        off = random.randrange(lo, end)
        zero_range(seg, off, (end + WAL_BLOCK - 1) // WAL_BLOCK * WAL_BLOCK)
        try:
            node.start()
        except NodeStartError:
            log = node.log()
            self.assertGreater(node.proc.returncode, 0, log)
            self.assertRegex(log.lower(), r"wal|state|applied|corrupt",
                             "refused without a clear message:\n" + log)
            return
        c = node.client()
        after = self.read_logs(c)
        self.check_logs(after, known)
        for ch in CHANNELS:
            self.assertPrefix(before[ch], after[ch], "cut at %d of %d: %s" % (off, end, ch))
        expect, _ = self.retry_all(c, after, self.retry_set(before, after), known)
        # New appends after the cut, then crashes: all of it must stay.
        for i in range(30):
            ch = CHANNELS[i % len(CHANNELS)]
            nonce = "post-cut-%d" % i
            known[(ch, nonce)] = "new %d" % i
            s, ts = c.append_ok(ch, nonce, "new %d" % i)
            self.assertEqual(s, len(expect[ch]) + 1)
            expect[ch].append({"seq": s, "ts": ts, "nonce": nonce, "payload": "new %d" % i})
        self.assertSameLogs(self.read_logs(c), expect, "after the cut and new appends")
        node.kill9()
        node.start()
        self.assertSameLogs(self.read_logs(node.client()), expect,
                            "after the cut, new appends and kill -9")
        node.terminate()
        node.start()
        self.assertSameLogs(self.read_logs(node.client()), expect,
                            "after the cut, new appends and SIGTERM")

    # ---------------------------------------------------------------- (c) ---
    def test_c_flipped_byte_in_last_record(self):
        node = self.new_node()
        known = {}
        logs = {ch: [] for ch in CHANNELS}
        damaged = {}
        for it in range(4):
            k, _ = self.fill(node, "c%d" % it)
            known.update(k)
            before = self.read_logs(node.client())
            node.kill9()
            seg, recs = wal_newest_with_records(node.data, damaged)
            last = recs[-1]
            # Payload, then header fields (LSN, length, CRCs) on later rounds.
            if it % 2 == 0:
                off = last["off"] + WAL_REC_HDR + random.randrange(last["len"])
            else:
                off = last["off"] + random.choice((4, 8, 16, 20))
            flip_byte(seg, off, mask=1 << random.randrange(8))
            damaged.setdefault(seg, []).append(off)
            try:
                node.start()
            except NodeStartError as e:
                self.fail("restart after flipping the byte at %s:%d (last record at %d) failed: %s"
                          % (os.path.basename(seg), off, last["off"], e))
            c = node.client()
            after = self.read_logs(c)
            self.check_logs(after, known)
            for ch in CHANNELS:
                self.assertPrefix(before[ch], after[ch], "flip at %d: %s" % (off, ch))
                self.assertEqual(after[ch][:len(logs[ch])], logs[ch])
            expect, _ = self.retry_all(c, after, self.retry_set(before, after), known)
            logs = self.read_logs(c)
            self.assertSameLogs(logs, expect, "after retries")

    # ---------------------------------------------------------------- (d) ---
    def test_d_flipped_byte_in_early_record_refuses_to_start(self):
        node = self.new_node()
        known, _ = self.fill(node, "d", n_single=40)
        before = self.read_logs(node.client())
        self.check_logs(before, known)
        node.kill9()
        seg, recs = wal_newest_with_records(node.data)
        starts = [i for i, r in enumerate(recs) if r["flags"] & WAL_BATCH_START]
        self.assertGreater(len(starts), 10)
        for variant in ("payload", "header"):
            # A record with at least 3 later group commits after it.
            i = random.choice([i for i in range(len(recs)) if sum(1 for s in starts if s > i) >= 3
                               and recs[i]["len"] > 0])
            r = recs[i]
            if variant == "payload":
                off = r["off"] + WAL_REC_HDR + random.randrange(r["len"])
            else:
                off = r["off"] + random.choice((8, 16, 20))
            flip_byte(seg, off)
            digest = {p: file_digest(p) for p in wal_segments(node.data)}
            for attempt in range(2):
                node.spawn()
                try:
                    rc = node.proc.wait(60)
                except Exception:  # noqa: BLE001
                    node.kill9()
                    self.fail("%s flip at %s:%d (record %d of %d): the node started and serves"
                              % (variant, os.path.basename(seg), off, i, len(recs)))
                log = node.log()
                self.assertNotEqual(rc, 0, "%s flip: exit code 0" % variant)
                self.assertTrue(rc > 0, "%s flip: killed by signal %d:\n%s" % (variant, -rc, log))
                self.assertTrue("corrupt" in log.lower() or "bad record" in log.lower(),
                                "%s flip at %d: no clear message:\n%s" % (variant, off, log))
                self.assertIn(os.path.basename(seg), log,
                              "%s flip: the message does not name the segment:\n%s" % (variant, log))
                # It must not have "repaired" the WAL by cutting acknowledged data.
                self.assertEqual({p: file_digest(p) for p in wal_segments(node.data)}, digest,
                                 "%s flip: a refused start changed the WAL" % variant)
            flip_byte(seg, off)  # undo: the node starts again with everything
            node.start()
            self.assertSameLogs(self.read_logs(node.client()), before, "after undoing the flip")
            node.kill9()


if __name__ == "__main__":
    run_tests()

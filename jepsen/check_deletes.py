# SPDX-License-Identifier: Apache-2.0
"""The checker's part for deleted channels (jepsen/run --deletes).

Each delete channel has one appender and one deleter of its own, recorded
in deletes.jsonl; final.json's "deleted" holds every node's final epoch and
log of each. A delete forgets a channel's messages and dedup records, adds
one to its epoch, and seqs start at 1 again (README), so the main checker's
one-sequence-per-channel model does not hold for these channels. What must
hold instead:

- agreement: every readable node ends with the same epoch and log;
- epochs: the acknowledged deletes, in the deleter's order, answer strictly
  increasing epochs, each at most the number of deletes invoked so far that
  did not fail, and the final epoch lies between the last acknowledged one
  and the number of deletes that did not fail (a delete applied twice, or
  one that failed but took effect, breaks these);
- the final log: seqs gapless from 1, ts strictly increasing, each nonce
  once, each one appended to this channel with that payload;
- nothing deleted comes back: an append whose every attempt that did not
  fail was acknowledged before an acknowledged delete was invoked is not in
  the final log;
- a delete forgets dedup records: such an append, sent again after that
  delete answered, is written anew (duplicate: false);
- nothing acknowledged after the last delete is lost: if an acknowledged
  delete answered the final epoch, it was the last to apply, and every
  append acknowledged by an attempt invoked after its answer is in the
  final log at the acknowledged seq and ts;
- tails (del_tails.jsonl: one tailer per channel, one multi-channel SSE
  stream of both and one WebSocket of both, each hopping between nodes,
  checked per channel):
  within an epoch seqs follow one another with ts strictly increasing, the
  epoch moves on only at a gone, never past the final one;
- reads with consistency=leader (one reader per channel): the epoch is no
  older than the deletes acknowledged before the read began, nor newer
  than the deletes begun before it ended; the messages follow after_seq;
- every message a tailer or a read saw was appended to the channel, all
  that saw an (epoch, seq) saw the same message, and in the final epoch it
  is the final log's.

Pure standard library, and no code shared with the server or the harness,
as checker.py.
"""

from __future__ import annotations

from collections import defaultdict

ANOMALY_CAP = 50


class Attempt:
    """One invoke and its completion (None: unfinished)."""

    def __init__(self, invoke, done):
        self.invoke = invoke
        self.done = done

    @property
    def outcome(self):
        return self.done.get("type") if self.done is not None else "unfinished"

    @property
    def t0(self):
        return self.invoke.get("t")

    @property
    def t1(self):
        return self.done.get("t") if self.done is not None else None


def pair(records, warnings):
    """{channel: {"append"|"delete"|"read": [Attempt]}} in invoke order;
    a process has one operation open at a time."""
    open_ops = {}
    out = defaultdict(lambda: {"append": [], "delete": [], "read": []})
    for rec in records:
        proc = rec.get("process")
        if not isinstance(rec.get("t"), (int, float)) or (
                rec.get("type") == "invoke" and rec.get("f") not in ("append", "delete",
                                                                     "read")):
            warnings.append("deletes.jsonl: a record without a time or with an unknown f "
                            "skipped")
            continue
        if rec.get("type") == "invoke":
            if proc in open_ops:
                warnings.append("deletes.jsonl: process %r invoked again before its op "
                                "completed" % (proc,))
            open_ops[proc] = Attempt(rec, None)
            out[rec.get("channel")][rec.get("f")].append(open_ops[proc])
        elif proc in open_ops:
            open_ops.pop(proc).done = rec
        else:
            warnings.append("deletes.jsonl: a completion without an open invoke")
    return out


def final_views(final, channel):
    """{node: {"epoch", "log"}} of every node whose final state was read."""
    views = {}
    for node, per in sorted((final.get("deleted") or {}).items()):
        if isinstance(per, dict) and isinstance(per.get(channel), dict):
            views[node] = per[channel]
    return views


def check_epochs(ch, deletes, final_epoch, found):
    """The acknowledged deletes' epochs and the final epoch against the
    deletes invoked (see the module's text)."""
    not_failed = 0
    last = 0
    for d in deletes:
        not_failed += d.outcome != "fail"
        if d.outcome != "ok":
            continue
        epoch = d.done.get("epoch")
        if not isinstance(epoch, int) or epoch <= last or epoch > not_failed:
            found.append({"kind": "delete_epoch", "channel": ch, "detail":
                          "delete invoked at t=%s answered epoch %r after an acknowledged "
                          "epoch %d, with %d deletes not failed so far"
                          % (d.t0, epoch, last, not_failed)})
            return
        last = epoch
    if not last <= final_epoch <= not_failed:
        found.append({"kind": "delete_epoch", "channel": ch, "detail":
                      "final epoch %d, but the last acknowledged delete answered %d and %d "
                      "deletes did not fail" % (final_epoch, last, not_failed)})


def check_log(ch, log, sightings, found):
    """Gapless seqs from 1, strictly increasing ts, no nonce twice, and only
    what was appended to this channel (sightings.appended)."""
    seen = set()
    prev_ts = None
    for i, m in enumerate(log):
        nonce, ts = m.get("nonce"), sightings.parse_ts(m.get("ts"))
        problem = None
        if m.get("seq") != i + 1:
            problem = "seq %r at position %d of the final log" % (m.get("seq"), i + 1)
        elif ts is None or (prev_ts is not None and ts <= prev_ts):
            problem = "ts %r not a ts after the previous message's" % (m.get("ts"),)
        elif nonce in seen:
            problem = "nonce %r twice" % (nonce,)
        elif (nonce, m.get("payload")) not in sightings.appended:
            problem = "nonce %r with payload %r was never appended here" % (
                nonce, m.get("payload"))
        if problem:
            found.append({"kind": "delete_log", "channel": ch, "seq": m.get("seq"),
                          "detail": problem})
            return
        seen.add(nonce)
        prev_ts = ts


def check_survivors(ch, log, appends, deletes, final_epoch, parse_ts, found, stats):
    """Nothing deleted comes back, a re-send after a delete writes anew, and
    nothing acknowledged after the last delete is lost."""
    by_nonce = defaultdict(list)
    for a in appends:
        by_nonce[a.invoke.get("nonce")].append(a)
    placed = {m.get("nonce"): (m.get("seq"), parse_ts(m.get("ts"))) for m in log}
    ok_deletes = [d for d in deletes if d.outcome == "ok"]
    last = [d for d in ok_deletes if d.done.get("epoch") == final_epoch]
    cut = last[-1].t1 if last else (None if final_epoch else float("-inf"))

    def before(attempts, d):
        """Every attempt that may have written did, and answered before d
        was invoked: none of them can apply after d."""
        live = [a for a in attempts if a.outcome != "fail"]
        return bool(live) and all(a.outcome == "ok" and a.t1 < d.t0 for a in live)

    for nonce, attempts in by_nonce.items():
        oks = [a for a in attempts if a.outcome == "ok"]
        if ok_deletes and before(attempts, ok_deletes[-1]):
            stats["checked_deleted"] += 1
            if nonce in placed:
                found.append({"kind": "resurrected", "channel": ch, "nonce": nonce,
                              "seq": placed[nonce][0], "detail":
                              "nonce %r was written and acknowledged before an acknowledged "
                              "delete, and is in the final log at seq %s"
                              % (nonce, placed[nonce][0])})
        for r in oks:
            earlier = [d for d in ok_deletes if d.t1 < r.t0]
            if not earlier or not before([a for a in attempts if a is not r], earlier[-1]):
                continue
            stats["checked_fresh"] += 1
            if r.done.get("duplicate") is not False:
                found.append({"kind": "dedup_after_delete", "channel": ch, "nonce": nonce,
                              "seq": r.done.get("seq"), "detail":
                              "nonce %r, written before an acknowledged delete, was sent again "
                              "after it at t=%s and answered as a duplicate (seq %s): the "
                              "delete did not forget it" % (nonce, r.t0, r.done.get("seq"))})
        kept = [a for a in oks if cut is not None and a.t0 > cut]
        if kept:
            stats["checked_kept"] += 1
            want = {(a.done.get("seq"), parse_ts(a.done.get("ts"))) for a in kept}
            if want != {placed.get(nonce)}:
                found.append({"kind": "lost", "channel": ch, "nonce": nonce, "detail":
                              "nonce %r was acknowledged at (seq, ts micros) %s after the last "
                              "delete, but the final log has %s"
                              % (nonce, sorted(want, key=repr), placed.get(nonce))})


class Sightings:
    """Messages of one channel seen during the run, by tailers and reads:
    each must have been appended to the channel, all sightings of an
    (epoch, seq) must agree, and in the final epoch it is the final log's."""

    def __init__(self, appends, log, final_epoch, parse_ts):
        self.appended = {(a.invoke.get("nonce"), a.invoke.get("payload")) for a in appends}
        self.log = log
        self.final_epoch = final_epoch
        self.parse_ts = parse_ts
        self.seen = {}   # (epoch, seq) -> ((nonce, payload), ts micros)

    def problem(self, epoch, m):
        """What is wrong with message m seen at epoch, or None."""
        seq, key = m.get("seq"), (m.get("nonce"), m.get("payload"))
        ts = self.parse_ts(m.get("ts"))
        if key not in self.appended:
            return "nonce %r with payload %r at %s@%s was never appended here" % (
                key[0], key[1], seq, epoch)
        if self.seen.setdefault((epoch, seq), (key, ts)) != (key, ts):
            return "nonce %r at %s@%s, where another sighting had %r" % (
                key[0], seq, epoch, self.seen[(epoch, seq)][0][0])
        log = self.log
        if epoch == self.final_epoch and (not isinstance(seq, int) or not 1 <= seq <= len(log)
                                          or (log[seq - 1].get("nonce"),
                                              log[seq - 1].get("payload")) != key):
            return "nonce %r at %s@%s of the final epoch, where the final log has %s" % (
                key[0], seq, epoch, repr(log[seq - 1].get("nonce"))
                if isinstance(seq, int) and 1 <= seq <= len(log) else "nothing")
        return None


def check_tails(ch, events, sightings, found, stats):
    """One tailer's events of channel ch (del_tails.jsonl, in order): within
    an epoch the seqs follow one another from the first, with ts strictly
    increasing; an epoch changes only at a gone naming it, never past the
    final one; and each message passes sightings."""
    final_epoch, parse_ts = sightings.final_epoch, sightings.parse_ts
    epoch, last, last_ts = 0, 0, None
    for ev in events:
        kind = ev.get("event")
        if kind == "gone":
            e, first = ev.get("epoch", 0), ev.get("first_seq")
            if not isinstance(first, int) or not isinstance(e, int) or e < epoch or (
                    e == epoch and first - 1 < last) or e > final_epoch:
                found.append({"kind": "tail_gone", "channel": ch, "detail":
                              "tailer %s at %d@%d was told gone from %r@%r by %s (final epoch "
                              "%d)" % (ev.get("tailer"), last, epoch, first, e, ev.get("node"),
                                       final_epoch)})
                return
            if e > epoch:
                epoch, last_ts = e, None
            last = first - 1
            continue
        if kind != "message":
            continue
        stats["tail_messages"] += 1
        e, seq, ts = ev.get("epoch", 0), ev.get("seq"), parse_ts(ev.get("ts"))
        problem = None
        if e != epoch or seq != last + 1:
            problem = "got %s@%s after %d@%d" % (seq, e, last, epoch)
        elif ts is None or (last_ts is not None and ts <= last_ts):
            problem = "ts %r at %s@%s not after the one before" % (ev.get("ts"), seq, e)
        else:
            problem = sightings.problem(e, ev)
        if problem:
            found.append({"kind": "tail", "channel": ch, "seq": seq, "detail":
                          "tailer %s from %s: %s" % (ev.get("tailer"), ev.get("node"), problem)})
            return
        last, last_ts = seq, ts


def check_reads(ch, reads, deletes, sightings, found, stats):
    """Reads with consistency=leader: the epoch is at least that of every
    delete acknowledged before the read began, and at most the number of
    deletes that did not fail invoked before it ended; the messages follow
    on from after_seq, and each passes sightings."""
    for r in reads:
        if r.outcome != "ok":
            continue
        stats["reads"] += 1
        epoch, msgs = r.done.get("epoch"), r.done.get("messages") or []
        floor = max([d.done.get("epoch") for d in deletes
                     if d.outcome == "ok" and d.t1 < r.t0], default=0)
        ceiling = sum(1 for d in deletes if d.outcome != "fail" and d.t0 < r.t1)
        problem = None
        if not isinstance(epoch, int) or not floor <= epoch <= ceiling:
            problem = "epoch %r, but deletes acknowledged before it reached %s and %d that " \
                      "did not fail began before it ended" % (epoch, floor, ceiling)
        for i, m in enumerate(msgs):
            if problem:
                break
            if m.get("seq") != r.invoke.get("after_seq", 0) + i + 1:
                problem = "seq %r where %r was due" % (m.get("seq"),
                                                       r.invoke.get("after_seq", 0) + i + 1)
            else:
                problem = sightings.problem(epoch, m)
        if problem:
            found.append({"kind": "read", "channel": ch, "detail":
                          "read invoked at t=%s on %s: %s" % (r.t0, r.invoke.get("node"),
                                                              problem)})


def check(records, tails, final, warnings, parse_ts):
    """The "deletes" part of results.json; records and tails are
    deletes.jsonl's and del_tails.jsonl's, parse_ts checker.py's
    ("SECONDS.MICROS" to microseconds, or None)."""
    ops = pair(records, warnings)
    tails_of = defaultdict(lambda: defaultdict(list))   # channel -> tailer -> events
    for ev in tails:
        tails_of[ev.get("channel")][ev.get("tailer")].append(ev)
    found = []
    stats = {"channels": {}, "checked_deleted": 0, "checked_fresh": 0, "checked_kept": 0,
             "tail_messages": 0, "reads": 0}
    channels = sorted(set(ops) | {ch for per in (final.get("deleted") or {}).values()
                                  if isinstance(per, dict) for ch in per}, key=str)
    for ch in channels:
        appends, deletes = ops[ch]["append"], ops[ch]["delete"]
        views = final_views(final, ch)
        if not views:
            found.append({"kind": "incomplete", "channel": ch,
                          "detail": "no node's final state of the channel could be read"})
            continue
        ref_node, ref = next(iter(views.items()))
        for node, v in views.items():
            if v != ref:
                found.append({"kind": "divergent", "channel": ch, "detail":
                              "%s ends at epoch %r with %d messages, %s at epoch %r with %d"
                              % (node, v.get("epoch"), len(v.get("log") or []), ref_node,
                                 ref.get("epoch"), len(ref.get("log") or []))})
        epoch, log = ref.get("epoch"), ref.get("log") or []
        if not isinstance(epoch, int):
            found.append({"kind": "delete_epoch", "channel": ch,
                          "detail": "final epoch %r is not a number" % (epoch,)})
            continue
        check_epochs(ch, deletes, epoch, found)
        sightings = Sightings(appends, log, epoch, parse_ts)
        check_log(ch, log, sightings, found)
        check_survivors(ch, log, appends, deletes, epoch, parse_ts, found, stats)
        for events in tails_of[ch].values():
            check_tails(ch, events, sightings, found, stats)
        check_reads(ch, ops[ch]["read"], deletes, sightings, found, stats)
        stats["channels"][ch] = {
            "final_epoch": epoch, "final_length": len(log),
            "deletes": {k: sum(d.outcome == k for d in deletes)
                        for k in ("ok", "fail", "info", "unfinished")},
            "appends_acked": len({a.invoke.get("nonce") for a in appends
                                  if a.outcome == "ok"}),
        }
    stats["anomalies"] = found[:ANOMALY_CAP]
    stats["anomaly_count"] = len(found)
    return stats


def summary_lines(d):
    """The summary.txt lines of check()'s result."""
    lines = []
    for ch, c in d["channels"].items():
        n = c["deletes"]
        lines.append("deletes %s: ok %d, fail %d, info %d, unfinished %d; final epoch %d, "
                     "%d messages; %d appends acked"
                     % (ch, n["ok"], n["fail"], n["info"], n["unfinished"], c["final_epoch"],
                        c["final_length"], c["appends_acked"]))
    lines.append("deletes: %d acked appends checked gone, %d re-sent after a delete checked "
                 "written anew, %d checked kept, %d tail messages, %d reads; %d anomalies"
                 % (d["checked_deleted"], d["checked_fresh"], d["checked_kept"],
                    d["tail_messages"], d["reads"], d["anomaly_count"]))
    for a in d["anomalies"][:10]:
        lines.append("  %s channel=%s: %s" % (a["kind"], a["channel"], a["detail"]))
    return lines


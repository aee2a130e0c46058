#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Independent history checker for herald's fault-injection suite.

It reads what the harness recorded in one run folder (run.json,
history.jsonl, tails.jsonl, final.json, nemesis.jsonl) and judges it against
the contract in DESIGN.md: acknowledged appends are never lost, nothing is
invented or duplicated, every node and reader sees one gap-free sequence with
strictly increasing ts, retries answer the original seq/ts, and tails resume
without gaps or repeats.  It also measures availability per fault.

It is deliberately standalone: pure Python 3.11 standard library, no code
shared with the server or the rest of the harness, so a bug there cannot hide
a bug here.

    python3 jepsen/checker.py RUN_DIR

writes RUN_DIR/results.json and RUN_DIR/summary.txt, prints the summary and
exits 1 if any safety anomaly was found, 0 otherwise (2 on unusable input).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import math
import os
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field

ANOMALY_CAP = 200        # anomalies kept in results.json
SUMMARY_ANOMALIES = 20   # anomalies printed in summary.txt
OPS_CAP = 20             # history records attached to one anomaly
WHERE_CAP = 10           # sightings attached to one merged anomaly
WARNING_CAP = 50         # distinct warning texts kept

# Which results.json counter each anomaly kind feeds.
KIND_COUNTER = {
    "lost": "lost",
    "duplicated": "duplicated",
    "phantom": "phantoms",
    "divergent": "divergent",
    "retry_mismatch": "retry_mismatches",
    "failed_but_written": "failed_but_written",
    "seq_gap": "order_anomalies",
    "seq_order": "order_anomalies",
    "ts_order": "order_anomalies",
    "tail_skip": "tail_anomalies",
    "tail_repeat": "tail_anomalies",
    "tail_mismatch": "tail_anomalies",
    "tail_resume": "tail_anomalies",
}

# Most damning first: this is the order anomalies are listed in.
KIND_ORDER = [
    "lost", "divergent", "duplicated", "phantom", "retry_mismatch",
    "failed_but_written", "seq_gap", "seq_order", "ts_order",
    "tail_skip", "tail_repeat", "tail_mismatch", "tail_resume",
]

SAFETY_COUNTERS = [
    "lost", "duplicated", "phantoms", "divergent", "tail_anomalies",
    "retry_mismatches", "order_anomalies", "failed_but_written",
]


# ---------------------------------------------------------------------------
# Small value helpers


def parse_ts(value):
    """Turns a "SECONDS.MICROS" ts into integer microseconds.

    ts must be compared exactly; floats would round microseconds away.
    Returns None for anything that is not such a string, so callers can flag it.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 1_000_000
    if not isinstance(value, str):
        return None
    secs, _, frac = value.partition(".")
    if not (secs.isascii() and secs.isdigit()):
        return None
    if frac and not (frac.isascii() and frac.isdigit() and len(frac) <= 6):
        return None
    return int(secs) * 1_000_000 + int(frac.ljust(6, "0"))


def message_payload(msg):
    """Returns a message's payload as the client sent it.

    The server answers non-UTF-8 payloads as payload_b64; clients send text,
    so a decodable payload_b64 is compared as text and anything else stays
    distinguishable from every text payload.
    """
    if "payload" in msg:
        return normalize_payload(msg["payload"])
    b64 = msg.get("payload_b64")
    if isinstance(b64, str):
        try:
            return base64.b64decode(b64, validate=True).decode("utf-8")
        except ValueError:
            return ("payload_b64", b64)
    return None


def normalize_payload(value):
    """Makes any JSON payload value hashable and comparable.

    Payloads should be strings; anything else (a harness or server bug) is
    kept as its canonical JSON text so it still compares and sets work.
    """
    if value is None or isinstance(value, str):
        return value
    return ("json", json.dumps(value, sort_keys=True))


def message_key(msg):
    """What two copies of the message at one seq must agree on.

    ts is compared as micros when it parses, raw otherwise, so an
    unparseable ts still only equals itself.
    """
    ts = msg.get("ts")
    micros = parse_ts(ts)
    return (msg.get("nonce"), micros if micros is not None else ("raw", ts),
            message_payload(msg))


def ratio(num, den):
    """ok/attempts rounded for reading, None when there was nothing to divide."""
    return round(num / den, 4) if den else None


def describe_message(msg):
    """One-line rendering of a log message for anomaly details."""
    return "seq %s nonce %r ts %s" % (msg.get("seq"), msg.get("nonce"), msg.get("ts"))


def slim_record(rec, focus_seqs=()):
    """Copies a history record without its (possibly 1000-message) read body.

    Anomalies carry the records involved; a whole read result per anomaly
    would make results.json unreadable.  The messages the anomaly is about
    are kept as an excerpt.
    """
    if rec is None or not isinstance(rec.get("messages"), list):
        return rec
    msgs = rec["messages"]
    out = {k: v for k, v in rec.items() if k != "messages"}
    out["messages_count"] = len(msgs)
    if msgs:
        out["messages_seq_range"] = [msgs[0].get("seq"), msgs[-1].get("seq")]
    focus = set(focus_seqs)
    out["messages_excerpt"] = [m for m in msgs if m.get("seq") in focus][:5]
    return out


class Warnings:
    """Harness/input oddities that are not server anomalies, counted by text.

    Kept apart from anomalies so a malformed line never flips validity, but
    still visible so nobody trusts a run that was not fully checked.
    """

    def __init__(self):
        self.counts = Counter()

    def add(self, text):
        """Records one occurrence of a warning."""
        if text in self.counts or len(self.counts) < WARNING_CAP:
            self.counts[text] += 1

    def as_list(self):
        """Warnings with their repeat counts, for results.json."""
        return ["%s (x%d)" % (t, n) if n > 1 else t for t, n in self.counts.items()]


# ---------------------------------------------------------------------------
# Anomaly collection


class Anomalies:
    """Collects anomalies, merging repeats of the same finding.

    One wrong message seen by a thousand reads is one anomaly with
    "occurrences": 1000, not a thousand lines, so counters count distinct
    problems.
    """

    def __init__(self):
        self.by_key = {}

    def add(self, key, kind, channel, detail, ops=(), nodes=(), where=None, **fields):
        """Adds an anomaly, or merges it into an earlier one with the same key."""
        anomaly = self.by_key.get(key)
        if anomaly is None:
            anomaly = {"kind": kind, "channel": channel}
            anomaly.update(fields)
            anomaly["nodes"] = []
            anomaly["ops"] = []
            anomaly["detail"] = detail
            anomaly["occurrences"] = 0
            self.by_key[key] = anomaly
        anomaly["occurrences"] += 1
        for node in nodes:
            if node is not None and node not in anomaly["nodes"]:
                anomaly["nodes"].append(node)
        anomaly["nodes"].sort(key=str)
        seen = {id(r) for r in anomaly["ops"]}
        for rec in ops:
            if len(anomaly["ops"]) >= OPS_CAP:
                break
            if rec is not None and id(rec) not in seen:
                anomaly["ops"].append(rec)
                seen.add(id(rec))
        if where is not None:
            sightings = anomaly.setdefault("where", [])
            if len(sightings) < WHERE_CAP:
                sightings.append(where)
        return anomaly

    def all(self):
        """Every anomaly, most damning kinds first, detection order within a kind."""
        rank = {k: i for i, k in enumerate(KIND_ORDER)}
        return sorted(self.by_key.values(), key=lambda a: rank.get(a["kind"], len(rank)))


def select_fairly(anomalies, cap):
    """Picks at most cap anomalies, round-robin across kinds.

    A flood of one kind (say 10k tail mismatches after a divergence) must not
    push the one lost write out of the report.  Output stays grouped by kind.
    """
    groups = {}
    for a in anomalies:
        groups.setdefault(a["kind"], []).append(a)
    taken = {kind: 0 for kind in groups}
    total = 0
    progress = True
    while total < cap and progress:
        progress = False
        for kind, items in groups.items():
            if total < cap and taken[kind] < len(items):
                taken[kind] += 1
                total += 1
                progress = True
    out = []
    for kind, items in groups.items():
        out.extend(items[:taken[kind]])
    return out


# ---------------------------------------------------------------------------
# History indexing


@dataclass
class Op:
    """One client operation: its invoke record and the record completing it."""

    invoke: dict
    done: dict | None = None

    @property
    def outcome(self):
        """ok / fail / info, or unfinished when the run ended first."""
        return self.done.get("type") if self.done is not None else "unfinished"

    @property
    def channel(self):
        """The channel asked for, taken from the invoke (completions may omit it)."""
        ch = self.invoke.get("channel")
        if ch is None and self.done is not None:
            ch = self.done.get("channel")
        return ch

    @property
    def node(self):
        """The node the request went to."""
        return self.invoke.get("node")

    @property
    def records(self):
        """The invoke and completion, for an anomaly's "ops"."""
        return [self.invoke] if self.done is None else [self.invoke, self.done]


@dataclass
class HistoryIndex:
    """The history arranged for lookups by (channel, nonce)."""

    appends: dict = field(default_factory=dict)    # (ch, nonce) -> [Op]
    payloads: dict = field(default_factory=dict)   # (ch, nonce) -> set of payloads
    reads: list = field(default_factory=list)      # [Op]
    append_ops: list = field(default_factory=list)  # [Op] in invoke order
    failed_only: set = field(default_factory=set)  # (ch, nonce) whose every attempt failed

    def nonce_records(self, channel, nonce):
        """Every attempt's invoke and completion for one nonce."""
        recs = []
        for op in self.appends.get((channel, nonce), ()):
            recs.extend(op.records)
        return recs[:OPS_CAP]


def pair_operations(history, warnings):
    """Pairs each invoke with the next record of the same process.

    A process has one operation outstanding at a time, so the next record of
    that process completes it; invokes left open at the end are "unfinished"
    (outcome unknown, like info).
    """
    open_by_process = {}
    ops = []
    for rec in history:
        proc = rec.get("process")
        kind = rec.get("type")
        if kind == "invoke":
            if proc in open_by_process:
                warnings.add("process invoked again before its previous op completed")
            op = Op(rec)
            ops.append(op)
            open_by_process[proc] = op
        elif kind in ("ok", "fail", "info"):
            op = open_by_process.pop(proc, None)
            if op is None:
                warnings.add("completion record without an open invoke")
                continue
            if rec.get("f") is not None and rec.get("f") != op.invoke.get("f"):
                warnings.add("completion f differs from its invoke's f")
            op.done = rec
        else:
            warnings.add("history record with unknown type %r" % (kind,))
    return ops


def index_history(history, warnings):
    """Builds the lookups every check needs, in one pass over the history."""
    index = HistoryIndex()
    for op in pair_operations(history, warnings):
        f = op.invoke.get("f")
        if f == "append":
            nonce = op.invoke.get("nonce")
            if op.done is not None and "nonce" in op.done and op.done["nonce"] != nonce:
                warnings.add("append completion nonce differs from its invoke's nonce")
            key = (op.channel, nonce)
            index.appends.setdefault(key, []).append(op)
            index.payloads.setdefault(key, set()).add(normalize_payload(op.invoke.get("payload")))
            index.append_ops.append(op)
        elif f == "read":
            index.reads.append(op)
        else:
            warnings.add("history op with unknown f %r" % (f,))
    for key, ops in index.appends.items():
        if all(op.outcome == "fail" for op in ops):
            index.failed_only.add(key)
    return index


# ---------------------------------------------------------------------------
# Reference log


@dataclass
class Reference:
    """The channel's one true log: the longest final node log."""

    node: str
    messages: list
    by_seq: dict      # seq -> message_key
    raw_by_seq: dict  # seq -> raw_fields of the message
    msg_by_seq: dict  # seq -> message
    positions: dict   # nonce -> [(seq, ts micros)]

    def matches(self, msg):
        """Whether msg is the reference message at its seq.

        Comparing the raw fields settles the common case cheaply (reads can
        hold millions of messages); only when they differ is the normalized
        comparison (ts as micros, payload_b64 decoded) needed.
        """
        seq = msg.get("seq")
        raw = self.raw_by_seq.get(seq)
        if raw is None:
            return False
        return raw == raw_fields(msg) or self.by_seq[seq] == message_key(msg)

    def describe(self, seq):
        """The reference message at seq, for anomaly details."""
        m = self.msg_by_seq.get(seq)
        if m is not None:
            return describe_message(m)
        return "nothing (reference %s has %d messages)" % (self.node, len(self.messages))


def readable_final_logs(final, channel):
    """(node, log) for every node whose final state could be read.

    A readable node without the channel has an empty log for it.
    """
    logs = []
    for node, channels in sorted((final.get("nodes") or {}).items()):
        if channels is None:
            continue
        logs.append((node, channels.get(channel) or []))
    return logs


def raw_fields(msg):
    """A message's fields exactly as received, for cheap exact comparison."""
    return (msg.get("seq"), msg.get("nonce"), msg.get("ts"), msg.get("payload"),
            msg.get("payload_b64"))


def log_identity(log):
    """A hashable picture of a whole log, to count nodes that agree on it."""
    return tuple(repr(raw_fields(m)) for m in log)


def build_reference(final, channel):
    """Picks the reference log of a channel, or None if no node was readable.

    The longest log is the reference (a lagging node holds a prefix of it);
    among equally long ones the one most nodes hold wins, then node name,
    so one divergent node cannot become the yardstick on a tie.
    """
    logs = readable_final_logs(final, channel)
    if not logs:
        return None
    agreement = Counter(log_identity(log) for _, log in logs)
    # logs are in node-name order and max() keeps the first of equals.
    node, log = max(logs, key=lambda nl: (len(nl[1]), agreement[log_identity(nl[1])]))
    by_seq = {}
    raw_by_seq = {}
    msg_by_seq = {}
    positions = {}
    for m in log:
        seq = m.get("seq")
        if seq not in msg_by_seq:
            msg_by_seq[seq] = m
            by_seq[seq] = message_key(m)
            raw_by_seq[seq] = raw_fields(m)
        positions.setdefault(m.get("nonce"), []).append((seq, parse_ts(m.get("ts"))))
    return Reference(node, log, by_seq, raw_by_seq, msg_by_seq, positions)


# ---------------------------------------------------------------------------
# Checks on one log (a node's final log or a read result)


@dataclass
class LogSource:
    """Where a log came from, so anomalies can say so and merge sensibly."""

    kind: str            # "final" or "read"
    node: str
    channel: str
    op: Op | None = None  # the read, for reads

    def label(self):
        """Human description; a final log is not named by node because the
        same finding on several nodes' final logs is merged (see "nodes")."""
        if self.kind == "final":
            return "final log"
        return "read #%s on %s after_seq=%s" % (self.op.invoke.get("i"), self.node,
                                                 self.op.invoke.get("after_seq"))

    def records(self, focus_seqs=()):
        """The read's records (slimmed), or nothing for a final log."""
        if self.op is None:
            return []
        return [self.op.invoke, slim_record(self.op.done, focus_seqs)]

    def key(self):
        """Merge key part: final-log findings merge across nodes, reads per node."""
        return ("final",) if self.kind == "final" else ("read", self.node)

    def where(self, **extra):
        """A sighting entry for an anomaly's "where" list."""
        w = {"source": self.kind, "node": self.node}
        if self.op is not None:
            w["read_i"] = self.op.invoke.get("i")
        w.update(extra)
        return w


def report_order(kind, key_tail, detail, msg, source, index, anomalies):
    """Adds one seq/ts order anomaly about msg in a log from source."""
    ch = source.channel
    seq = msg.get("seq")
    anomalies.add((kind,) + source.key() + (ch,) + key_tail, kind, ch, detail,
                  ops=source.records([seq]) + index.nonce_records(ch, msg.get("nonce")),
                  nodes=[source.node], where=source.where(seq=seq), seq=seq,
                  nonce=msg.get("nonce"))


def check_sequence(messages, first_seq, source, index, anomalies):
    """Flags seq not consecutive from first_seq, and ts not strictly increasing.

    After a bad step the expectation restarts from the seq actually seen, so
    one hole or one step back is one anomaly, not one per later message.
    """
    expected = first_seq
    prev_ts = None
    prev_raw = None
    label = source.label()
    for m in messages:
        seq = m.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            report_order("seq_order", ("bad", repr(seq)), "%s has a message with non-integer "
                         "seq %r" % (label, seq), m, source, index, anomalies)
        else:
            if seq > expected:
                report_order("seq_gap", (seq, expected), "%s skips to seq %d where %d was "
                             "expected" % (label, seq, expected), m, source, index, anomalies)
            elif seq < expected:
                report_order("seq_order", (seq, expected), "%s goes back to seq %d where %d "
                             "was expected" % (label, seq, expected), m, source, index,
                             anomalies)
            expected = seq + 1
        ts = parse_ts(m.get("ts"))
        if ts is None:
            report_order("ts_order", (seq, "bad"), "%s has seq %s with malformed ts %r"
                         % (label, seq, m.get("ts")), m, source, index, anomalies)
            continue
        if prev_ts is not None and ts <= prev_ts:
            report_order("ts_order", (seq, ts, prev_ts), "%s: seq %s has ts %s, not after the "
                         "previous message's ts %s" % (label, seq, m.get("ts"), prev_raw),
                         m, source, index, anomalies)
        prev_ts = ts
        prev_raw = m.get("ts")


def check_duplicates(messages, source, index, anomalies):
    """Flags a nonce appearing more than once in one log (contract: at most once)."""
    first_seq = {}
    ch = source.channel
    for m in messages:
        nonce = m.get("nonce")
        if nonce not in first_seq:
            first_seq[nonce] = m.get("seq")
            continue
        seqs = [first_seq[nonce], m.get("seq")]
        anomalies.add(("duplicated", ch, nonce), "duplicated", ch,
                      "nonce %r appears more than once: seqs %s in %s"
                      % (nonce, seqs, source.label()),
                      ops=index.nonce_records(ch, nonce) + source.records(seqs),
                      nodes=[source.node], where=source.where(seqs=seqs), nonce=nonce)


def check_origin(msg, source, index, anomalies):
    """Flags a message no client wrote, and a write whose every attempt failed.

    Integrity: each logged message comes from one client append of that
    nonce and payload on that channel.  A definite failure must mean nothing
    was written.
    """
    ch = source.channel
    nonce = msg.get("nonce")
    key = (ch, nonce)
    seq = msg.get("seq")
    payloads = index.payloads.get(key)
    if payloads is None:
        anomalies.add(("phantom", ch, nonce, "never"), "phantom", ch,
                      "%s holds %s, a nonce no client appended to this channel"
                      % (source.label(), describe_message(msg)),
                      ops=source.records([seq]), nodes=[source.node],
                      where=source.where(seq=seq), nonce=nonce, seq=seq)
    elif message_payload(msg) not in payloads:
        anomalies.add(("phantom", ch, nonce, "payload"), "phantom", ch,
                      "%s holds %s with payload %r, but the client appended %r"
                      % (source.label(), describe_message(msg), message_payload(msg),
                         sorted(payloads, key=repr)[0]),
                      ops=index.nonce_records(ch, nonce) + source.records([seq]),
                      nodes=[source.node], where=source.where(seq=seq), nonce=nonce,
                      seq=seq)
    if key in index.failed_only:
        anomalies.add(("failed_but_written", ch, nonce), "failed_but_written", ch,
                      "every attempt of nonce %r failed definitely, yet %s holds it at seq %s"
                      % (nonce, source.label(), seq),
                      ops=index.nonce_records(ch, nonce) + source.records([seq]),
                      nodes=[source.node], where=source.where(seq=seq), nonce=nonce,
                      seq=seq)


def check_log_contents(messages, first_seq, source, index, anomalies):
    """All per-log integrity checks: order, duplicates, and origin of each message."""
    check_sequence(messages, first_seq, source, index, anomalies)
    check_duplicates(messages, source, index, anomalies)
    for m in messages:
        check_origin(m, source, index, anomalies)


# ---------------------------------------------------------------------------
# Final logs and reads


def check_final_divergence(node, log, ref, channel, anomalies):
    """Flags a node's final log that disagrees with or differs from the reference.

    Logs are read after healing and waiting, so they must be identical, not
    merely prefix-consistent.  Comparing each node to the reference is enough:
    two nodes that both match it on their overlap match each other.
    """
    if node == ref.node:
        return
    differing = []
    for m in log:
        if m.get("seq") in ref.by_seq and not ref.matches(m):
            differing.append(m)
    problems = []
    if differing:
        first = differing[0]
        problems.append("%d seqs differ from reference %s; first: %s has %s, reference has %s"
                        % (len(differing), ref.node, node, describe_message(first),
                           ref.describe(first.get("seq"))))
    if len(log) != len(ref.messages):
        problems.append("%s has %d messages, reference %s has %d (final logs must be "
                        "identical after healing)" % (node, len(log), ref.node,
                                                      len(ref.messages)))
    if problems:
        seq = differing[0].get("seq") if differing else None
        anomalies.add(("divergent", "final", channel, node), "divergent", channel,
                      "; ".join(problems), nodes=[node, ref.node], seq=seq,
                      where={"source": "final", "node": node, "length": len(log),
                             "reference_length": len(ref.messages)})


def check_final_logs(final, channels, refs, index, anomalies):
    """Checks every readable node's final log of every channel."""
    for ch in channels:
        ref = refs.get(ch)
        for node, log in readable_final_logs(final, ch):
            source = LogSource("final", node, ch)
            check_log_contents(log, 1, source, index, anomalies)
            if ref is not None:
                check_final_divergence(node, log, ref, ch, anomalies)


def read_agrees_with_reference(messages, after, ref):
    """True when a read is exactly the reference slice after `after`.

    The common case on a healthy run; such a read can only repeat problems
    already reported on the reference log, so the detailed checks are skipped.
    """
    if ref is None:
        return False
    expected = after + 1
    for m in messages:
        if m.get("seq") != expected or not ref.matches(m):
            return False
        expected += 1
    return True


def check_read_against_reference(messages, source, ref, index, anomalies):
    """Flags read messages that differ from the reference at their seq or lie past it.

    A reader on any node must see a prefix of the one sequence; a node that
    served something else during the run diverged, even if it healed later.
    """
    ch = source.channel
    for m in messages:
        seq = m.get("seq")
        if ref.matches(m):
            continue
        if seq not in ref.by_seq:
            why = "seq %s is beyond the reference log (%s, %d messages)" % (
                seq, ref.node, len(ref.messages))
        else:
            why = "reference has %s" % ref.describe(seq)
        anomalies.add(("divergent", "read", ch, seq, message_key(m)), "divergent", ch,
                      "%s returned %s; %s" % (source.label(), describe_message(m), why),
                      ops=source.records([seq]) + index.nonce_records(ch, m.get("nonce")),
                      nodes=[source.node], where=source.where(seq=seq), seq=seq,
                      nonce=m.get("nonce"))


def check_reads(index, refs, anomalies, warnings):
    """Checks every successful read result; returns read outcome counts."""
    counts = Counter()
    for op in index.reads:
        counts[op.outcome] += 1
        if op.outcome != "ok":
            continue
        messages = op.done.get("messages")
        if not isinstance(messages, list):
            warnings.add("read ok without a messages list")
            continue
        counts["messages"] += len(messages)
        after = op.invoke.get("after_seq")
        if not isinstance(after, int):
            warnings.add("read invoke without integer after_seq (assumed 0)")
            after = 0
        ref = refs.get(op.channel)
        if read_agrees_with_reference(messages, after, ref):
            continue
        source = LogSource("read", op.node, op.channel, op)
        check_log_contents(messages, after + 1, source, index, anomalies)
        if ref is not None:
            check_read_against_reference(messages, source, ref, index, anomalies)
    return counts


# ---------------------------------------------------------------------------
# Acknowledged appends


def ok_position(op):
    """(seq, ts micros) an ok append answered."""
    return (op.done.get("seq"), parse_ts(op.done.get("ts")))


def check_acked(index, refs, anomalies, warnings):
    """Checks every acknowledged nonce is in the reference log where it was acked.

    Validity: an ok append is never lost.  Retry safety: every ok for a
    nonce answers the same seq and ts, which is where the nonce sits, and
    only one attempt claims to have written it (duplicate:false).
    Returns the number of distinct acknowledged (channel, nonce).
    """
    acked = 0
    for (ch, nonce), ops in index.appends.items():
        oks = [op for op in ops if op.outcome == "ok"]
        if not oks:
            continue
        acked += 1
        records = index.nonce_records(ch, nonce)
        answers = sorted({ok_position(op) for op in oks}, key=repr)
        problems = []
        if len(answers) > 1:
            problems.append("ok answers disagree: (seq, ts) %s"
                            % ", ".join("(%s, %s)" % (op.done.get("seq"), op.done.get("ts"))
                                        for op in oks))
        fresh = [op for op in oks if op.done.get("duplicate") is False]
        if len(fresh) > 1:
            problems.append("%d attempts answered duplicate:false (each claims to have "
                            "written it)" % len(fresh))
        ref = refs.get(ch)
        if ref is None:
            warnings.add("channel %r has no readable final log: lost/retry checks skipped"
                         % (ch,))
        elif nonce not in ref.positions:
            anomalies.add(("lost", ch, nonce), "lost", ch,
                          "nonce %r acked at seq %s is not in the reference log (%s, %d "
                          "messages)" % (nonce, oks[0].done.get("seq"), ref.node,
                                         len(ref.messages)),
                          ops=records, nodes=[op.node for op in oks], nonce=nonce,
                          seq=oks[0].done.get("seq"))
        else:
            placed = ref.positions[nonce]
            wrong = [a for a in answers if a not in placed]
            if wrong:
                problems.append("acked at (seq, ts micros) %s but the reference log has it "
                                "at %s" % (wrong, placed))
        if problems:
            anomalies.add(("retry_mismatch", ch, nonce), "retry_mismatch", ch,
                          "nonce %r: %s" % (nonce, "; ".join(problems)), ops=records,
                          nodes=[op.node for op in oks], nonce=nonce,
                          seq=oks[0].done.get("seq"))
    return acked


# ---------------------------------------------------------------------------
# Tails


@dataclass
class TailerState:
    """What one tailer has seen so far, across its reconnects."""

    last_seq: int | None = None
    resumed_after: int | None = None
    last_connect: dict | None = None
    last_message: dict | None = None

    def expected_next(self):
        """The seq the next message must carry, or None before anything is known."""
        known = [s for s in (self.last_seq, self.resumed_after) if s is not None]
        return max(known) + 1 if known else None

    def context(self):
        """The earlier tail events an anomaly should show."""
        return [e for e in (self.last_connect, self.last_message) if e is not None]


def check_tail_connect(ev, tailer, st, anomalies):
    """Flags a reconnect that does not resume after the last seq received."""
    after = ev.get("after")
    previous = st.last_seq if st.last_seq is not None else st.resumed_after
    if previous is not None and after != previous:
        anomalies.add(("tail_resume", tailer, id(ev)), "tail_resume", ev.get("channel"),
                      "tailer %s reconnected to %s after %r, but the last seq it had is %s "
                      "(harness bug)" % (tailer, ev.get("node"), after, previous),
                      ops=st.context() + [ev], nodes=[ev.get("node")], tailer=tailer,
                      seq=after)
    if isinstance(after, int):
        st.resumed_after = after
    st.last_connect = ev


def check_tail_message(ev, tailer, st, refs, index, anomalies):
    """Flags a tail message that repeats, skips, or differs from the reference."""
    ch = ev.get("channel")
    seq = ev.get("seq")
    node = ev.get("node")
    expected = st.expected_next()
    if st.last_seq is not None and seq <= st.last_seq:
        anomalies.add(("tail_repeat", tailer, id(ev)), "tail_repeat", ch,
                      "tailer %s got seq %d from %s after already receiving up to %d"
                      % (tailer, seq, node, st.last_seq),
                      ops=st.context() + [ev], nodes=[node], tailer=tailer, seq=seq,
                      nonce=ev.get("nonce"))
    elif st.resumed_after is not None and seq <= st.resumed_after:
        anomalies.add(("tail_repeat", tailer, id(ev)), "tail_repeat", ch,
                      "tailer %s resumed after %d on %s but got seq %d"
                      % (tailer, st.resumed_after, node, seq),
                      ops=st.context() + [ev], nodes=[node], tailer=tailer, seq=seq,
                      nonce=ev.get("nonce"))
    elif expected is not None and seq > expected:
        anomalies.add(("tail_skip", tailer, id(ev)), "tail_skip", ch,
                      "tailer %s got seq %d from %s where %d was expected (missed %d)"
                      % (tailer, seq, node, expected, seq - expected),
                      ops=st.context() + [ev], nodes=[node], tailer=tailer, seq=seq,
                      nonce=ev.get("nonce"))
    ref = refs.get(ch)
    if ref is not None:
        if not ref.matches(ev):
            anomalies.add(("tail_mismatch", ch, seq, message_key(ev)), "tail_mismatch", ch,
                          "tailer %s got %s from %s; reference has %s"
                          % (tailer, describe_message(ev), node, ref.describe(seq)),
                          ops=[ev] + index.nonce_records(ch, ev.get("nonce")),
                          nodes=[node], tailer=tailer, seq=seq, nonce=ev.get("nonce"),
                          where={"source": "tail", "tailer": tailer, "node": node})
    st.last_seq = seq if st.last_seq is None else max(st.last_seq, seq)
    st.last_message = ev


def check_tails(tails, refs, index, anomalies, warnings):
    """Replays every tailer's events in order; returns the number of messages."""
    states = {}
    messages = 0
    for ev in tails:
        tailer = ev.get("tailer")
        st = states.setdefault(tailer, TailerState())
        event = ev.get("event")
        if event == "connect":
            check_tail_connect(ev, tailer, st, anomalies)
        elif event == "message":
            messages += 1
            seq = ev.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                warnings.add("tail message without integer seq")
                continue
            check_tail_message(ev, tailer, st, refs, index, anomalies)
        elif event != "disconnect":
            warnings.add("tail event of unknown kind %r" % (event,))
    return messages, len(states)


# ---------------------------------------------------------------------------
# Faults and availability


def fault_windows(nemesis, warnings):
    """Turns nemesis events into {fault: [(start, stop or None)]} and skipped faults.

    Starts and stops of one fault pair up in order; a start never stopped
    lasts to the end of the run (stop None).
    """
    open_starts = {}
    windows = {}
    skipped = []
    for ev in nemesis:
        fault = ev.get("fault")
        phase = ev.get("phase")
        t = ev.get("t")
        if phase != "skip" and not isinstance(t, (int, float)):
            warnings.add("nemesis event without a numeric t")
            continue
        if phase == "skip":
            if fault not in skipped:
                skipped.append(fault)
        elif phase == "start":
            open_starts.setdefault(fault, []).append(t)
        elif phase == "stop":
            starts = open_starts.get(fault)
            if not starts:
                warnings.add("nemesis stop of %r without a start" % (fault,))
                continue
            windows.setdefault(fault, []).append((starts.pop(0), t))
        else:
            warnings.add("nemesis event with unknown phase %r" % (phase,))
    for fault, starts in open_starts.items():
        for t in starts:
            windows.setdefault(fault, []).append((t, None))
    for spans in windows.values():
        spans.sort(key=lambda w: w[0])
    return windows, skipped


def merge_intervals(spans):
    """Merges overlapping [start, end) intervals so no attempt is counted twice."""
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


class AttemptTimeline:
    """Append attempts sorted by invoke time, for counting inside intervals."""

    def __init__(self, append_ops):
        attempts = sorted((op.invoke.get("t", 0.0), op.outcome == "ok") for op in append_ops)
        self.times = [t for t, _ in attempts]
        self.ok_prefix = [0]
        for _, ok in attempts:
            self.ok_prefix.append(self.ok_prefix[-1] + (1 if ok else 0))
        self.ok_times = [t for t, ok in attempts if ok]

    def count(self, start, end):
        """(attempts, ok) invoked in [start, end)."""
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_left(self.times, end)
        return hi - lo, self.ok_prefix[hi] - self.ok_prefix[lo]

    def count_in(self, merged):
        """(attempts, ok) invoked inside any of the merged intervals."""
        attempts = ok = 0
        for start, end in merged:
            a, o = self.count(start, end)
            attempts += a
            ok += o
        return attempts, ok

    def first_ok_after(self, t):
        """Invoke time of the first ok append invoked at or after t, or None."""
        i = bisect.bisect_left(self.ok_times, t)
        return self.ok_times[i] if i < len(self.ok_times) else None


def recovery_figures(spans, timeline):
    """Time from each stop to the first ok append invoked after it.

    None in the list means no append succeeded after that stop at all.
    """
    recoveries = []
    for _, stop in spans:
        if stop is None:
            continue
        first = timeline.first_ok_after(stop)
        recoveries.append(None if first is None else round(first - stop, 3))
    known = [r for r in recoveries if r is not None]
    return {
        "list": recoveries,
        "median": round(statistics.median(known), 3) if known else None,
        "max": max(known) if known else None,
        "unrecovered": len(recoveries) - len(known),
    }


def availability(index, nemesis, run_end, warnings):
    """Per-fault availability and recovery, plus overall and healthy figures."""
    windows, skipped = fault_windows(nemesis, warnings)
    timeline = AttemptTimeline(index.append_ops)
    faults = {}
    every_span = []
    for fault, spans in windows.items():
        closed = [(s, e if e is not None else math.inf) for s, e in spans]
        every_span.extend(closed)
        attempts, ok = timeline.count_in(merge_intervals(closed))
        seconds = sum(max(0.0, (e if e is not None else run_end) - s) for s, e in spans)
        faults[fault] = {
            "occurrences": len(spans),
            "seconds": round(seconds, 3),
            "attempts": attempts,
            "ok": ok,
            "availability": ratio(ok, attempts),
            "recovery_s": recovery_figures(spans, timeline),
            "windows": [[s, e] for s, e in spans],
        }
    total = len(timeline.times)
    total_ok = timeline.ok_prefix[-1]
    inside, inside_ok = timeline.count_in(merge_intervals(every_span))
    return {
        "faults": faults,
        "skipped_faults": skipped,
        "availability_overall": ratio(total_ok, total),
        "healthy_availability": ratio(total_ok - inside_ok, total - inside),
        "healthy_attempts": total - inside,
    }


# ---------------------------------------------------------------------------
# Putting it together


def attempt_counts(index):
    """Append attempts by outcome; unfinished ones are also counted as info."""
    counts = {"ok": 0, "fail": 0, "info": 0, "unfinished": 0}
    for op in index.append_ops:
        outcome = op.outcome
        if outcome == "unfinished":
            counts["unfinished"] += 1
            outcome = "info"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def run_end_time(run, history, tails, nemesis):
    """The last instant of the run, where unstopped faults end."""
    times = [r.get("t") for r in history]
    times += [e.get("t") for e in tails]
    times += [e.get("t") for e in nemesis]
    times = [t for t in times if isinstance(t, (int, float))]
    duration = run.get("time")
    if isinstance(duration, (int, float)):
        times.append(duration)
    return max(times) if times else 0.0


def all_channels(run, index, final, tails):
    """Every channel mentioned anywhere, so none is skipped silently."""
    chans = list(run.get("channels") or [])
    extra = {ch for ch, _ in index.appends}
    extra |= {op.channel for op in index.reads}
    for channels in (final.get("nodes") or {}).values():
        if channels:
            extra |= set(channels)
    extra |= {e.get("channel") for e in tails if e.get("channel") is not None}
    extra.discard(None)
    return chans + sorted(extra - set(chans), key=str)


def tally(anomalies):
    """The results.json counters: distinct anomalies per counter."""
    counters = {name: 0 for name in SAFETY_COUNTERS}
    kinds = Counter()
    for a in anomalies:
        counters[KIND_COUNTER[a["kind"]]] += 1
        kinds[a["kind"]] += 1
    return counters, dict(kinds)


def check_history(history, tails, final, nemesis, run) -> dict:
    """Checks one run held in memory and returns the results.json dict.

    history, tails and nemesis are lists of records, final the final.json
    dict, run the run.json dict (any of tails, final, nemesis, run may be None).
    """
    tails = tails or []
    nemesis = nemesis or []
    final = final or {"nodes": {}}
    run = run or {}
    warnings = Warnings()
    anomalies = Anomalies()

    index = index_history(history, warnings)
    channels = all_channels(run, index, final, tails)
    refs = {ch: build_reference(final, ch) for ch in channels}
    unreadable = sorted(n for n, v in (final.get("nodes") or {}).items() if v is None)
    if unreadable:
        warnings.add("final state unreadable on %s" % ", ".join(unreadable))
    if not any(v is not None for v in (final.get("nodes") or {}).values()):
        warnings.add("no node's final state could be read: lost/divergence checks skipped")

    check_final_logs(final, channels, refs, index, anomalies)
    acked = check_acked(index, refs, anomalies, warnings)
    read_counts = check_reads(index, refs, anomalies, warnings)
    tail_messages, tailers = check_tails(tails, refs, index, anomalies, warnings)
    avail = availability(index, nemesis, run_end_time(run, history, tails, nemesis), warnings)

    found = anomalies.all()
    counters, kinds = tally(found)
    kept = select_fairly(found, ANOMALY_CAP)
    results = {"valid": all(v == 0 for v in counters.values()), "acked": acked}
    results.update(counters)
    results.update({
        "run": {k: run.get(k) for k in ("seed", "time", "nemeses", "nodes", "channels",
                                        "faulty_build")},
        # An unreadable node alone does not make the check incomplete: an
        # acked write is on a majority, so a readable node still holds it.
        "complete": all(r is not None for r in refs.values()),
        "attempts": attempt_counts(index),
        "logical_appends": len(index.appends),
        "reads": {k: read_counts.get(k, 0)
                  for k in ("ok", "fail", "info", "unfinished", "messages")},
        "tail_messages": tail_messages,
        "tailers": tailers,
        "skipped_faults": avail["skipped_faults"],
        "faults": avail["faults"],
        "availability_overall": avail["availability_overall"],
        "healthy_availability": avail["healthy_availability"],
        "healthy_attempts": avail["healthy_attempts"],
        "final_converged": final.get("converged"),
        "unreadable_nodes": unreadable,
        "reference": {ch: ({"node": r.node, "length": len(r.messages)} if r else None)
                      for ch, r in refs.items()},
        "anomaly_kinds": kinds,
        "anomalies": kept,
        "anomalies_truncated": len(found) - len(kept),
        "warnings": warnings.as_list(),
    })
    return results


# ---------------------------------------------------------------------------
# Files


def read_jsonl(path, warnings_out, required=False):
    """Reads a JSON-lines file; a torn last line (killed harness) is skipped.

    A missing optional file is an empty list; a missing required one raises.
    """
    if not os.path.exists(path):
        if required:
            raise FileNotFoundError(path)
        warnings_out.append("%s missing" % os.path.basename(path))
        return []
    records = []
    bad = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(rec, dict):
                records.append(rec)
            else:
                bad += 1
    if bad:
        warnings_out.append("%s: %d malformed lines skipped" % (os.path.basename(path), bad))
    return records


def read_json(path, warnings_out):
    """Reads a JSON file, or None (with a warning) when it is missing or torn."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        warnings_out.append("%s missing" % os.path.basename(path))
    except ValueError as e:
        warnings_out.append("%s unreadable: %s" % (os.path.basename(path), e))
    return None


def check(run_dir, write=True) -> dict:
    """Checks a run folder; writes results.json and summary.txt there unless write=False."""
    file_warnings = []
    run = read_json(os.path.join(run_dir, "run.json"), file_warnings) or {}
    history = read_jsonl(os.path.join(run_dir, "history.jsonl"), file_warnings, required=True)
    tails = read_jsonl(os.path.join(run_dir, "tails.jsonl"), file_warnings)
    final = read_json(os.path.join(run_dir, "final.json"), file_warnings)
    nemesis = read_jsonl(os.path.join(run_dir, "nemesis.jsonl"), file_warnings)
    results = check_history(history, tails, final, nemesis, run)
    results["warnings"] = file_warnings + results["warnings"]
    if final is None:
        results["complete"] = False
    if write:
        with open(os.path.join(run_dir, "results.json"), "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, sort_keys=False, default=str)
            fh.write("\n")
        with open(os.path.join(run_dir, "summary.txt"), "w", encoding="utf-8") as fh:
            fh.write(format_summary(results))
    return results


# ---------------------------------------------------------------------------
# Summary


def percent(value):
    """0.9731 -> "97.31%", None -> "n/a"."""
    return "n/a" if value is None else "%.2f%%" % (100 * value)


def format_anomaly(a):
    """One summary line for an anomaly."""
    parts = [a["kind"], "channel=%s" % a.get("channel")]
    for name in ("nonce", "seq", "tailer"):
        if a.get(name) is not None:
            parts.append("%s=%s" % (name, a[name]))
    if a.get("nodes"):
        parts.append("nodes=%s" % ",".join(map(str, a["nodes"])))
    if a.get("occurrences", 1) > 1:
        parts.append("x%d" % a["occurrences"])
    detail = a.get("detail", "")
    if len(detail) > 240:
        detail = detail[:237] + "..."
    return "  " + " ".join(parts) + ": " + detail


def format_faults(results):
    """The per-fault availability table."""
    lines = []
    if results["faults"]:
        lines.append("  %-14s %5s %9s %9s %8s %8s  %s" % (
            "fault", "occ", "seconds", "attempts", "ok", "avail", "recovery median/max s"))
    for name, f in sorted(results["faults"].items()):
        rec = f["recovery_s"]
        recovery = "%s/%s" % (rec["median"], rec["max"])
        if rec["unrecovered"]:
            recovery += " (%d never recovered)" % rec["unrecovered"]
        lines.append("  %-14s %5d %9.1f %9d %8d %8s  %s" % (
            name, f["occurrences"], f["seconds"], f["attempts"], f["ok"],
            percent(f["availability"]), recovery))
    return lines


def format_summary(results):
    """The human summary written to summary.txt and printed."""
    total = sum(results["anomaly_kinds"].values())
    verdict = "VALID" if results["valid"] else "INVALID (%d safety anomalies)" % total
    if not results.get("complete", True):
        verdict += " -- INCOMPLETE CHECK, see warnings"
    run = results["run"]
    lines = ["herald jepsen check: " + verdict,
             "run: seed %s, %s s, nemeses %s, nodes %s, faulty build %s" % (
                 run.get("seed"), run.get("time"), ",".join(run.get("nemeses") or []) or "-",
                 ",".join(run.get("nodes") or []) or "-", run.get("faulty_build"))]
    lines.append("acked %d | " % results["acked"] + " | ".join(
        "%s %d" % (name.replace("_", " "), results[name]) for name in SAFETY_COUNTERS))
    at = results["attempts"]
    rd = results["reads"]
    lines.append("append attempts: ok %d, fail %d, info %d (unfinished %d); reads: ok %d, "
                 "fail %d, info %d; tail messages %d" % (
                     at["ok"], at["fail"], at["info"], at["unfinished"], rd["ok"], rd["fail"],
                     rd["info"], results["tail_messages"]))
    lines.append("availability: overall %s, healthy %s" % (
        percent(results["availability_overall"]), percent(results["healthy_availability"])))
    lines.extend(format_faults(results))
    if results["skipped_faults"]:
        lines.append("SKIPPED faults (not injected on this machine): "
                     + ", ".join(map(str, results["skipped_faults"])))
    if results.get("final_converged") is False:
        lines.append("note: harness reports the final logs did not converge")
    for w in results["warnings"][:10]:
        lines.append("warning: " + w)
    if total:
        shown = select_fairly(results["anomalies"], SUMMARY_ANOMALIES)
        lines.append("anomalies (%d shown of %d):" % (len(shown), total))
        lines.extend(format_anomaly(a) for a in shown)
    return "\n".join(lines) + "\n"


def main(argv=None):
    """CLI entry point: exit 1 on any safety anomaly, 2 on unusable input."""
    parser = argparse.ArgumentParser(description="Check a herald jepsen run folder.")
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    try:
        results = check(args.run_dir)
    except FileNotFoundError as e:
        print("checker: cannot read run: %s" % e, file=sys.stderr)
        return 2
    sys.stdout.write(format_summary(results))
    return 0 if results["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())

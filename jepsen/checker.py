#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Independent history checker for herald's fault-injection suite.

It reads what the harness recorded in one run folder (run.json,
history.jsonl, tails.jsonl, final.json, nemesis.jsonl) and judges it against
herald's contract (README.md): acknowledged appends are never lost, nothing is
invented or duplicated, every node and reader sees one gap-free sequence with
strictly increasing ts, retries answer the original seq/ts, and tails resume
without gaps or repeats.  It also measures availability per fault.

It is deliberately standalone: pure Python 3.11 standard library, no code
shared with the server or the rest of the harness, so a bug there cannot hide
a bug here.

It streams: final.json is read first (the reference logs), then each read
result and tail message is checked as it comes by and dropped.  Memory
follows the number of append attempts (a few hundred bytes each, their records
read back from history.jsonl only for anomaly evidence) plus the final logs,
not the volume of reads or tails.

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
import re
import statistics
import sys
from array import array
from collections import Counter
from dataclasses import dataclass

import check_deletes

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
    "tail_gone": "tail_anomalies",
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


# ---------------------------------------------------------------------------
# Ordered collection
#
# The checker streams: reads are checked when their result arrives (not in
# invoke order), final logs and acknowledged appends only once the whole
# history is known.  So every warning and anomaly sighting carries an order
# key, (phase, position..., counter), and what is reported is exactly what
# adding them one by one in that order would give: final logs, then acked
# appends, then reads in invoke order, then tails.

# Anomaly phases, in report order.
A_FINAL, A_ACKED, A_READS, A_TAILS = range(4)
# Warning phases: pairing records, sorting ops, final state, acked appends,
# reads, tails, faults.
W_PAIR, W_INDEX, W_FINAL, W_ACKED, W_READS, W_TAILS, W_FAULTS = range(7)


class Warnings:
    """Harness/input oddities that are not server anomalies, counted by text.

    Kept apart from anomalies so a malformed line never flips validity, but
    still visible so nobody trusts a run that was not fully checked.
    """

    def __init__(self):
        self.entries = {}   # text -> [order of first occurrence, count]
        self.base = (0,)    # order prefix of the warnings added next
        self._n = 0

    def add(self, text):
        """Records one occurrence of a warning."""
        self._n += 1
        order = self.base + (self._n,)
        entry = self.entries.get(text)
        if entry is not None:
            entry[1] += 1
            entry[0] = min(entry[0], order)
            return
        if len(self.entries) >= WARNING_CAP:
            # Keep the WARNING_CAP texts that come first in order; in order,
            # a new text is simply refused once the cap is reached.
            last = max(self.entries, key=lambda t: self.entries[t][0])
            if self.entries[last][0] < order:
                return
            del self.entries[last]
        self.entries[text] = [order, 1]

    def as_list(self):
        """Warnings with their repeat counts, for results.json."""
        items = sorted(self.entries.items(), key=lambda kv: kv[1][0])
        return ["%s (x%d)" % (t, n) if n > 1 else t for t, (_, n) in items]


class NonceRef:
    """Stands in an anomaly's "ops" for every attempt record of one nonce.

    Expanded only when results are written, from the complete history, so
    anomalies found while streaming still list later retries, and attempt
    records can stay on disk until then.
    """

    __slots__ = ("channel", "nonce")

    def __init__(self, channel, nonce):
        self.channel = channel
        self.nonce = nonce

    def key(self):
        """Two refs to the same nonce expand to the same records."""
        return (self.channel, self.nonce)


OPS_KEEP = 4 * OPS_CAP   # candidate ops kept per anomaly when pruning (see prune)
PRUNE_AT = 2 * OPS_KEEP  # candidate ops that trigger a prune


def _item_order(item):
    """Sort key of an (order, n, record) candidate."""
    return item[0], item[1]


class Anomaly:
    """One merged finding: the sighting first in order gives its kind and
    detail; occurrences, nodes, sightings and records accumulate."""

    __slots__ = ("order", "head", "occurrences", "nodes", "where", "ops")

    def __init__(self):
        self.order = None
        self.head = None        # (kind, channel, fields, detail)
        self.occurrences = 0
        self.nodes = []
        self.where = []         # [(order, sighting)], the WHERE_CAP first in order
        self.ops = []           # [(order, n, record or NonceRef)], candidates

    @property
    def kind(self):
        """The anomaly kind."""
        return self.head[0]

    def add(self, order, head, nodes, where, items, nonempty):
        """Merges one sighting, added at `order`."""
        if self.order is None or order < self.order:
            self.order = order
            self.head = head
        self.occurrences += 1
        self.add_nodes(nodes)
        if where is not None:
            self.add_where([(order, where)])
        self.ops.extend(items)
        if len(self.ops) > PRUNE_AT:
            self.prune(nonempty)

    def add_nodes(self, nodes):
        """Adds the nodes involved, once each."""
        for node in nodes:
            if node is not None and node not in self.nodes:
                self.nodes.append(node)

    def add_where(self, sightings):
        """Adds (order, sighting) pairs, keeping the WHERE_CAP first in order."""
        for s in sightings:
            bisect.insort(self.where, s, key=lambda w: w[0])
        del self.where[WHERE_CAP:]

    def merge(self, other, nonempty):
        """Folds in another collection of sightings of the same finding."""
        if self.order is None or other.order < self.order:
            self.order = other.order
            self.head = other.head
        self.occurrences += other.occurrences
        self.add_nodes(other.nodes)
        self.add_where(other.where)
        self.ops.extend(other.ops)
        self.prune(nonempty)

    def prune(self, nonempty):
        """Drops candidate records that can no longer make the OPS_CAP first.

        Each distinct record, and each distinct nonce that has attempts
        (nonempty), yields at least one record not yielded by the others,
        so once OPS_CAP of them precede an item in order, the item is out.
        """
        self.ops.sort(key=_item_order)
        kept = []
        seen = set()
        count = 0
        for item in self.ops:
            if count >= OPS_CAP:
                break
            rec = item[2]
            if isinstance(rec, NonceRef):
                ident = ("nonce",) + rec.key()
                counts = nonempty(rec)
            else:
                ident = id(rec)
                counts = True
            if ident in seen:
                continue
            seen.add(ident)
            count += 1 if counts else 0
            kept.append(item)
        # Only nonces nobody appended (phantoms) can leave more; keep a bound.
        self.ops = kept[:OPS_KEEP]

    def records(self, expand):
        """The OPS_CAP first distinct records, NonceRefs expanded."""
        out = []
        seen_ids = set()
        seen_refs = set()
        for _, _, rec in sorted(self.ops, key=_item_order):
            if len(out) >= OPS_CAP:
                break
            if isinstance(rec, NonceRef):
                if rec.key() in seen_refs:
                    continue
                seen_refs.add(rec.key())
                recs = expand(rec)
            else:
                recs = [rec]
            for r in recs:
                if len(out) >= OPS_CAP:
                    break
                if id(r) not in seen_ids:
                    out.append(r)
                    seen_ids.add(id(r))
        return out

    def as_dict(self, expand):
        """The results.json form."""
        kind, channel, fields, detail = self.head
        out = {"kind": kind, "channel": channel}
        out.update(fields)
        out["nodes"] = sorted(self.nodes, key=str)
        out["ops"] = self.records(expand)
        out["detail"] = detail
        out["occurrences"] = self.occurrences
        if self.where:
            out["where"] = [w for _, w in self.where]
        return out


class Anomalies:
    """Collects anomalies, merging repeats of the same finding.

    One wrong message seen by a thousand reads is one anomaly with
    "occurrences": 1000, not a thousand lines, so counters count distinct
    problems.  Only compact evidence is kept per anomaly: its first
    sightings and the records that can still make its "ops".

    A sighting whose validity depends on history not seen yet (a read
    holding a nonce whose attempts may still all fail) is added with
    `when`, a condition settled by resolve() once the history is complete;
    its detail may then be a callable, for text that needs that history.
    """

    def __init__(self, nonempty=lambda ref: False):
        self.by_key = {}
        self.pending = {}        # (when, key) -> Anomaly
        self.base = (0,)         # order prefix of the sightings added next
        self.nonempty = nonempty  # NonceRef -> whether it expands to any record
        self._n = 0

    def add(self, key, kind, channel, detail, ops=(), nodes=(), where=None, when=None,
            **fields):
        """Adds a sighting of an anomaly, merged with earlier ones of the same key."""
        self._n += 1
        order = self.base + (self._n,)
        table, k = (self.by_key, key) if when is None else (self.pending, (when, key))
        anomaly = table.get(k)
        if anomaly is None:
            anomaly = table[k] = Anomaly()
        items = []
        for rec in ops:
            if rec is not None:
                self._n += 1
                items.append((order, self._n, rec))
        anomaly.add(order, (kind, channel, fields, detail), nodes, where, items,
                    self.nonempty)
        return anomaly

    def resolve(self, holds):
        """Keeps the conditional sightings whose condition turned out true."""
        for (when, key), pending in self.pending.items():
            if not holds(when):
                continue
            kind, channel, fields, detail = pending.head
            if callable(detail):
                pending.head = (kind, channel, fields, detail())
            anomaly = self.by_key.get(key)
            if anomaly is None:
                self.by_key[key] = pending
                pending.prune(self.nonempty)
            else:
                anomaly.merge(pending, self.nonempty)
        self.pending = {}

    def all(self):
        """Every anomaly, most damning kinds first, in order within a kind."""
        rank = {k: i for i, k in enumerate(KIND_ORDER)}
        return sorted(self.by_key.values(),
                      key=lambda a: (rank.get(a.kind, len(rank)), a.order))


def select_fairly(anomalies, cap, kind_of=lambda a: a["kind"]):
    """Picks at most cap anomalies, round-robin across kinds.

    A flood of one kind (say 10k tail mismatches after a divergence) must not
    push the one lost write out of the report.  Output stays grouped by kind.
    """
    groups = {}
    for a in anomalies:
        groups.setdefault(kind_of(a), []).append(a)
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


class RecordStore:
    """Keeps the history records of append attempts for anomaly evidence.

    In memory (check_history) a handle is the record itself.  For a run
    folder it is the record's byte offset in history.jsonl, read back only
    when an anomaly needs the record, so an attempt costs a few bytes.
    """

    def __init__(self, path=None):
        self.path = path
        self.none = None if path is None else -1
        self._fh = None

    def new_list(self):
        """A growable list of handles."""
        return [] if self.path is None else array("q")

    def load(self, handle):
        """The record behind a handle, or None for the none handle."""
        if self.path is None:
            return handle
        if handle == self.none:
            return None
        if self._fh is None:
            self._fh = open(self.path, "rb")
        self._fh.seek(handle)
        return json.loads(self._fh.readline().decode("utf-8").strip())

    def close(self):
        """Closes history.jsonl if records were read back."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


OUTCOMES = ("unfinished", "ok", "fail", "info")   # outcome codes 0..3
OUTCOME_CODE = {name: code for code, name in enumerate(OUTCOMES)}
UNSET = object()      # no payload recorded
SUSPECT = object()    # acked nonce that needs the full retry/lost check


class NonceState:
    """What the history says about one (channel, nonce), compactly.

    Payloads are not kept when an attempt sent exactly the reference log's
    payload for the nonce (then `payload` is that object); others go to
    `extra`.  `ack` summarizes every ok answer: None before the first, the
    index of its place in the reference log while all ok answers agree with
    it and with each other, SUSPECT otherwise (checked in full at the end).
    """

    __slots__ = ("channel", "nonce", "attempts", "payload", "extra", "ack", "fresh")

    def __init__(self, channel, nonce):
        self.channel = channel
        self.nonce = nonce
        self.attempts = None   # attempt id, or list of them
        self.payload = UNSET
        self.extra = None
        self.ack = None
        self.fresh = False     # an ok answered duplicate:false

    def attempt_ids(self):
        """The nonce's attempt ids in invoke order."""
        a = self.attempts
        return [a] if isinstance(a, int) else sorted(a)

    def add_attempt(self, aid):
        """Files one more attempt of the nonce."""
        a = self.attempts
        if a is None:
            self.attempts = aid
        elif isinstance(a, int):
            self.attempts = [a, aid]
        else:
            a.append(aid)


class OpenOp:
    """An invoked operation waiting for its completion."""

    __slots__ = ("f", "ordinal", "invoke", "aid", "state")

    def __init__(self, f, ordinal, invoke, aid=None, state=None):
        self.f = f
        self.ordinal = ordinal
        self.invoke = invoke
        self.aid = aid
        self.state = state


class HistoryIndex:
    """Append attempts by (channel, nonce), built while the history streams.

    Per attempt only its invoke time, outcome and two record handles are
    kept; per nonce a NonceState.  Reads are not kept at all: the streaming
    checker looks at each result as it arrives.
    """

    def __init__(self, store, get_ref):
        self.store = store
        self.get_ref = get_ref
        self.complete = False          # whole history seen
        self.by_channel = {}           # channel -> {nonce: NonceState}
        self.states = []               # NonceState in creation order
        self.late = False              # an attempt was filed at its completion
        self.times = array("d")        # attempt id -> invoke t (a list if not all floats)
        self.outcomes = bytearray()    # attempt id -> outcome code
        self.invokes = store.new_list()
        self.dones = store.new_list()
        self._channels = {}

    # -- building

    def new_attempt(self, invoke, handle):
        """Registers an append attempt at its invoke; returns its id."""
        aid = len(self.outcomes)
        t = invoke.get("t", 0.0)
        if type(t) is not float and isinstance(self.times, array):
            self.times = list(self.times)   # keep odd values as they are
        self.times.append(t)
        self.outcomes.append(0)
        self.invokes.append(handle)
        self.dones.append(self.store.none)
        return aid

    def attach(self, channel, invoke, aid, late=False):
        """Files attempt aid under (channel, its nonce); returns the NonceState.

        late: filed at the completion (the invoke had no channel), so the
        states may no longer be in first-invoke order.
        """
        nonce = invoke.get("nonce")
        if type(channel) is str:   # one copy of each channel name
            channel = self._channels.setdefault(channel, channel)
        nonces = self.by_channel.get(channel)
        if nonces is None:
            nonces = self.by_channel[channel] = {}
        state = nonces.get(nonce)
        ref = self.get_ref(channel)
        if state is None:
            if ref is not None:
                nonce = ref.canonical_nonce(nonce)
            state = nonces[nonce] = NonceState(channel, nonce)
            self.states.append(state)
        self.late = self.late or late
        state.add_attempt(aid)
        payload = normalize_payload(invoke.get("payload"))
        expected = ref.payload_of(state.nonce) if ref is not None else UNSET
        if expected is not UNSET and payload == expected:
            state.payload = expected
        elif state.extra is None:
            state.extra = {payload}
        else:
            state.extra.add(payload)
        return state

    def complete_attempt(self, aid, state, done, handle):
        """Records an attempt's completion and checks an ok answer cheaply."""
        self.dones[aid] = handle
        code = OUTCOME_CODE.get(done.get("type"), 0)
        self.outcomes[aid] = code
        if code != 1:
            return
        ack = SUSPECT
        ref = self.get_ref(state.channel)
        if ref is not None:
            placed = ref.placed(state.nonce)
            position = ok_position(Op(None, done))
            if position in placed:
                ack = placed.index(position)
        if state.ack is None:
            state.ack = ack
        elif state.ack != ack:
            state.ack = SUSPECT
        if done.get("duplicate") is False:
            if state.fresh:
                state.ack = SUSPECT
            state.fresh = True

    # -- lookups

    def state(self, channel, nonce):
        """The NonceState of (channel, nonce), or None if never appended."""
        nonces = self.by_channel.get(channel)
        return None if nonces is None else nonces.get(nonce)

    def ordered_states(self):
        """Every NonceState in the order its nonce was first invoked.

        Attempt ids follow invoke order, so a state's first is its smallest.
        """
        if not self.late:
            return self.states
        return sorted(self.states, key=lambda st: st.attempt_ids()[0])

    def failed_only(self, channel, nonce):
        """Whether every attempt of the nonce failed definitely.

        None while the history is incomplete and later records could still
        decide it either way.
        """
        state = self.state(channel, nonce)
        if state is None:
            return False if self.complete else None
        codes = [self.outcomes[aid] for aid in state.attempt_ids()]
        if self.complete:
            return all(c == 2 for c in codes)
        if any(c in (1, 3) for c in codes):
            return False
        return None

    def has_payload(self, state, payload):
        """Whether some attempt of the nonce sent this (normalized) payload."""
        if state.payload is not UNSET and (payload is state.payload
                                           or payload == state.payload):
            return True
        return state.extra is not None and payload in state.extra

    def payloads(self, state):
        """Every payload the attempts of the nonce sent."""
        out = set(state.extra or ())
        if state.payload is not UNSET:
            out.add(state.payload)
        return out

    def nonce_records(self, channel, nonce):
        """Every attempt's invoke and completion for one nonce, as a NonceRef."""
        return [NonceRef(channel, nonce)]

    def has_records(self, ref):
        """Whether a NonceRef expands to any record (yet)."""
        return self.state(ref.channel, ref.nonce) is not None

    def ops_of(self, state):
        """The attempts of a nonce as Ops, records loaded."""
        load = self.store.load
        return [Op(load(self.invokes[aid]), load(self.dones[aid]))
                for aid in state.attempt_ids()]

    def expand(self, ref):
        """A NonceRef's records: every attempt's invoke and completion."""
        state = self.state(ref.channel, ref.nonce)
        recs = []
        if state is not None:
            for op in self.ops_of(state):
                recs.extend(op.records)
                if len(recs) >= OPS_CAP:
                    break
        return recs[:OPS_CAP]


class HistoryStream:
    """Pairs invokes with completions as history records arrive.

    A process has one operation outstanding at a time, so the next record of
    that process completes it; invokes left open at the end are "unfinished"
    (outcome unknown, like info).  Appends go to the index, read results to
    on_read as they complete.
    """

    def __init__(self, index, warnings, on_read):
        self.index = index
        self.warnings = warnings
        self.on_read = on_read
        self.open = {}
        self.ordinal = 0
        self.read_channels = set()
        self.read_counts = Counter()
        self.retention = {}   # channel -> [Op] of its trims and deletes

    def add(self, rec, handle):
        """Takes one history record (handle: how to find it again)."""
        w = self.warnings
        w.base = (W_PAIR,)
        proc = rec.get("process")
        kind = rec.get("type")
        if kind == "invoke":
            if proc in self.open:
                w.add("process invoked again before its previous op completed")
                self.finish(self.open[proc], None, None)
            ordinal = self.ordinal
            self.ordinal += 1
            f = rec.get("f")
            if f == "append":
                aid = self.index.new_attempt(rec, handle)
                ch = rec.get("channel")
                state = None if ch is None else self.index.attach(ch, rec, aid)
                op = OpenOp(f, ordinal, rec, aid, state)
            else:
                op = OpenOp(f, ordinal, rec)
                if f not in ("read", "trim", "delete"):
                    w.base = (W_INDEX, ordinal)
                    w.add("history op with unknown f %r" % (f,))
            self.open[proc] = op
        elif kind in ("ok", "fail", "info"):
            op = self.open.pop(proc, None)
            if op is None:
                w.add("completion record without an open invoke")
                return
            if rec.get("f") is not None and rec.get("f") != op.invoke.get("f"):
                w.add("completion f differs from its invoke's f")
            self.finish(op, rec, handle)
        else:
            w.add("history record with unknown type %r" % (kind,))

    def finish(self, op, done, handle):
        """Settles an operation: completed by done, or unfinished (done None)."""
        if op.f == "append":
            nonce = op.invoke.get("nonce")
            if done is not None and "nonce" in done and done["nonce"] != nonce:
                self.warnings.base = (W_INDEX, op.ordinal)
                self.warnings.add("append completion nonce differs from its invoke's nonce")
            state = op.state
            if state is None:   # invoke without channel: keyed by the completion's
                ch = done.get("channel") if done is not None else None
                state = self.index.attach(ch, op.invoke, op.aid, late=True)
            if done is not None:
                self.index.complete_attempt(op.aid, state, done, handle)
        elif op.f in ("trim", "delete"):
            full = Op(op.invoke, done)
            self.retention.setdefault(full.channel, []).append(full)
        elif op.f == "read":
            full = Op(op.invoke, done)
            self.read_channels.add(full.channel)
            self.read_counts[full.outcome] += 1
            if done is not None:
                self.on_read(full, op.ordinal)

    def end(self):
        """The history is over: open operations stay unfinished."""
        for op in self.open.values():
            self.finish(op, None, None)
        self.open = {}
        self.index.complete = True


# ---------------------------------------------------------------------------
# Reference log


class Reference:
    """The channel's one true log: the longest final node log."""

    def __init__(self, node, messages):
        self.node = node
        self.messages = messages
        self.msg_by_seq = {}   # seq -> first message at that seq
        self.positions = {}    # nonce -> index into messages, or list of them
        for i, m in enumerate(messages):
            seq = m.get("seq")
            if seq not in self.msg_by_seq:
                self.msg_by_seq[seq] = m
            nonce = m.get("nonce")
            prev = self.positions.get(nonce)
            if prev is None:
                self.positions[nonce] = i
            elif isinstance(prev, list):
                prev.append(i)
            else:
                self.positions[nonce] = [prev, i]

    def has_seq(self, seq):
        """Whether the reference has a message at seq."""
        return seq in self.msg_by_seq

    def trimmed(self, seq):
        """Whether seq lies below the reference's first message: removed by
        a trim, so nothing read there can be compared (check_final_logs
        holds the first seq to the trims in the history)."""
        first = self.messages[0].get("seq") if self.messages else None
        return isinstance(first, int) and isinstance(seq, int) and seq < first

    def has_nonce(self, nonce):
        """Whether the reference holds the nonce anywhere."""
        return nonce in self.positions

    def _indexes(self, nonce):
        """Where the nonce sits in messages, as a list of indexes."""
        at = self.positions.get(nonce)
        if at is None:
            return []
        return at if isinstance(at, list) else [at]

    def placed(self, nonce):
        """[(seq, ts micros)] of every message of the nonce, in log order."""
        return [(self.messages[i].get("seq"), parse_ts(self.messages[i].get("ts")))
                for i in self._indexes(nonce)]

    def canonical_nonce(self, nonce):
        """The reference's own copy of an equal nonce string, to share one object."""
        at = self._indexes(nonce) if type(nonce) is str else None
        if at:
            same = self.messages[at[0]].get("nonce")
            if type(same) is str:
                return same
        return nonce

    def payload_of(self, nonce):
        """The payload of the nonce's first message, UNSET when absent."""
        at = self._indexes(nonce)
        return message_payload(self.messages[at[0]]) if at else UNSET

    def matches(self, msg):
        """Whether msg is the reference message at its seq.

        Comparing the messages or their raw fields settles the common case
        cheaply (reads can hold millions of messages); only when they differ
        is the normalized comparison (ts as micros, payload_b64 decoded)
        needed.
        """
        ref = self.msg_by_seq.get(msg.get("seq"))
        if ref is None:
            return False
        return (msg == ref or raw_fields(ref) == raw_fields(msg)
                or message_key(ref) == message_key(msg))

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


def same_log(a, b):
    """Whether two logs hold the same messages, field for field as received."""
    if a is b:
        return True
    if len(a) != len(b):
        return False
    return all(x is y or repr(raw_fields(x)) == repr(raw_fields(y)) for x, y in zip(a, b))


def build_reference(final, channel):
    """Picks the reference log of a channel, or None if no node was readable.

    The longest log is the reference (a lagging node holds a prefix of it);
    among equally long ones the one most nodes hold wins, then node name,
    so one divergent node cannot become the yardstick on a tie.
    """
    logs = readable_final_logs(final, channel)
    if not logs:
        return None
    groups = []    # [log, number of nodes holding it]
    group_of = []
    for _, log in logs:
        for i, group in enumerate(groups):
            if same_log(group[0], log):
                group[1] += 1
                group_of.append(i)
                break
        else:
            group_of.append(len(groups))
            groups.append([log, 1])
    # logs are in node-name order and max() keeps the first of equals.
    best = max(range(len(logs)), key=lambda i: (len(logs[i][1]), groups[group_of[i]][1]))
    return Reference(*logs[best])


_JSON_WS = re.compile(r"[ \t\n\r]*")


class JsonStreamError(ValueError):
    """The streaming reader met something it does not handle; use json.load."""


class JsonReader:
    """A text file decoded as JSON a value at a time, without holding it whole."""

    BLOCK = 1 << 20

    def __init__(self, fh):
        self.fh = fh
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self, n):
        """Makes at least n characters available after pos, unless at EOF."""
        if len(self.buf) - self.pos >= n or self.eof:
            return
        self.buf = self.buf[self.pos:]
        self.pos = 0
        while len(self.buf) < n and not self.eof:
            chunk = self.fh.read(max(n, self.BLOCK))
            if chunk:
                self.buf += chunk
            else:
                self.eof = True

    def peek(self):
        """The next non-whitespace character, "" at EOF."""
        while True:
            self.fill(1)
            self.pos = _JSON_WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos:self.pos + 1]

    def take(self, allowed):
        """Consumes the next character, which must be one of allowed."""
        c = self.peek()
        if not c or c not in allowed:
            raise JsonStreamError("expected one of %r" % allowed)
        self.pos += 1
        return c

    def scalar(self, decoder, lookahead=1 << 12):
        """Decodes the next whole value with the ordinary decoder."""
        self.peek()
        while True:
            self.fill(lookahead)
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except ValueError:
                if self.eof:
                    raise JsonStreamError("bad value") from None
                lookahead *= 2
                continue
            if end == len(self.buf) and not self.eof:   # a number may go on
                lookahead *= 2
                continue
            self.pos = end
            return value

    def value(self, decoder, hook, depth):
        """The next value; containers down to depth are walked here, so
        only values below them are ever decoded in one piece."""
        c = self.peek()
        if depth <= 0 or c not in ("{", "["):
            return self.scalar(decoder)
        self.pos += 1
        if c == "[":
            out = []
            if self.peek() == "]":
                self.pos += 1
                return out
            while True:
                out.append(self.value(decoder, hook, depth - 1))
                if self.take(",]") == "]":
                    return out
        out = {}
        if self.peek() == "}":
            self.pos += 1
            return hook(out) if hook else out
        while True:
            if self.peek() != '"':
                raise JsonStreamError("expected a key")
            key = self.scalar(decoder)
            self.take(":")
            out[key] = self.value(decoder, hook, depth - 1)
            if self.take(",}") == "}":
                return hook(out) if hook else out


def load_json_streaming(fh, object_hook=None, depth=4):
    """json.load(fh, object_hook=...) without reading the file into one string.

    Containers down to `depth` levels (final.json: top, nodes, node, log)
    are walked here and only their elements (log messages) are decoded
    whole.  Raises JsonStreamError on anything unusual, so the caller can
    fall back to json.load and its exact error.
    """
    reader = JsonReader(fh)
    decoder = json.JSONDecoder(object_hook=object_hook)
    value = reader.value(decoder, object_hook, depth)
    if reader.peek() != "":
        raise JsonStreamError("extra data")
    return value


def intern_messages():
    """A json object_hook sharing one dict among equal log messages.

    final.json holds the same log once per node; sharing the messages makes
    it cost about one copy.  Only dicts of plain str/int values are shared,
    so equal always means identical.
    """
    cache = {}
    key_sets = {}

    def hook(obj):
        if "seq" not in obj:
            return obj
        for v in obj.values():
            if type(v) is not str and type(v) is not int:   # exact: not bool
                return obj
        keys = tuple(obj)
        keys = key_sets.setdefault(keys, keys)
        ident = (keys,) + tuple(obj.values())
        shared = cache.get(ident)
        if shared is None:
            # One copy of the key strings for all messages, as json.load has.
            shared = cache[ident] = dict(zip(keys, ident[1:]))
        return shared
    return hook


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
    was written.  While the history is still streaming, what later records
    could change is added conditionally (see Anomalies.resolve).
    """
    ch = source.channel
    nonce = msg.get("nonce")
    seq = msg.get("seq")
    state = index.state(ch, nonce)
    payload = message_payload(msg)
    if state is None:
        anomalies.add(("phantom", ch, nonce, "never"), "phantom", ch,
                      "%s holds %s, a nonce no client appended to this channel"
                      % (source.label(), describe_message(msg)),
                      ops=source.records([seq]), nodes=[source.node],
                      where=source.where(seq=seq), nonce=nonce, seq=seq,
                      when=None if index.complete else ("unappended", ch, nonce))
    if (state is None and not index.complete) or (
            state is not None and not index.has_payload(state, payload)):
        # Payloads only ever get added, so one already sent settles it; a
        # missing one is only known missing once the history is complete.
        text = "%s holds %s with payload %%r, but the client appended %%r" % (
            source.label(), describe_message(msg))

        def detail():
            return text % (payload, sorted(index.payloads(index.state(ch, nonce)),
                                           key=repr)[0])
        anomalies.add(("phantom", ch, nonce, "payload"), "phantom", ch,
                      detail() if index.complete else detail,
                      ops=index.nonce_records(ch, nonce) + source.records([seq]),
                      nodes=[source.node], where=source.where(seq=seq), nonce=nonce,
                      seq=seq, when=None if index.complete else ("payload", ch, nonce, payload))
    failed = index.failed_only(ch, nonce)
    if failed is not False:
        anomalies.add(("failed_but_written", ch, nonce), "failed_but_written", ch,
                      "every attempt of nonce %r failed definitely, yet %s holds it at seq %s"
                      % (nonce, source.label(), seq),
                      ops=index.nonce_records(ch, nonce) + source.records([seq]),
                      nodes=[source.node], where=source.where(seq=seq), nonce=nonce,
                      seq=seq, when=None if failed else ("failed_only", ch, nonce))


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
        if ref.has_seq(m.get("seq")) and not ref.matches(m):
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


def highest_trim(commands):
    """The highest before_seq of a trim among a channel's commands that did
    not fail (1 if none): no seq at or above it was removed by a trim
    (README: a trim keeps the seqs from min(before_seq, last seq) on)."""
    trims = [op.invoke.get("before_seq") for op in commands
             if op.invoke.get("f") == "trim" and op.outcome != "fail"]
    return max([b for b in trims if isinstance(b, int)], default=1)


def final_first_seq(log, commands):
    """The seq a final log may start at: 1, or up to highest_trim."""
    highest = highest_trim(commands)
    first = log[0].get("seq") if log else None
    if isinstance(first, int) and not isinstance(first, bool) and 1 <= first <= highest:
        return first
    return 1


def check_final_logs(final, channels, refs, index, anomalies, retention=None):
    """Checks every readable node's final log of every channel."""
    for ch in channels:
        ref = refs.get(ch)
        for node, log in readable_final_logs(final, ch):
            source = LogSource("final", node, ch)
            first = final_first_seq(log, (retention or {}).get(ch, ()))
            check_log_contents(log, first, source, index, anomalies)
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
        if ref.matches(m) or ref.trimmed(seq):
            continue
        if not ref.has_seq(seq):
            why = "seq %s is beyond the reference log (%s, %d messages)" % (
                seq, ref.node, len(ref.messages))
        else:
            why = "reference has %s" % ref.describe(seq)
        anomalies.add(("divergent", "read", ch, seq, message_key(m)), "divergent", ch,
                      "%s returned %s; %s" % (source.label(), describe_message(m), why),
                      ops=source.records([seq]) + index.nonce_records(ch, m.get("nonce")),
                      nodes=[source.node], where=source.where(seq=seq), seq=seq,
                      nonce=m.get("nonce"))


def check_read(op, ordinal, refs, index, anomalies, warnings, counts):
    """Checks one completed read as it arrives (ordinal: its invoke's position).

    A read that is exactly the reference slice is only counted: it can only
    repeat problems already reported on the reference log.
    """
    if op.outcome != "ok":
        return
    warnings.base = (W_READS, ordinal)
    anomalies.base = (A_READS, ordinal)
    messages = op.done.get("messages")
    if not isinstance(messages, list):
        warnings.add("read ok without a messages list")
        return
    counts["messages"] += len(messages)
    after = op.invoke.get("after_seq")
    if not isinstance(after, int):
        warnings.add("read invoke without integer after_seq (assumed 0)")
        after = 0
    ref = refs.get(op.channel)
    if read_agrees_with_reference(messages, after, ref):
        return
    source = LogSource("read", op.node, op.channel, op)
    check_log_contents(messages, after + 1, source, index, anomalies)
    if ref is not None:
        check_read_against_reference(messages, source, ref, index, anomalies)


# ---------------------------------------------------------------------------
# Acknowledged appends


def ok_position(op):
    """(seq, ts micros) an ok append answered."""
    return (op.done.get("seq"), parse_ts(op.done.get("ts")))


def removed_by_retention(commands, ack):
    """True if a trim or delete in the history may have removed this ok'd
    append (README: trims drop seqs below before_seq, a delete the whole
    channel), so its absence from the final log is not a loss.  A command
    that failed changed nothing; one ok, info or unfinished may have."""
    seq, t = ack.get("seq"), ack.get("t")
    for op in commands:
        if op.outcome == "fail":
            continue
        if op.invoke.get("f") == "trim":
            before = op.invoke.get("before_seq")
            if isinstance(before, int) and isinstance(seq, int) and seq < before:
                return True
        else:
            # A delete removes what was acked before it completed (or ever,
            # when its outcome is unknown).
            end = op.done.get("t") if op.outcome == "ok" else None
            if end is None or t is None or t <= end:
                return True
    return False


def check_acked(index, refs, anomalies, warnings, retention=None):
    """Checks every acknowledged nonce is in the reference log where it was acked.

    Validity: an ok append is never lost.  Retry safety: every ok for a
    nonce answers the same seq and ts, which is where the nonce sits, and
    only one attempt claims to have written it (duplicate:false).
    Returns the number of distinct acknowledged (channel, nonce).

    Nonces whose ok answers were already found consistent and in place while
    the history streamed (the common case) are only counted.
    """
    acked = 0
    for state in index.ordered_states():
        if state.ack is None:
            continue
        acked += 1
        if state.ack is not SUSPECT:
            continue
        ch, nonce = state.channel, state.nonce
        oks = [op for op in index.ops_of(state) if op.outcome == "ok"]
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
        elif not ref.has_nonce(nonce) and removed_by_retention((retention or {}).get(ch, ()),
                                                               oks[0].done):
            warnings.add("channel %r: acked nonce %r is gone by a trim or delete in the "
                         "history, not counted as lost" % (ch, nonce))
        elif not ref.has_nonce(nonce):
            anomalies.add(("lost", ch, nonce), "lost", ch,
                          "nonce %r acked at seq %s is not in the reference log (%s, %d "
                          "messages)" % (nonce, oks[0].done.get("seq"), ref.node,
                                         len(ref.messages)),
                          ops=records, nodes=[op.node for op in oks], nonce=nonce,
                          seq=oks[0].done.get("seq"))
        else:
            placed = ref.placed(nonce)
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


def check_tail_connect(ev, n, tailer, st, anomalies):
    """Flags a reconnect that does not resume after the last seq received."""
    after = ev.get("after")
    previous = st.last_seq if st.last_seq is not None else st.resumed_after
    if previous is not None and after != previous:
        anomalies.add(("tail_resume", tailer, n), "tail_resume", ev.get("channel"),
                      "tailer %s reconnected to %s after %r, but the last seq it had is %s "
                      "(harness bug)" % (tailer, ev.get("node"), after, previous),
                      ops=st.context() + [ev], nodes=[ev.get("node")], tailer=tailer,
                      seq=after)
    if isinstance(after, int):
        st.resumed_after = after
    st.last_connect = ev


def check_tail_message(ev, n, tailer, st, refs, index, anomalies):
    """Flags a tail message that repeats, skips, or differs from the reference."""
    ch = ev.get("channel")
    seq = ev.get("seq")
    node = ev.get("node")
    expected = st.expected_next()
    if st.last_seq is not None and seq <= st.last_seq:
        anomalies.add(("tail_repeat", tailer, n), "tail_repeat", ch,
                      "tailer %s got seq %d from %s after already receiving up to %d"
                      % (tailer, seq, node, st.last_seq),
                      ops=st.context() + [ev], nodes=[node], tailer=tailer, seq=seq,
                      nonce=ev.get("nonce"))
    elif st.resumed_after is not None and seq <= st.resumed_after:
        anomalies.add(("tail_repeat", tailer, n), "tail_repeat", ch,
                      "tailer %s resumed after %d on %s but got seq %d"
                      % (tailer, st.resumed_after, node, seq),
                      ops=st.context() + [ev], nodes=[node], tailer=tailer, seq=seq,
                      nonce=ev.get("nonce"))
    elif expected is not None and seq > expected:
        anomalies.add(("tail_skip", tailer, n), "tail_skip", ch,
                      "tailer %s got seq %d from %s where %d was expected (missed %d)"
                      % (tailer, seq, node, expected, seq - expected),
                      ops=st.context() + [ev], nodes=[node], tailer=tailer, seq=seq,
                      nonce=ev.get("nonce"))
    ref = refs.get(ch)
    if ref is not None and not ref.trimmed(seq):
        if not ref.matches(ev):
            anomalies.add(("tail_mismatch", ch, seq, message_key(ev)), "tail_mismatch", ch,
                          "tailer %s got %s from %s; reference has %s"
                          % (tailer, describe_message(ev), node, ref.describe(seq)),
                          ops=[ev] + index.nonce_records(ch, ev.get("nonce")),
                          nodes=[node], tailer=tailer, seq=seq, nonce=ev.get("nonce"),
                          where={"source": "tail", "tailer": tailer, "node": node})
    st.last_seq = seq if st.last_seq is None else max(st.last_seq, seq)
    st.last_message = ev


def check_tail_gone(ev, n, tailer, st, retention, anomalies):
    """A gone (a trim removed what the tailer was to get next) resumes the
    tailer at first_seq; it must follow a trim in the history up to there,
    and must not go back before what the tailer already had."""
    first = ev.get("first_seq")
    ch = ev.get("channel")
    highest = highest_trim(retention.get(ch, ()))
    had = st.expected_next()
    if not isinstance(first, int) or first > highest or (had is not None and first < had):
        anomalies.add(("tail_gone", tailer, n), "tail_gone", ch,
                      "tailer %s was told gone from %r by %s, but the trims in the history "
                      "reach %d and it expected seq %s next"
                      % (tailer, first, ev.get("node"), highest, had),
                      ops=st.context() + [ev], nodes=[ev.get("node")], tailer=tailer,
                      seq=first if isinstance(first, int) else None)
        return
    st.last_seq = first - 1 if st.last_seq is None else max(st.last_seq, first - 1)


class TailChecker:
    """Replays every tailer's events in order, one event at a time."""

    def __init__(self, refs, index, anomalies, warnings, retention=None):
        self.refs = refs
        self.index = index
        self.anomalies = anomalies
        self.warnings = warnings
        self.retention = retention or {}
        self.states = {}
        self.messages = 0
        self.channels = set()
        self.n = 0

    def add(self, ev):
        """Checks one tail event."""
        self.n += 1
        if ev.get("channel") is not None:
            self.channels.add(ev.get("channel"))
        tailer = ev.get("tailer")
        st = self.states.setdefault(tailer, TailerState())
        event = ev.get("event")
        if event == "connect":
            check_tail_connect(ev, self.n, tailer, st, self.anomalies)
        elif event == "message":
            self.messages += 1
            seq = ev.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                self.warnings.add("tail message without integer seq")
                return
            check_tail_message(ev, self.n, tailer, st, self.refs, self.index, self.anomalies)
        elif event == "gone":
            check_tail_gone(ev, self.n, tailer, st, self.retention, self.anomalies)
        elif event != "disconnect":
            self.warnings.add("tail event of unknown kind %r" % (event,))

    @property
    def tailers(self):
        return len(self.states)


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

    def __init__(self, times, outcomes):
        self.times = sorted(times)
        self.ok_times = sorted(t for t, code in zip(times, outcomes)
                               if code == OUTCOME_CODE["ok"])

    def count(self, start, end):
        """(attempts, ok) invoked in [start, end)."""
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_left(self.times, end)
        return hi - lo, (bisect.bisect_left(self.ok_times, end)
                         - bisect.bisect_left(self.ok_times, start))

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
    timeline = AttemptTimeline(index.times, index.outcomes)
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
    total_ok = len(timeline.ok_times)
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


class References:
    """Reference logs by channel, built on first use (final.json is loaded
    before the history streams, so reads are checked as they come)."""

    def __init__(self, final):
        self.final = final
        self.cache = {}

    def get(self, channel):
        """The channel's Reference, or None (no readable node, or no channel)."""
        if channel is None:
            return None
        if channel not in self.cache:
            self.cache[channel] = build_reference(self.final, channel)
        return self.cache[channel]


class LastTime:
    """The latest numeric "t" seen, for where unstopped faults end."""

    def __init__(self):
        self.t = None

    def see(self, rec):
        t = rec.get("t")
        if isinstance(t, (int, float)) and (self.t is None or t > self.t):
            self.t = t


def run_end_time(run, last, nemesis):
    """The last instant of the run, where unstopped faults end."""
    times = [last.t] if last.t is not None else []
    times += [e.get("t") for e in nemesis]
    times = [t for t in times if isinstance(t, (int, float))]
    duration = run.get("time")
    if isinstance(duration, (int, float)):
        times.append(duration)
    return max(times) if times else 0.0


def attempt_counts(index):
    """Append attempts by outcome; unfinished ones are also counted as info."""
    n = Counter(index.outcomes)
    return {"ok": n[OUTCOME_CODE["ok"]], "fail": n[OUTCOME_CODE["fail"]],
            "info": n[OUTCOME_CODE["info"]] + n[0], "unfinished": n[0]}


def all_channels(run, index, read_channels, final, tail_channels):
    """Every channel mentioned anywhere, so none is skipped silently."""
    chans = list(run.get("channels") or [])
    extra = set(index.by_channel)
    extra |= read_channels
    for channels in (final.get("nodes") or {}).values():
        if channels:
            extra |= set(channels)
    extra |= tail_channels
    extra.discard(None)
    return chans + sorted(extra - set(chans), key=str)


def tally(kinds_found):
    """The results.json counters: distinct anomalies per counter."""
    counters = {name: 0 for name in SAFETY_COUNTERS}
    kinds = Counter()
    for kind in kinds_found:
        counters[KIND_COUNTER[kind]] += 1
        kinds[kind] += 1
    return counters, dict(kinds)


def check_history(history, tails, final, nemesis, run) -> dict:
    """Checks one run and returns the results.json dict.

    history, tails and nemesis are lists (or any iterables) of records,
    final the final.json dict, run the run.json dict (any of tails, final,
    nemesis, run may be None).
    """
    return check_streams(((rec, rec) for rec in history), tails, final, nemesis, run,
                         RecordStore())


def check_streams(history, tails, final, nemesis, run, store) -> dict:
    """The checker proper: history yields (handle, record) for store.

    final is used first: with the reference logs known, every read result
    and tail message is checked as it streams by and then dropped; only
    compact per-attempt records and per-anomaly evidence are kept.
    """
    tails = tails if tails is not None else []
    nemesis = list(nemesis or [])
    final = final or {"nodes": {}}
    run = run or {}
    warnings = Warnings()
    refs = References(final)
    index = HistoryIndex(store, refs.get)
    anomalies = Anomalies(index.has_records)
    last = LastTime()

    def on_read(op, ordinal):
        check_read(op, ordinal, refs, index, anomalies, warnings, stream.read_counts)

    stream = HistoryStream(index, warnings, on_read)
    for handle, rec in history:
        last.see(rec)
        stream.add(rec, handle)
    stream.end()

    anomalies.base = (A_TAILS,)
    warnings.base = (W_TAILS,)
    tail_check = TailChecker(refs, index, anomalies, warnings, stream.retention)
    for ev in tails:
        last.see(ev)
        tail_check.add(ev)

    channels = all_channels(run, index, stream.read_channels, final, tail_check.channels)
    refs_by_channel = {ch: refs.get(ch) for ch in channels}
    warnings.base = (W_FINAL,)
    unreadable = sorted(n for n, v in (final.get("nodes") or {}).items() if v is None)
    if unreadable:
        warnings.add("final state unreadable on %s" % ", ".join(unreadable))
    if not any(v is not None for v in (final.get("nodes") or {}).values()):
        warnings.add("no node's final state could be read: lost/divergence checks skipped")

    anomalies.base = (A_FINAL,)
    check_final_logs(final, channels, refs_by_channel, index, anomalies, stream.retention)
    anomalies.base = (A_ACKED,)
    warnings.base = (W_ACKED,)
    acked = check_acked(index, refs, anomalies, warnings, stream.retention)

    def holds(when):
        what, ch, nonce = when[:3]
        state = index.state(ch, nonce)
        if what == "unappended":
            return state is None
        if what == "payload":
            return state is not None and not index.has_payload(state, when[3])
        return index.failed_only(ch, nonce) is True

    anomalies.resolve(holds)
    warnings.base = (W_FAULTS,)
    avail = availability(index, nemesis, run_end_time(run, last, nemesis), warnings)

    found = anomalies.all()
    counters, kinds = tally(a.kind for a in found)
    kept = select_fairly(found, ANOMALY_CAP, kind_of=lambda a: a.kind)
    read_counts = stream.read_counts
    results = {"valid": all(v == 0 for v in counters.values()), "acked": acked}
    results.update(counters)
    results.update({
        "run": {k: run.get(k) for k in ("seed", "time", "nemeses", "nodes", "channels",
                                        "faulty_build")},
        # An unreadable node alone does not make the check incomplete: an
        # acked write is on a majority, so a readable node still holds it.
        "complete": all(r is not None for r in refs_by_channel.values()),
        "attempts": attempt_counts(index),
        "logical_appends": len(index.states),
        "reads": {k: read_counts.get(k, 0)
                  for k in ("ok", "fail", "info", "unfinished", "messages")},
        "tail_messages": tail_check.messages,
        "tailers": tail_check.tailers,
        "skipped_faults": avail["skipped_faults"],
        "faults": avail["faults"],
        "availability_overall": avail["availability_overall"],
        "healthy_availability": avail["healthy_availability"],
        "healthy_attempts": avail["healthy_attempts"],
        "final_converged": final.get("converged"),
        "unreadable_nodes": unreadable,
        "reference": {ch: ({"node": r.node, "length": len(r.messages)} if r else None)
                      for ch, r in refs_by_channel.items()},
        "anomaly_kinds": kinds,
        "anomalies": [a.as_dict(index.expand) for a in kept],
        "anomalies_truncated": len(found) - len(kept),
        "warnings": warnings.as_list(),
    })
    return results


# ---------------------------------------------------------------------------
# Files


def iter_jsonl(path, warnings_out, offsets=False):
    """Yields a JSON-lines file's records one at a time, as (byte offset,
    record) pairs if offsets.  Malformed lines (a torn last line from a
    killed harness) are skipped and counted; a missing file yields nothing.
    """
    if not os.path.exists(path):
        warnings_out.append("%s missing" % os.path.basename(path))
        return
    bad = 0
    pos = 0
    with open(path, "rb") as fh:
        for raw in fh:
            start = pos
            pos += len(raw)
            try:
                line = raw.decode("utf-8").strip()
                if not line:
                    continue
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(rec, dict):
                bad += 1
            elif offsets:
                yield start, rec
            else:
                yield rec
    if bad:
        warnings_out.append("%s: %d malformed lines skipped" % (os.path.basename(path), bad))


def read_jsonl(path, warnings_out, required=False):
    """Reads a whole JSON-lines file (see iter_jsonl).

    A missing optional file is an empty list; a missing required one raises.
    """
    if required and not os.path.exists(path):
        raise FileNotFoundError(path)
    return list(iter_jsonl(path, warnings_out))


def read_json(path, warnings_out, object_hook=None, streaming=False):
    """Reads a JSON file, or None (with a warning) when it is missing or torn.

    streaming reads a big file without holding its text (see
    load_json_streaming); any trouble falls back to json.load for its
    exact error message.
    """
    try:
        if streaming:
            try:
                with open(path, encoding="utf-8") as fh:
                    return load_json_streaming(fh, object_hook)
            except ValueError:
                pass
        with open(path, encoding="utf-8") as fh:
            return json.load(fh, object_hook=object_hook)
    except FileNotFoundError:
        warnings_out.append("%s missing" % os.path.basename(path))
    except ValueError as e:
        warnings_out.append("%s unreadable: %s" % (os.path.basename(path), e))
    return None


def check(run_dir, write=True) -> dict:
    """Checks a run folder; writes results.json and summary.txt there unless write=False.

    final.json is read first; history.jsonl and tails.jsonl are then
    streamed, so memory follows the number of append attempts and the final
    logs, not the volume of read results and tail messages.
    """
    def path(name):
        return os.path.join(run_dir, name)

    w_run, w_history, w_tails, w_final, w_nemesis = [], [], [], [], []
    run = read_json(path("run.json"), w_run) or {}
    if not os.path.exists(path("history.jsonl")):
        raise FileNotFoundError(path("history.jsonl"))
    final = read_json(path("final.json"), w_final, object_hook=intern_messages(),
                      streaming=True)
    nemesis = read_jsonl(path("nemesis.jsonl"), w_nemesis)
    store = RecordStore(path("history.jsonl"))
    try:
        results = check_streams(iter_jsonl(path("history.jsonl"), w_history, offsets=True),
                                iter_jsonl(path("tails.jsonl"), w_tails),
                                final, nemesis, run, store)
    finally:
        store.close()
    w_deletes = []
    if run.get("deletes") or os.path.exists(path("deletes.jsonl")):
        records = read_jsonl(path("deletes.jsonl"), w_deletes)
        del_tails = read_jsonl(path("del_tails.jsonl"), w_deletes)
        results["deletes"] = check_deletes.check(records, del_tails, final or {}, w_deletes,
                                                 parse_ts)
        if results["deletes"]["anomaly_count"]:
            results["valid"] = False
    results["warnings"] = (w_run + w_history + w_tails + w_final + w_nemesis + w_deletes
                           + results["warnings"])
    if final is None:
        results["complete"] = False
    if write:
        with open(path("results.json"), "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, sort_keys=False, default=str)
            fh.write("\n")
        with open(path("summary.txt"), "w", encoding="utf-8") as fh:
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
    found = sum(results["anomaly_kinds"].values())
    total = found + results.get("deletes", {}).get("anomaly_count", 0)
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
    if "deletes" in results:
        lines.extend(check_deletes.summary_lines(results["deletes"]))
    for w in results["warnings"][:10]:
        lines.append("warning: " + w)
    if found:
        shown = select_fairly(results["anomalies"], SUMMARY_ANOMALIES)
        lines.append("anomalies (%d shown of %d):" % (len(shown), found))
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

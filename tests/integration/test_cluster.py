#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Three-node clusters on loopback: replication, failures, refusals.

Every test compares actual logs: each channel's full log is read from every
node (after_seq paging, limit 1000) and compared message by message (seq,
ts, nonce, payload), and against what the clients were acknowledged.

1. appends through every node commit gapless and every node ends with the
   same logs; a retry through another node answers the original seq/ts;
2. kill -9 of the node leading the channels' shards while clients stream
   appends (retrying the same nonce until acknowledged): the unavailability
   window is measured; after a restart nothing acknowledged is lost or
   doubled and the logs are identical;
3. a paused (SIGSTOP) minority catches up; a paused majority stops commits
   (the remaining node answers 503 or nothing, never 201) while its reads
   still serve the old prefix;
4. restarts of the whole cluster, SIGTERM and kill -9 of all at once;
5. leaders spread over the nodes;
6. --bootstrap of the same cluster on a used data dir starts it as it is,
   another member list is refused; a node of another cluster
   (another --bootstrap list) is refused by the peers and never leads.
"""

import http.client
import os
import random
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Client, Cluster, Node, NodeTestCase, free_port,  # noqa: E402
                     logs_difference, msg_payload_bytes, run_tests, ts_key)

PAYLOADS = ("", "x" * 10, "h\u00e9llo \u2713 \U0001F600", "y" * 300, "z" * 2000)


def make_payload(rnd, nonce):
    return "%s %s" % (nonce, rnd.choice(PAYLOADS))


class RetryWriters:
    """Threads appending to `channels` through random nodes of targets().
    Each logical append keeps its nonce and is retried (connection error,
    503, timeout) through random nodes until acknowledged (201, or 200 with
    duplicate:true after an earlier attempt). stop() lets each thread finish
    the append it is on."""

    def __init__(self, cluster, channels, tag, n=4, targets=None, pace=0.03,
                 req_timeout=5.0, give_up=90.0, start=True):
        self.cluster = cluster
        self.channels = list(channels)
        self.tag = tag
        self.targets = targets or cluster.live
        self.pace = pace
        self.req_timeout = req_timeout
        self.give_up = give_up
        self.acked = {}        # (ch, nonce) -> (seq, ts, payload)
        self.sent = {}         # (ch, nonce) -> payload, every nonce ever sent
        self.ack_times = []    # (time.monotonic(), ch)
        self.outcomes = Counter()
        self.problems = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]
        if start:
            for t in self.threads:
                t.start()

    def _problem(self, text):
        with self.lock:
            self.problems.append(text)

    def _run(self, tid):
        rnd = random.Random("%s-%d-%d" % (self.tag, tid, random.getrandbits(32)))
        clients = {}
        i = 0
        try:
            while not self.stopping.is_set():
                ch = rnd.choice(self.channels)
                nonce = "%s-w%d-%05d" % (self.tag, tid, i)
                i += 1
                payload = make_payload(rnd, nonce)
                with self.lock:
                    self.sent[(ch, nonce)] = payload
                if not self._append_until_acked(rnd, clients, ch, nonce, payload):
                    return
                if self.pace:
                    self.stopping.wait(self.pace)
        finally:
            for c in clients.values():
                c.close()

    def _append_until_acked(self, rnd, clients, ch, nonce, payload, maybe_written=False):
        """maybe_written: an earlier attempt (made elsewhere) may have
        written it. An answer of duplicate:true is only possible after an
        attempt whose outcome was unknown (no answer, or 503 other than
        "unavailable", which says nothing was written)."""
        t0 = time.monotonic()
        first = not maybe_written
        history = []
        while True:
            if time.monotonic() - t0 > self.give_up:
                self._problem("%s/%s: not acknowledged within %.0fs (%r)"
                              % (ch, nonce, self.give_up, dict(self.outcomes)))
                return False
            live = self.targets()
            if not live:
                time.sleep(0.05)
                continue
            node = rnd.choice(live)
            c = clients.get(node.port)
            if c is None:
                c = clients[node.port] = Client(node.port, timeout=self.req_timeout)
            try:
                r = c.append(ch, nonce, payload)
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.outcomes[type(e).__name__] += 1
                history.append("node %d: %s" % (node.node_id, type(e).__name__))
                if not isinstance(e, ConnectionRefusedError):
                    maybe_written = True
                time.sleep(0.05)
                continue
            with self.lock:
                self.outcomes[r.status] += 1
            if r.status == 503:
                code = error_code(r)
                history.append("node %d: 503 %s" % (node.node_id, code))
                if code != "unavailable":
                    maybe_written = True
                time.sleep(0.05)
                continue
            if r.status not in (200, 201):
                self._problem("%s/%s via node %d -> %r" % (ch, nonce, node.node_id, r))
                return False
            j = r.json()
            if j.get("channel") != ch or j.get("duplicate") is not (r.status == 200):
                self._problem("%s/%s via node %d: bad answer %r" % (ch, nonce, node.node_id, r))
                return False
            if j["duplicate"] and first and not history:
                self._problem("%s/%s: duplicate:true on the first attempt %r" % (ch, nonce, r))
                return False
            if j["duplicate"] and not maybe_written:
                self._problem("%s/%s via node %d: %r, but every earlier attempt was refused "
                              "with 'unavailable' (nothing was written): %s"
                              % (ch, nonce, node.node_id, r, history))
                return False
            with self.lock:
                self.acked[(ch, nonce)] = (j["seq"], j["ts"], payload)
                self.ack_times.append((time.monotonic(), ch))
            return True

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def stop(self, timeout=120.0):
        self.stopping.set()
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        hung = [t for t in self.threads if t.is_alive()]
        assert not hung, "%d writer thread(s) hung" % len(hung)


def error_code(r):
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def max_gap(times, start=None, end=None):
    """(gap seconds, gap start) of the longest gap between consecutive times
    in [start, end] (the bounds count as events)."""
    ts = sorted(t for t in times if (start is None or t >= start) and (end is None or t <= end))
    if start is not None:
        ts.insert(0, start)
    if end is not None:
        ts.append(end)
    best = (0.0, None)
    for a, b in zip(ts, ts[1:]):
        if b - a > best[0]:
            best = (b - a, a)
    return best


class ClusterTest(NodeTestCase):

    # ------------------------------------------------------------ helpers ---
    def new_cluster(self, n=3, args=()):
        cl = Cluster(self, n=n, args=args)
        cl.start()
        t0 = time.time()
        cl.wait_settled(20)
        print("  cluster settled %.1fs after the start" % (time.time() - t0))
        return cl

    def probe_shards(self, cl, names, acked, sent, enough=None):
        """{channel: shard}, learned on a quiet cluster by appending one
        message to each channel in turn and seeing which shard's last_index
        grew. The probe messages go into acked/sent. enough(mapping) stops
        early."""
        out = {}
        c = cl.live()[0].client(timeout=10)
        for ch in names:
            before = self._last_indexes(cl)
            nonce = "probe-%s" % ch
            payload = "probe of %s" % ch
            sent[(ch, nonce)] = payload
            seq, ts = c.append_ok(ch, nonce, payload)
            acked[(ch, nonce)] = (seq, ts, payload)
            after = self._last_indexes(cl)
            grown = [i for i in range(len(after)) if after[i] != before[i]]
            if len(grown) == 1:
                out[ch] = grown[0]
            if enough is not None and enough(out):
                break
        return out

    def _last_indexes(self, cl):
        st = cl.statuses()
        self.assertTrue(st and all(v is not None for v in st.values()), st)
        n = len(next(iter(st.values()))["shards"])
        return [max(v["shards"][i]["last_index"] for v in st.values()) for i in range(n)]

    def verify(self, logs, channels, acked, sent, all_acked=True):
        """logs ({node: {ch: msgs}}) identical on every node; each channel
        gapless with ts increasing and nonces unique; nothing that was not
        sent; every acknowledged append there once with its seq, ts and
        payload; with all_acked, nothing else either."""
        why = logs_difference(logs, channels)
        self.assertIsNone(why, why)
        ref = logs[min(logs)]
        where = {}
        for ch in channels:
            msgs = ref[ch]
            self.assertChannelLog(msgs, ch)
            for m in msgs:
                key = (ch, m["nonce"])
                self.assertIn(key, sent, "%s seq %d: nonce %r was never sent" % (ch, m["seq"], m["nonce"]))
                self.assertEqual(msg_payload_bytes(m), sent[key].encode("utf-8"),
                                 "%s seq %d: payload differs from what was sent" % (ch, m["seq"]))
                where[key] = m
        for key, (seq, ts, payload) in acked.items():
            self.assertIn(key, where, "acknowledged append %s (seq %d) missing" % (key, seq))
            m = where[key]
            self.assertEqual((m["seq"], m["ts"]), (seq, ts),
                             "acknowledged append %s answered seq/ts %r but is stored at %r"
                             % (key, (seq, ts), (m["seq"], m["ts"])))
        if all_acked:
            extra = sorted(set(where) - set(acked))
            self.assertEqual(extra, [], "in the log but never acknowledged")
        return sum(len(v) for v in ref.values())

    def expect_complete(self, acked):
        """A want() for wait_converged: every acknowledged append is there."""
        def want(node_logs):
            have = {(ch, m["nonce"]) for ch, msgs in node_logs.items() for m in msgs}
            return all(k in have for k in acked)
        return want

    def finish_writers(self, w):
        w.stop()
        self.assertEqual(w.problems, [], "writer problems (outcomes %r)" % dict(w.outcomes))
        self.assertGreater(len(w.acked), 0)

    # ----------------------------------------------------------------- 1 ---
    def test_1_appends_through_every_node(self):
        cl = self.new_cluster()
        channels = ["rep-%d" % i for i in range(10)]
        acked = {}      # (ch, nonce) -> (seq, ts, payload, via node id)
        sent = {}
        problems = []
        lock = threading.Lock()

        def writer(tid):
            node = cl.nodes[tid % 3]
            rnd = random.Random("t1-%d-%d" % (tid, random.getrandbits(32)))
            c = Client(node.port, timeout=15)
            try:
                for i in range(40):
                    ch = rnd.choice(channels)
                    nonce = "t1-w%d-%03d" % (tid, i)
                    payload = make_payload(rnd, nonce)
                    with lock:
                        sent[(ch, nonce)] = payload
                    r = c.append(ch, nonce, payload)
                    if r.status != 201 or r.json().get("duplicate") is not False:
                        with lock:
                            problems.append("%s/%s via node %d -> %r" % (ch, nonce, node.node_id, r))
                        return
                    j = r.json()
                    with lock:
                        acked[(ch, nonce)] = (j["seq"], j["ts"], payload, node.node_id)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    problems.append("node %d: %r" % (node.node_id, e))
            finally:
                c.close()

        t0 = time.time()
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(problems, [])
        print("  %d appends through 3 nodes in %.1fs" % (len(acked), time.time() - t0))
        self.assertEqual(len(acked), 240)
        # Acknowledged seqs: gapless per channel; ts in seq order increasing.
        for ch in channels:
            mine = sorted((v[0], ts_key(v[1])) for k, v in acked.items() if k[0] == ch)
            self.assertEqual([s for s, _ in mine], list(range(1, len(mine) + 1)),
                             "%s: acknowledged seqs not gapless" % ch)
            tss = [t for _, t in mine]
            self.assertEqual(tss, sorted(set(tss)), "%s: ts not strictly increasing by seq" % ch)
        acks = {k: v[:3] for k, v in acked.items()}
        logs = cl.wait_converged(channels, timeout=30, want=self.expect_complete(acks))
        self.assertEqual(sorted(logs), [1, 2, 3])
        self.assertEqual(self.verify(logs, channels, acks, sent), 240)
        # Retries through another node than the first: the original answer.
        for key in random.sample(sorted(acked), 15):
            seq, ts, payload, via = acked[key]
            other = cl[random.choice([i for i in (1, 2, 3) if i != via])]
            r = other.client().append(key[0], key[1], payload)
            self.assertEqual(r.status, 200, "retry of %s via node %d: %r" % (key, other.node_id, r))
            j = r.json()
            self.assertEqual((j["channel"], j["seq"], j["ts"], j["duplicate"]),
                             (key[0], seq, ts, True), "retry of %s via node %d" % (key, other.node_id))
        after = cl.fetch_logs(channels)
        self.assertEqual(after, logs, "retries changed a log")
        for nid, st in cl.statuses().items():
            self.assertTrue(all(p["connected"] for p in st["peers"]), "node %d peers: %r" % (nid, st["peers"]))

    # ----------------------------------------------------------------- 2 ---
    def test_2_leader_killed_during_appends(self):
        cl = self.new_cluster()
        lead = cl.wait_leaders(30)
        counts = Counter(lead)
        victim = cl[counts.most_common(1)[0][0]]
        victim_shards = {i for i, l in enumerate(lead) if l == victim.node_id}
        acked, sent = {}, {}
        mapping = self.probe_shards(
            cl, ["lf-%d" % i for i in range(60)], acked, sent,
            enough=lambda m: sum(1 for s in m.values() if s in victim_shards) >= 6)
        channels = sorted(ch for ch, s in mapping.items() if s in victim_shards)
        self.assertGreaterEqual(len(channels), 3, "no channels found on node %d's shards %r: %r"
                                % (victim.node_id, victim_shards, mapping))
        # Keep only the probe messages of the channels under test.
        acked = {k: v for k, v in acked.items() if k[0] in channels}
        print("  killing node %d, leader of shards %s; channels %s"
              % (victim.node_id, sorted(victim_shards), channels))
        # The client timeout exceeds the server's own forward deadline, so
        # the window measures when the server answers, not when we give up.
        w = RetryWriters(cl, channels, "t2", n=4, req_timeout=10.0)
        time.sleep(1.5)
        n_before = w.n_acked()
        self.assertGreater(n_before, 0, "nothing acknowledged before the kill")
        t_kill = time.monotonic()
        victim.kill9()
        # The survivors elect new leaders for the victim's shards...
        t_elected = None
        deadline = time.time() + 30
        while t_elected is None and time.time() < deadline:
            lead, _ = cl.leaders()
            if lead is not None and all(lead[i] not in (None, victim.node_id) for i in victim_shards):
                t_elected = time.monotonic()
            else:
                time.sleep(0.05)
        # ... and acknowledgements resume; then a little more.
        while w.n_acked() < n_before + 30 and time.time() < deadline and not w.problems:
            time.sleep(0.05)
        t_resumed = time.monotonic()
        time.sleep(1.0)
        cl.start([victim])
        t_restart = time.monotonic()
        time.sleep(1.5)
        self.finish_writers(w)
        gap, at = max_gap([t for t, _ in w.ack_times], t_kill, t_restart)
        whole, whole_at = max_gap([t for t, _ in w.ack_times])
        print("  unavailability window after kill -9 of the leader: %.2fs (longest gap between "
              "acks, starting %.2fs after the kill); new leaders seen in /v1/status after "
              "%s; acks resumed within %.2fs; longest gap in the whole run %.2fs; %d acks, "
              "outcomes %r"
              % (gap, (at or t_kill) - t_kill,
                 "%.2fs" % (t_elected - t_kill) if t_elected else "NEVER",
                 t_resumed - t_kill, whole, len(w.acked), dict(w.outcomes)))
        self.assertIsNotNone(t_elected, "no new leaders for the killed node's shards within 30s")
        self.assertGreater(w.n_acked(), n_before + 30, "appends did not resume after the kill")
        self.assertLess(gap, 10.0, "unavailability window too long")
        acked.update(w.acked)
        sent.update(w.sent)
        logs = cl.wait_converged(channels, timeout=60, nodes=cl.nodes, want=self.expect_complete(acked))
        n = self.verify(logs, channels, acked, sent)
        print("  %d messages, identical on the 3 nodes" % n)
        new_lead = cl.wait_leaders(30)
        print("  leaders after the restart: %s" % dict(Counter(new_lead)))

    # ----------------------------------------------------------------- 3 ---
    def test_3a_paused_follower_catches_up(self):
        cl = self.new_cluster()
        lead = cl.wait_leaders(30)
        paused = cl[random.choice((1, 2, 3))]
        acked, sent = {}, {}
        mapping = self.probe_shards(cl, ["pf-%d" % i for i in range(40)], acked, sent,
                                    enough=lambda m: len(m) >= 8)
        channels = sorted(mapping)
        print("  pausing node %d; it leads the shards of %s"
              % (paused.node_id, [ch for ch in channels if lead[mapping[ch]] == paused.node_id]))
        w = RetryWriters(cl, channels, "t3a", n=4)
        time.sleep(1.0)
        paused.pause()
        t_pause = time.monotonic()
        time.sleep(3.0)
        during = w.n_acked()
        paused.resume()
        t_resume = time.monotonic()
        time.sleep(1.5)
        self.finish_writers(w)
        gap, _ = max_gap([t for t, _ in w.ack_times], t_pause, t_resume)
        print("  %d acks (%d before the resume); longest gap while paused %.2fs; outcomes %r"
              % (len(w.acked), during, gap, dict(w.outcomes)))
        self.assertLess(gap, 10.0)
        acked.update(w.acked)
        sent.update(w.sent)
        logs = cl.wait_converged(channels, timeout=60, nodes=cl.nodes, want=self.expect_complete(acked))
        self.verify(logs, channels, acked, sent)

    def test_3b_paused_majority_blocks_commits(self):
        cl = self.new_cluster()
        channels = ["pm-%d" % i for i in range(6)]
        w = RetryWriters(cl, channels, "t3b-pre", n=3)
        time.sleep(1.5)
        self.finish_writers(w)
        acked, sent = dict(w.acked), dict(w.sent)
        prefix = cl.wait_converged(channels, timeout=30, want=self.expect_complete(acked))
        self.verify(prefix, channels, acked, sent)
        rest = cl[random.choice((1, 2, 3))]
        stopped = [x for x in cl.nodes if x is not rest]
        for x in stopped:
            x.pause()
        t_pause = time.time()
        # Appends through the remaining node: 503 or no answer, never 201.
        pending = {}   # (ch, nonce) -> payload
        unknown = set()  # (ch, nonce) with an attempt of unknown outcome
        bad = []
        outcomes = Counter()
        lock = threading.Lock()

        def attempt(i):
            ch = channels[i % len(channels)]
            nonce = "t3b-blocked-%d" % i
            payload = "blocked %d" % i
            with lock:
                pending[(ch, nonce)] = payload
                sent[(ch, nonce)] = payload
            c = Client(rest.port, timeout=4.0)
            try:
                while time.time() < t_pause + 6.0:
                    try:
                        r = c.append(ch, nonce, payload)
                    except (OSError, http.client.HTTPException) as e:
                        with lock:
                            outcomes[type(e).__name__] += 1
                            unknown.add((ch, nonce))
                        continue
                    with lock:
                        outcomes["%d %s" % (r.status, error_code(r))] += 1
                        if error_code(r) != "unavailable":
                            unknown.add((ch, nonce))
                    if r.status != 503:
                        with lock:
                            bad.append("%s/%s through the lone node %d -> %r"
                                       % (ch, nonce, rest.node_id, r))
                        return
                    code = error_code(r)
                    if code not in ("unavailable", "outcome_unknown") or "retry-after" not in r.headers:
                        with lock:
                            bad.append("503 without a known code or Retry-After: %r %r"
                                       % (r, r.headers))
                        return
                    time.sleep(0.2)
            finally:
                c.close()

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        # Meanwhile its old prefix still reads, and its status answers.
        time.sleep(1.0)
        rc = Client(rest.port, timeout=5.0)
        try:
            reads = {ch: rc.read_all(ch) for ch in channels}
            st = rc.status()
        finally:
            rc.close()
        for t in threads:
            t.join(30)
        print("  node %d alone: outcomes of appends %r; leaders it sees %r"
              % (rest.node_id, dict(outcomes), [s["leader"] for s in st["shards"]]))
        self.assertEqual(reads, prefix[rest.node_id], "reads on the lone node changed")
        self.assertEqual(bad, [])
        self.assertGreater(sum(outcomes.values()), 0)
        for x in stopped:
            x.resume()
        # The blocked appends, retried with the same nonce: exactly once.
        w2 = RetryWriters(cl, channels, "t3b-retry", n=0)
        rnd = random.Random(random.getrandbits(32))
        clients = {}
        for (ch, nonce), payload in sorted(pending.items()):
            self.assertTrue(w2._append_until_acked(rnd, clients, ch, nonce, payload,
                                                   maybe_written=(ch, nonce) in unknown),
                            w2.problems)
        for c in clients.values():
            c.close()
        acked.update(w2.acked)
        print("  retries after SIGCONT: %d acks, %d of them duplicate answers; outcomes %r"
              % (len(w2.acked), w2.outcomes[200], dict(w2.outcomes)))
        logs = cl.wait_converged(channels, timeout=60, want=self.expect_complete(acked))
        self.verify(logs, channels, acked, sent)

    # ----------------------------------------------------------------- 4 ---
    def test_4_restart_whole_cluster(self):
        cl = self.new_cluster()
        channels = ["rs-%d" % i for i in range(6)]
        w = RetryWriters(cl, channels, "t4a", n=4)
        time.sleep(1.5)
        self.finish_writers(w)
        acked, sent = dict(w.acked), dict(w.sent)
        t0 = time.time()
        cl.terminate_all()
        cl.start()
        cl.wait_leaders(30)
        print("  SIGTERM of all + restart: leaders again after %.1fs" % (time.time() - t0))
        logs = cl.wait_converged(channels, timeout=30, want=self.expect_complete(acked))
        self.verify(logs, channels, acked, sent)
        # kill -9 of all at once while appends stream, then a restart: the
        # writers keep retrying the same nonces meanwhile.
        w = RetryWriters(cl, channels, "t4b", n=4)
        time.sleep(1.5)
        n_kill = w.n_acked()
        cl.kill9_all()
        t0 = time.time()
        time.sleep(0.3)
        cl.start()
        cl.wait_leaders(30)
        print("  kill -9 of all + restart: leaders again after %.1fs" % (time.time() - t0))
        time.sleep(1.0)
        self.finish_writers(w)
        self.assertGreater(w.n_acked(), n_kill, "no appends acknowledged after the restart")
        acked.update(w.acked)
        sent.update(w.sent)
        logs = cl.wait_converged(channels, timeout=60, want=self.expect_complete(acked))
        n = self.verify(logs, channels, acked, sent)
        print("  %d messages, identical on the 3 nodes; outcomes %r" % (n, dict(w.outcomes)))

    # ----------------------------------------------------------------- 5 ---
    def test_5_leaders_spread(self):
        cl = Cluster(self, n=3)
        cl.start()
        deadline = time.time() + 15
        while True:
            lead, _ = cl.leaders()
            dist = Counter(lead or [])
            done = lead is not None and None not in lead and \
                all(4 <= dist[i] <= 6 for i in (1, 2, 3))
            if done or time.time() > deadline:
                break
            time.sleep(0.2)
        print("  leaders per shard %r; per node %r" % (lead, {i: dist[i] for i in (1, 2, 3)}))
        self.assertIsNotNone(lead)
        self.assertEqual(len(lead), 16)
        self.assertNotIn(None, lead, "a shard without an agreed leader")
        for i in (1, 2, 3):
            self.assertTrue(4 <= dist[i] <= 6, "node %d leads %d of 16 shards: %r" % (i, dist[i], dist))

    # ----------------------------------------------------------------- 6 ---
    def test_6a_bootstrap_on_used_data_dir(self):
        cl = self.new_cluster()
        channels = ["bs-%d" % i for i in range(3)]
        w = RetryWriters(cl, channels, "t6a", n=2)
        time.sleep(0.8)
        victim = cl[3]
        victim.terminate()
        listing = sorted(os.listdir(victim.data))
        # Another member list on this data dir: refused, nothing touched.
        other = cl.members.replace(":%d" % cl[2].peer_port, ":%d" % free_port())
        self.assertNotEqual(other, cl.members)
        p = victim.spawn(["--bootstrap", other])
        try:
            rc = p.wait(30)
        except Exception:  # noqa: BLE001
            p.kill()
            p.wait(10)
            self.fail("heraldd --bootstrap of another cluster on a used data dir kept running:\n%s"
                      % victim.log_tail(20))
        text = victim.log()
        print("  other list refused with exit code %d: %s"
              % (rc, text.strip().splitlines()[-1:] if text.strip() else ""))
        self.assertNotEqual(rc, 0, "heraldd --bootstrap of another cluster exited 0")
        self.assertIn("--bootstrap", text, "no clear message: %r" % text)
        self.assertIn(victim.data.rstrip("/"), text, "message does not name the data dir: %r" % text)
        self.assertEqual(sorted(os.listdir(victim.data)), listing)
        # The same list (a unit file's unchanged command line): it starts
        # as it is, says so, and catches up with what it missed.
        victim.spawn(["--bootstrap", cl.members])
        victim.wait_ready(30)
        self.assertIn("nothing is bootstrapped again", victim.log())
        self.finish_writers(w)
        logs = cl.wait_converged(channels, timeout=30, nodes=cl.nodes,
                                 want=self.expect_complete(w.acked))
        self.verify(logs, channels, w.acked, w.sent)

    def test_6b_other_cluster_never_joins(self):
        cl = self.new_cluster()
        channels = ["oc-%d" % i for i in range(4)]
        # Node "1" of another cluster: the same peers, its own address: a
        # different member list, hence a different cluster id. The lowest
        # id dials, so it knocks on nodes 2 and 3.
        rogue_peer = free_port()
        members = "1=127.0.0.1:%d,2=127.0.0.1:%d,3=127.0.0.1:%d" % (
            rogue_peer, cl[2].peer_port, cl[3].peer_port)
        rogue = Node(self.tmp, name="rogue", args=["--id", "1"], peer_port=rogue_peer)
        rogue.node_id = 1
        self.nodes.append(rogue)
        rogue.spawn(["--bootstrap", members])
        rogue.wait_ready(30)
        w = RetryWriters(cl, channels, "t6b", n=3, targets=lambda: [x for x in cl.live()])
        t_end = time.time() + 4.0
        rc = Client(rogue.port, timeout=5)
        seen_leader = []
        rogue_st = None
        while time.time() < t_end:
            rogue_st = rc.status()
            seen_leader += [(s["shard"], s["leader"], s["state"]) for s in rogue_st["shards"]
                            if s["leader"] != 0 or s["state"] == "leader"]
            time.sleep(0.2)
        r = rc.append(channels[0], "rogue-1", "to the rogue")
        rc.close()
        self.finish_writers(w)
        print("  rogue cluster id %s vs %s; rogue append -> %d; rogue peers %r"
              % (rogue_st["cluster_id"], cl.status(cl[1])["cluster_id"], r.status,
                 [(p["id"], p["connected"]) for p in rogue_st["peers"]]))
        self.assertNotEqual(rogue_st["cluster_id"], cl.status(cl[1])["cluster_id"])
        self.assertEqual(seen_leader, [], "the rogue node saw or became a leader")
        self.assertFalse(any(p["connected"] for p in rogue_st["peers"]), rogue_st["peers"])
        self.assertNotIn(r.status, (200, 201), "the rogue node accepted an append: %r" % r)
        refusals = sum("another cluster" in x.log() for x in (cl[2], cl[3]))
        self.assertGreater(refusals, 0, "neither node 2 nor 3 logged refusing another cluster")
        for x in cl.nodes:
            st = cl.status(x)
            self.assertEqual(sorted(p["id"] for p in st["peers"]),
                             sorted(i for i in (1, 2, 3) if i != x.node_id))
        logs = cl.wait_converged(channels, timeout=30, want=self.expect_complete(w.acked))
        self.verify(logs, channels, w.acked, w.sent)
        self.assertEqual(cl.wait_leaders(10, nodes=cl.nodes).count(None), 0)


if __name__ == "__main__":
    run_tests()

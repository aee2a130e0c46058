#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A WebSocket subscriber on a follower of a three-node cluster while the
leader of its channels' shards is killed (kill -9) mid-stream.

Appends go through every live node (retried with the same nonce until
acknowledged, as in test_cluster.py). The subscriber, on one follower,
resumes from its last seqs whenever its connection ends. At the end, each
channel's messages it received equal, byte for byte (seq, ts, nonce,
payload), the channel's full HTTP read from every surviving node, and every
acknowledged append is there once.

Runs with /usr/bin/python3 (Debian's python3-websocket).
"""

import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster  # noqa: E402  (its helpers; its tests are not collected here)
from harness import Cluster, NodeTestCase, run_tests  # noqa: E402
from ws_client import WS, ResumingWS, first_difference, metrics, require_websocket  # noqa: E402


class SubscribeClusterTest(NodeTestCase):
    # The shard probing and the log checks of test_cluster.py.
    probe_shards = test_cluster.ClusterTest.probe_shards
    _last_indexes = test_cluster.ClusterTest._last_indexes
    verify = test_cluster.ClusterTest.verify
    expect_complete = test_cluster.ClusterTest.expect_complete

    def test_follower_hears_commits_at_once(self):
        """A commit reaches a follower's state, and its subscribers, without
        waiting for the leader's next heartbeat (consensus/node/
        commit_notice.h). Appends spaced 250 ms apart, so that no later
        entry carries the commit: the leader's notice does. Waiting for
        the heartbeat instead, a message reached the follower 100-200 ms
        after its acknowledgement (ticks of 100 ms); the bound here, a
        median under 60 ms, is loose for slow (sanitizer) builds, and far
        below that."""
        cl = Cluster(self, n=3)
        cl.start()
        cl.wait_settled(30)
        lead = cl.wait_leaders(30)
        acked, sent = {}, {}
        mapping = self.probe_shards(cl, ["cn-%d" % i for i in range(8)], acked, sent,
                                    enough=lambda m: len(m) >= 1)
        self.assertTrue(mapping, "no channel's shard found")
        ch, shard = sorted(mapping.items())[0]
        leader = cl[lead[shard]]
        follower = [x for x in cl.nodes if x is not leader][0]
        notices0 = metrics(leader.port).get("herald_raft_commit_notices_total", 0)
        ws = WS(follower.port, timeout=10)
        probe_seq = max(v[0] for k, v in acked.items() if k[0] == ch)
        ws.send({"type": "subscribe", "channels": {ch: probe_seq}})
        ws.recv_until(lambda f: f.get("type") == "subscribed", 10)
        c = leader.client(timeout=10)
        delays = []
        for i in range(15):
            time.sleep(0.25)
            c.append_ok(ch, "cn-at-once-%d" % i, "m%d" % i)
            acked_at = time.time()
            f, _ = ws.recv_until(lambda f: f.get("type") == "message", 10)
            delays.append(time.time() - acked_at)
            self.assertEqual(f["payload"], "m%d" % i, f)
        ws.ws.close()
        delays.sort()
        notices = metrics(leader.port).get("herald_raft_commit_notices_total", 0) - notices0
        print("  channel %s (shard %d): leader node %d, subscriber on node %d; ack -> follower"
              " delivery ms: %s; %d commit notices"
              % (ch, shard, leader.node_id, follower.node_id,
                 " ".join("%.1f" % (d * 1e3) for d in delays), notices))
        self.assertGreaterEqual(notices, 15, "the leader told its followers of no commit")
        self.assertLess(delays[len(delays) // 2], 0.060,
                        "the follower heard of commits only with heartbeats: %r" % delays)

    def test_follower_subscriber_survives_leader_kill(self):
        cl = Cluster(self, n=3)
        cl.start()
        cl.wait_settled(30)
        lead = cl.wait_leaders(30)
        victim = cl[Counter(lead).most_common(1)[0][0]]
        victim_shards = {i for i, l in enumerate(lead) if l == victim.node_id}
        follower = [x for x in cl.nodes if x is not victim][0]
        acked, sent = {}, {}
        mapping = self.probe_shards(
            cl, ["sc-%d" % i for i in range(80)], acked, sent,
            enough=lambda m: sum(1 for s in m.values() if s in victim_shards) >= 6)
        channels = sorted(ch for ch, s in mapping.items() if s in victim_shards)
        self.assertGreaterEqual(len(channels), 3, "no channels on node %d's shards %r: %r"
                                % (victim.node_id, victim_shards, mapping))
        acked = {k: v for k, v in acked.items() if k[0] in channels}
        print("  subscriber on node %d; killing node %d, leader of shards %s; channels %s"
              % (follower.node_id, victim.node_id, sorted(victim_shards), channels))
        sub = ResumingWS(lambda: follower.port, channels)
        w = test_cluster.RetryWriters(cl, channels, "sc", n=4, req_timeout=10.0, pace=0.01)
        try:
            time.sleep(2.0)
            n_before = w.n_acked()
            self.assertGreater(n_before, 0, "nothing acknowledged before the kill")
            with sub.cond:
                got_before = sum(len(v) for v in sub.msgs.values())
            self.assertGreater(got_before, 0, "the subscriber received nothing before the kill")
            t_kill = time.monotonic()
            victim.kill9()
            deadline = time.time() + 30
            elected = False
            while time.time() < deadline and not elected:
                lead2, _ = cl.leaders()
                elected = lead2 is not None and all(lead2[i] not in (None, victim.node_id)
                                                    for i in victim_shards)
                if not elected:
                    time.sleep(0.05)
            self.assertTrue(elected, "no new leaders for shards %s within 30s" % sorted(victim_shards))
            t_elected = time.monotonic() - t_kill
            while w.n_acked() < n_before + 150 and time.time() < deadline + 30 and not w.problems:
                time.sleep(0.05)
            w.stop()
        finally:
            w.stopping.set()
        self.assertEqual(w.problems, [], "writer problems (outcomes %r)" % dict(w.outcomes))
        # The wait above ends as soon as 150 more are acknowledged, and the
        # writers stop right there: exactly 150 is success.
        self.assertGreaterEqual(w.n_acked(), n_before + 150, "appends did not resume after the kill")
        acked.update(w.acked)
        sent.update(w.sent)
        survivors = [x for x in cl.nodes if x is not victim]
        logs = cl.wait_converged(channels, timeout=60, nodes=survivors,
                                 want=self.expect_complete(acked))
        n = self.verify(logs, channels, acked, sent)
        ref = logs[follower.node_id]
        ok = sub.wait(lambda: all(len(sub.msgs[ch]) >= len(ref[ch]) for ch in channels), 60)
        time.sleep(0.5)
        sub.stop()
        with sub.cond:
            got = {ch: list(sub.msgs[ch]) for ch in channels}
            counts = {ch: len(got[ch]) for ch in channels}
        print("  new leaders %.2fs after the kill; %d messages on %d channels; the subscriber "
              "connected %d time(s) (drops: %s)"
              % (t_elected, n, len(channels), sub.connects, sub.drops or "none"))
        self.assertEqual(sub.problems[:20], [])
        self.assertTrue(ok, "the subscriber has %r, the logs %r"
                        % (counts, {ch: len(ref[ch]) for ch in channels}))
        for node_id, node_logs in logs.items():
            for ch in channels:
                why = first_difference(got[ch], node_logs[ch])
                self.assertIsNone(why, "%s vs node %d: %s" % (ch, node_id, why))


if __name__ == "__main__":
    require_websocket()
    run_tests()

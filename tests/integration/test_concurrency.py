#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Many concurrent clients on many channels: every acknowledged append is
exactly once in its channel, at the seq and ts it was acknowledged with."""

import http.client
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import NodeTestCase, SSEReader, msg_payload_bytes, run_tests  # noqa: E402

CLIENTS = 50
CHANNELS = 20
TOTAL = 10000


class ConcurrencyTest(NodeTestCase):
    def test_10000_appends_50_clients_20_channels(self):
        node = self.new_node()
        channels = ["conc-%02d" % i for i in range(CHANNELS)]
        per_client = TOTAL // CLIENTS
        acks = {}          # (channel, nonce) -> (seq, ts, payload, duplicate)
        sent = {}          # (channel, nonce) -> payload
        problems = []
        retries = [0]
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)

        # Tails on a few channels, from the start, during the load.
        tails = [SSEReader(node.port, ch, after_seq=0) for ch in channels[:3]]

        def client(tid):
            rnd = random.Random(tid)
            c = node.client(timeout=60)
            start.wait()
            for i in range(per_client):
                ch = channels[rnd.randrange(CHANNELS)]
                nonce = "c%02d-%04d" % (tid, i)
                payload = "%s|%s|%s" % (tid, i, "p" * rnd.randint(0, 200))
                with lock:
                    sent[(ch, nonce)] = payload
                attempts = 0
                uncertain = False
                while True:
                    attempts += 1
                    try:
                        r = c.append(ch, nonce, payload)
                    except (OSError, http.client.HTTPException) as e:
                        r = None
                        err = e
                    if r is not None and r.status in (200, 201):
                        j = r.json()
                        if j["channel"] != ch or j["duplicate"] != (r.status == 200):
                            with lock:
                                problems.append("bad answer %r for %s/%s" % (r, ch, nonce))
                        if j["duplicate"] and not uncertain:
                            with lock:
                                problems.append("first attempt of %s/%s answered duplicate: %r"
                                                % (ch, nonce, r))
                        with lock:
                            acks[(ch, nonce)] = (j["seq"], j["ts"], payload, j["duplicate"])
                        break
                    if r is not None and r.status != 503:
                        with lock:
                            problems.append("append %s/%s -> %r" % (ch, nonce, r))
                        break
                    # 503 or a transport error: outcome unknown, retry the same nonce.
                    uncertain = True
                    with lock:
                        retries[0] += 1
                    if attempts > 50:
                        with lock:
                            problems.append("append %s/%s: gave up: %r" % (ch, nonce, r or err))
                        break
                    time.sleep(0.05)
            c.close()

        t0 = time.time()
        threads = [threading.Thread(target=client, args=(t,)) for t in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        elapsed = time.time() - t0
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        print("\n  %d appends by %d clients in %.1fs (%.0f/s), %d retries"
              % (TOTAL, CLIENTS, elapsed, TOTAL / elapsed, retries[0]))
        self.assertEqual(problems, [])
        self.assertEqual(len(acks), TOTAL)

        c = node.client()
        logs = {}
        total = 0
        for ch in channels:
            msgs = c.read_all(ch)
            logs[ch] = msgs
            self.assertChannelLog(msgs, ch)
            total += len(msgs)
            in_log = {m["nonce"]: m for m in msgs}
            mine = {n: a for (cch, n), a in acks.items() if cch == ch}
            self.assertEqual(set(in_log), set(mine),
                             "%s: nonces in the log differ from the acknowledged ones" % ch)
            for n, (seq, ts, payload, _) in mine.items():
                m = in_log[n]
                self.assertEqual((m["seq"], m["ts"]), (seq, ts),
                                 "%s/%s acknowledged at %r but stored at %r"
                                 % (ch, n, (seq, ts), (m["seq"], m["ts"])))
                self.assertEqual(msg_payload_bytes(m), payload.encode())
        self.assertEqual(total, TOTAL)
        st = c.status()
        self.assertEqual(st["appends"]["committed"], TOTAL)

        # The tails saw exactly the logs.
        for tail in tails:
            n = len(logs[tail.channel])
            self.assertEqual(tail.wait_count(n, 60), n, "tail on %s stalled" % tail.channel)
            time.sleep(0.2)
            evs = tail.snapshot()
            self.assertEqual(len(evs), n, "tail on %s delivered extra events" % tail.channel)
            for ev, m in zip(evs, logs[tail.channel]):
                self.assertEqual(ev["id"], str(m["seq"]))
                d = dict(ev["data"])
                d.pop("channel", None)
                self.assertEqual(d, m)
            tail.close()

        # Retrying every append now answers its original result.
        sample = random.sample(sorted(acks), 300)
        for ch, nonce in sample:
            r = c.append(ch, nonce, sent[(ch, nonce)])
            self.assertEqual(r.status, 200, r)
            j = r.json()
            self.assertEqual((j["seq"], j["ts"], j["duplicate"]), acks[(ch, nonce)][:2] + (True,))

        # And all of it survives a clean restart unchanged.
        node.terminate()
        node.start()
        c = node.client()
        for ch in channels:
            self.assertEqual(c.read_all(ch), logs[ch], "%s changed across a restart" % ch)

    def test_same_nonce_from_many_clients_at_once(self):
        """Racing retries of one append: exactly one 201, all others 200
        with the same seq/ts, one message in the log."""
        node = self.new_node()
        rounds = 20
        racers = 16
        answers = [[None] * racers for _ in range(rounds)]
        barrier = threading.Barrier(racers)

        def racer(k):
            c = node.client()
            for r in range(rounds):
                barrier.wait()
                resp = c.append("race-%d" % (r % 4), "same-%d" % r, "payload %d" % r)
                answers[r][k] = (resp.status, resp.json())

        ts = [threading.Thread(target=racer, args=(k,)) for k in range(racers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        c = node.client()
        logs = {ch: c.read_all(ch) for ch in ("race-%d" % i for i in range(4))}
        for r in range(rounds):
            got = answers[r]
            self.assertNotIn(None, got, "round %d: a racer did not finish" % r)
            self.assertEqual(sum(1 for st, _ in got if st == 201), 1,
                             "round %d: %r" % (r, [st for st, _ in got]))
            self.assertEqual({st for st, _ in got}, {200, 201}, got)
            pairs = {(j["seq"], j["ts"]) for _, j in got}
            self.assertEqual(len(pairs), 1, "round %d: racers got different results %r" % (r, pairs))
            for st, j in got:
                self.assertEqual(j["duplicate"], st == 200)
        for ch, msgs in logs.items():
            self.assertChannelLog(msgs, ch)
            self.assertEqual(len(msgs), rounds // 4)


if __name__ == "__main__":
    run_tests()

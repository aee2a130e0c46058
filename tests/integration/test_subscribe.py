#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Delivery (docs/subscribe.md) against a real heraldd: the WebSocket
/v1/subscribe and the multi-channel SSE /v1/tail.

Every delivery test compares what a subscriber received, per channel, with
a full HTTP read of the channel afterwards (seq, ts, nonce and payload of
every message, in order): no gap, no repeat, nothing else.

1. one WebSocket, 10 000 channels in one subscribe at 0, appends running:
   every message of every channel, in order, exactly once;
2. resume: abrupt close, appends go on, reconnect with the last seqs:
   exactly the missed messages, then live ones;
3. history to live: channels longer than the 1024-message window (state
   and window both read) while appends run;
4. a consumer that never reads: the others get everything at pace, appends
   go on, RSS stays bounded, fell_behind counts; the stuck connection stays
   open and behind (the code closes only over the hard bound, which
   messages never push it to) and, once it reads, catches up exactly;
5. multi-channel SSE: positions 0/now/N, id lines of index:seq, the id-only
   first event, resume with Last-Event-ID; POST /v1/tail;
6. bad input: error frames and close codes, nothing written; handshake
   refusals; a subscribe/unsubscribe flood; the per-connection limit.

All of it runs twice: on the loop thread, and with --delivery-thread (the
writer thread writes the subscriber sockets).

Runs with /usr/bin/python3 (Debian's python3-websocket).
"""

import collections
import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Client, NodeTestCase, SSEReader, herald_cli, parse_raw_response,  # noqa: E402
                     raw_exchange, run_tests)
from ws_client import (WS, Appenders, WSReader, batch_fill, first_difference,  # noqa: E402
                       metrics, read_all_parallel, require_websocket, rss_kb)


class SubscribeTest(NodeTestCase):

    def assertLogEqual(self, got, log, what):
        why = first_difference(got, log)
        self.assertIsNone(why, "%s: %s" % (what, why))

    def assertReaderClean(self, r, what):
        self.assertIsNone(r.error, "%s: reader error %r" % (what, r.error))
        self.assertEqual(r.problems[:20], [], "%s: order problems" % what)

    # ----------------------------------------------------------------- 1 ---
    def test_1_ten_thousand_channels_one_socket(self):
        node = self.new_node()
        n_ch = 10000
        channels = ["s1-%05d" % i for i in range(n_ch)]
        hot = random.sample(channels, 100)

        def pick(rnd):
            return rnd.choice(hot) if rnd.random() < 0.6 else rnd.choice(channels)

        ws = WS(node.port)
        reader = WSReader(ws)
        # Appends start first: some commit before the subscription, some
        # while the 10 000 catch-ups run, most after.
        app = Appenders(lambda: node.port, pick, "s1", threads=4, n=750)
        time.sleep(0.3)
        t0 = time.time()
        ws.send({"type": "subscribe", "id": "all", "channels": {ch: 0 for ch in channels}})
        ok = reader.wait(lambda: len(reader.subscribed) >= n_ch, 90)
        t_sub = time.time() - t0
        self.assertTrue(ok, "%d subscribed frames of %d; other frames %r"
                        % (len(reader.subscribed), n_ch, reader.frames[-5:]))
        self.assertEqual(set(reader.subscribed), set(channels))
        for ch, f in reader.subscribed.items():
            self.assertIsInstance(f.get("head"), int, f)
        app.join(180)
        self.assertEqual(app.problems, [])
        total = app.count()
        self.assertEqual(total, 3000)
        ok = reader.wait(lambda: reader.n_msgs >= total, 60)
        self.assertTrue(ok, "received %d of %d messages" % (reader.n_msgs, total))
        time.sleep(0.5)  # anything extra would show now
        self.assertReaderClean(reader, "10k-channel socket")
        self.assertNotIn("error", [f.get("type") for f in reader.frames], reader.frames[:5])
        t_all = time.time() - t0
        t1 = time.time()
        logs = read_all_parallel(node.port, channels, threads=2)
        t_read = time.time() - t1
        n_log = 0
        for ch in channels:
            self.assertLogEqual(reader.msgs.get(ch, []), logs[ch], ch)
            n_log += len(logs[ch])
        self.assertEqual(n_log, total)
        self.assertEqual(reader.n_msgs, total)
        # What was acknowledged is what the subscriber saw (seq, nonce, payload).
        for (ch, seq), (nonce, raw, ts, _) in app.acked.items():
            m = reader.msgs[ch][seq - 1]
            self.assertEqual((m["seq"], m["nonce"], m["ts"]), (seq, nonce, ts))
        busy = sum(1 for ch in channels if logs[ch])
        print("  10 000 subscribed in %.1fs; %d messages on %d channels delivered %.1fs after "
              "the subscribe; %d HTTP reads to compare in %.1fs"
              % (t_sub, total, busy, t_all, n_ch, t_read))
        reader.close()

    # ----------------------------------------------------------------- 2 ---
    def test_2_resume_after_abrupt_close(self):
        node = self.new_node()
        c = node.client()
        channels = ["s2-%02d" % i for i in range(30)]
        batch_fill(c, {ch: 10 for ch in channels}, "s2h")
        app = Appenders(lambda: node.port, lambda rnd: rnd.choice(channels), "s2", threads=2,
                        pace=0.002)
        ws = WS(node.port)
        r1 = WSReader(ws)
        ws.send({"type": "subscribe", "channels": {ch: 0 for ch in channels}})
        self.assertTrue(r1.wait(lambda: r1.n_msgs >= 450, 60), "only %d messages" % r1.n_msgs)
        r1.stop()  # RST, no close frame; what was received so far counts
        self.assertReaderClean(r1, "first connection")
        last = {ch: r1.last.get(ch, 0) for ch in channels}
        n_first = r1.n_msgs
        # Appends go on while nobody is connected.
        base = app.count()
        deadline = time.time() + 20
        while app.count() < base + 150 and time.time() < deadline:
            time.sleep(0.05)
        heads_now = {ch: len(c.read_all(ch)) for ch in channels}
        missed = sum(heads_now[ch] - last[ch] for ch in channels)
        self.assertGreater(missed, 0)
        ws2 = WS(node.port)
        r2 = WSReader(ws2, after=last)
        ws2.send({"type": "subscribe", "id": "resume", "channels": last})
        self.assertTrue(r2.wait(lambda: len(r2.subscribed) == len(channels), 30),
                        "subscribed %d of %d: %r" % (len(r2.subscribed), len(channels), r2.frames[:5]))
        for ch, f in r2.subscribed.items():
            self.assertGreaterEqual(f["head"], heads_now[ch], f)
        time.sleep(1.0)  # live messages on the second connection
        app.stop()
        self.assertEqual(app.problems, [])
        logs = read_all_parallel(node.port, channels)
        total = sum(len(v) for v in logs.values())
        self.assertTrue(r2.wait(lambda: n_first + r2.n_msgs >= total, 30),
                        "%d + %d of %d" % (n_first, r2.n_msgs, total))
        time.sleep(0.3)
        self.assertReaderClean(r2, "resumed connection")
        live = 0
        for ch in channels:
            got = r1.msgs.get(ch, []) + r2.msgs.get(ch, [])
            self.assertLogEqual(got, logs[ch], ch)
            live += sum(1 for m in r2.msgs.get(ch, []) if m["seq"] > r2.subscribed[ch]["head"])
        print("  %d messages before the abrupt close, %d missed meanwhile, %d on the resumed "
              "connection (%d of them live after its subscribe)"
              % (n_first, missed, r2.n_msgs, live))
        self.assertGreater(live, 0, "no live message after the resume")
        r2.close()

    # ----------------------------------------------------------------- 3 ---
    def test_3_history_longer_than_window_then_live(self):
        node = self.new_node()
        c = node.client()
        channels = ["s3-%d" % i for i in range(4)]
        # A "now" subscriber keeps the channels' windows (the last 1024
        # messages) filled while the history is written.
        keeper_ws = WS(node.port)
        keeper = WSReader(keeper_ws)
        keeper_ws.send({"type": "subscribe", "channels": {ch: "now" for ch in channels}})
        self.assertTrue(keeper.wait(lambda: len(keeper.subscribed) == 4, 20))
        batch_fill(c, {ch: 1500 for ch in channels}, "s3h")
        m0 = metrics(node.port)
        app = Appenders(lambda: node.port, lambda rnd: rnd.choice(channels), "s3", threads=3,
                        n=150)
        time.sleep(0.2)
        ws = WS(node.port)
        r = WSReader(ws)
        ws.send({"type": "subscribe", "channels": {ch: 0 for ch in channels}})
        app.join(120)
        self.assertEqual(app.problems, [])
        total = 4 * 1500 + app.count()
        self.assertTrue(r.wait(lambda: r.n_msgs >= total, 60), "%d of %d" % (r.n_msgs, total))
        self.assertTrue(keeper.wait(lambda: keeper.n_msgs >= total, 60),
                        "keeper %d of %d" % (keeper.n_msgs, total))
        time.sleep(0.3)
        self.assertReaderClean(r, "history subscriber")
        self.assertReaderClean(keeper, "window keeper")
        m1 = metrics(node.port)
        logs = read_all_parallel(node.port, channels)
        for ch in channels:
            self.assertGreater(len(logs[ch]), 1500)
            self.assertLogEqual(r.msgs[ch], logs[ch], ch)
            self.assertEqual(keeper.subscribed[ch]["head"], 0)
            self.assertLogEqual(keeper.msgs[ch], logs[ch], ch + " (keeper)")
        d = {k: m1.get(k, 0) - m0.get(k, 0) for k in
             ("herald_catchup_state_total", "herald_catchup_window_total",
              "herald_deliveries_live_total", "herald_deliveries_catchup_total")}
        print("  %d messages; catch-up from state %d, from the window %d; live %d"
              % (total, d["herald_catchup_state_total"], d["herald_catchup_window_total"],
                 d["herald_deliveries_live_total"]))
        self.assertGreater(d["herald_catchup_state_total"], 0, "nothing was read from state")
        self.assertGreater(d["herald_catchup_window_total"], 0, "nothing came from the window")
        r.close()
        keeper.close()

    # ----------------------------------------------------------------- 4 ---
    def test_4_slow_consumer(self):
        # ASan keeps freed memory in quarantine (256 MB by default), which
        # would hide what the node holds: a small quarantine for this node.
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=16"
        try:
            node = self.new_node()
        finally:
            if saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = saved
        busy, other = "s4-busy", "s4-other"
        stuck = WS(node.port, rcvbuf=4096)
        stuck.send({"type": "subscribe", "channels": {busy: 0}})
        good_ws = WS(node.port)
        good = WSReader(good_ws)
        good_ws.send({"type": "subscribe", "channels": {busy: 0, other: 0}})
        self.assertTrue(good.wait(lambda: len(good.subscribed) == 2, 20))
        time.sleep(0.3)
        rss0 = rss_kb(node.proc.pid)
        m0 = metrics(node.port)
        rss_max = [rss0]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                try:
                    rss_max[0] = max(rss_max[0], rss_kb(node.proc.pid))
                except (OSError, AssertionError):
                    return
                sampling.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # ~45 MB of messages through the channel the stuck client subscribed.
        t0 = time.monotonic()
        app = Appenders(lambda: node.port, lambda rnd: busy if rnd.random() < 0.9 else other,
                        "s4", threads=3, n=1000, size=16 * 1024)
        app.join(180)
        t_app = time.monotonic() - t0
        self.assertEqual(app.problems, [])
        total = app.count()
        self.assertTrue(good.wait(lambda: good.n_msgs >= total, 30),
                        "the reading subscriber got %d of %d" % (good.n_msgs, total))
        sampling.set()
        sampler.join(5)
        m1 = metrics(node.port)
        rss1 = rss_kb(node.proc.pid)
        self.assertReaderClean(good, "reading subscriber")
        # At pace: every message reached the reading subscriber soon after
        # its append was answered.
        lags = []
        with good.cond:
            for (ch, seq), (_, _, _, t_ack) in app.acked.items():
                lags.append(good.recv_times[ch][seq - 1] - t_ack)
        lags.sort()
        ack_times = sorted(v[3] for v in app.acked.values())
        gaps = [b - a for a, b in zip(ack_times, ack_times[1:])]
        growth_mb = (rss_max[0] - rss0) / 1024.0
        print("  %d appends of 16 KiB in %.1fs (longest pause between answers %.2fs); the "
              "reading subscriber's lag after the answer: median %.3fs, max %.3fs; RSS %.0f MB "
              "before, peak %.0f MB (growth %.0f MB), %.0f MB after"
              % (total, t_app, max(gaps), lags[len(lags) // 2], lags[-1], rss0 / 1024.0,
                 rss_max[0] / 1024.0, growth_mb, rss1 / 1024.0))
        self.assertLess(lags[-1], 5.0, "the reading subscriber fell behind the appends")
        self.assertLess(max(gaps), 5.0, "appends stalled")
        self.assertLess(growth_mb, 400, "RSS grew by %.0f MB" % growth_mb)
        fell = m1.get("herald_subscribers_fell_behind_total", 0)
        print("  /metrics: fell_behind %d, slow_consumers_closed %d, subscriptions %d, sessions %d"
              % (fell, m1.get("herald_slow_consumers_closed_total", -1),
                 m1.get("herald_subscriptions", -1), m1.get("herald_delivery_sessions", -1)))
        self.assertGreater(fell, m0.get("herald_subscribers_fell_behind_total", 0))
        # What the code does (fanout_conn.c): a connection over the soft
        # bound takes no live message and catch-up waits for room, so only
        # the owner's own frames can pass the hard bound; this client sent
        # nothing after its subscribe: it stays open, behind, at bounded memory.
        self.assertEqual(m1.get("herald_slow_consumers_closed_total"), 0)
        self.assertEqual(m1.get("herald_subscriptions"), 3, "the stuck connection's subscription is gone")
        self.assertEqual(m1.get("herald_delivery_sessions"), 2)
        # Once it reads, it gets the whole channel, in order, exactly once.
        t1 = time.monotonic()
        late = WSReader(stuck)
        want = app.per_channel()[busy]
        self.assertTrue(late.wait(lambda: len(late.msgs[busy]) >= want, 90),
                        "the stuck client, reading again, got %d of %d (eof %r, close %r)"
                        % (len(late.msgs[busy]), want, late.eof, stuck.close_status))
        time.sleep(0.3)
        m2 = metrics(node.port)
        caught = {k: m2.get(k, 0) - m1.get(k, 0) for k in
                  ("herald_deliveries_catchup_total", "herald_catchup_state_total")}
        print("  the stuck connection stayed open and behind; reading again it caught up "
              "%d messages in %.1fs (%d by catch-up, %d of them read from state)"
              % (want, time.monotonic() - t1, caught["herald_deliveries_catchup_total"],
                 caught["herald_catchup_state_total"]))
        self.assertReaderClean(late, "stuck subscriber")
        # It was not holding the messages it had not taken: most came by
        # catch-up after it read again, the oldest from state.
        self.assertGreater(caught["herald_deliveries_catchup_total"], want // 2)
        self.assertGreater(caught["herald_catchup_state_total"], 0)
        c = node.client()
        logs = {ch: c.read_all(ch) for ch in (busy, other)}
        self.assertLogEqual(late.msgs[busy], logs[busy], busy + " (stuck)")
        self.assertEqual(set(late.msgs), {busy})
        for ch in (busy, other):
            self.assertLogEqual(good.msgs[ch], logs[ch], ch)
        late.close()
        good.close()

    # ----------------------------------------------------------------- 5 ---
    def sse_positions(self, ev):
        """The index:seq positions of an event's id as {index: seq}."""
        self.assertIsNotNone(ev["id"], "event without an id: %r" % ev)
        out = {}
        for part in ev["id"].split(","):
            i, _, s = part.partition(":")
            self.assertNotIn(int(i), out, ev)
            out[int(i)] = int(s)
        return out

    def check_sse_stream(self, events, names, listed, start, what):
        """Checks a multi-channel stream: the first event carries only an
        id, the positions of start (a channel that moved from listed); each
        message event's id carries every channel whose position differs
        from listed. Returns ({channel: [messages]}, position per index)."""
        self.assertGreater(len(events), 0, what)
        first = events[0]
        self.assertIsNone(first["event"], "%s: first event %r is not id-only" % (what, first))
        self.assertIsNone(first["data"], what)
        pos = dict(start)
        want = {i: p for i, p in pos.items() if p != listed[i]}
        self.assertEqual(self.sse_positions(first), want, "%s: id of the first event" % what)
        msgs = collections.defaultdict(list)
        for ev in events[1:]:
            self.assertEqual(ev["event"], "message", "%s: %r" % (what, ev))
            d = dict(ev["data"])
            ch = d.pop("channel")
            i = names.index(ch)
            self.assertEqual(d["seq"], pos[i] + 1, "%s: %s seq %d after %d" % (what, ch, d["seq"], pos[i]))
            pos[i] = d["seq"]
            msgs[ch].append(d)
            want = {k: p for k, p in pos.items() if p != listed[k]}
            self.assertEqual(self.sse_positions(ev), want, "%s: id of %s seq %d" % (what, ch, d["seq"]))
        return msgs, pos

    def test_5_multi_channel_sse(self):
        node = self.new_node()
        c = node.client()
        names = ["s5-a", "s5-b", "s5-c"]
        batch_fill(c, {ch: 10 for ch in names}, "s5h")
        path = "/v1/tail?channels=s5-a:0,s5-b:now,s5-c:5"
        NOW = -1
        listed = {0: 0, 1: NOW, 2: 5}
        r1 = SSEReader(node.port, None, path=path)
        self.assertEqual(r1.wait_status(), 200)
        self.assertEqual(r1.headers.get("content-type", "").split(";")[0], "text/event-stream")
        # The id-only event then the history of a (1-10) and c (6-10).
        self.assertGreaterEqual(r1.wait_count(16, 20), 16)
        first = r1.snapshot()[0]
        self.assertEqual(first["id"], "1:10", "the id-only event gives b's position 'now': %r" % first)
        app = Appenders(lambda: node.port, lambda rnd: rnd.choice(names), "s5", threads=2, n=60,
                        pace=0.01)
        self.assertGreaterEqual(r1.wait_count(16 + 50, 30), 16 + 50)
        r1.close()
        ev1 = r1.snapshot()
        last_id = ev1[-1]["id"]
        msgs1, pos1 = self.check_sse_stream(ev1, names, listed, {0: 0, 1: 10, 2: 5}, "stream 1")
        self.assertEqual([m["seq"] for m in msgs1["s5-a"][:10]], list(range(1, 11)))
        self.assertEqual([m["seq"] for m in msgs1["s5-c"][:5]], list(range(6, 11)))
        # Resume while appends go on: Last-Event-ID and the same URL.
        time.sleep(0.3)
        r2 = SSEReader(node.port, None, path=path, last_event_id=last_id)
        self.assertEqual(r2.wait_status(), 200)
        app.join(60)
        self.assertEqual(app.problems, [])
        logs = {ch: c.read_all(ch) for ch in names}
        after = {"s5-a": 0, "s5-b": 10, "s5-c": 5}
        total = sum(len(logs[ch]) - after[ch] for ch in names)
        n1 = len(ev1) - 1
        r2.wait_count(1 + total - n1, 30)
        time.sleep(0.3)
        ev2 = r2.snapshot()
        r2.close()
        self.assertIsNone(r2.error)
        # The resumed stream starts with an id-only event holding exactly
        # the positions it resumed from.
        self.assertEqual(self.sse_positions(ev2[0]), self.sse_positions(ev1[-1]),
                         "resumed stream's first id vs Last-Event-ID %r" % last_id)
        msgs2, _ = self.check_sse_stream(ev2, names, listed, pos1, "stream 2")
        for ch in names:
            self.assertLogEqual(msgs1[ch] + msgs2[ch], logs[ch][after[ch]:], ch)
        print("  %d events before the reconnect (last id %s), %d after; every channel exact"
              % (n1, last_id, len(ev2) - 1))
        # POST /v1/tail: the same list in the body.
        s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        body = b"s5-a:20\ns5-c:ts=1.000000"
        s.sendall(b"POST /v1/tail HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        data = b""
        want_c = len(logs["s5-c"])
        deadline = time.time() + 15
        while data.count(b"event: message") < want_c + len(logs["s5-a"]) - 20 and time.time() < deadline:
            data += s.recv(65536)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        got = [json.loads(l[6:]) for l in data.decode().splitlines() if l.startswith("data: ")]
        self.assertEqual([(m["channel"], m["seq"]) for m in got if m["channel"] == "s5-c"],
                         [("s5-c", i) for i in range(1, want_c + 1)])
        self.assertEqual([m["seq"] for m in got if m["channel"] == "s5-a"],
                         list(range(21, len(logs["s5-a"]) + 1)))

    # ----------------------------------------------------------------- 6 ---
    def expect_error(self, ws, code, id=None, channel=None, what=""):
        f, before = ws.recv_until(lambda f: f.get("type") != "subscribed", 10)
        self.assertEqual(f.get("type"), "error", "%s: %r" % (what, f))
        self.assertEqual(f.get("code"), code, "%s: %r" % (what, f))
        self.assertIsInstance(f.get("message"), str, f)
        if id is not None:
            self.assertEqual(f.get("id"), id, "%s: the error does not echo the id: %r" % (what, f))
        if channel is not None:
            self.assertEqual(f.get("channel"), channel,
                             "%s: the error does not name the channel: %r" % (what, f))
        return f, before

    def expect_pong(self, ws, tag):
        ws.send({"type": "ping", "id": tag})
        f, before = ws.recv_until(lambda f: f.get("type") == "pong", 10)
        self.assertEqual(f.get("id"), tag)
        self.assertEqual(before, [], "frames before the pong: %r" % before)

    def test_6a_bad_operations(self):
        node = self.new_node(args=["--max-payload", "4096"])
        c = node.client()
        m0 = metrics(node.port)
        ws = WS(node.port, timeout=10)
        # Frames that are not operations.
        for text, id_ in ((b"{not json", None), (b"[1,2]", None), (b"\"str\"", None), (b"42", None),
                          (b"", None), (b'{"type":"nope","id":"u1"}', "u1"),
                          (b'{"id":"m1"}', "m1"), (b'{"type":7}', None),
                          (b'{"type":"subscribe","channels":["s6-x"]}', None),
                          (b'{"type":"unsubscribe","channels":{"s6-x":0}}', None)):
            ws.send_text_bytes(text)
            self.expect_error(ws, "bad_frame", id=id_, what=repr(text))
        self.expect_pong(ws, "p1")
        # Subscribe: a bad channel among good ones, a bad position.
        ws.send({"type": "subscribe", "id": "s-bad", "channels": {"bad channel!": 0, "s6-ok": 0}})
        frames = [ws.recv_until(lambda f: True, 10)[0] for _ in range(2)]
        types = sorted(f["type"] for f in frames)
        self.assertEqual(types, ["error", "subscribed"], frames)
        err = [f for f in frames if f["type"] == "error"][0]
        sub = [f for f in frames if f["type"] == "subscribed"][0]
        self.assertEqual((sub["channel"], sub["head"]), ("s6-ok", 0))
        self.assertEqual((err["code"], err.get("id")), ("bad_channel", "s-bad"), err)
        bad_channel_named = err.get("channel") == "bad channel!"
        for pos in (-1, "later", {"after_seq": "x"}, {"after_ts": "yesterday"}, 1.5, None):
            ws.send({"type": "subscribe", "id": "s-pos", "channels": {"s6-pos": pos}})
            self.expect_error(ws, "bad_position", id="s-pos", channel="s6-pos", what=repr(pos))
        # Twice, and unsubscribe of what is not subscribed.
        ws.send({"type": "subscribe", "id": "s-twice", "channels": {"s6-ok": "now"}})
        self.expect_error(ws, "already_subscribed", id="s-twice", channel="s6-ok")
        ws.send({"type": "unsubscribe", "id": "u-none", "channels": ["s6-none"]})
        self.expect_error(ws, "not_subscribed", id="u-none", channel="s6-none")
        ws.send({"type": "unsubscribe", "channels": ["bad channel!"]})
        self.expect_error(ws, "bad_channel")
        # Appends that must write nothing.
        ws.send({"type": "append", "channel": "s6-app", "nonce": "n1", "payload": "x"})
        self.expect_error(ws, "bad_id", what="append without id")
        ws.send({"type": "append", "id": "", "channel": "s6-app", "nonce": "n1", "payload": "x"})
        self.expect_error(ws, "bad_id", what="append with an empty id")
        ws.send({"type": "append", "id": "i" * 129, "channel": "s6-app", "nonce": "n1", "payload": "x"})
        self.expect_error(ws, "bad_id", what="append with a 129-byte id")
        for nonce in ("", "\u0001x", "n" * 129, "caf\u00e9", 5, None):
            ws.send({"type": "append", "id": "a-nonce", "channel": "s6-app", "nonce": nonce,
                     "payload": "x"})
            self.expect_error(ws, "bad_nonce", id="a-nonce", what="nonce %r" % (nonce,))
        ws.send({"type": "append", "id": "a-ch", "channel": "bad/ch", "nonce": "n1", "payload": "x"})
        self.expect_error(ws, "bad_channel", id="a-ch")
        ws.send({"type": "append", "id": "a-big", "channel": "s6-app", "nonce": "n1",
                 "payload": "x" * 5000})
        self.expect_error(ws, "payload_too_large", id="a-big", channel="s6-app")
        ws.send({"type": "append", "id": "a-b64", "channel": "s6-app", "nonce": "n1",
                 "payload_b64": "***"})
        self.expect_error(ws, "bad_payload", id="a-b64", channel="s6-app")
        self.expect_pong(ws, "p2")
        for ch in ("s6-app", "s6-ok", "s6-pos", "s6-none", "s6-x"):
            self.assertEqual(c.read_all(ch), [], "%s was written" % ch)
        # The connection still works: a good append, its duplicate, and
        # the message on the subscription of s6-ok.
        ws.send({"type": "append", "id": "a-ok", "channel": "s6-ok", "nonce": "n-ok", "payload": "fine"})
        ack, _ = ws.recv_until(lambda f: f.get("type") == "ack", 10)
        self.assertEqual((ack["id"], ack["channel"], ack["seq"], ack["duplicate"]),
                         ("a-ok", "s6-ok", 1, False), ack)
        ws.send({"type": "append", "id": "a-dup", "channel": "s6-ok", "nonce": "n-ok", "payload": "fine"})
        dup, _ = ws.recv_until(lambda f: f.get("type") == "ack", 10)
        self.assertEqual((dup["id"], dup["seq"], dup["ts"], dup["duplicate"]),
                         ("a-dup", 1, ack["ts"], True), dup)
        log = c.read_all("s6-ok")
        self.assertEqual([(m["seq"], m["nonce"], m["payload"]) for m in log], [(1, "n-ok", "fine")])
        ws.close()
        m1 = metrics(node.port)
        n_errors = m1["herald_ws_errors_total"] - m0.get("herald_ws_errors_total", 0)
        print("  %d error frames counted by herald_ws_errors_total" % n_errors)
        self.assertGreaterEqual(n_errors, 32)
        self.assertTrue(bad_channel_named,
                        "docs/subscribe.md: 'A channel id that is not valid ... gets an error frame "
                        "naming the channel'; subscribe {\"bad channel!\":0} answered %r" % err)

    def test_6b_closing_frames_and_handshakes(self):
        node = self.new_node(args=["--max-payload", "4096"])
        c = node.client()
        # Handshakes that are not WebSockets.
        plain = raw_exchange(node.port, b"GET /v1/subscribe HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n")
        st, hdrs, body = parse_raw_response(plain)
        self.assertEqual(st, 400, plain[:300])
        self.assertIn("error", json.loads(body))
        v8 = raw_exchange(node.port, b"GET /v1/subscribe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        st, hdrs, body = parse_raw_response(v8)
        self.assertEqual(st, 426, v8[:300])
        self.assertEqual(hdrs.get("sec-websocket-version"), "13", v8[:300])
        nokey = raw_exchange(node.port, b"GET /v1/subscribe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.assertEqual(parse_raw_response(nokey)[0], 400, nokey[:300])
        self.assertEqual(c.get("/v1/status").status, 200)
        # Frames that end the connection, each on a socket subscribed to
        # its own channel: after the close, an append to that channel must
        # be served (the closed connection's subscription must be gone, not
        # written to). The binary case goes last.
        limit = 4096 * 2 + 64 * 1024
        cases = (
            ("invalid UTF-8", lambda ws: ws.send_text_bytes(
                b'{"type":"append","id":"u","channel":"s6-utf","nonce":"n","payload":"\xff\xfe"}'),
             1007, None, "s6-utf"),
            ("oversized message", lambda ws: ws.send_text_bytes(
                b'{"type":"append","id":"big","channel":"s6-big","nonce":"n","payload":"'
                + b"x" * (limit + 10) + b'"}'), 1009, None, "s6-big"),
            ("binary frame", lambda ws: ws.send_binary(
                b'{"type":"append","id":"bin","channel":"s6-bin","nonce":"n","payload":"x"}'),
             1003, None, "s6-bin"),
        )
        problems = []
        for i, (what, act, status, reason, written) in enumerate(cases):
            live = "s6-live-%d" % i
            if i > 0:  # a node of its own: a crash in one case shows alone
                node = self.new_node(args=["--max-payload", "4096"])
                c = node.client()
            ws = WS(node.port, timeout=10)
            ws.send({"type": "subscribe", "channels": {live: 0}})
            ws.recv_until(lambda f: f.get("type") == "subscribed", 10)
            try:
                act(ws)
            except OSError:
                pass  # the server may close before taking all of it
            frames = ws.drain_to_close(10)
            closing = [f for f in frames if f.get("type") == "closing"]
            print("  %s: close %r %r, closing frames %r" % (what, ws.close_status,
                                                           ws.close_reason, closing))
            self.assertEqual(ws.close_status, status, "%s: %r" % (what, frames))
            # docs/subscribe.md: closes of the framing layer carry no
            # 'closing' frame; closes the node decides do.
            expected = [reason] if reason is not None else []
            if [f.get("reason") for f in closing] != expected:
                problems.append("%s: expected closing frames %r before the close (%d); got %r"
                                % (what, expected, status, frames))
            ws.abort()
            try:
                r = c.append(live, "after-close", "after the close")
                st = c.get("/v1/status").status
            except OSError as e:
                r, st = e, None
            time.sleep(0.3)
            if not (node.running() and st == 200 and getattr(r, "status", None) == 201):
                crash = [l for l in node.log().splitlines()
                         if "ERROR: AddressSanitizer" in l or "assertion failed" in l]
                problems.append("%s: after the close (%d), an append to the channel that "
                                "connection had subscribed -> %r; node running: %r; %s"
                                % (what, status, r, node.running(), crash[:1]))
                continue
            self.assertEqual([m["nonce"] for m in c.read_all(live)], ["after-close"])
            self.assertEqual(c.read_all(written), [], "%s was written" % written)
            self.assertEqual(metrics(node.port)["herald_subscriptions"], 0,
                             "%s: the closed connection's subscription is still there" % what)
        if problems:
            self.fail("\n".join(problems))

    def test_6c_subscribe_unsubscribe_flood(self):
        node = self.new_node()
        c = node.client()
        ws = WS(node.port)
        r = WSReader(ws)
        chans = ["s6f-%d" % i for i in range(4)]
        rounds = 5000
        lat = []
        done = threading.Event()

        def probe():
            pc = Client(node.port, timeout=10)
            i = 0
            while not done.is_set():
                t = time.monotonic()
                st = pc.get("/v1/status").status
                seq, _ = pc.append_ok("s6f-side", "side-%d" % i, "side")
                lat.append((time.monotonic() - t, st))
                i += 1
                done.wait(0.02)
            pc.close()

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        t0 = time.monotonic()
        for k in range(rounds):
            ws.send({"type": "subscribe", "channels": {ch: "now" for ch in chans}})
            ws.send({"type": "unsubscribe", "channels": chans})
        want = 2 * rounds * len(chans)
        ok = r.wait(lambda: len(r.frames) >= want, 120)
        t_flood = time.monotonic() - t0
        done.set()
        prober.join(15)
        self.assertTrue(ok, "%d of %d answers (eof %r, close %r)" % (len(r.frames), want, r.eof,
                                                                     ws.close_status))
        self.assertReaderClean(r, "flood")
        per = collections.defaultdict(list)
        for f in r.frames:
            per[f.get("channel")].append(f.get("type"))
        for ch in chans:
            self.assertEqual(per[ch], ["subscribed", "unsubscribed"] * rounds, ch)
        self.assertEqual(set(per), set(chans))
        m = metrics(node.port)
        self.assertEqual(m["herald_subscriptions"], 0)
        self.assertGreaterEqual(m["herald_ws_frames_in_total"], 2 * rounds)
        ws.send({"type": "ping", "id": "after-flood"})
        self.assertTrue(r.wait(lambda: r.frames[-1] == {"type": "pong", "id": "after-flood"}, 10),
                        r.frames[-3:])
        self.assertTrue(lat, "no request served during the flood")
        self.assertTrue(all(st == 200 for _, st in lat))
        worst = max(l for l, _ in lat)
        print("  %d subscribe+unsubscribe pairs of %d channels answered in %.1fs; %d side "
              "requests meanwhile, slowest %.3fs" % (rounds, len(chans), t_flood, len(lat), worst))
        self.assertLess(worst, 5.0)
        self.assertEqual(len(c.read_all("s6f-side")), len(lat))
        r.close()

    def test_6d_channels_per_connection_limit(self):
        node = self.new_node()
        ws = WS(node.port, timeout=60)
        r = WSReader(ws)
        limit = 100000
        t0 = time.monotonic()
        step = 10000
        names = ["L%06d" % i for i in range(limit + 1)]
        for k in range(0, limit + 1, step):
            ws.send({"type": "subscribe", "id": "lim-%d" % k,
                     "channels": {ch: "now" for ch in names[k:k + step]}})
        ok = r.wait(lambda: len(r.frames) >= limit + 1, 120)
        t_sub = time.monotonic() - t0
        self.assertTrue(ok, "%d answers of %d" % (len(r.frames), limit + 1))
        errors = [f for f in r.frames if f.get("type") == "error"]
        self.assertEqual(len(r.subscribed), limit)
        self.assertEqual([(e["code"], e.get("channel"), e.get("id")) for e in errors],
                         [("too_many_channels", names[limit], "lim-%d" % limit)])
        ws.send({"type": "subscribe", "id": "more", "channels": {"Lx1": 0, "Lx2": "now"}})
        self.assertTrue(r.wait(lambda: len(r.frames) >= limit + 3, 20))
        more = r.frames[limit + 1:]
        self.assertEqual(sorted((f["type"], f.get("code"), f.get("channel")) for f in more),
                         [("error", "too_many_channels", "Lx1"), ("error", "too_many_channels", "Lx2")])
        # Leaving one makes room for one.
        ws.send({"type": "unsubscribe", "channels": [names[0]]})
        ws.send({"type": "subscribe", "channels": {"Lx1": 0}})
        self.assertTrue(r.wait(lambda: len(r.frames) >= limit + 5, 20))
        self.assertEqual([(f["type"], f.get("channel")) for f in r.frames[limit + 3:]],
                         [("unsubscribed", names[0]), ("subscribed", "Lx1")])
        m = metrics(node.port)
        print("  %d subscriptions on one connection in %.1fs; the next ones refused "
              "(herald_subscriptions_refused_total %d)"
              % (limit, t_sub, m["herald_subscriptions_refused_total"]))
        self.assertEqual(m["herald_subscriptions"], limit)
        self.assertEqual(m["herald_subscriptions_refused_total"], 3)
        self.assertEqual(node.client().get("/v1/status").status, 200)
        r.close()


    def test_6e_binary_frames(self):
        """?frames=binary: every frame the server sends (subscribed,
        message, ack, error, pong) is a binary frame of the same JSON bytes
        a text connection gets; frames= of another value is refused."""
        node = self.new_node()
        c = node.client()
        for bad in (b"bogus", b"", b"BINARY", b"binary,text"):
            raw = raw_exchange(node.port, b"GET /v1/subscribe?frames=" + bad + b" HTTP/1.1\r\n"
                               b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            st, _, body = parse_raw_response(raw)
            self.assertEqual(st, 400, raw[:300])
            self.assertEqual(json.loads(body)["error"]["code"], "bad_query", body)
        conns = {"text": WS(node.port, timeout=10, path="/v1/subscribe?frames=text"),
                 "binary": WS(node.port, timeout=10, path="/v1/subscribe?frames=binary")}
        self.assertFalse(conns["text"].binary)
        got = {}
        for kind, ws in conns.items():
            ws.send({"type": "subscribe", "id": "s", "channels": {"s6e": 0}})
            ws.recv_until(lambda f: f.get("type") == "subscribed", 10)
        for i in range(5):
            c.append_ok("s6e", "n%d" % i, "m%d" % i)
        for kind, ws in conns.items():
            raw = []
            for i in range(5):
                f, _ = ws.recv_until(lambda f: f.get("type") == "message", 10)
                self.assertEqual((f["seq"], f["payload"]), (i + 1, "m%d" % i), f)
                raw.append(ws.last_raw)
            ws.send({"type": "append", "id": "a-" + kind, "channel": "s6e-own",
                     "nonce": kind, "payload": "x"})
            ack, _ = ws.recv_until(lambda f: f.get("type") == "ack", 10)
            self.assertEqual((ack["id"], ack["seq"]), ("a-" + kind, 1 if kind == "text" else 2))
            ws.send_text_bytes(b"{not json")
            self.expect_error(ws, "bad_frame", what=kind)
            self.expect_pong(ws, "p-" + kind)
            got[kind] = raw
        # The message frames of both kinds hold the same bytes.
        self.assertEqual(got["text"], got["binary"])

    def test_6f_gone_ends_one_subscription_not_the_connection(self):
        """A delete of one channel (or a trim past a subscriber's position)
        ends that channel's subscription with a gone frame, and the
        connection goes on with its other channels: a gateway's socket of
        thousands of channels must not drop because one room was deleted.
        The same for a multi-channel SSE stream (an event: gone); a
        one-channel tail ends after its event: gone."""
        node = self.new_node()
        c = node.client()
        for i in range(3):
            c.append_ok("s6f-a", "a%d" % i, "a%d" % i)
            c.append_ok("s6f-b", "b%d" % i, "b%d" % i)
        ws = WS(node.port, timeout=10)
        tail = SSEReader(node.port, "s6f-a", after_seq=0)
        multi = SSEReader(node.port, None, path="/v1/tail?channels=s6f-a:0,s6f-b:0")
        try:
            ws.send({"type": "subscribe", "id": "s", "channels": {"s6f-a": 0, "s6f-b": 0}})
            got = []
            while len(got) < 6:
                f, _ = ws.recv_until(lambda f: f.get("type") == "message", 10)
                got.append((f["channel"], f["seq"]))
            self.assertEqual(sorted(got), [(ch, i) for ch in ("s6f-a", "s6f-b")
                                           for i in (1, 2, 3)])
            self.assertGreaterEqual(tail.wait_count(3, 10), 3)
            self.assertGreaterEqual(multi.wait_count(7, 10), 7)  # the id-only event first
            r = c.request("DELETE", "/v1/channels/s6f-a")
            self.assertEqual(r.status, 200, r)
            f, before = ws.recv_until(lambda f: f.get("type") != "message", 10)
            self.assertEqual(before, [], "messages after the delete: %r" % before)
            self.assertEqual((f["type"], f["channel"], f["first_seq"], f["epoch"]),
                             ("gone", "s6f-a", 1, 1), f)
            # The connection goes on: b is still delivered, a no longer is.
            c.append_ok("s6f-a", "a-new", "a-new")
            c.append_ok("s6f-b", "b3", "b3")
            f, before = ws.recv_until(lambda f: f.get("type") == "message", 10)
            self.assertEqual((f["channel"], f["seq"], before), ("s6f-b", 4, []), f)
            self.expect_pong(ws, "alive")
            # Subscribed again from 0, a has the new epoch's message.
            ws.send({"type": "subscribe", "id": "s2", "channels": {"s6f-a": 0}})
            f, _ = ws.recv_until(lambda f: f.get("type") == "subscribed", 10)
            self.assertEqual((f["channel"], f["head"], f["epoch"]), ("s6f-a", 1, 1), f)
            f, _ = ws.recv_until(lambda f: f.get("type") == "message", 10)
            self.assertEqual((f["channel"], f["seq"], f["payload"]), ("s6f-a", 1, "a-new"), f)
            # The multi-channel stream said gone for a and goes on with b.
            self.assertGreaterEqual(multi.wait_count(9, 10), 9)
            ev = multi.snapshot()
            kinds = [(e["event"], e["data"]["channel"]) for e in ev[7:9]]
            self.assertEqual(kinds, [("gone", "s6f-a"), ("message", "s6f-b")], ev[7:])
            self.assertEqual((ev[7]["data"]["first_seq"], ev[7]["data"]["epoch"]), (1, 1))
            self.assertEqual(ev[8]["data"]["seq"], 4)
            self.assertIsNone(multi.error)
            self.assertFalse(multi.eof)
            # The one-channel tail ends after its gone event.
            self.assertTrue(tail.wait_eof(10), "the tail of a deleted channel goes on")
            ev = tail.snapshot()
            self.assertEqual([e["event"] for e in ev], ["message"] * 3 + ["gone"], ev)
            self.assertEqual(ev[3]["data"], {"channel": "s6f-a", "first_seq": 1, "epoch": 1})
            m = c.get("/metrics").body.decode()
            self.assertRegex(m, r"herald_subscriptions_gone_total 3\b")
        finally:
            ws.close()
            tail.close()
            multi.close()

    def test_6g_multi_channel_sse_below_a_trim(self):
        """A multi-channel stream that lists a position below a trim gets
        an event: gone for that channel and everything of the others."""
        node = self.new_node()
        c = node.client()
        for i in range(8):
            c.append_ok("s6g-a", "a%d" % i, "a%d" % i)
        c.append_ok("s6g-b", "b0", "b0")
        r = c.post_json("/v1/channels/s6g-a/trim", {"before_seq": 5})
        self.assertEqual(r.status, 200, r)
        multi = SSEReader(node.port, None, path="/v1/tail?channels=s6g-a:2,s6g-b:0")
        try:
            self.assertEqual(multi.wait_status(), 200)
            c.append_ok("s6g-b", "b1", "b1")
            self.assertGreaterEqual(multi.wait_count(4, 10), 4)
            ev = multi.snapshot()[1:]
            self.assertEqual(ev[0]["event"], "gone", ev)
            self.assertEqual(ev[0]["data"], {"channel": "s6g-a", "first_seq": 5, "epoch": 0})
            self.assertEqual([(e["event"], e["data"]["channel"], e["data"]["seq"]) for e in ev[1:]],
                             [("message", "s6g-b", 1), ("message", "s6g-b", 2)])
            self.assertFalse(multi.eof)
        finally:
            multi.close()

    def cli_follow(self, node, *args):
        """`herald ARGS` (subscribe or tail) against node; returns (process,
        line(name)): line("out") / line("err") is its next line on stdout /
        stderr, failing the test after 10 s without one."""
        import queue
        import subprocess
        p = subprocess.Popen([herald_cli(), "--server", "http://127.0.0.1:%d" % node.port]
                             + list(args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
        lines = {"out": queue.Queue(), "err": queue.Queue()}

        def pump(f, q):
            for got in f:
                q.put(got)
        for name, f in (("out", p.stdout), ("err", p.stderr)):
            threading.Thread(target=pump, args=(f, lines[name]), daemon=True).start()

        def line(name, timeout=10):
            try:
                return lines[name].get(timeout=timeout)
            except queue.Empty:
                self.fail("no line on std%s within %d s" % (name, timeout))
        line.pending = lambda name: not lines[name].empty()
        return p, line

    def cli_stop(self, p, line, what):
        """SIGTERM ends a cli_follow process with 0, having printed nothing
        more (what: the failure's message)."""
        import signal
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=10), 0)
        time.sleep(0.2)
        self.assertFalse(line.pending("out"), what)

    def test_6h_cli_reports_gone_and_goes_on(self):
        """`herald subscribe` (libherald) hears a gone frame: it says so on
        stderr, forgets that channel, and goes on printing the others."""
        node = self.new_node()
        c = node.client()
        c.append_ok("s6h-a", "a0", "a0")
        c.append_ok("s6h-b", "b0", "b0")
        p, line = self.cli_follow(node, "subscribe", "s6h-a", "s6h-b")
        got = [json.loads(line("out")) for _ in range(2)]
        self.assertEqual(sorted((m["channel"], m["seq"]) for m in got),
                         [("s6h-a", 1), ("s6h-b", 1)])
        self.assertEqual(c.request("DELETE", "/v1/channels/s6h-a").status, 200)
        err = line("err")
        self.assertIn("s6h-a: gone", err)
        self.assertIn("epoch 1", err)
        c.append_ok("s6h-a", "a1", "a1")
        c.append_ok("s6h-b", "b1", "b1")
        m = json.loads(line("out"))
        self.assertEqual((m["channel"], m["seq"]), ("s6h-b", 2), m)
        self.cli_stop(p, line, "printed after the gone channel's delete")

    def test_6i_position_with_epoch(self):
        """A position may name its epoch: one taken before a delete is
        answered gone (never read as a position in the new epoch), one of an
        epoch this node has not reached is refused."""
        node = self.new_node()
        c = node.client()
        for i in range(3):
            c.append_ok("s6i", "old%d" % i, "old%d" % i)
        self.assertEqual(c.request("DELETE", "/v1/channels/s6i").status, 200)
        c.append_ok("s6i", "new0", "new0")
        c.append_ok("s6i", "new1", "new1")
        ws = WS(node.port, timeout=10)
        try:
            ws.send({"type": "subscribe", "channels": {"s6i": {"after_seq": 1, "epoch": 0}}})
            f, _ = ws.recv_until(lambda f: f.get("type") != "message", 10)
            self.assertEqual((f["type"], f["channel"], f["first_seq"], f["epoch"]),
                             ("gone", "s6i", 1, 1), f)
            ws.send({"type": "subscribe", "id": "x", "channels": {"s6i": {"after_seq": 0, "epoch": 2}}})
            self.expect_error(ws, "epoch_ahead", id="x", channel="s6i")
            for bad in (-1, "1", 1.5):
                ws.send({"type": "subscribe", "channels": {"s6i": {"after_seq": 0, "epoch": bad}}})
                self.expect_error(ws, "bad_position", channel="s6i", what=repr(bad))
            ws.send({"type": "subscribe", "channels": {"s6i": {"after_seq": 1, "epoch": 1}}})
            f, _ = ws.recv_until(lambda f: f.get("type") == "subscribed", 10)
            self.assertEqual((f["head"], f["epoch"]), (2, 1), f)
            f, _ = ws.recv_until(lambda f: f.get("type") == "message", 10)
            self.assertEqual((f["seq"], f["payload"]), (2, "new1"), f)
        finally:
            ws.close()
        # `herald subscribe CH:SEQ@EPOCH` (herald_sub_add_epoch) does the same.
        p, line = self.cli_follow(node, "subscribe", "s6i:1@0")
        self.assertIn("s6i: gone", line("err"))
        p.kill()
        p, line = self.cli_follow(node, "subscribe", "s6i:1@1")
        m = json.loads(line("out"))
        self.assertEqual((m["seq"], m["payload"]), (2, "new1"), m)
        p.kill()
        # An epoch the node has not reached (as on a follower that has not
        # applied the delete yet): libherald says so once and asks again
        # until it has, then delivers the new epoch from its start.
        p, line = self.cli_follow(node, "subscribe", "s6i:0@2")
        self.assertIn("s6i: epoch_ahead", line("err"))
        time.sleep(1.5)  # a few refused asks: told once
        self.assertFalse(line.pending("err"))
        self.assertEqual(c.request("DELETE", "/v1/channels/s6i").status, 200)
        c.append_ok("s6i", "e2", "e2")
        m = json.loads(line("out"))
        self.assertEqual((m["seq"], m["payload"]), (1, "e2"), m)
        self.cli_stop(p, line, "printed after the new epoch's message")

    def test_6j_cli_resume_across_a_delete(self):
        """libherald resumes with each channel's epoch: a channel deleted
        while it was disconnected is reported gone, not resumed at the old
        epoch's seq in the new one (which would skip the new messages up to
        that seq and deliver the rest as if nothing happened)."""
        import signal
        node = self.new_node()
        c = node.client()
        for i in range(3):
            c.append_ok("s6j", "old%d" % i, "old%d" % i)
        c.append_ok("s6j-b", "b0", "b0")
        p, line = self.cli_follow(node, "subscribe", "s6j", "s6j-b")
        got = sorted((m["channel"], m["seq"]) for m in (json.loads(line("out")) for _ in range(4)))
        self.assertEqual(got, [("s6j", 1), ("s6j", 2), ("s6j", 3), ("s6j-b", 1)])
        # Held still, it only notices the restart once the channel is
        # deleted and written again.
        p.send_signal(signal.SIGSTOP)
        try:
            node.terminate()
            node.start()
            c = node.client()
            self.assertEqual(c.request("DELETE", "/v1/channels/s6j").status, 200)
            for i in range(5):
                c.append_ok("s6j", "new%d" % i, "new%d" % i)
        finally:
            p.send_signal(signal.SIGCONT)
        err = [line("err", 30)]
        while "gone" not in err[-1] and len(err) < 5:  # reconnect notes may come first
            err.append(line("err", 30))
        self.assertIn("s6j: gone", err[-1], err)
        self.assertIn("epoch 1", err[-1])
        c.append_ok("s6j-b", "b1", "b1")
        m = json.loads(line("out", 30))
        self.assertEqual((m["channel"], m["seq"]), ("s6j-b", 2), m)
        self.cli_stop(p, line, "printed messages of the new epoch")
    def test_6k_sse_ids_carry_the_epoch(self):
        """SSE ids name the epoch once a channel was deleted ("SEQ@EPOCH"),
        so an EventSource that reconnects after a delete is answered gone
        (410; a multi-channel stream: event: gone) instead of resuming at
        the old epoch's seq in the new one."""
        node = self.new_node()
        c = node.client()
        for i in range(3):
            c.append_ok("s6k", "old%d" % i, "old%d" % i)
        c.append_ok("s6k-b", "b0", "b0")

        def events(n, **kw):
            r = SSEReader(node.port, kw.pop("channel", "s6k"), **kw)
            try:
                st = r.wait_status()
                if st == 200:
                    r.wait_count(n, 10)
                    time.sleep(0.2)
                return st, r.snapshot(), getattr(r, "body", b"")
            finally:
                r.close()
        st, ev, _ = events(3, after_seq=0)
        self.assertEqual([e["id"] for e in ev], ["1", "2", "3"])
        self.assertEqual(c.request("DELETE", "/v1/channels/s6k").status, 200)
        c.append_ok("s6k", "new0", "new0")
        c.append_ok("s6k", "new1", "new1")
        st, ev, _ = events(2, after_seq=0)
        self.assertEqual([(e["id"], e["data"]["payload"]) for e in ev],
                         [("1@1", "new0"), ("2@1", "new1")])
        st, ev, body = events(1, last_event_id="3")
        self.assertEqual(st, 410, body)
        self.assertEqual(json.loads(body)["epoch"], 1)
        st, ev, _ = events(1, last_event_id="1@1")
        self.assertEqual((st, [e["id"] for e in ev]), (200, ["2@1"]))
        st, ev, body = events(1, last_event_id="0@2")
        self.assertEqual((st, json.loads(body)["error"]["code"]), (503, "epoch_ahead"))
        st, ev, body = events(1, last_event_id="1@x")
        self.assertEqual(st, 400, body)
        # Multi-channel: the ids carry it too, and a resume of the old
        # epoch says gone for that channel and goes on with the other.
        path = "/v1/tail?channels=s6k:0,s6k-b:0"
        st, ev, _ = events(4, channel=None, path=path)
        self.assertEqual([e["id"] for e in ev], ["", "0:1@1", "0:2@1", "0:2@1,1:1"], ev)
        st, ev, _ = events(3, channel=None, path=path, last_event_id="0:3,1:0")
        self.assertEqual([(e["event"], (e["data"] or {}).get("channel")) for e in ev],
                         [(None, None), ("gone", "s6k"), ("message", "s6k-b")], ev)
        self.assertEqual(ev[1]["data"], {"channel": "s6k", "first_seq": 1, "epoch": 1})
        self.assertEqual(ev[2]["id"], "0:3,1:1", "the ended channel keeps its position")
        # A resume of an epoch this node has not reached (it has not applied
        # the delete yet) is refused before the stream starts, as the
        # one-channel tail's is: not answered gone from the older epoch.
        st, ev, body = events(1, channel=None, path=path, last_event_id="0:0@2,1:1")
        self.assertEqual((st, json.loads(body)["error"]["code"]), (503, "epoch_ahead"))

    def test_6l_cli_tail_resumes_in_a_later_epoch(self):
        """`herald tail` (libherald) resumes with the last event's id, which
        names the epoch: on a channel deleted before it started, a restart
        of the node is resumed exactly; a delete while it follows ends it
        with the node's 410 gone."""
        node = self.new_node()
        c = node.client()
        c.append_ok("s6l", "old", "old")
        self.assertEqual(c.request("DELETE", "/v1/channels/s6l").status, 200)
        for i in range(3):
            c.append_ok("s6l", "a%d" % i, "a%d" % i)
        p, line = self.cli_follow(node, "tail", "s6l")
        self.assertEqual([json.loads(line("out"))["seq"] for _ in range(3)], [1, 2, 3])
        node.terminate()
        node.start()
        c = node.client()
        for i in range(2):
            c.append_ok("s6l", "b%d" % i, "b%d" % i)
        got = [json.loads(line("out", 30)) for _ in range(2)]
        self.assertEqual([(m["seq"], m["payload"]) for m in got], [(4, "b0"), (5, "b1")])
        self.assertEqual(c.request("DELETE", "/v1/channels/s6l").status, 200)
        c.append_ok("s6l", "c0", "c0")
        self.assertNotEqual(p.wait(timeout=30), 0)
        self.assertFalse(line.pending("out"), "printed a message of the new epoch")
        err = [line("err")]
        while "gone" not in err[-1] and len(err) < 10:
            err.append(line("err"))
        self.assertIn("gone", err[-1], err)


class SubscribeDeliveryThreadTest(SubscribeTest):
    """The same with --delivery-thread: subscriber sockets written by the
    node's writer thread (api/http/http_writer.c) instead of its loop."""

    node_args = ("--delivery-thread",)

    def test_0_writer_thread_runs(self):
        node = self.new_node()
        self.assertIn("herald-writer thread", node.log())
        task = "/proc/%d/task" % node.proc.pid
        names = [open(os.path.join(task, t, "comm")).read().strip() for t in os.listdir(task)]
        self.assertIn("herald-writer", names)


if __name__ == "__main__":
    require_websocket()
    run_tests()

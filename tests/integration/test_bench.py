#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`herald bench --rate` (the open loop), the histograms of /metrics,
`herald bench --fanout` (closed or open loop, subscribers on other servers,
its exact expected deliveries) and the delivery linger under it, against
real nodes.

Behaviour only, never speed: the bench's report has its shape, every
request it sent is accounted for (acked + failed == sent), and the node's
histograms agree with what the bench saw acknowledged: the append latency
histogram counts exactly the appends this node acknowledged, and the
appends-per-entry histogram holds exactly those appends. The fan-out's
expected deliveries equal what the channels hold on the node times the
subscription plan's subscribers per channel, and every one arrives.

Needs the herald CLI built with bench ($HERALD_CLI, else cli/herald beside
the heraldd given).
"""

import json
import re
import subprocess
import threading
import time

import harness
from harness import Client, Cluster, NodeTestCase, run_tests
from ws_client import metrics

HISTOGRAMS = ("herald_append_latency_seconds", "herald_wal_sync_seconds",
              "herald_wal_entries_per_sync", "herald_appends_per_entry")


herald_cli = harness.herald_cli


def run_bench(port, *args, timeout=120):
    url = "http://127.0.0.1:%d" % port
    return subprocess.run([herald_cli(), "--server", url, "bench"] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def plan_subscribers(subscribers, channels, sub_channels=1):
    """Subscribers per channel of `herald bench --fanout`'s plan: connection
    i takes channels i*K .. i*K+K-1, mod C."""
    subs = [0] * channels
    for i in range(subscribers):
        for k in range(sub_channels):
            subs[(i * sub_channels + k) % channels] += 1
    return subs


def channel_counts(port, channels):
    """Messages in bench-0 .. bench-(C-1) on the node at port."""
    c = Client(port)
    try:
        return [len(c.read_all("bench-%d" % ch)) for ch in range(channels)]
    finally:
        c.close()


def has_bench():
    r = subprocess.run([herald_cli(), "bench", "--help"], capture_output=True, text=True,
                       timeout=30)
    return r.returncode == 0 and "--rate" in r.stdout


def parse_histograms(text):
    """name -> {"buckets": [(le, count)...] in page order, "sum", "count",
    "type"}, for every histogram of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) histogram$", line)
        if m:
            out[m.group(1)] = {"buckets": [], "sum": None, "count": None}
            continue
        m = re.match(r'^(\S+)_bucket\{le="([^"]+)"\} (\d+)$', line)
        if m and m.group(1) in out:
            out[m.group(1)]["buckets"].append((m.group(2), int(m.group(3))))
            continue
        m = re.match(r"^(\S+)_(sum|count) (\S+)$", line)
        if m and m.group(1) in out:
            out[m.group(1)][m.group(2)] = float(m.group(3))
    return out


class BenchRate(NodeTestCase):

    def setUp(self):
        super().setUp()
        harness.require(has_bench(), "herald built with bench")

    def metrics(self, node):
        r = node.client().get("/metrics")
        self.assertEqual(r.status, 200)
        return parse_histograms(r.body.decode())

    def check_histogram(self, name, h):
        les = [le for le, _ in h["buckets"]]
        self.assertGreater(len(les), 1, name)
        self.assertEqual(les[-1], "+Inf", name)
        bounds = [float(le) for le in les[:-1]]
        self.assertEqual(bounds, sorted(bounds), name)
        self.assertEqual(len(set(bounds)), len(bounds), name)
        counts = [c for _, c in h["buckets"]]
        self.assertEqual(counts, sorted(counts), "%s: buckets not cumulative" % name)
        self.assertEqual(counts[-1], h["count"], "%s: +Inf != _count" % name)
        self.assertIsNotNone(h["sum"], name)
        self.assertGreaterEqual(h["sum"], 0, name)

    def check_run(self, run, rate):
        for key in ("offered_per_s", "achieved_per_s", "acked_per_s", "scheduled", "sent",
                    "acked", "failed", "late", "unsent", "p50_us", "p99_us", "p99_9_us",
                    "max_us", "errors", "server_cpu_us_per_ack", "server_rss_bytes", "servers"):
            self.assertIn(key, run)
        self.assertEqual(run["offered_per_s"], rate)
        self.assertIsNone(run["fatal"])
        # Every request sent was answered or counted as failed, by kind.
        self.assertEqual(run["acked"] + run["failed"], run["sent"], run)
        self.assertEqual(sum(v for k, v in run["errors"].items() if k != "connect"),
                         run["failed"], run)
        self.assertEqual(run["sent"] + run["unsent"], run["scheduled"], run)
        self.assertGreater(run["acked"], 0, run)
        self.assertLessEqual(run["p50_us"], run["p99_us"])
        self.assertLessEqual(run["p99_us"], run["p99_9_us"])
        self.assertLessEqual(run["p99_9_us"], run["max_us"])
        # The node answered /metrics before and after: its CPU and memory.
        self.assertIsNotNone(run["server_cpu_us_per_ack"], run)
        self.assertGreaterEqual(run["server_cpu_us_per_ack"], 0)
        self.assertGreater(run["server_rss_bytes"], 0)
        self.assertEqual(len(run["servers"]), 1)

    def test_rate_report_and_histograms(self):
        node = self.new_node()
        before = self.metrics(node)
        for name in HISTOGRAMS:
            self.assertIn(name, before)
            self.check_histogram(name, before[name])
        self.assertEqual(before["herald_append_latency_seconds"]["count"], 0)

        r = run_bench(node.port, "--rate", "50,100", "--duration", "1", "--connections", "8",
                      "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        self.assertEqual(report["bench"], "rate")
        self.assertEqual(report["connections"], 8)
        self.assertEqual([run["offered_per_s"] for run in report["runs"]], [50, 100])
        for run, rate in zip(report["runs"], (50, 100)):
            self.check_run(run, rate)
        acked = sum(run["acked"] for run in report["runs"])

        after = self.metrics(node)
        for name in HISTOGRAMS:
            self.check_histogram(name, after[name])
        # Every acknowledged append, and only those, in the latency histogram
        # of the node that took it; every one of them in exactly one entry.
        self.assertEqual(after["herald_append_latency_seconds"]["count"], acked)
        self.assertEqual(after["herald_appends_per_entry"]["sum"], acked)
        entries = after["herald_appends_per_entry"]["count"]
        self.assertGreater(entries, 0)
        self.assertLessEqual(entries, acked)
        # Each of those entries was written by some WAL group commit.
        self.assertGreaterEqual(after["herald_wal_entries_per_sync"]["sum"], entries)
        self.assertEqual(after["herald_wal_sync_seconds"]["count"],
                         after["herald_wal_entries_per_sync"]["count"])

        # The table: a header naming the columns, one row per rate.
        r = run_bench(node.port, "--rate", "80", "--duration", "1", "--connections", "4")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^herald bench --rate: http://127\.0\.0\.1:%d, 200-byte "
                         r"payloads, 16 channels, time-ordered nonces, 4 connections, 1 s per "
                         r"rate" % node.port)
        header = lines[1].split()
        self.assertEqual(header, ["offered_per_s", "achieved_per_s", "acked_per_s", "p50_us",
                                  "p99_us", "p99_9_us", "max_us", "sent", "acked", "failed",
                                  "late", "unsent", "server_cpu_us_per_ack", "server_rss_mib"])
        self.assertEqual(len(lines), 3, r.stdout)
        row = lines[2].split()
        self.assertEqual(row[0], "80")
        sent, acked_row, failed = int(row[7]), int(row[8]), int(row[9])
        self.assertEqual(acked_row + failed, sent)
        self.assertEqual(self.metrics(node)["herald_append_latency_seconds"]["count"],
                         acked + acked_row)

    def test_saturating_mode_reports_server_cpu(self):
        node = self.new_node()
        r = run_bench(node.port, "--in-flight", "4", "--duration", "1", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        run = json.loads(r.stdout)["runs"][0]
        self.assertEqual(run["acked_total"] + run["failed"], run["sent"], run)
        self.assertIsNotNone(run["server_cpu_us_per_ack"], run)
        self.assertGreater(run["server_rss_bytes"], 0)
        self.assertEqual(self.metrics(node)["herald_append_latency_seconds"]["count"],
                         run["acked_total"])

    def test_nonces_time_ordered_unless_random(self):
        """One append at a time to one channel: by default each nonce is
        libherald's, 32 hex digits opening with the wall-clock milliseconds
        (12 digits), so the appends' nonces run in time order to the
        millisecond; --random-nonces sends 32 hex digits in no order. Every
        nonce is new."""
        for flag in ([], ["--random-nonces"]):
            node = self.new_node()
            start_ms = int(time.time() * 1000)
            r = run_bench(node.port, "--in-flight", "1", "--duration", "1", "--channels", "1",
                          "--json", *flag)
            end_ms = int(time.time() * 1000)
            self.assertEqual(r.returncode, 0, r.stderr)
            run = json.loads(r.stdout)["runs"][0]
            self.assertEqual(run["nonces"], "random" if flag else "time-ordered")
            c = Client(node.port)
            try:
                nonces = [m["nonce"] for m in c.read_all("bench-0")]
            finally:
                c.close()
            self.assertGreater(len(nonces), 10, flag)
            self.assertEqual(len(set(nonces)), len(nonces))
            for n in nonces:
                self.assertRegex(n, "^[0-9a-f]{32}$")
            if flag:
                self.assertNotEqual(nonces, sorted(nonces))
            else:
                ms = [int(n[:12], 16) for n in nonces]
                self.assertEqual(ms, sorted(ms))
                self.assertGreaterEqual(ms[0], start_ms)
                self.assertLessEqual(ms[-1], end_ms)

    def test_bad_rate_is_refused(self):
        for args in (["--rate", "0"], ["--rate", "abc"], ["--rate", "10", "--in-flight", "4"],
                     ["--rate", "10,20", "--fanout"], ["--rate", "-5"],
                     ["--rate", "10", "--fanout", "--in-flight", "4"],
                     # --sub-servers: only with --fanout, and a list of good URLs
                     ["--sub-servers", "http://127.0.0.1:1"],
                     ["--fanout", "--sub-servers", ""], ["--fanout", "--sub-servers", ","],
                     ["--fanout", "--sub-servers", "ftp://127.0.0.1:1"],
                     ["--fanout", "--sub-servers", "http://127.0.0.1:1,http://a b"],
                     ["--fanout", "--sub-servers", ",".join(["http://127.0.0.1:1"] * 17)],
                     ["--fanout", "--leader-aware"]):
            r = run_bench(1, *args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn("herald bench:", r.stderr)
            self.assertEqual(r.stdout, "")

    def test_unreachable_server_in_list(self):
        node = self.new_node()
        dead = harness.free_port()
        r = subprocess.run([herald_cli(), "bench", "--servers",
                            "http://127.0.0.1:%d,http://127.0.0.1:%d" % (node.port, dead),
                            "--rate", "20", "--duration", "1", "--connections", "2", "--json"],
                           capture_output=True, text=True, timeout=120)
        # Half the connections never come up: nothing can be measured.
        self.assertEqual(r.returncode, 1, r.stdout)
        run = json.loads(r.stdout)["runs"][0]
        self.assertIsNotNone(run["fatal"])
        self.assertIsNone(run["server_cpu_us_per_ack"])
        self.assertIn("/metrics", r.stderr)


class BenchFanout(NodeTestCase):
    """`herald bench --fanout`: the open loop (--rate), subscribers on other
    servers (--sub-servers), and expected deliveries that are exact whatever
    the plan: the channels' acknowledged appends (what each channel holds
    on the node afterwards) times the plan's subscribers per channel."""

    def setUp(self):
        super().setUp()
        harness.require(has_bench(), "herald built with bench")

    def fanout(self, port, *args, timeout=180):
        r = run_bench(port, "--fanout", "--json", *args, timeout=timeout)
        try:
            run = json.loads(r.stdout)
        except ValueError:
            self.fail("no JSON report (exit %d): %s%s" % (r.returncode, r.stdout, r.stderr))
        return r, run

    def check_complete(self, r, run, counts, subs):
        """Every acknowledged append reached every subscriber of its channel:
        expected is the plan's sum, and delivered equals it."""
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("fatal", run)
        self.assertNotIn("append_fatal", run)
        self.assertEqual(run["failed"], 0, run)
        self.assertEqual(run["appends_acked"] + run["failed"], run["sent"], run)
        # Nothing failed, so the channels hold exactly the acknowledged appends.
        self.assertEqual(sum(counts), run["appends_acked"], (counts, run))
        self.assertEqual(run["expected"], sum(n * k for n, k in zip(counts, subs)),
                         (counts, subs, run))
        self.assertEqual(run["delivered"], run["expected"], run)
        self.assertEqual(run["undelivered"], 0, run)
        self.assertEqual(run["subscribers_short"], 0, run)
        self.assertEqual(run["drain_end"], "complete", run)
        self.assertEqual(run["foreign_messages"], 0, run)
        self.assertLessEqual(run["commit_p50_us"], run["commit_p99_us"])
        self.assertLessEqual(run["commit_p99_us"], run["commit_max_us"])

    def test_rate_delivers_everything(self):
        node = self.new_node()
        # 6 connections over 4 channels: 2, 2, 1 and 1 subscribers.
        r, run = self.fanout(node.port, "--subscribers", "6", "--channels", "4", "--rate", "200",
                             "--duration", "2", "--connections", "16")
        self.check_complete(r, run, channel_counts(node.port, 4), plan_subscribers(6, 4))
        self.assertEqual(run["offered_per_s"], 200)
        self.assertIsNone(run["in_flight"])
        self.assertEqual(run["connections"], 16)
        self.assertEqual(run["scheduled"], 400)
        self.assertEqual(run["sent"] + run["unsent"], run["scheduled"], run)
        # 200/s is far below what even a sanitizer build takes: (nearly) all
        # of it is sent and acknowledged inside the window.
        self.assertGreaterEqual(run["appends_acked"], 390, run)
        self.assertGreaterEqual(run["acked_per_s"], 180, run)
        self.assertLessEqual(run["acked_per_s"], 201, run)
        self.assertEqual(run["sub_servers"], ["http://127.0.0.1:%d" % node.port])

        # The table: the open loop's columns and counts beside the fan-out's.
        r = run_bench(node.port, "--fanout", "--subscribers", "3", "--channels", "2",
                      "--rate", "50", "--duration", "1", "--connections", "2", timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^herald bench --fanout: appends to http://127\.0\.0\.1:%d, "
                         r"subscribers on http://127\.0\.0\.1:%d$" % (node.port, node.port))
        self.assertIn("50 appends/s offered over 2 connections", lines[1])
        self.assertEqual(lines[2].split()[:7], ["subscribers", "chan/sub", "channels", "fanout",
                                               "offered_per_s", "acked_per_s",
                                               "deliveries_per_s"])
        self.assertEqual(lines[2].split()[-2:], ["delivered", "expected"])
        row = lines[3].split()
        self.assertEqual(row[4], "50")
        self.assertEqual(row[-1], row[-2], r.stdout)
        self.assertRegex(lines[4], r"^appends: sent \d+, acked \d+, failed 0, late \d+, "
                         r"unsent \d+ of 50 scheduled")
        self.assertEqual(len(lines), 5, r.stdout)

    def test_uneven_plan_is_exact(self):
        node = self.new_node()
        # 5 connections over 3 channels: 2, 2 and 1 subscribers, where the
        # average (5/3 per channel) is not a whole number.
        r, run = self.fanout(node.port, "--subscribers", "5", "--channels", "3",
                             "--in-flight", "4", "--duration", "1")
        counts = channel_counts(node.port, 3)
        self.check_complete(r, run, counts, [2, 2, 1])
        self.assertEqual(run["in_flight"], 4)
        self.assertNotIn("offered_per_s", run)
        # Two channels each, over 3: 4, 3 and 3 subscribers (on top of the
        # messages above).
        r, run = self.fanout(node.port, "--subscribers", "5", "--sub-channels", "2",
                             "--channels", "3", "--rate", "100", "--duration", "1",
                             "--connections", "4")
        after = channel_counts(node.port, 3)
        self.check_complete(r, run, [a - b for a, b in zip(after, counts)],
                            plan_subscribers(5, 3, 2))
        self.assertEqual(plan_subscribers(5, 3, 2), [4, 3, 3])

    def test_missing_deliveries_fail(self):
        """Half the subscribers on a node of another cluster, which never
        sees the appends: the report counts what is missing, connection by
        connection, and the exit status is 1 though messages arrived."""
        a, b = self.new_node(), self.new_node()
        urls = "http://127.0.0.1:%d,http://127.0.0.1:%d" % (a.port, b.port)
        r, run = self.fanout(a.port, "--subscribers", "4", "--channels", "2", "--rate", "100",
                             "--duration", "1", "--connections", "2", "--sub-servers", urls)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(run["sub_servers"], urls.split(","))
        self.assertEqual(run["servers"], ["http://127.0.0.1:%d" % a.port])
        # Connection i goes to server i mod 2 and takes channel i mod 2: the
        # two on node a follow bench-0, the two on node b bench-1.
        counts = channel_counts(a.port, 2)
        self.assertGreater(counts[1], 0)
        self.assertEqual(run["expected"], 2 * sum(counts), run)
        self.assertEqual(run["delivered"], 2 * counts[0], run)
        self.assertEqual(run["undelivered"], 2 * counts[1], run)
        self.assertEqual(run["subscribers_short"], 2, run)
        # It waited for them until none had come for 20 s, and named them.
        self.assertEqual(run["drain_end"], "quiet", run)
        self.assertGreaterEqual(run["drain_s"], 20, run)
        for i in (1, 3):
            self.assertIn("subscriber %d on http://127.0.0.1:%d (bench-1): 0 of %d delivered"
                          % (i, b.port, counts[1]), r.stderr)
        self.assertEqual(metrics(b.port)["herald_deliveries_live_total"], 0)

    def test_sub_servers_on_followers(self):
        """Appends to node 1 of a three-node cluster, subscribers on nodes 2
        and 3: each follower (or leader, for the shards it leads) delivers
        what the cluster commits, and node 1 delivers nothing."""
        cl = Cluster(self, n=3)
        cl.start()
        cl.wait_leaders(30)
        subs = "http://127.0.0.1:%d,http://127.0.0.1:%d" % (cl[2].port, cl[3].port)
        r, run = self.fanout(cl[1].port, "--subscribers", "6", "--channels", "3",
                             "--rate", "100", "--duration", "2", "--connections", "4",
                             "--sub-servers", subs)
        self.check_complete(r, run, channel_counts(cl[1].port, 3), plan_subscribers(6, 3))
        self.assertEqual(run["sub_servers"], subs.split(","))
        self.assertEqual(run["server"], "http://127.0.0.1:%d" % cl[1].port)
        live = {x.node_id: metrics(x.port)["herald_deliveries_live_total"] +
                metrics(x.port)["herald_deliveries_catchup_total"] for x in cl.nodes}
        self.assertEqual(live[1], 0, live)
        # 3 subscribers each, one per channel: every message once per node.
        self.assertEqual(live[2], run["delivered"] / 2, live)
        self.assertEqual(live[3], run["delivered"] / 2, live)


class BenchFanoutLinger(NodeTestCase):
    """While write rounds take a large share of the loop, a delivery
    connection waits a little after each write (fanout.c: the linger), so
    that a write carries several messages; every message still reaches
    every subscriber once and in order (libherald checks each channel's
    seqs), and once the load is gone the linger falls back to none."""

    def test_linger_rises_under_load_and_falls_after(self):
        node = self.new_node()
        linger = "herald_delivery_linger_seconds"
        seen, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(metrics(node.port).get(linger, -1))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            r = run_bench(node.port, "--fanout", "--subscribers", "400", "--channels", "4",
                          "--in-flight", "32", "--duration", "4", "--json", timeout=300)
        finally:
            stop.set()
            watcher.join()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        run = json.loads(r.stdout)
        self.assertNotIn("fatal", run)  # absent unless a subscriber failed
        self.assertNotIn("append_fatal", run)
        self.assertEqual(run["disconnects"], 0, run)
        self.assertEqual(run["foreign_messages"], 0, run)
        self.assertGreater(run["appends_acked"], 0, run)
        self.assertGreaterEqual(run["delivered"], run["expected"], run)
        self.assertEqual(run["subscribers_short"], 0, run)
        self.assertNotIn(-1, seen, "a /metrics page without %s" % linger)
        self.assertGreater(max(seen), 0, "the linger never rose under load: %r" % seen)
        m = metrics(node.port)
        delivered = m["herald_deliveries_live_total"] + m["herald_deliveries_catchup_total"]
        print("  linger up to %.3f s; %d deliveries in %d writes (%.1f each)"
              % (max(seen), delivered, m["herald_delivery_writes_total"],
                 delivered / m["herald_delivery_writes_total"]))
        self.assertGreater(delivered, 1.5 * m["herald_delivery_writes_total"])
        # Idle again: write rounds take nothing, the linger halves to none.
        deadline = time.monotonic() + 30
        while metrics(node.port)[linger] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(metrics(node.port)[linger], 0)


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`herald bench --rate` (the open loop), the histograms of /metrics, and
the delivery linger under `herald bench --fanout`, against a real node.

Behaviour only, never speed: the bench's report has its shape, every
request it sent is accounted for (acked + failed == sent), and the node's
histograms agree with what the bench saw acknowledged: the append latency
histogram counts exactly the appends this node acknowledged, and the
appends-per-entry histogram holds exactly those appends.

Needs the herald CLI built with bench ($HERALD_CLI, else cli/herald beside
the heraldd given).
"""

import json
import re
import subprocess
import threading
import time

import harness
from harness import NodeTestCase, run_tests
from ws_client import metrics

HISTOGRAMS = ("herald_append_latency_seconds", "herald_wal_sync_seconds",
              "herald_wal_entries_per_sync", "herald_appends_per_entry")


herald_cli = harness.herald_cli


def run_bench(port, *args, timeout=120):
    url = "http://127.0.0.1:%d" % port
    return subprocess.run([herald_cli(), "--server", url, "bench"] + list(args),
                          capture_output=True, text=True, timeout=timeout)


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
        r = subprocess.run([herald_cli(), "bench", "--help"], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0 or "--rate" not in r.stdout:
            self.skipTest("herald was built without bench")

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
                         r"payloads, 16 channels, 4 connections, 1 s per rate" % node.port)
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

    def test_bad_rate_is_refused(self):
        for args in (["--rate", "0"], ["--rate", "abc"], ["--rate", "10", "--in-flight", "4"],
                     ["--rate", "10", "--fanout"], ["--rate", "-5"]):
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

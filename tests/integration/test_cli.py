#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The herald CLI's status commands and the built-in status page, against
real nodes.

  herald status          tables: the node line, every shard with its leader,
                         term, commit, applied and lag; --json is the raw
                         /v1/status answer; --rates adds rates
  herald cluster status  one row per node of a 3-node cluster, each answering
  errors                 an unreachable server and an HTTP error are one line
                         on stderr, exit 1
  completion             ops/herald.bash-completion offers the subcommands,
                         and for each command exactly the flags its --help
                         lists
  GET / and HEAD /       the status page: HTML, no-cache, no external assets;
                         /v1/status carries what it shows (disk, deliveries)

The herald binary comes from $HERALD_CLI (CTest sets it) or next to heraldd.
"""

import json
import os
import re
import subprocess

import harness
from harness import NodeTestCase, Client, Cluster, run_tests


herald_cli = harness.herald_cli


def run_cli(port, *args, timeout=60):
    url = "http://127.0.0.1:%d" % port
    return subprocess.run([herald_cli(), "--server", url] + list(args), capture_output=True,
                          text=True, timeout=timeout)


class StatusCli(NodeTestCase):

    def test_status_tables_and_json(self):
        node = self.new_node()
        c = node.client()
        for i in range(5):
            c.append_ok("cli-%d" % i, "n%d" % i, "hello")
        r = run_cli(node.port, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        st = c.status()
        out = r.stdout
        self.assertRegex(out, r"^node %d  cluster %s  version \S+  up " %
                         (st["node_id"], st["cluster_id"]))
        self.assertIn("appends: 5 committed", out)
        self.assertRegex(out, r"\ndisk: .*: WAL \d.* free of ")
        header = re.search(r"^SHARD +STATE +LEADER +TERM +COMMIT +APPLIED +LAG .*$", out, re.M)
        self.assertIsNotNone(header, out)
        rows = re.findall(r"^ *(\d+)  (\w+) +(\d+|-) +(\d+) +(\d+) +(\d+) +(\d+) ", out, re.M)
        self.assertEqual([int(x[0]) for x in rows], list(range(len(st["shards"]))), out)
        for row, sh in zip(rows, st["shards"]):
            self.assertEqual(row[1], "leader")
            self.assertEqual(int(row[2]), st["node_id"])
            self.assertEqual(int(row[3]), sh["term"])
            # Commit and applied only grow between the two answers.
            self.assertLessEqual(int(row[4]), sh["commit_index"])
            self.assertEqual(int(row[6]), int(row[4]) - int(row[5]))
        self.assertIn("peers: none", out)

        r = run_cli(node.port, "status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.strip().splitlines()), 1, "one line of JSON")
        j = harness.json.loads(r.stdout)
        for key in ("node_id", "cluster_id", "shards", "peers", "appends", "disk",
                    "deliveries", "now_ms"):
            self.assertIn(key, j)
        self.assertEqual(j["appends"]["committed"], 5)

    def test_status_rates(self):
        node = self.new_node()
        r = run_cli(node.port, "status", "--rates")
        self.assertEqual(r.returncode, 0, r.stderr)
        # One status request in between (the first one) counts as a request.
        m = re.search(r"^rates: ([0-9.]+) appends/s, ([0-9.]+) deliveries/s, ([0-9.]+) HTTP "
                      r"requests/s \(over [0-9.]+ s\)$", r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(float(m.group(1)), 0.0)
        self.assertGreater(float(m.group(3)), 0.0)

    def test_retention_list(self):
        node = self.new_node(args=["--retention", "chat:*=age:7d,messages:100",
                                   "--retention", "*=bytes:1MiB"])
        r = run_cli(node.port, "retention", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [re.split(r" {2,}", line.strip()) for line in r.stdout.splitlines()[:3]]
        self.assertEqual(rows, [["PATTERN", "MAX AGE", "MAX MESSAGES", "MAX BYTES"],
                                ["chat:*", "604800s", "100", "-"],
                                ["*", "-", "-", "1.0 MiB"]], r.stdout)
        st = node.client().status()["retention"]
        self.assertIn("policy hash %s" % st["hash"], r.stdout)
        r = run_cli(node.port, "retention", "list", "--json")
        self.assertEqual(json.loads(r.stdout), st)
        plain = self.new_node()
        r = run_cli(plain.port, "retention", "list")
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, "no retention policy: every channel keeps all its messages"))
        self.assertIn("this node's --retention", run_cli(node.port, "retention", "list").stdout)
        r = run_cli(plain.port, "retention", "set")
        self.assertEqual(r.returncode, 2)
        self.assertIn("retention set needs RULES", r.stderr)

    def test_errors_are_one_line(self):
        node = self.new_node()
        port = node.port
        node.terminate()
        r = run_cli(port, "status", timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertRegex(r.stderr, r"^herald status: .*(refused|unavailable)")
        r = run_cli(port, "status", "--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad option", r.stderr)
        r = run_cli(port, "status", "extra")
        self.assertEqual(r.returncode, 2)

    def test_http_error_is_one_line(self):
        # A URL path prefix (as for a proxy) that heraldd does not serve:
        # it answers 404 with its JSON error, which the line carries.
        node = self.new_node()
        r = run_cli(node.port, "--server", "http://127.0.0.1:%d/nope" % node.port, "status")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertRegex(r.stderr, r"^herald status: .*404.*(not_found|no such route)")

    def test_status_page(self):
        node = self.new_node()
        c = node.client()
        r = c.request("GET", "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-type"), "text/html; charset=utf-8")
        self.assertEqual(r.headers.get("cache-control"), "no-cache")
        body = r.body.decode()
        self.assertTrue(body.startswith("<!DOCTYPE html>"))
        self.assertIn("/v1/status", body)
        # No external assets: nothing loaded from another origin.
        self.assertNotRegex(body, r"(src|href)=[\"']?(https?:)?//")
        self.assertNotIn("@import", body)
        h = c.request("HEAD", "/")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.body, b"")
        self.assertEqual(int(h.headers.get("content-length")), len(r.body))
        self.assertError(c.request("POST", "/", b"x"), 405, "method_not_allowed")
        self.assertError(c.request("GET", "/index.htm"), 404, "not_found")
        st = c.status()
        disk = st["disk"]
        self.assertEqual(disk["data_dir"], node.data)
        self.assertGreater(disk["wal_bytes"], 0)
        self.assertGreater(disk["fs_total_bytes"], 0)
        self.assertLessEqual(disk["fs_free_bytes"], disk["fs_total_bytes"])
        wal = sum(os.path.getsize(os.path.join(d, f))
                  for d, _, fs in os.walk(os.path.join(node.data, "wal")) for f in fs)
        self.assertEqual(disk["wal_bytes"], wal)
        self.assertEqual(set(st["deliveries"]), {"live", "catchup", "subscriptions"})


class ClusterStatusCli(NodeTestCase):

    def test_cluster_status(self):
        cl = Cluster(self, 3).start()
        lead = cl.wait_leaders()
        urls = ",".join("http://127.0.0.1:%d" % x.port for x in cl.nodes[1:])
        r = run_cli(cl[1].port, "cluster", "status", "--servers", urls)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^NODE +URL +ANSWER +LEADS +LEADER PER SHARD +PEERS UP +UP$")
        ids = []
        for line in lines[1:4]:
            m = re.match(r"^ *(\d+) +http://127\.0\.0\.1:(\d+) +ok +(\d+)/(\d+) +(.*?) +(\d)/2 ",
                         line)
            self.assertIsNotNone(m, r.stdout)
            ids.append(int(m.group(1)))
            self.assertEqual(cl[int(m.group(1))].port, int(m.group(2)))
            self.assertEqual(int(m.group(4)), len(lead))
        self.assertEqual(sorted(ids), [1, 2, 3])

        # Without --servers the other members are named as not asked.
        r = run_cli(cl[1].port, "cluster", "status")
        self.assertEqual(r.returncode, 1)
        self.assertIn("members 2, 3 not asked", r.stderr)

        # A node that is down: its row says no, its reason is one line.
        cl[3].terminate()
        urls = ",".join("http://127.0.0.1:%d" % x.port for x in cl.nodes)
        r = run_cli(cl[1].port, "cluster", "status", "--servers", urls, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"\n\? +http://127\.0\.0\.1:%d +no\n" % cl[3].port)
        self.assertRegex(r.stderr, r"herald cluster status: .*127\.0\.0\.1:%d" % cl[3].port)

        r = run_cli(cl[1].port, "cluster", "status", "--json")
        j = harness.json.loads(r.stdout)
        self.assertEqual(j[0]["url"], "http://127.0.0.1:%d" % cl[1].port)
        self.assertEqual(j[0]["status"]["node_id"], 1)


COMPLETION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ops",
                          "herald.bash-completion")


def complete(*words):
    """What bash completion offers for the words typed (the last one being
    completed)."""
    script = ('source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); '
              '_herald; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", script, COMPLETION, "herald"] + list(words),
                       capture_output=True, text=True, timeout=30, check=True)
    return set(r.stdout.split())


class Completion(NodeTestCase):

    def help_flags(self, *cmd):
        r = subprocess.run([herald_cli()] + list(cmd) + ["--help"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return set(re.findall(r"--[a-z][a-z-]*", r.stdout)) - {"--help"}

    def test_subcommands(self):
        # Every command `herald --help` lists, and no other.
        out = subprocess.run([herald_cli(), "--help"], capture_output=True, text=True,
                             timeout=30).stdout
        listed = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
        commands = set(re.findall(r"^  ([a-z]+)\b", listed, re.M)) | {"help"}
        self.assertIn("backup", commands)
        self.assertEqual(complete(""), commands)
        self.assertEqual(complete("st"), {"status"})
        self.assertEqual(complete("--server", "http://h", "cluster", ""),
                         {"add-node", "remove-node", "status"})
        self.assertEqual(complete("subscribe", "--from", ""), {"now", "0"})
        self.assertEqual(complete("read", "--limit", ""), set())
        self.assertEqual(complete("retention", ""), {"list", "set", "clear"})
        self.assertEqual(complete("retention", "set", "chat:*=none", ""), set())
        self.assertEqual(complete("retention", "list", "--"), {"--json", "--server", "--help"})

    def test_flags_match_help(self):
        have_bench = subprocess.run([herald_cli(), "bench", "--help"], capture_output=True,
                                    timeout=30).returncode == 0
        for cmd in ("append", "read", "tail", "subscribe", "status") + (
                ("bench",) if have_bench else ()):
            self.assertEqual(complete(cmd, "--") - {"--help"}, self.help_flags(cmd), cmd)
        offered = (complete("cluster", "--") | complete("cluster", "status", "--") |
                   complete("cluster", "add-node", "4", "127.0.0.1:1", "--")) - {"--help"}
        # `herald cluster --help` also names heraldd's options for the new node.
        heraldd_opts = {"--id", "--join", "--peer-listen"}
        self.assertEqual(offered, (self.help_flags("cluster") | self.help_flags("cluster", "status"))
                         - heraldd_opts)


if __name__ == "__main__":
    run_tests()

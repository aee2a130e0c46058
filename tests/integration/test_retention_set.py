#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The cluster's retention policy, set through Raft (PUT|DELETE /v1/retention,
herald retention set|clear), on one three-node cluster whose nodes each have
their own --retention for a pattern no channel here uses.

1. Bad rules (and a bad body) answer 400 with the parser's message, and no
   node's policy changes.
2. A policy PUT through a follower of shard 0 answers 200 once applied
   there; every node's status then shows the same policy and hash with
   source "cluster", logs the change, and names the rule in channel info.
3. The sweep (--retention-interval 1) trims a channel under it identically
   on every node (reads compared byte for byte, 410 below); a channel under
   `none` keeps everything.
4. A node killed (kill -9) keeps the cluster's policy after its restart; a
   node down while the policy changes (herald retention set, several
   arguments) has the new one once it is back.
5. herald retention clear returns each node to its own --retention (source
   "config", each its own hash); a bad rule through the CLI is one line on
   stderr, exit 1.
6. With two nodes down, a PUT answers 503.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Client, Cluster, NodeTestCase, run_tests  # noqa: E402


def run_cli(port, *args):
    return subprocess.run([harness.herald_cli(), "--server", "http://127.0.0.1:%d" % port]
                          + list(args), capture_output=True, text=True, timeout=90)


class RetentionSetTest(NodeTestCase):
    def put(self, node, body):
        return Client(node.port, timeout=60).request(
            "PUT", "/v1/retention", body if isinstance(body, str) else json.dumps(body),
            {"Content-Type": "application/json"})

    def policies(self, cl, nodes=None):
        return [Client(x.port).get_json("/v1/retention") for x in (nodes or cl.nodes)]

    def wait_policy(self, cl, policy, source, nodes=None, timeout=30):
        """Waits until every node's effective policy is this one."""
        deadline = time.time() + timeout
        while True:
            got = self.policies(cl, nodes)
            if all(p["policy"] == policy and p["source"] == source for p in got):
                self.assertEqual(len({p["hash"] for p in got}), 1, got)
                return got[0]
            self.assertLess(time.time(), deadline, "policies never became %r (%s): %r"
                            % (policy, source, got))
            time.sleep(0.1)

    def wait_info(self, cl, ch, want, timeout=30):
        deadline = time.time() + timeout
        while True:
            infos = [Client(x.port).get_json("/v1/channels/%s" % ch) for x in cl.nodes]
            if all(all(i[k] == v for k, v in want.items()) for i in infos):
                return infos
            self.assertLess(time.time(), deadline, "never %r on %s: %r" % (want, ch, infos))
            time.sleep(0.1)

    def assert_identical(self, cl, ch, first):
        """Reads from first - 1 are the same bytes on every node; below: 410."""
        path = "/v1/channels/%s/messages?after_seq=%d&limit=1000"
        reads = [Client(x.port).get(path % (ch, first - 1)) for x in cl.nodes]
        self.assertTrue(all(r.status == 200 for r in reads), reads)
        self.assertEqual(len({r.body for r in reads}), 1, "reads of %s differ" % ch)
        for x in cl.nodes:
            self.assertEqual(Client(x.port).get(path % (ch, first - 2)).status, 410)
        return [m["seq"] for m in reads[0].json()["messages"]]

    def test_cluster_policy(self):
        cl = Cluster(self, n=3, args=["--retention-interval", "1"])
        for x in cl.nodes:
            x.args = list(x.args) + ["--retention", "own%d:*=messages:%d" % (x.node_id, x.node_id)]
        cl.start()
        lead = cl.wait_settled()
        own = {x.node_id: "own%d:*=messages:%d" % (x.node_id, x.node_id) for x in cl.nodes}
        config = {p["hash"]: p for p in self.policies(cl)}
        self.assertEqual(len(config), 3)  # three different config policies
        follower = next(x for x in cl.nodes if x.node_id != lead[0])

        # 1. Refused before anything is proposed; nothing changes.
        for body, code, words in (
                ({"rules": "chat:*=age:7y"}, "bad_retention", "age must be"),
                ({"rules": "*=none;chat:*=messages:1"}, "bad_retention", "never applies"),
                ({"rules": ""}, "bad_retention", "empty rule"),
                ({"rules": 5}, "bad_json", "rules"),
                ("{\"rules\": \"a=none\", \"x\": 1}", "bad_json", "rules"),
                ("not json", "bad_json", "rules")):
            r = self.put(follower, body)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json()["error"]["code"], code, r)
            self.assertIn(words, r.json()["error"]["message"])
        self.assertEqual(sorted(p["policy"] for p in self.policies(cl)), sorted(own.values()))
        self.assertTrue(all(p["source"] == "config" for p in self.policies(cl)))

        # 2. Set through a follower of shard 0: the answer shows it applied there.
        r = self.put(follower, {"rules": " chat:*=messages:5 ; *=none "})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["policy"], r.json()["source"]),
                         ("chat:*=messages:5;*=none", "cluster"))
        p = self.wait_policy(cl, "chat:*=messages:5;*=none", "cluster")
        self.assertEqual([x["rule"] for x in p["rules"]], ["chat:*=messages:5", "*=none"])
        for x in cl.nodes:
            st = x.client().status()["retention"]
            self.assertEqual((st["hash"], st["source"]), (p["hash"], "cluster"))
            self.assertIn('retention: policy now "chat:*=messages:5;*=none" (cluster', x.log())
            info = x.client().get_json("/v1/channels/chat:a")
            self.assertEqual(info["retention"], "chat:*=messages:5")

        # 3. Every shard leader sweeps by it: the same trim on every node.
        c = Client(cl.nodes[0].port)
        for i in range(20):
            c.append_ok("chat:a", "a%d" % i, "message %d" % i)
            c.append_ok("own1:a", "o%d" % i, "kept %d" % i)
        self.wait_info(cl, "chat:a", {"first_seq": 16, "last_seq": 20})
        self.assertEqual(self.assert_identical(cl, "chat:a", 16), list(range(16, 21)))
        # own1:* is node 1's config rule, which the cluster's `*=none` replaces.
        self.wait_info(cl, "own1:a", {"first_seq": 1, "last_seq": 20})

        # 4. A restart keeps it; a node down while it changes gets the change.
        victim = follower
        victim.kill9()
        victim.restart()
        self.assertEqual(Client(victim.port).get_json("/v1/retention")["hash"], p["hash"])
        self.assertIn('retention: policy "chat:*=messages:5;*=none" (cluster', victim.log())
        down = next(x for x in cl.nodes if x is not victim)
        up = [x for x in cl.nodes if x is not down]
        down.kill9()
        deadline = time.time() + 30
        while True:
            r = run_cli(up[0].port, "retention", "set", "chat:*=messages:3", "*=none")
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.2)  # 503: an election after the kill
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the cluster's (herald retention set)", r.stdout)
        self.wait_policy(cl, "chat:*=messages:3;*=none", "cluster", nodes=up)
        down.restart()
        p = self.wait_policy(cl, "chat:*=messages:3;*=none", "cluster")
        self.wait_info(cl, "chat:a", {"first_seq": 18, "last_seq": 20})
        self.assertEqual(self.assert_identical(cl, "chat:a", 18), [18, 19, 20])
        r = run_cli(cl.nodes[2].port, "retention", "list", "--json")
        self.assertEqual(json.loads(r.stdout)["hash"], p["hash"])

        # 5. Clear: each node back to its own --retention.
        r = run_cli(cl.nodes[1].port, "retention", "set", "chat:*=messages:ten")
        self.assertEqual((r.returncode, r.stdout, len(r.stderr.splitlines())), (1, "", 1), r)
        self.assertIn("messages must be", r.stderr)
        r = run_cli(cl.nodes[1].port, "retention", "clear", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((json.loads(r.stdout)["source"], json.loads(r.stdout)["policy"]),
                         ("config", own[2]))
        deadline = time.time() + 30
        while True:
            got = {x.node_id: Client(x.port).get_json("/v1/retention") for x in cl.nodes}
            if all(got[i]["source"] == "config" and got[i]["policy"] == own[i] for i in got):
                break
            self.assertLess(time.time(), deadline, got)
            time.sleep(0.1)
        self.assertEqual({got[i]["hash"] for i in got}, set(config))
        for x in cl.nodes:
            self.assertIn('retention: policy now "%s" (config' % own[x.node_id], x.log())
        r = run_cli(cl.nodes[0].port, "retention", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("this node's --retention", r.stdout)

        # 6. No quorum for shard 0: 503, whoever the node asked thought led it.
        cl.nodes[1].kill9()
        cl.nodes[2].kill9()
        r = self.put(cl.nodes[0], {"rules": "late:*=messages:1"})
        self.assertEqual(r.status, 503, r)

if __name__ == "__main__":
    run_tests()

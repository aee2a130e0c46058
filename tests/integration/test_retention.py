#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Trim and delete through Raft, on a three-node cluster.

1. POST /v1/channels/{ch}/trim (to any node: a follower forwards it to the
   shard leader) drops the older messages on every node:
   GET /v1/channels/{ch} answers the same first/last seq everywhere, and the
   read of what is left is byte for byte the same on every node; a read
   below the trim answers 410 gone with first_seq, on every node.
2. DELETE /v1/channels/{ch}: every node answers epoch 1 and no messages; the
   next append is seq 1 again and a nonce used before the delete is a new
   message; reads carry the epoch; the logs are identical on every node.
3. Bad input: a trim body without a positive before_seq is 400 and changes
   nothing; other methods are 405.
4. An SSE tail from below a trim answers 410 gone before any stream starts.
5. Disk use of every node's state falls after a trim and after a delete
   (the figures are printed; README quotes them).
7. herald channel info|trim|delete (the CLI, next to heraldd in the build):
   they work on every node; bad arguments are usage errors (exit 2).
8. Trim and delete sent to a follower are forwarded to the shard's leader:
   the follower answers once it applied them itself (its info in the answer
   and its reads already show them), and every node's reads end identical.
6. A WebSocket subscribe below a trim gets a `gone` frame with first_seq and
   epoch; from first_seq - 1 it gets the messages left.
"""

import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Client, Cluster, NodeTestCase, run_tests  # noqa: E402


class RetentionTest(NodeTestCase):
    def new_cluster(self):
        cl = Cluster(self, n=3)
        self.nodes.extend(cl.nodes)
        cl.start()
        cl.wait_settled()
        return cl

    def command(self, cl, method, path, body=None, node=None):
        """Sends a trim/delete to a node (any: followers forward it),
        again while it answers 503 (no leader yet)."""
        deadline = time.time() + 30
        node = node or cl.nodes[0]
        while True:
            c = Client(node.port, timeout=15)
            try:
                data = json.dumps(body) if body is not None else None
                r = c.request(method, path, data,
                              {"Content-Type": "application/json"} if data else {})
            finally:
                c.close()
            if r.status != 503:
                return r
            self.assertIn("retry-after", r.headers, r)
            self.assertLess(time.time(), deadline, "no leader took %s %s: %r" % (method, path, r))
            time.sleep(0.5)

    def wait_info(self, cl, ch, want):
        """Waits until every node's GET /v1/channels/{ch} has these fields."""
        deadline = time.time() + 30
        while True:
            infos = [Client(x.port).get_json("/v1/channels/%s" % ch) for x in cl.nodes]
            if all(all(i[k] == v for k, v in want.items()) for i in infos):
                return infos
            self.assertLess(time.time(), deadline, "nodes disagree on %s: %r" % (ch, infos))
            time.sleep(0.1)

    def raw_reads(self, cl, ch, after):
        return [Client(x.port).get("/v1/channels/%s/messages?after_seq=%d&limit=1000"
                                   % (ch, after)) for x in cl.nodes]

    def fill(self, cl, ch, n, tag):
        c = Client(cl.nodes[1].port)
        for i in range(n):
            seq, _ = c.append_ok(ch, "%s-%d" % (tag, i), "payload %s %d" % (tag, i))
            self.assertEqual(seq, i + 1)

    def test_1_trim_identical_on_every_node(self):
        cl = self.new_cluster()
        ch = "ret-trim"
        self.fill(cl, ch, 20, "a")
        r = self.command(cl, "POST", "/v1/channels/%s/trim" % ch, {"before_seq": 11})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["first_seq"], r.json()["last_seq"]), (11, 20))
        self.wait_info(cl, ch, {"first_seq": 11, "last_seq": 20, "epoch": 0})
        reads = self.raw_reads(cl, ch, 10)
        self.assertTrue(all(x.status == 200 for x in reads), reads)
        self.assertEqual(len({x.body for x in reads}), 1, "reads differ between nodes")
        msgs = reads[0].json()["messages"]
        self.assertEqual([m["seq"] for m in msgs], list(range(11, 21)))
        for after in (0, 5, 9):
            for x in self.raw_reads(cl, ch, after):
                self.assertEqual(x.status, 410, x)
                j = x.json()
                self.assertEqual((j["error"]["code"], j["first_seq"], j["epoch"]), ("gone", 11, 0))
        # A trim below the first seq changes nothing; a later one moves it.
        self.assertEqual(self.command(cl, "POST", "/v1/channels/%s/trim" % ch,
                                      {"before_seq": 3}).json()["first_seq"], 11)
        self.assertEqual(self.command(cl, "POST", "/v1/channels/%s/trim" % ch,
                                      {"before_seq": 1000}).json()["first_seq"], 20)
        self.wait_info(cl, ch, {"first_seq": 20, "last_seq": 20})
        # Appends go on after the head.
        self.assertEqual(Client(cl.nodes[2].port).append_ok(ch, "b-0", "x")[0], 21)

    def test_2_delete_starts_a_new_epoch(self):
        cl = self.new_cluster()
        ch = "ret-del"
        self.fill(cl, ch, 5, "a")
        r = self.command(cl, "DELETE", "/v1/channels/%s" % ch)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["epoch"], r.json()["last_seq"]), (1, 0))
        self.wait_info(cl, ch, {"epoch": 1, "last_seq": 0, "first_seq": 1})
        c = Client(cl.nodes[0].port)
        r = c.append(ch, "a-0", "again")   # a nonce of the deleted channel
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["seq"], r.json()["duplicate"]), (1, False))
        self.assertEqual(c.append_ok(ch, "new-1", "two")[0], 2)
        self.wait_info(cl, ch, {"epoch": 1, "last_seq": 2})
        reads = self.raw_reads(cl, ch, 0)
        self.assertEqual(len({x.body for x in reads}), 1, "reads differ between nodes")
        j = reads[0].json()
        self.assertEqual(j["epoch"], 1)
        self.assertEqual([m["payload"] for m in j["messages"]], ["again", "two"])
        self.assertEqual(self.command(cl, "DELETE", "/v1/channels/%s" % ch).json()["epoch"], 2)
        self.wait_info(cl, ch, {"epoch": 2, "last_seq": 0})

    def test_3_bad_input_changes_nothing(self):
        cl = self.new_cluster()
        ch = "ret-bad"
        self.fill(cl, ch, 3, "a")
        for body in ({}, {"before_seq": 0}, {"before_seq": -1}, {"before_seq": "2"},
                     {"before_seq": 2, "x": 1}, [2]):
            r = self.command(cl, "POST", "/v1/channels/%s/trim" % ch, body)
            self.assertError(r, 400, "bad_json")
        c = Client(cl.nodes[0].port)
        self.assertError(c.request("PUT", "/v1/channels/%s" % ch), 405)
        self.assertError(c.request("GET", "/v1/channels/%s/trim" % ch), 405)
        self.assertError(c.request("DELETE", "/v1/channels/bad%%20id"), 400)
        self.wait_info(cl, ch, {"first_seq": 1, "last_seq": 3, "epoch": 0})

    def test_4_tail_below_trim_is_gone(self):
        cl = self.new_cluster()
        ch = "ret-tail"
        self.fill(cl, ch, 6, "a")
        self.command(cl, "POST", "/v1/channels/%s/trim" % ch, {"before_seq": 4})
        self.wait_info(cl, ch, {"first_seq": 4})
        for x in cl.nodes:
            c = Client(x.port)
            for headers, q in (({}, "?after_seq=1"), ({"Last-Event-ID": "2"}, "")):
                r = c.request("GET", "/v1/channels/%s/tail%s" % (ch, q), None, headers)
                self.assertEqual(r.status, 410, r)
                self.assertEqual(r.json()["first_seq"], 4)

    def test_5_disk_use_falls(self):
        cl = self.new_cluster()
        ch = "ret-disk"
        c = Client(cl.nodes[0].port)
        n = 600
        for i in range(n):
            # Incompressible payloads: compression cannot hide the figure.
            r = c.append(ch, "d-%d" % i, payload_b64=base64.b64encode(os.urandom(16384)).decode())
            self.assertEqual(r.status, 201, r)
        self.wait_info(cl, ch, {"last_seq": n})

        def measure():
            # A clean stop flushes state (RocksDB's own WAL is off): measured
            # stopped, every byte is on disk.
            cl.terminate_all()
            sizes = [state_bytes(x.data) for x in cl.nodes]
            cl.start()
            cl.wait_settled()
            return sizes

        before = measure()
        self.command(cl, "POST", "/v1/channels/%s/trim" % ch, {"before_seq": n - 10})
        self.wait_info(cl, ch, {"first_seq": n - 10})
        trimmed = measure()
        self.command(cl, "DELETE", "/v1/channels/%s" % ch)
        self.wait_info(cl, ch, {"epoch": 1})
        deleted = measure()
        print("\n  state bytes per node, %d x 16 KiB messages: before %s, after trimming all"
              " but 10 %s, after delete %s" % (n, before, trimmed, deleted))
        for b, t, d in zip(before, trimmed, deleted):
            self.assertGreater(b, n * 16384 // 2)
            self.assertLess(t, b // 4)
            self.assertLessEqual(d, t)

    def test_6_websocket_subscribe_below_trim_is_gone(self):
        from ws_client import WS, require_websocket
        require_websocket()
        cl = self.new_cluster()
        ch = "ret-ws"
        self.fill(cl, ch, 8, "a")
        self.command(cl, "POST", "/v1/channels/%s/trim" % ch, {"before_seq": 5})
        self.wait_info(cl, ch, {"first_seq": 5})
        ws = WS(cl.nodes[2].port)
        try:
            ws.send({"type": "subscribe", "id": "s", "channels": {ch: 2}})
            f, _ = ws.recv_until(lambda f: f.get("type") in ("gone", "subscribed", "error"))
            self.assertEqual((f["type"], f["channel"], f["first_seq"], f["epoch"]),
                             ("gone", ch, 5, 0), f)
            ws.send({"type": "subscribe", "id": "s", "channels": {ch: 4}})
            f, _ = ws.recv_until(lambda f: f.get("type") in ("gone", "subscribed", "error"))
            self.assertEqual((f["type"], f["epoch"]), ("subscribed", 0), f)
            seqs = []
            while len(seqs) < 4:
                f, _ = ws.recv_until(lambda f: f.get("type") == "message")
                seqs.append(f["seq"])
            self.assertEqual(seqs, [5, 6, 7, 8])
        finally:
            ws.close()

    def test_7_cli(self):
        cli = harness.herald_cli()
        cl = self.new_cluster()
        ch = "ret-cli"
        self.fill(cl, ch, 4, "a")
        self.wait_info(cl, ch, {"last_seq": 4})

        def run(node, *args):
            p = subprocess.run([cli, "--server", "http://127.0.0.1:%d" % node.port, "channel"]
                               + list(args), capture_output=True, text=True, timeout=60)
            return p.returncode, p.stdout, p.stderr

        rc, out, err = run(cl.nodes[0], "info", ch)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"channel": ch, "first_seq": 1, "last_seq": 4,
                                           "epoch": 0, "retention": None})
        # Every node takes them (followers forward to the leader).
        for x in cl.nodes:
            rc, out, err = run(x, "trim", ch, "3")
            self.assertEqual(rc, 0, err)
            self.assertEqual(json.loads(out)["first_seq"], 3)
        leader = cl.nodes[2]
        rc, out, err = run(leader, "delete", ch)
        self.assertEqual((rc, json.loads(out)["epoch"]), (0, 1), err)
        for bad in (["trim", ch, "0"], ["trim", ch, "x"], ["trim", ch], ["info"], ["nope", ch]):
            self.assertEqual(run(leader, *bad)[0], 2, bad)
        rc, _, err = run(leader, "info", "bad id")
        self.assertEqual(rc, 1, err)

    def test_8_follower_forwards_trim_and_delete(self):
        """Each node in turn trims: at least two of the three are followers
        of the channel's shard, so those trims are forwarded."""
        cl = self.new_cluster()
        for ch in ("ret-fwd-a", "ret-fwd-b"):
            self.fill(cl, ch, 12, ch)
            self.wait_info(cl, ch, {"last_seq": 12})
            for i, x in enumerate(cl.nodes):
                before = 4 + 2 * i
                r = self.command(cl, "POST", "/v1/channels/%s/trim" % ch,
                                 {"before_seq": before}, node=x)
                self.assertEqual(r.status, 200, r)
                # The answering node applied it already: its answer and reads show it.
                self.assertEqual((r.json()["first_seq"], r.json()["last_seq"]), (before, 12))
                path = "/v1/channels/%s/messages?after_seq=%d"
                self.assertEqual(Client(x.port).get(path % (ch, before - 2)).status, 410)
                self.assertEqual(Client(x.port).get(path % (ch, before - 1)).status, 200)
            self.wait_info(cl, ch, {"first_seq": 8, "last_seq": 12, "epoch": 0})
            reads = self.raw_reads(cl, ch, 7)
            self.assertTrue(all(x.status == 200 for x in reads), reads)
            self.assertEqual(len({x.body for x in reads}), 1, "reads differ between nodes")
            self.assertEqual([m["seq"] for m in reads[0].json()["messages"]], list(range(8, 13)))
            for i, x in enumerate(cl.nodes):
                r = self.command(cl, "DELETE", "/v1/channels/%s" % ch, node=x)
                self.assertEqual(r.status, 200, r)
                self.assertEqual((r.json()["epoch"], r.json()["last_seq"]), (i + 1, 0))
                self.assertEqual(Client(x.port).get_json("/v1/channels/%s" % ch)["epoch"], i + 1)
            self.wait_info(cl, ch, {"epoch": 3, "last_seq": 0, "first_seq": 1})
            Client(cl.nodes[1].port).append_ok(ch, "after-delete", "new")
            self.wait_info(cl, ch, {"epoch": 3, "last_seq": 1})
            reads = self.raw_reads(cl, ch, 0)
            self.assertEqual(len({x.body for x in reads}), 1, "reads differ between nodes")
        self.assertTrue(any("for a follower" in x.log() for x in cl.nodes),
                        "no trim or delete was forwarded")

    def test_9_no_leader_is_503(self):
        """A node whose peers are gone has no leader (a leader that lost its
        quorum steps down): trim and delete answer 503 unavailable with
        Retry-After, like appends, and change nothing."""
        cl = self.new_cluster()
        ch = "ret-noleader"
        self.fill(cl, ch, 3, "a")
        self.wait_info(cl, ch, {"last_seq": 3})
        alone = cl.nodes[0]
        for x in cl.nodes[1:]:
            x.kill9()
        c = Client(alone.port, timeout=20)
        deadline = time.time() + 60
        while True:
            r = c.post_json("/v1/channels/%s/trim" % ch, {"before_seq": 2})
            self.assertEqual(r.status, 503, r)  # outcome_unknown while leadership goes
            if r.json()["error"]["code"] == "unavailable":
                break
            self.assertLess(time.time(), deadline, r)
            time.sleep(0.5)
        self.assertEqual(r.headers.get("retry-after"), "1")
        self.assertError(c.request("DELETE", "/v1/channels/%s" % ch), 503, "unavailable")
        info = c.get_json("/v1/channels/%s" % ch)
        self.assertEqual((info["first_seq"], info["last_seq"], info["epoch"]), (1, 3, 0))


def state_bytes(data_dir):
    """Bytes of the node's RocksDB files (DATA/state)."""
    total = 0
    for root, _, files in os.walk(os.path.join(data_dir, "state")):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


if __name__ == "__main__":
    run_tests()

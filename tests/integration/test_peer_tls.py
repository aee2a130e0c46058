#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Mutual TLS on the peer port (--peer-tls-cert/--peer-tls-key/--peer-tls-ca,
docs/security.md "Mutual TLS between nodes"), with TLS on the client port
and --auth-file on: the cluster a careful operator runs.

A throwaway cluster CA, node certificates (IP:127.0.0.1, DNS:localhost),
an expired certificate from the same CA, and a second CA with a
certificate of its own are made with the openssl CLI.

1. A 3-node cluster: appends over https to every node, the same log read
   back byte for byte from every node; a leader killed with SIGKILL and a
   new one elected over mTLS; the killed node restarted and caught up; a
   4th node with a certificate of the cluster CA added (catch-up over
   mTLS); SIGHUP with a broken key refused (logged), then a good reload;
   herald bench over https (with the CA; refused without it).
2. Refusals, the cluster serving throughout: a 4th node with a
   certificate of another CA, one without peer TLS, one with an expired
   certificate cannot join (the add answers 503, the refusal is logged
   with its reason and counted in herald_peer_tls_refused_total); on a
   node's peer port: garbage, a plaintext HELLO, a TLS client without a
   certificate (what a client-port client is) and one with another CA's
   certificate are refused, logged and counted, and the node keeps
   running; --peer-tls-* given partly refuses the start, and a
   non-loopback --peer-listen without peer TLS but with --auth-file
   refuses the start unless --insecure.
"""
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Node, NodeTestCase, NodeStartError, free_ports, run_tests  # noqa: E402
from pki import make_ca, make_cert  # noqa: E402

TOKEN = "hd_peer-tls-test-admin-0123456789abcdef"
CHANNELS = ["peer-a", "peer-b", "peer-c"]
SHARDS = "2"


class TLSNode(Node):
    """A node with TLS on both ports and auth on; asked over https."""

    pki = None

    def wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise NodeStartError("heraldd exited with %d during start:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                if self.request("GET", "/v1/status", timeout=2)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise NodeStartError("not answering over https:\n" + self.log())

    def request(self, method, path, body=None, timeout=30):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.pem"))
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        try:
            headers = {"Authorization": "Bearer " + TOKEN}
            if body is not None:
                headers["Content-Type"] = "application/json"
                body = json.dumps(body).encode()
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def status(self):
        st, body = self.request("GET", "/v1/status", timeout=5)
        assert st == 200, (st, body)
        return json.loads(body)

    def refused_total(self):
        st, body = self.request("GET", "/metrics", timeout=5)
        assert st == 200, (st, body)
        m = re.search(rb"^herald_peer_tls_refused_total (\d+)$", body, re.M)
        assert m, "no herald_peer_tls_refused_total in /metrics"
        return int(m.group(1))


class PeerTLSTest(NodeTestCase):

    def setUp(self):
        super().setUp()
        d = self.pki = os.path.join(self.tmp, "pki")
        os.makedirs(d)
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        for i in range(1, 5):
            make_cert(d, "n%d" % i, "ca")
        make_cert(d, "stranger", "other-ca")
        make_cert(d, "expired", "ca", expired=True)
        self.auth = os.path.join(self.tmp, "tokens")
        with open(self.auth, "w") as f:
            f.write("admin sha256:%s admin status append:* read:*\n"
                    % hashlib.sha256(TOKEN.encode()).hexdigest())

    # -- nodes --

    def tls_args(self, cert, ca="ca", peer=True, client_cert=None):
        """TLS on both ports with cert (the client port with client_cert,
        if given: the test's https client trusts only ca.pem)."""
        p = lambda f: os.path.join(self.pki, f)  # noqa: E731
        cc = client_cert or cert
        args = ["--shards", SHARDS, "--auth-file", self.auth,
                "--tls-cert", p(cc + ".pem"), "--tls-key", p(cc + ".key")]
        if peer:
            args += ["--peer-tls-cert", p(cert + ".pem"), "--peer-tls-key", p(cert + ".key"),
                     "--peer-tls-ca", p(ca + ".pem")]
        return args

    def node(self, node_id, args, ports=None):
        ports = ports or free_ports(2)
        n = TLSNode(self.tmp, name="n%d" % node_id, args=["--id", str(node_id)] + args,
                    port=ports[0], peer_port=ports[1])
        n.pki = self.pki
        n.node_id = node_id
        self.nodes.append(n)
        return n

    def cluster(self):
        ports = free_ports(6)
        nodes = [self.node(i, self.tls_args("n%d" % i), ports[2 * i - 2:2 * i])
                 for i in (1, 2, 3)]
        members = ",".join("%d=127.0.0.1:%d" % (n.node_id, n.peer_port) for n in nodes)
        for n in nodes:
            n.spawn(["--bootstrap", members])
        for n in nodes:
            n.wait_ready(60)
        self.wait_leaders(nodes)
        return nodes

    def wait_leaders(self, nodes, timeout=60):
        """Every shard has a leader that every given node agrees on."""
        deadline = time.time() + timeout
        while True:
            try:
                sts = [n.status() for n in nodes]
                per_shard = [{st["shards"][i]["leader"] for st in sts}
                             for i in range(int(SHARDS))]
                ids = {n.node_id for n in nodes}
                if all(len(s) == 1 and next(iter(s)) in ids for s in per_shard):
                    return [next(iter(s)) for s in per_shard]
            except (OSError, http.client.HTTPException, AssertionError):
                pass
            self.assertLess(time.time(), deadline, "no agreed leaders over mTLS")
            time.sleep(0.2)

    def append(self, node, ch, nonce, payload):
        deadline = time.time() + 30
        while True:
            st, body = node.request("POST", "/v1/channels/%s/messages" % ch,
                                    {"nonce": nonce, "payload": payload})
            if st in (200, 201) or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertIn(st, (200, 201), "append %s to node %d: %d %r" % (nonce, node.node_id,
                                                                         st, body))

    def raw_log(self, node, ch):
        st, body = node.request("GET", "/v1/channels/%s/messages?after_seq=0&limit=1000" % ch)
        self.assertEqual(st, 200, body)
        return body

    def wait_identical(self, nodes, want_total, timeout=60):
        """Every node answers the same bytes for every channel, with want_total messages."""
        deadline = time.time() + timeout
        while True:
            logs = {n.node_id: [self.raw_log(n, ch) for ch in CHANNELS] for n in nodes}
            first = logs[nodes[0].node_id]
            total = sum(len(json.loads(b)["messages"]) for b in first)
            if total == want_total and all(v == first for v in logs.values()):
                return first
            if time.time() > deadline:
                self.fail("logs not identical on %s within %ds (node %d has %d messages)"
                          % (sorted(logs), timeout, nodes[0].node_id, total))
            time.sleep(0.25)

    def add_node(self, via, node, timeout_s):
        return via.request("POST", "/v1/cluster/nodes",
                           {"id": node.node_id, "address": "127.0.0.1:%d" % node.peer_port,
                            "timeout_s": timeout_s}, timeout=timeout_s + 60)

    def assert_logged(self, nodes, pattern, what):
        rx = re.compile(pattern)
        deadline = time.time() + 20
        while time.time() < deadline:
            if any(rx.search(n.all_logs()) for n in nodes):
                return
            time.sleep(0.2)
        self.fail("%s: no log line matches %r" % (what, pattern))

    # -- tests --

    def test_1_cluster_over_mtls(self):
        nodes = self.cluster()
        for n in nodes:
            self.assertIn("peer tls: presenting", n.all_logs())
            self.assertEqual(n.refused_total(), 0, n.log_tail())
        k = 0
        for i in range(30):  # to every node in turn
            self.append(nodes[i % 3], CHANNELS[i % 3], "m-%d" % i, "payload %d" % i)
            k += 1
        self.wait_identical(nodes, k)

        # herald bench over https (libherald's TLS on bench's own connections):
        # every append it counts was acknowledged, on the right certificate.
        env = dict(os.environ, HERALD_TOKEN=TOKEN,
                   HERALD_CA_FILE=os.path.join(self.pki, "ca.pem"))
        r = subprocess.run([harness.herald_cli(), "--server", "https://127.0.0.1:%d"
                            % nodes[0].port, "bench", "--in-flight", "4", "--duration", "1",
                            "--channels", "2", "--json"],
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        runs = json.loads(r.stdout)["runs"]
        self.assertGreater(runs[0]["acked"], 0, r.stdout)
        self.assertEqual(runs[0]["failed"], 0, r.stdout)
        env.pop("HERALD_CA_FILE")  # the system's store does not know the test CA
        r = subprocess.run([harness.herald_cli(), "--server", "https://127.0.0.1:%d"
                            % nodes[0].port, "bench", "--in-flight", "1", "--duration", "1"],
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("certificate was refused", r.stdout + r.stderr)

        # A leader killed: the others elect over mTLS and keep taking appends.
        leaders = self.wait_leaders(nodes)
        victim = next(n for n in nodes if n.node_id == leaders[0])
        victim.kill9()
        rest = [n for n in nodes if n is not victim]
        new = self.wait_leaders(rest)
        self.assertNotIn(victim.node_id, new)
        for i in range(30, 45):
            self.append(rest[i % 2], CHANNELS[i % 3], "m-%d" % i, "after kill %d" % i)
            k += 1
        victim.start()
        self.wait_identical(nodes, k)

        # A 4th node of the same CA joins and catches up over mTLS.
        cid = nodes[0].status()["cluster_id"]
        n4 = self.node(4, self.tls_args("n4") + ["--join", cid])
        n4.start()
        st, body = self.add_node(nodes[1], n4, 120)
        self.assertEqual(st, 200, body)
        self.assertEqual([x["result"] for x in json.loads(body)["shards"]],
                         ["done"] * int(SHARDS), body)
        logs = self.wait_identical(nodes + [n4], k)
        self.assertEqual(sum(len(json.loads(b)["messages"]) for b in logs), 45)
        self.append(n4, CHANNELS[0], "m-after-join", "on node 4")
        self.wait_identical(nodes + [n4], k + 1)
        for n in nodes + [n4]:
            self.assertEqual(n.refused_total(), 0, n.log_tail())

        # SIGHUP: a key that does not match is refused and the old set stays;
        # the right files again are taken.
        key = os.path.join(self.pki, "n4.key")
        saved = open(key, "rb").read()
        with open(key, "wb") as f:
            f.write(open(os.path.join(self.pki, "n3.key"), "rb").read())
        n4.proc.send_signal(1)
        self.assert_logged([n4], r"peer tls: reload refused, the old certificate and CA stay: "
                           r"--peer-tls-key", "bad reload")
        with open(key, "wb") as f:
            f.write(saved)
        n4.proc.send_signal(1)
        self.assert_logged([n4], r"peer tls: reloaded", "good reload")
        self.append(n4, CHANNELS[1], "m-after-reload", "after reload")
        self.wait_identical(nodes + [n4], k + 2)

    def test_2_refusals(self):
        nodes = self.cluster()
        cid = nodes[0].status()["cluster_id"]
        before = {n.node_id: n.refused_total() for n in nodes}
        k = 0
        cases = [  # id, args, what the cluster's nodes log
            (5, self.tls_args("stranger", ca="other-ca", client_cert="n4"),
             r"refused at the handshake: the server's certificate was refused: "
             r"(unable to get local issuer certificate|self-signed certificate in certificate chain)"),
            (6, self.tls_args("n4", peer=False),
             r"refused at the handshake: closed by the other side during the handshake"),
            (7, self.tls_args("expired", client_cert="n4"),
             r"refused at the handshake: the server's certificate was refused: "
             r"certificate has expired"),
        ]
        for node_id, args, why in cases:
            rogue = self.node(node_id, args + ["--join", cid])
            rogue.start()
            st, body = self.add_node(nodes[0], rogue, 8)
            self.assertEqual(st, 503, "node %d joined: %r" % (node_id, body))
            self.assert_logged(nodes, why, "node %d" % node_id)
            after = {n.node_id: n.refused_total() for n in nodes}
            self.assertTrue(any(after[i] > before[i] for i in after),
                            "node %d: no refusal counted: %r -> %r" % (node_id, before, after))
            before = after
            self.assertEqual(rogue.status()["shards"][0]["commit_index"], 0,
                             "node %d received the log" % node_id)
            # The cluster serves throughout; the half-added member is removed.
            self.append(nodes[node_id % 3], CHANNELS[0], "r-%d" % node_id, "while refusing")
            k += 1
            st, body = nodes[0].request("DELETE", "/v1/cluster/nodes/%d?timeout_s=60" % node_id,
                                        timeout=120)
            self.assertEqual(st, 200, body)
        # The node without peer TLS saw TLS on its plaintext peer port.
        self.assertRegex(self.nodes[-2].all_logs(),
                         r"a TLS handshake on this plaintext peer port")
        self.assertGreater(self.nodes[-2].refused_total(), 0)
        self.wait_identical(nodes, k)

        # Bad input on a node's peer port: refused, logged, counted.
        target = nodes[2]
        addr = ("127.0.0.1", target.peer_port)
        count = target.refused_total()

        def tls_dial(cert=None):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(os.path.join(self.pki, "ca.pem"))
            if cert:
                ctx.load_cert_chain(os.path.join(self.pki, cert + ".pem"),
                                    os.path.join(self.pki, cert + ".key"))
            with socket.create_connection(addr, timeout=10) as s:
                with ctx.wrap_socket(s) as t:
                    t.sendall(b"x" * 48)  # TLS 1.3: the refusal comes after our Finished
                    return t.recv(100)

        for what, attempt, pattern in (
                ("garbage", lambda: harness.raw_exchange(addr[1], os.urandom(300)),
                 r"refused at the handshake: no TLS handshake"),
                ("plaintext HELLO", lambda: harness.raw_exchange(addr[1], b"HDPF" + bytes(44)),
                 r"refused at the handshake: no TLS handshake"),
                ("no client certificate", lambda: tls_dial(None),
                 r"refused at the handshake: handshake failed: peer did not return a certificate"),
                ("another CA's certificate", lambda: tls_dial("stranger"),
                 r"refused at the handshake: the client's certificate was refused")):
            try:
                got = attempt()
            except (OSError, ssl.SSLError):
                got = b""
            self.assertFalse(got and b"HDPF" in got, "%s: got peer frames back" % what)
            self.assert_logged([target], pattern, what)
            now = target.refused_total()
            self.assertGreater(now, count, what)
            count = now
            self.assertTrue(target.running(), "%s: node died" % what)
        self.append(target, CHANNELS[1], "r-end", "after bad input")
        self.wait_identical(nodes, k + 1)

    def test_3_start_refusals(self):
        p = lambda f: os.path.join(self.pki, f)  # noqa: E731
        partial = self.node(1, ["--peer-tls-cert", p("n1.pem"), "--peer-tls-key", p("n1.key")])
        with self.assertRaises(NodeStartError):
            partial.start(timeout=20)
        self.assertIn("--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together: "
                      "--peer-tls-ca missing", partial.log())
        wrong_ca = self.node(2, self.tls_args("stranger"))  # its cert is not of ca.pem
        with self.assertRaises(NodeStartError):
            wrong_ca.start(timeout=20)
        self.assertIn("is not vouched for by --peer-tls-ca", wrong_ca.log())
        # Off loopback, auth on, no peer TLS: refused unless --insecure.
        port = free_ports(1)[0]
        exposed = self.node(3, ["--auth-file", self.auth, "--peer-listen", "0.0.0.0:%d" % port])
        exposed.__class__ = Node
        with self.assertRaises(NodeStartError):
            exposed.start(timeout=20)
        self.assertIn("is not a loopback address and there is no peer TLS", exposed.log())
        exposed.args.append("--insecure")
        exposed.start(timeout=30)
        self.assertIn("PEER PORT IN THE CLEAR", exposed.log())


if __name__ == "__main__":
    run_tests()

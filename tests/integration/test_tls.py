#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TLS on the client port (--tls-cert/--tls-key, docs/security.md "TLS").

A throwaway CA and certificates are made with the openssl CLI in the test's
temp dir: the server's (localhost, 127.0.0.1), a second one for the reload,
an expired one and one for another host. Checks: append/read/status, an SSE
tail and a WebSocket over TLS; the herald CLI with --ca-file and without;
plaintext to the TLS port and TLS to a plaintext port refused while the
node keeps serving; SIGHUP serving a new certificate to new connections
while an open tail keeps running; bad pairs refused at start and on reload;
expired and wrong-host certificates refused by the CLI.
"""
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Node, NodeTestCase, NodeStartError, run_tests  # noqa: E402
from pki import make_ca, make_cert  # noqa: E402


def make_pki(d):
    """ca.pem, and NAME.pem/NAME.key for each server certificate."""
    make_ca(d, "ca", cn="herald test CA")
    make_cert(d, "server", "ca", cn="localhost")
    make_cert(d, "second", "ca")
    make_cert(d, "wronghost", "ca", cn="wrong.example", san="DNS:wrong.example")
    make_cert(d, "expired", "ca", cn="localhost", expired=True)


class TLSNode(Node):
    """A node whose client port speaks TLS: readiness is checked over https."""

    ca = None

    def wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise NodeStartError("heraldd exited with %d during start:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:  # unverified: some tests serve certificates clients refuse
                c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2,
                                                context=ssl._create_unverified_context())
                c.request("GET", "/v1/status")
                st = c.getresponse().status
                c.close()
                if st == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise NodeStartError("not answering over https:\n" + self.log())


def ctx_for(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def https(node, method, path, body=None, host="127.0.0.1"):
    c = http.client.HTTPSConnection(host, node.port, timeout=10, context=ctx_for(node.ca))
    try:
        c.request(method, path, body=body,
                  headers={"Content-Type": "application/json"} if body else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def peer_subject(port, ca):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx_for(ca).wrap_socket(s, server_hostname="localhost") as t:
            cert = t.getpeercert()
            return dict(x[0] for x in cert["subject"])["commonName"]


class SSE:
    """An SSE tail over TLS, read in a thread: the ids it got, in order."""

    def __init__(self, node, channel):
        self.ids = []
        self.done = False
        self.sock = ctx_for(node.ca).wrap_socket(
            socket.create_connection(("127.0.0.1", node.port), timeout=30),
            server_hostname="localhost")
        self.sock.sendall(("GET /v1/channels/%s/tail?after_seq=0 HTTP/1.1\r\nHost: x\r\n\r\n"
                           % channel).encode())
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.startswith(b"id: "):
                        self.ids.append(int(line[4:]))
        except OSError:
            pass
        self.done = True

    def wait(self, n, timeout=20):
        end = time.time() + timeout
        while len(self.ids) < n and time.time() < end and not self.done:
            time.sleep(0.02)
        return list(self.ids)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def cli(node, *args, ca=True, server=None, env_ca=False):
    path = harness.herald_cli()
    env = dict(os.environ)
    env.pop("HERALD_CA_FILE", None)
    argv = [path, "--server", server or "https://127.0.0.1:%d" % node.port]
    if ca and not env_ca:
        argv += ["--ca-file", node.ca]
    if env_ca:
        env["HERALD_CA_FILE"] = node.ca
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60, env=env)


class T(NodeTestCase):
    def setUp(self):
        super().setUp()
        make_pki(self.tmp)
        self.p = lambda n: os.path.join(self.tmp, n)

    def tls_node(self, cert="server", extra=()):
        n = TLSNode(self.tmp, name="node%d" % len(self.nodes),
                    args=["--tls-cert", self.p(cert + ".pem"), "--tls-key",
                          self.p(cert + ".key")] + list(extra))
        n.ca = self.p("ca.pem")
        self.nodes.append(n)
        n.start()
        return n

    def test_1_api_sse_websocket_over_tls(self):
        n = self.tls_node()
        sse = SSE(n, "t")
        for i in range(1, 21):
            st, body = https(n, "POST", "/v1/channels/t/messages",
                             json.dumps({"nonce": "n%d" % i, "payload": "m%d" % i}))
            self.assertEqual(st, 201, body)
            self.assertEqual(json.loads(body)["seq"], i)
        st, body = https(n, "GET", "/v1/channels/t/messages?after_seq=0", host="localhost")
        self.assertEqual(st, 200)
        self.assertEqual([m["payload"] for m in json.loads(body)["messages"]],
                         ["m%d" % i for i in range(1, 21)])
        self.assertEqual(https(n, "GET", "/v1/status")[0], 200)
        self.assertEqual(sse.wait(20), list(range(1, 21)))
        sse.close()
        import websocket  # Debian's python3-websocket
        ws = websocket.create_connection(
            "wss://127.0.0.1:%d/v1/subscribe" % n.port, timeout=20,
            sslopt={"ca_certs": n.ca, "server_hostname": "localhost"})
        ws.send(json.dumps({"type": "subscribe", "id": "s1", "channels": {"t": 0}}))
        seqs = []
        end = time.time() + 20
        while len(seqs) < 20 and time.time() < end:
            f = json.loads(ws.recv())
            if f.get("type") == "message":
                seqs.append(f["seq"])
        self.assertEqual(seqs, list(range(1, 21)))
        ws.close()

    def test_2_cli(self):
        n = self.tls_node()
        r = cli(n, "append", "c", "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = cli(n, "read", "c", env_ca=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"payload":"hello"', r.stdout)
        r = cli(n, "append", "c", "x", ca=False)  # the system store does not know our CA
        self.assertEqual(r.returncode, 1)
        self.assertIn("certificate was refused", r.stderr)
        r = cli(n, "append", "c", "x", server="http://127.0.0.1:%d" % n.port)
        self.assertEqual(r.returncode, 1)
        self.assertIn("tls_required", r.stderr)

    def test_3_expired_and_wrong_host_refused(self):
        for cert, why in (("expired", "expired"), ("wronghost", "mismatch")):
            n = self.tls_node(cert)
            r = cli(n, "append", "c", "x")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("certificate was refused", r.stderr)
            self.assertIn(why, r.stderr)
            self.assertIn("handshake failed", n.log())
            n.terminate()

    def test_4_plaintext_and_tls_crossed(self):
        n = self.tls_node()
        with socket.create_connection(("127.0.0.1", n.port), timeout=10) as s:
            s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        self.assertIn(b"this port speaks TLS", data)
        with socket.create_connection(("127.0.0.1", n.port), timeout=10) as s:
            s.sendall(b"\x16\x03\x01\x00\x10" + os.urandom(16))  # garbage after a record head
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        self.assertEqual(https(n, "GET", "/v1/status")[0], 200)
        self.assertIn("plaintext from", n.log())
        plain = self.new_node(args=[])
        raw = socket.create_connection(("127.0.0.1", plain.port), timeout=10)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            ctx_for(n.ca).wrap_socket(raw, server_hostname="localhost")
        raw.close()
        self.assertEqual(plain.client().get("/v1/status").status, 200)
        self.assertIn("TLS handshake from", plain.log())

    def test_5_sighup_reload(self):
        os.replace(self.p("server.pem"), self.p("cur.pem"))
        os.replace(self.p("server.key"), self.p("cur.key"))
        n = self.tls_node("cur")
        self.assertEqual(peer_subject(n.port, n.ca), "localhost")
        sse = SSE(n, "r")
        https(n, "POST", "/v1/channels/r/messages", json.dumps({"nonce": "a", "payload": "1"}))
        self.assertEqual(sse.wait(1), [1])
        # A bad pair (the new key with the old certificate) is refused; the old stays.
        os.replace(self.p("second.key"), self.p("cur.key"))
        n.proc.send_signal(1)
        end = time.time() + 10
        while "reload refused" not in n.log() and time.time() < end:
            time.sleep(0.05)
        self.assertIn("reload refused", n.log())
        self.assertEqual(peer_subject(n.port, n.ca), "localhost")
        os.replace(self.p("second.pem"), self.p("cur.pem"))
        n.proc.send_signal(1)
        end = time.time() + 10
        while peer_subject(n.port, n.ca) != "second" and time.time() < end:
            time.sleep(0.05)
        self.assertEqual(peer_subject(n.port, n.ca), "second")
        https(n, "POST", "/v1/channels/r/messages", json.dumps({"nonce": "b", "payload": "2"}))
        self.assertEqual(sse.wait(2), [1, 2])  # the open stream kept its session
        self.assertFalse(sse.done)
        sse.close()

    def test_6_bad_pairs_refused_at_start(self):
        cases = [(["--tls-cert", self.p("server.pem")], "go together"),
                 (["--tls-cert", self.p("nope.pem"), "--tls-key", self.p("server.key")],
                  "No such file"),
                 (["--tls-cert", self.p("ca.key"), "--tls-key", self.p("server.key")],
                  "no PEM certificate"),
                 (["--tls-cert", self.p("server.pem"), "--tls-key", self.p("second.key")],
                  "--tls-key")]
        for args, want in cases:
            n = Node(self.tmp, name="bad%d" % len(self.nodes), args=args)
            self.nodes.append(n)
            p = n.spawn()
            self.assertEqual(p.wait(30), 1)
            self.assertIn("cannot start", n.log())
            self.assertIn(want, n.log())


if __name__ == "__main__":
    run_tests()

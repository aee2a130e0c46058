# SPDX-License-Identifier: Apache-2.0
"""Integration test harness: real heraldd processes on loopback.

Standard library only. Every test file does

    from harness import *
    class T(NodeTestCase): ...
    if __name__ == "__main__": run_tests()

and is run as `python3 test_x.py --heraldd PATH [unittest args]`. The
binary can also come from $HERALDD. Every node a test starts is stopped
at teardown and its log is scanned for sanitizer reports: one is a failure.
"""

import argparse
import base64
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERALDD = os.environ.get("HERALDD", "")
KEEP_TMP = bool(os.environ.get("HERALD_ITEST_KEEP"))

SANITIZER_PATTERNS = ("AddressSanitizer", "LeakSanitizer", "runtime error",
                      "ThreadSanitizer", "UndefinedBehaviorSanitizer",
                      "assertion failed")  # HD_ASSERT: a crash all the same

TS_RE = re.compile(r"^[0-9]{1,12}\.[0-9]{6}$")


# ------------------------------------------------------------------ utils ---

def herald_cli():
    """The herald CLI next to the heraldd under test ($HERALD_CLI overrides)."""
    return os.environ.get("HERALD_CLI") or os.path.join(
        os.path.dirname(os.path.dirname(HERALDD)), "cli", "herald")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ts_key(ts):
    """'sec.micro' -> integer microseconds; asserts the format."""
    if not isinstance(ts, str) or not TS_RE.match(ts):
        raise AssertionError("bad ts format: %r" % (ts,))
    sec, micro = ts.split(".")
    return int(sec) * 1000000 + int(micro)


def msg_payload_bytes(m):
    """The payload of a read/tail message as bytes."""
    if "payload" in m:
        assert "payload_b64" not in m, m
        return m["payload"].encode("utf-8")
    return base64.b64decode(m["payload_b64"], validate=True)


def metric(client, name):
    """The value of an unlabelled metric in the node's /metrics."""
    r = client.get("/metrics")
    assert r.status == 200, r
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("metric %s missing" % name)


def sanitizer_hits(text):
    return [p for p in SANITIZER_PATTERNS if p in text]


# ------------------------------------------------------------------- HTTP ---

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "Resp(%d, %r)" % (self.status, self.body[:300])


class Client:
    """One keep-alive HTTP/1.1 connection (reopened after an error)."""

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                   timeout=self.timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Raises OSError / http.client.HTTPException on a transport error
        (and drops the connection so the next call reconnects)."""
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = self._connect()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        if r.will_close:
            self.close()
        return resp

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def get_json(self, path):
        r = self.get(path)
        if r.status != 200:
            raise AssertionError("GET %s -> %r" % (path, r))
        return r.json()

    def post_json(self, path, obj, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.request("POST", path, json.dumps(obj), h)

    # -- API helpers --
    def append(self, ch, nonce, payload=None, payload_b64=None):
        body = {"nonce": nonce}
        if payload_b64 is not None:
            body["payload_b64"] = payload_b64
        else:
            body["payload"] = payload
        return self.post_json("/v1/channels/%s/messages" % ch, body)

    def append_ok(self, ch, nonce, payload):
        r = self.append(ch, nonce, payload)
        if r.status != 201:
            raise AssertionError("append %s/%s -> %r" % (ch, nonce, r))
        j = r.json()
        return j["seq"], j["ts"]

    def read(self, ch, **params):
        q = "&".join("%s=%s" % (k, v) for k, v in params.items())
        return self.get_json("/v1/channels/%s/messages%s" % (ch, "?" + q if q else ""))

    def read_all(self, ch, page=1000):
        """Every message of a channel, paging with after_seq; checks next_seq.
        On a trimmed channel, every message the trim left (from first_seq)."""
        out = []
        after = 0
        r = self.get("/v1/channels/%s/messages?after_seq=0&limit=1" % ch)
        if r.status == 410:
            after = r.json()["first_seq"] - 1
        while True:
            j = self.read(ch, after_seq=after, limit=page)
            if j.get("channel") != ch:
                raise AssertionError("read answered channel %r" % j.get("channel"))
            msgs = j["messages"]
            if len(msgs) > page:
                raise AssertionError("read returned %d > limit %d" % (len(msgs), page))
            if not msgs:
                return out
            if j["next_seq"] != msgs[-1]["seq"] + 1:
                raise AssertionError("next_seq %r after seq %r" % (j["next_seq"], msgs[-1]["seq"]))
            out.extend(msgs)
            after = msgs[-1]["seq"]

    def status(self):
        return self.get_json("/v1/status")


def raw_exchange(port, data, timeout=5.0, read_until_close=True, shut_wr=False):
    """Sends raw bytes, returns everything read until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def parse_raw_response(data):
    """(status, headers dict, body) of the first response in raw bytes."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", len(rest)))
    return status, headers, rest[:n]


# -------------------------------------------------------------------- SSE ---

class SSEReader:
    """A tail on a raw socket, read by a thread. Events are dicts
    {"id": str, "event": str, "data": parsed JSON}; comments are counted."""

    def __init__(self, port, channel, after_seq=None, last_event_id=None,
                 extra_query="", start=True, connect_timeout=10.0, rcvbuf=0, path=None):
        """path, if given, is the whole request target (a multi-channel
        /v1/tail?channels=...); channel, after_seq and extra_query are then
        not used."""
        self.port = port
        self.channel = channel
        q = []
        if after_seq is not None:
            q.append("after_seq=%d" % after_seq)
        if extra_query:
            q.append(extra_query)
        if path is None:
            path = "/v1/channels/%s/tail%s" % (channel, "?" + "&".join(q) if q else "")
        hdr = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" % path
        if last_event_id is not None:
            hdr += "Last-Event-ID: %s\r\n" % last_event_id
        hdr += "\r\n"
        self.request_bytes = hdr.encode()
        self.events = []
        self.comments = 0
        self.status = None
        self.headers = {}
        self.error = None
        self.eof = False
        self.cond = threading.Condition()
        if rcvbuf:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(connect_timeout)
            self.sock.connect(("127.0.0.1", port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
        self.sock.settimeout(None)
        self.sock.sendall(self.request_bytes)
        self.closed = False
        self.thread = None
        if start:
            self.start()

    def start(self):
        # Two reader threads on one socket would each take some of the
        # stream's bytes: events skipped, merged or cut, looking like a
        # server that lost messages.
        if self.thread is not None:
            raise RuntimeError("SSEReader.start called twice (the constructor starts it "
                               "unless start=False)")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        try:
            f = self.sock.makefile("rb")
            status_line = f.readline()
            if not status_line:
                raise EOFError("connection closed before the status line")
            st = int(status_line.split()[1])
            while True:
                l = f.readline()
                if not l:
                    raise EOFError("connection closed in the headers")
                l = l.rstrip(b"\r\n")
                if not l:
                    break
                k, _, v = l.decode("latin-1").partition(":")
                self.headers[k.strip().lower()] = v.strip()
            with self.cond:
                self.status = st
                self.cond.notify_all()
            if st != 200:
                self.body = f.read(int(self.headers.get("content-length", "0")))
                return
            cur = {}
            while True:
                l = f.readline()
                if not l:
                    break
                l = l.rstrip(b"\n").rstrip(b"\r")
                if l == b"":
                    if cur:
                        ev = {"id": cur.get("id"), "event": cur.get("event"),
                              "data": json.loads(cur.get("data", "null"))}
                        with self.cond:
                            self.events.append(ev)
                            self.cond.notify_all()
                    cur = {}
                    continue
                if l.startswith(b":"):
                    with self.cond:
                        self.comments += 1
                    continue
                k, _, v = l.decode("utf-8").partition(":")
                if v.startswith(" "):
                    v = v[1:]
                if k == "data" and "data" in cur:
                    cur["data"] += "\n" + v
                else:
                    cur[k] = v
        except Exception as e:  # noqa: BLE001 - recorded for the test
            if not self.closed:
                self.error = e
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def wait_status(self, timeout=10.0):
        with self.cond:
            self.cond.wait_for(lambda: self.status is not None or self.eof, timeout)
            return self.status

    def wait_count(self, n, timeout=30.0):
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= n or self.eof, timeout)
            return len(self.events)

    def wait_eof(self, timeout=30.0):
        with self.cond:
            self.cond.wait_for(lambda: self.eof, timeout)
            return self.eof

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.thread is not None:
            self.thread.join(5)


# ------------------------------------------------------------------- Node ---

class NodeStartError(Exception):
    pass


class Node:
    """One heraldd process on its own data directory and port."""

    def __init__(self, workdir, name="node", args=(), data_dir=None, port=None,
                 peer_port=None):
        self.workdir = workdir
        self.name = name
        self.data = data_dir or os.path.join(workdir, name + "-data")
        self.port = port or free_port()
        # Its own free port for peers too: the default (--listen port + 1)
        # may be another test's port when tests run side by side.
        self.peer_port = peer_port or free_port()
        self.args = list(args)
        self.proc = None
        self.killed = False
        self.paused = False
        self.starts = 0
        self.log_paths = []
        self._clients = []

    @property
    def log_path(self):
        return self.log_paths[-1] if self.log_paths else None

    def cmdline(self, extra=()):
        return [HERALDD, "--data", self.data, "--listen",
                "127.0.0.1:%d" % self.port, "--peer-listen",
                "127.0.0.1:%d" % self.peer_port] + self.args + list(extra)

    def spawn(self, extra=()):
        """Starts the process without waiting; returns the Popen."""
        self.starts += 1
        path = os.path.join(self.workdir, "%s.%d.log" % (self.name, self.starts))
        self.log_paths.append(path)
        logf = open(path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.killed = False
        self.paused = False
        self.proc = subprocess.Popen(self.cmdline(extra), stdout=logf,
                                     stderr=subprocess.STDOUT, env=env)
        logf.close()
        return self.proc

    def start(self, timeout=30.0, extra=()):
        for attempt in range(3):
            self.spawn(extra)
            try:
                self.wait_ready(timeout)
                return self
            except NodeStartError:
                # The port may have been taken between free_port() and bind.
                if self.proc.poll() is not None and "in use" in self.log().lower() and attempt < 2:
                    self.port = free_port()
                    continue
                raise
        return self

    def wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise NodeStartError("heraldd exited with %d during start:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                c = Client(self.port, timeout=2)
                r = c.get("/v1/status")
                c.close()
                if r.status in (200, 401):  # 401: serving, with --auth-file
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise NodeStartError("heraldd not answering /v1/status after %.0fs:\n%s"
                             % (timeout, self.log()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout=30.0):
        c = Client(self.port, timeout=timeout)
        self._clients.append(c)
        return c

    def _close_clients(self):
        for c in self._clients:
            c.close()
        self._clients = []

    def pause(self):
        """SIGSTOP: the process keeps its sockets but does nothing."""
        assert self.running()
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused and self.running():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True
        if self.proc is not None:
            self.proc.wait(30)
        self._close_clients()

    def terminate(self, timeout=60.0, expect_rc=0):
        """SIGTERM, wait, and return the exit code (asserts expect_rc)."""
        assert self.proc is not None
        self.resume()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("heraldd did not stop within %.0fs of SIGTERM:\n%s"
                                 % (timeout, self.log_tail()))
        self._close_clients()
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError("heraldd exited with %d after SIGTERM (want %d):\n%s"
                                 % (rc, expect_rc, self.log_tail()))
        return rc

    def restart(self, timeout=30.0):
        if self.running():
            self.terminate()
        return self.start(timeout)

    def log(self, which=-1):
        p = self.log_paths[which] if self.log_paths else None
        if not p or not os.path.exists(p):
            return ""
        with open(p, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def all_logs(self):
        return "".join("==== %s ====\n%s" % (p, self.log(i))
                       for i, p in enumerate(self.log_paths))

    def log_tail(self, n=120):
        return "\n".join(self.log().splitlines()[-n:])

    def stop_for_teardown(self):
        """Stops the node (gracefully, so LeakSanitizer reports). Returns a
        problem: no clean exit on SIGTERM, or death by a signal nobody sent."""
        why = None
        self.resume()
        if self.running():
            try:
                self.proc.send_signal(signal.SIGTERM)
                rc = self.proc.wait(60)
                if rc != 0:
                    why = "exit code %d after SIGTERM at teardown" % rc
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                why = "did not stop within 60s of SIGTERM"
        elif self.proc is not None and self.proc.returncode < 0 and not self.killed:
            why = "died of signal %d" % -self.proc.returncode
        self._close_clients()
        return why

    def sanitizer_reports(self):
        out = []
        for i, p in enumerate(self.log_paths):
            text = self.log(i)
            hits = sanitizer_hits(text)
            if hits:
                out.append((p, hits, text))
        return out


# -------------------------------------------------------------- test case ---

class NodeTestCase(unittest.TestCase):
    """Gives each test a temp dir and tracks nodes; teardown stops them and
    fails the test on any sanitizer report in any of their logs."""

    node_args = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-itest-", dir="/tmp")
        self.nodes = []
        self._t0 = time.time()

    def new_node(self, args=None, start=True, name=None, data_dir=None):
        n = Node(self.tmp, name=name or "node%d" % len(self.nodes),
                 args=self.node_args if args is None else args, data_dir=data_dir)
        self.nodes.append(n)
        if start:
            n.start()
        return n

    def tearDown(self):
        problems = []
        for n in self.nodes:
            why = n.stop_for_teardown()
            if why:
                problems.append("%s: %s" % (n.name, why))
        for n in self.nodes:
            for path, hits, text in n.sanitizer_reports():
                problems.append("%s: sanitizer/assertion report (%s) in %s" % (n.name, ", ".join(hits), path))
                sys.stderr.write("\n===== %s (%s) =====\n%s\n===== end of %s =====\n"
                                 % (path, ", ".join(hits), text[-60000:], path))
        ok = not problems and self._outcome_ok()
        if ok and not KEEP_TMP:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            sys.stderr.write("(kept %s)\n" % self.tmp)
        sys.stderr.write("  [%s: %.1fs]\n" % (self.id().split(".")[-1], time.time() - self._t0))
        if problems:
            self.fail("; ".join(problems))

    def _outcome_ok(self):
        # Works on 3.8-3.12: look for errors recorded so far for this test.
        res = getattr(self, "_outcome", None)
        if res is None:
            return True
        result = getattr(res, "result", None)
        if result is not None:
            for t, _ in list(result.failures) + list(result.errors):
                if t is self:
                    return False
            return getattr(res, "success", True)
        errs = getattr(res, "errors", [])
        return not any(e for _, e in errs)

    # -- assertions shared by the files --
    def assertError(self, resp, status, code=None):
        """resp is a JSON error with this status (and code, if given)."""
        self.assertEqual(resp.status, status, "want %d, got %r" % (status, resp))
        try:
            j = resp.json()
        except ValueError:
            self.fail("error body is not JSON: %r" % resp)
        self.assertIsInstance(j, dict, resp)
        self.assertIn("error", j, resp)
        self.assertIsInstance(j["error"].get("code"), str, resp)
        self.assertIsInstance(j["error"].get("message"), str, resp)
        self.assertTrue(j["error"]["code"], resp)
        if code is not None:
            self.assertEqual(j["error"]["code"], code, resp)
        return j

    def assertChannelLog(self, msgs, channel=None):
        """seq 1..n gapless, ts strictly increasing, nonces unique."""
        prev = 0
        seen = set()
        for i, m in enumerate(msgs):
            self.assertEqual(m["seq"], i + 1, "gap or disorder at index %d: %r" % (i, m))
            k = ts_key(m["ts"])
            self.assertGreater(k, prev, "ts not strictly increasing at seq %d" % m["seq"])
            prev = k
            self.assertNotIn(m["nonce"], seen, "nonce %r twice in %s" % (m["nonce"], channel))
            seen.add(m["nonce"])

    def assertPrefix(self, before, after, channel=""):
        """`after` is a prefix of `before` (same seq -> ts, nonce, payload)."""
        self.assertLessEqual(len(after), len(before),
                             "%s: more messages after than before" % channel)
        for a, b in zip(after, before):
            self.assertEqual(a, b, "%s: message seq %s changed" % (channel, a.get("seq")))


# ---------------------------------------------------------------- Cluster ---

def free_ports(n):
    """n distinct free ports."""
    out = []
    while len(out) < n:
        p = free_port()
        if p not in out:
            out.append(p)
    return out


class Cluster:
    """N heraldd processes forming one cluster on loopback (node ids 1..N).
    The nodes are Node objects (in tc.nodes, so the test case's teardown
    stops them and scans their logs); node i is named "n<i>"."""

    def __init__(self, tc, n=3, args=(), name="n"):
        self.tc = tc
        ports = free_ports(2 * n)
        self.nodes = []
        for i in range(1, n + 1):
            node = Node(tc.tmp, name="%s%d" % (name, i), args=["--id", str(i)] + list(args),
                        port=ports[2 * (i - 1)], peer_port=ports[2 * (i - 1) + 1])
            node.node_id = i
            self.nodes.append(node)
            tc.nodes.append(node)
        self.members = ",".join("%d=127.0.0.1:%d" % (x.node_id, x.peer_port) for x in self.nodes)

    @classmethod
    def of(cls, tc, nodes):
        """A Cluster over nodes something else runs (systemd units, say):
        each has port, node_id, paused and running(). Only the helpers
        that read apply (status, leaders, logs), not start or stop."""
        c = cls.__new__(cls)
        c.tc, c.nodes, c.members = tc, list(nodes), None
        return c

    def __getitem__(self, node_id):
        return self.nodes[node_id - 1]

    def start(self, nodes=None, timeout=60.0):
        """Spawns the given nodes (default all) at once, with --bootstrap on
        their first start, and waits until each answers /v1/status."""
        nodes = self.nodes if nodes is None else nodes
        for x in nodes:
            x.spawn([] if x.starts else ["--bootstrap", self.members])
        for x in nodes:
            x.wait_ready(timeout)
        return self

    def live(self):
        """Nodes running and not paused."""
        return [x for x in self.nodes if x.running() and not x.paused]

    def kill9_all(self, nodes=None):
        """SIGKILL to every running node first, then waits: all at once."""
        nodes = self.nodes if nodes is None else nodes
        for x in nodes:
            if x.running():
                x.proc.send_signal(signal.SIGKILL)
                x.killed = True
        for x in nodes:
            x.kill9()

    def terminate_all(self, nodes=None, timeout=60.0):
        """SIGTERM to every node, then waits for each to exit 0."""
        nodes = self.nodes if nodes is None else nodes
        for x in nodes:
            x.resume()
            if x.running():
                x.proc.send_signal(signal.SIGTERM)
        for x in nodes:
            x.terminate(timeout)

    def status(self, node, timeout=5.0):
        c = Client(node.port, timeout=timeout)
        try:
            return c.status()
        finally:
            c.close()

    def statuses(self, nodes=None):
        """{node_id: status or None when it does not answer}."""
        out = {}
        for x in (self.live() if nodes is None else nodes):
            try:
                out[x.node_id] = self.status(x)
            except (OSError, http.client.HTTPException, AssertionError, ValueError):
                out[x.node_id] = None
        return out

    def leaders(self, nodes=None):
        """Per shard, the leader id every given node (default: the live
        ones) agrees on and that the leader itself confirms, else None.
        Returns (list, statuses)."""
        nodes = self.live() if nodes is None else nodes
        st = self.statuses(nodes)
        if not st or any(v is None for v in st.values()):
            return None, st
        n_shards = len(next(iter(st.values()))["shards"])
        out = []
        for i in range(n_shards):
            ids = {v["shards"][i]["leader"] for v in st.values()}
            lid = ids.pop() if len(ids) == 1 else 0
            if lid == 0 or lid not in st or st[lid]["shards"][i]["state"] != "leader":
                out.append(None)
            else:
                out.append(lid)
        return out, st

    def wait_leaders(self, timeout=30.0, nodes=None):
        """Waits until every shard has a leader all given nodes agree on."""
        deadline = time.time() + timeout
        while True:
            lead, st = self.leaders(nodes)
            if lead is not None and None not in lead:
                return lead
            if time.time() > deadline:
                raise AssertionError("no agreed leader for every shard after %.0fs: %r\n%s"
                                     % (timeout, lead, json.dumps(st)[:3000]))
            time.sleep(0.1)

    def wait_settled(self, timeout=20.0, stable=1.0):
        """Waits until every shard has an agreed leader, no node leads more
        than its share (ceil(shards / nodes): the server's leader spread
        hands shards over after a start) and the leaders have not changed
        for `stable` seconds. Returns the leaders."""
        deadline = time.time() + timeout
        last, since = None, time.time()
        while True:
            lead, st = self.leaders()
            if lead != last:
                last, since = lead, time.time()
            if lead is not None and None not in lead:
                share = -(-len(lead) // len(self.nodes))
                counts = {i: lead.count(i) for i in set(lead)}
                if max(counts.values()) <= share and time.time() - since >= stable:
                    return lead
            if time.time() > deadline:
                raise AssertionError("leaders not settled after %.0fs: %r" % (timeout, lead))
            time.sleep(0.1)

    def fetch_logs(self, channels, nodes=None, timeout=10.0):
        """{node_id: {channel: [messages]}}, each channel's full log read
        with after_seq paging (limit 1000) from each node."""
        out = {}
        for x in (self.live() if nodes is None else nodes):
            c = Client(x.port, timeout=timeout)
            try:
                out[x.node_id] = {ch: c.read_all(ch) for ch in channels}
            finally:
                c.close()
        return out

    def wait_converged(self, channels, timeout=60.0, nodes=None, want=None):
        """Polls until every given node (default: live ones) holds the same
        log of every channel (and, if want is given, a callable on the logs
        of one node returning True). Returns the logs ({node_id: ...}).
        Raises AssertionError, naming the first difference, at the deadline."""
        deadline = time.time() + timeout
        while True:
            why = None
            try:
                logs = self.fetch_logs(channels, nodes)
            except (OSError, http.client.HTTPException, AssertionError) as e:
                logs, why = None, "read failed: %r" % (e,)
            if logs is not None:
                why = logs_difference(logs, channels)
                if why is None and want is not None and not want(next(iter(logs.values()))):
                    why = "logs identical but not complete yet"
                if why is None:
                    return logs
            if time.time() > deadline:
                raise AssertionError("logs did not converge within %.0fs: %s" % (timeout, why))
            time.sleep(0.25)


def logs_difference(logs, channels):
    """None if every node's log of every channel is identical, else a
    description of the first difference."""
    ids = sorted(logs)
    ref = ids[0]
    for ch in channels:
        a = logs[ref][ch]
        for other in ids[1:]:
            b = logs[other][ch]
            if a == b:
                continue
            for i in range(min(len(a), len(b))):
                if a[i] != b[i]:
                    return "%s: node %d and node %d differ at index %d: %r vs %r" % (
                        ch, ref, other, i, a[i], b[i])
            return "%s: node %d has %d messages, node %d has %d" % (ch, ref, len(a), other, len(b))
    return None


# ------------------------------------------------------------ WAL access ---

WAL_BLOCK = 4096
WAL_SEG_MAGIC = 0x574C5248
WAL_REC_MAGIC = 0x43455257
WAL_REC_HDR = 32
WAL_BATCH_START = 0x1


def wal_segments(data_dir):
    d = os.path.join(data_dir, "wal")
    segs = sorted(f for f in os.listdir(d) if re.match(r"^wal-[0-9a-f]{16}\.seg$", f))
    return [os.path.join(d, f) for f in segs]


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C_T = _crc32c_table()


def crc32c(data, seed=0):
    """CRC32C (Castagnoli) like hd_crc32c(seed, data). Pure Python: slow,
    use on small inputs only."""
    c = seed ^ 0xFFFFFFFF
    t = _CRC32C_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def _wal_rec_at(img, pos, salt, damaged=()):
    """Header fields of the record at pos, or None. Checks the magic,
    reserved field, flags, length and header CRC; the payload CRC (slow in
    Python) only of records that cover one of the `damaged` offsets (where
    the test zeroed or flipped bytes, maybe since rewritten by the node)."""
    if pos + WAL_REC_HDR > len(img):
        return None
    magic, hcrc, lsn, ln, pcrc, flags, res = struct.unpack_from("<IIQIIII", img, pos)
    if magic != WAL_REC_MAGIC or res != 0 or flags & ~WAL_BATCH_START or lsn == 0 \
            or pos + WAL_REC_HDR + ln > len(img):
        return None
    if crc32c(img[pos + 8:pos + WAL_REC_HDR], crc32c(struct.pack("<I", salt))) != hcrc:
        return None
    if any(pos <= d < pos + WAL_REC_HDR + ln for d in damaged):
        if crc32c(img[pos + WAL_REC_HDR:pos + WAL_REC_HDR + ln]) != pcrc:
            return None
    return {"off": pos, "size": WAL_REC_HDR + ln, "lsn": lsn, "len": ln, "flags": flags}


def wal_records(path, damaged=()):
    """Records of a segment as dicts {off, size, lsn, len, flags}, scanning
    like the server does (padding to block boundaries, remnants of an
    earlier cut skipped when the expected LSN starts the next block), but
    with header checks only: magic, reserved, flags, length; no CRC (so the
    caller passes the offsets it damaged itself, see _wal_rec_at)."""
    with open(path, "rb") as f:
        img = f.read()
    hdr = struct.unpack_from("<IIIIQQQI", img, 0)
    if hdr[0] != WAL_SEG_MAGIC:
        raise AssertionError("%s: bad segment magic" % path)
    expect = hdr[5]  # first LSN
    salt = hdr[7]
    recs = []
    pos = WAL_BLOCK
    n = len(img)
    while pos < n:
        boundary = min((pos + WAL_BLOCK - 1) // WAL_BLOCK * WAL_BLOCK, n)
        if boundary != pos and img[pos:boundary].count(0) == boundary - pos:
            pos = boundary
            continue
        r = _wal_rec_at(img, pos, salt, damaged)
        if r is not None and r["lsn"] == expect:
            recs.append(r)
            expect += 1
            pos += r["size"]
            continue
        if boundary != pos:
            r = _wal_rec_at(img, boundary, salt, damaged)
            if r is not None and r["lsn"] == expect and r["flags"] & WAL_BATCH_START:
                pos = boundary
                continue
        break
    return recs


def wal_newest_with_records(data_dir, damaged=None):
    """(path, records) of the newest segment that holds records. damaged:
    {segment path: [offsets the test damaged]}."""
    for path in reversed(wal_segments(data_dir)):
        recs = wal_records(path, (damaged or {}).get(path, ()))
        if recs:
            return path, recs
    return None, []


def wal_data_end(path):
    recs = wal_records(path)
    if not recs:
        return WAL_BLOCK
    return recs[-1]["off"] + recs[-1]["size"]


def zero_range(path, start, end):
    with open(path, "r+b") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            n = min(remaining, 1 << 20)
            f.write(b"\0" * n)
            remaining -= n
        f.flush()
        os.fsync(f.fileno())


def flip_byte(path, off, mask=0x5A):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ mask]))
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------ environment ---

SKIP_EXIT = 77  # the SKIP_RETURN_CODE CTest gives the tests that are scripts


def no_skip():
    """Whether HERALD_TEST_NO_SKIP=1 is set. scripts/test.sh (and so CI)
    sets it, because a skipped unittest exits 0 and CTest reports it as
    passed: there a test whose machine lacks what it needs must fail. A
    developer running one test by hand without it still gets a skip."""
    return os.environ.get("HERALD_TEST_NO_SKIP", "") not in ("", "0")


def require(ok, what):
    """Stops a test whose machine lacks `what` ("root and /dev/fuse"):
    raises unittest.SkipTest, or AssertionError under no_skip()."""
    if ok:
        return
    if no_skip():
        raise AssertionError("needs %s (HERALD_TEST_NO_SKIP=1: a skip counts as a failure)"
                             % what)
    raise unittest.SkipTest("needs " + what)


def require_or_exit(name, ok, what):
    """require() for a test that is a whole script: prints why, then exits
    SKIP_EXIT (skipped), or 1 under HERALD_TEST_NO_SKIP=1."""
    try:
        require(ok, what)
    except unittest.SkipTest as e:
        print("%s: %s; skipped" % (name, e), flush=True)
        sys.exit(SKIP_EXIT)
    except AssertionError as e:
        print("%s: FAILED, %s" % (name, e), flush=True)
        sys.exit(1)


# ---------------------------------------------------------------- runner ---

def run_tests():
    global HERALDD
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--heraldd", default=HERALDD)
    ap.add_argument("--seed", type=int, default=None)
    args, rest = ap.parse_known_args()
    HERALDD = os.path.abspath(args.heraldd) if args.heraldd else ""
    if not HERALDD or not os.access(HERALDD, os.X_OK):
        sys.stderr.write("need --heraldd PATH (or $HERALDD) to an executable heraldd\n")
        sys.exit(2)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1000000007
    random.seed(seed)
    print("heraldd: %s, random seed %d (rerun with --seed %d)" % (HERALDD, seed, seed))
    sys.stdout.flush()
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, testRunner=runner)
    r = prog.result
    bad = {t.id() if hasattr(t, "id") else str(t) for t, _ in r.failures + r.errors}
    failed = len(bad) + len(getattr(r, "unexpectedSuccesses", []))
    passed = r.testsRun - failed - len(r.skipped)
    print("%d passed, %d failed%s" % (passed, failed,
                                     ", %d skipped" % len(r.skipped) if r.skipped else ""))
    sys.exit(0 if failed == 0 and r.testsRun > 0 else 1)

# SPDX-License-Identifier: Apache-2.0
"""Helpers of the subscription tests (test_subscribe*.py): a WebSocket client
of /v1/subscribe on Debian's python3-websocket (websocket-client), a reader
thread that checks every channel's order as messages arrive, HTTP appenders,
and small readers of /metrics and /proc.

Not a test file itself. Needs `import websocket` (python3-websocket): run
with /usr/bin/python3 (CMake does) when the PATH's python3 is another build.
"""

import base64
import collections
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client  # noqa: E402

try:
    import websocket  # Debian's python3-websocket (websocket-client 1.2.x)
except ImportError:  # pragma: no cover - reported by require_websocket()
    websocket = None


def require_websocket():
    if websocket is None:
        sys.stderr.write("these tests need the websocket-client module (Debian: python3-websocket);"
                         " run them with /usr/bin/python3 (%s has no 'websocket')\n" % sys.executable)
        sys.exit(2)


# ------------------------------------------------------------ WebSocket ---

class WSClosed(Exception):
    pass


class WS:
    """One WebSocket to /v1/subscribe. recv() returns each text frame as a
    parsed JSON object, or None once the server closed (close_status and
    close_reason then hold its close frame; close_status stays None when the
    TCP connection ended without one)."""

    def __init__(self, port, rcvbuf=0, timeout=30.0, path="/v1/subscribe", headers=None):
        opts = []
        if rcvbuf:
            # Set before connect(), so the receive window is small from the SYN on.
            opts.append((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf))
        self.port = port
        extra = {"header": headers} if headers else {}
        self.ws = websocket.create_connection(
            "ws://127.0.0.1:%d%s" % (port, path), timeout=timeout, sockopt=tuple(opts),
            skip_utf8_validation=True, enable_multithread=True, **extra)
        self.closed = False
        self.close_status = None
        self.close_reason = None
        self.frames_in = 0
        # ?frames=binary: every frame must then be binary, else text.
        self.binary = "frames=binary" in path
        self.last_raw = None  # the bytes of the last frame recv() returned

    def send(self, obj):
        self.ws.send(json.dumps(obj, separators=(",", ":")))

    def send_text_bytes(self, data):
        """A text frame of raw bytes (not checked for UTF-8 here)."""
        self.ws.send(data, websocket.ABNF.OPCODE_TEXT)

    def send_binary(self, data):
        self.ws.send(data, websocket.ABNF.OPCODE_BINARY)

    def settimeout(self, t):
        self.ws.settimeout(t)

    def recv(self):
        if self.closed:
            return None
        buf = b""
        while True:
            try:
                fr = self.ws.recv_frame()
            except (websocket.WebSocketConnectionClosedException, ConnectionResetError,
                    BrokenPipeError):
                self.closed = True
                return None
            if fr is None:
                self.closed = True
                return None
            op = fr.opcode
            if op == websocket.ABNF.OPCODE_PING:
                self.ws.pong(fr.data)
                continue
            if op == websocket.ABNF.OPCODE_PONG:
                continue
            if op == websocket.ABNF.OPCODE_CLOSE:
                self.closed = True
                if len(fr.data) >= 2:
                    self.close_status = struct.unpack("!H", fr.data[:2])[0]
                    self.close_reason = fr.data[2:].decode("utf-8", "replace")
                else:
                    self.close_status = 1005  # no status in the close frame
                return None
            if op == websocket.ABNF.OPCODE_BINARY and not self.binary:
                raise AssertionError("the server sent a binary frame: %r" % fr.data[:200])
            if op == websocket.ABNF.OPCODE_TEXT and self.binary:
                raise AssertionError("a text frame on a ?frames=binary connection: %r"
                                     % fr.data[:200])
            buf += fr.data
            if fr.fin:
                self.frames_in += 1
                self.last_raw = buf
                return json.loads(buf.decode("utf-8"))

    def recv_until(self, pred, timeout=30.0):
        """Frames read until pred(frame) is true: (matching frame, frames
        before it). Raises AssertionError on close or timeout."""
        deadline = time.time() + timeout
        before = []
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no matching frame within %.0fs; got %r" % (timeout, before[-20:]))
            self.ws.settimeout(left)
            try:
                f = self.recv()
            except websocket.WebSocketTimeoutException:
                raise AssertionError("no matching frame within %.0fs; got %r" % (timeout, before[-20:]))
            if f is None:
                raise WSClosed("closed (status %r %r) before a matching frame; got %r"
                               % (self.close_status, self.close_reason, before[-20:]))
            if pred(f):
                return f, before
            before.append(f)

    def drain_to_close(self, timeout=10.0):
        """Frames until the server closes: the list (close_status is set)."""
        deadline = time.time() + timeout
        out = []
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("the server did not close within %.0fs; got %r" % (timeout, out))
            self.ws.settimeout(left)
            try:
                f = self.recv()
            except websocket.WebSocketTimeoutException:
                raise AssertionError("the server did not close within %.0fs; got %r" % (timeout, out))
            if f is None:
                return out
            out.append(f)

    def abort(self):
        """Ends the TCP connection with a reset, without a close frame (a
        thread blocked in recv() wakes up)."""
        s = self.ws.sock
        if s is not None:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.ws.shutdown()
        self.closed = True

    def send_close(self, status=1000):
        try:
            self.ws.send_close(status)
        except (OSError, websocket.WebSocketException):
            pass

    def close(self):
        """A close frame, then the end of the connection."""
        self.send_close()
        self.abort()


def message_of(frame):
    """A "message" frame as an HTTP read's message: without type and channel."""
    return {k: v for k, v in frame.items() if k not in ("type", "channel")}


class WSReader:
    """Reads a WS in a thread. Each channel's messages are kept (as HTTP
    read messages) and checked as they come: the first one follows the
    position given in `after` (default 0) and each next one is last + 1; a
    message of a channel before its "subscribed" frame is a problem too.
    Other frames go to `frames` in order."""

    def __init__(self, ws, after=None, subscribed=None, start=True):
        self.ws = ws
        self.last = dict(after or {})
        self.msgs = collections.defaultdict(list)
        self.recv_times = collections.defaultdict(list)
        self.frames = []
        self.subscribed = dict(subscribed or {})   # channel -> its subscribed frame
        self.n_msgs = 0
        self.unsubscribed = 0
        self.problems = []
        self.error = None
        self.eof = False
        self.stopping = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        if start:
            self.thread.start()

    def _run(self):
        try:
            self.ws.settimeout(None)
            while True:
                f = self.ws.recv()
                now = time.monotonic()
                if f is None:
                    break
                with self.cond:
                    t = f.get("type")
                    if t == "message":
                        ch = f.get("channel")
                        m = message_of(f)
                        want = self.last.get(ch, 0) + 1
                        if ch not in self.subscribed:
                            self.problems.append("%s seq %r: message before its subscribed frame"
                                                 % (ch, m.get("seq")))
                        if m.get("seq") != want:
                            self.problems.append("%s: seq %r after %d (gap or repeat)"
                                                 % (ch, m.get("seq"), want - 1))
                        self.last[ch] = m.get("seq", want)
                        self.msgs[ch].append(m)
                        self.recv_times[ch].append(now)
                        self.n_msgs += 1
                    else:
                        if t == "subscribed":
                            if f.get("channel") in self.subscribed:
                                self.problems.append("second subscribed frame for %r" % f.get("channel"))
                            self.subscribed[f.get("channel")] = f
                        elif t == "unsubscribed":
                            if self.subscribed.pop(f.get("channel"), None) is None:
                                self.problems.append("unsubscribed frame for %r, not subscribed"
                                                     % f.get("channel"))
                            self.unsubscribed += 1
                        self.frames.append(f)
                    self.cond.notify_all()
        except Exception as e:  # noqa: BLE001 - recorded for the test
            if not self.stopping:
                self.error = e
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def wait(self, pred, timeout):
        """Waits until pred() (called under the lock) or the end; pred()'s value."""
        with self.cond:
            self.cond.wait_for(lambda: pred() or self.eof, timeout)
            return pred()

    def stop(self):
        self.stopping = True
        self.ws.abort()
        self.thread.join(10)

    def close(self):
        """A close frame; the server's answer ends the thread."""
        self.ws.send_close()
        self.thread.join(5)
        self.stopping = True
        self.ws.abort()
        self.thread.join(5)


# ---------------------------------------------------------------- HTTP ---

PAYLOAD_KINDS = ("text", "unicode", "binary", "empty", "long")


def make_payload(rnd, nonce, kind=None, size=None):
    """(JSON fields of an append, the payload's bytes)."""
    kind = kind or rnd.choice(PAYLOAD_KINDS)
    if size is not None:
        text = (nonce + " ") + "x" * max(0, size - len(nonce) - 1)
        return {"payload": text}, text.encode()
    if kind == "text":
        t = "%s plain" % nonce
    elif kind == "unicode":
        t = "%s h\u00e9llo \u2713 \U0001F600 \"quoted\" \\ back\nline" % nonce
    elif kind == "empty":
        t = ""
    elif kind == "long":
        t = "%s %s" % (nonce, "L" * rnd.randrange(500, 3000))
    else:
        raw = b"\xff\xfe" + nonce.encode() + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
        return {"payload_b64": base64.b64encode(raw).decode()}, raw
    return {"payload": t}, t.encode()


class Appenders:
    """Threads appending over HTTP, each message a unique nonce, to channels
    pick(rnd) chooses; n per thread (or until stop()), paced by `pace`
    seconds. acked: (channel, seq) -> (nonce, payload bytes, ts, monotonic
    time of the answer). Any answer other than 201 is a problem."""

    def __init__(self, port_fn, pick, tag, threads=4, n=None, pace=0.0, size=None,
                 kinds=None, start=True, timeout=30.0):
        self.port_fn = port_fn
        self.pick = pick
        self.tag = tag
        self.n = n
        self.pace = pace
        self.size = size
        self.kinds = kinds
        self.timeout = timeout
        self.acked = {}
        self.problems = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]
        if start:
            self.start()

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self, tid):
        rnd = random.Random("%s-%d-%d" % (self.tag, tid, random.getrandbits(32)))
        c = Client(self.port_fn(), timeout=self.timeout)
        try:
            i = 0
            while not self.stopping.is_set() and (self.n is None or i < self.n):
                ch = self.pick(rnd)
                nonce = "%s-%d-%06d" % (self.tag, tid, i)
                i += 1
                fields, raw = make_payload(rnd, nonce, rnd.choice(self.kinds) if self.kinds else None,
                                           self.size)
                body = dict(fields)
                body["nonce"] = nonce
                try:
                    r = c.post_json("/v1/channels/%s/messages" % ch, body)
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.problems.append("%s/%s: %r" % (ch, nonce, e))
                    return
                if r.status != 201:
                    with self.lock:
                        self.problems.append("%s/%s -> %r" % (ch, nonce, r))
                    return
                j = r.json()
                with self.lock:
                    self.acked[(ch, j["seq"])] = (nonce, raw, j["ts"], time.monotonic())
                if self.pace:
                    self.stopping.wait(self.pace)
        finally:
            c.close()

    def count(self):
        with self.lock:
            return len(self.acked)

    def join(self, timeout=120.0):
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        hung = [t for t in self.threads if t.is_alive()]
        assert not hung, "%d appender thread(s) still running after %.0fs" % (len(hung), timeout)

    def stop(self, timeout=120.0):
        self.stopping.set()
        self.join(timeout)

    def per_channel(self):
        with self.lock:
            out = collections.Counter(ch for ch, _ in self.acked)
        return out


def batch_fill(client, channel_counts, tag, chunk=500):
    """Appends counts[ch] messages to each channel with NDJSON batches;
    checks every line's answer."""
    lines = []
    for ch, n in channel_counts.items():
        for i in range(n):
            nonce = "%s-%s-%06d" % (tag, ch, i)
            lines.append(json.dumps({"channel": ch, "nonce": nonce,
                                     "payload": "%s history %d" % (nonce, i)}))
    for k in range(0, len(lines), chunk):
        part = lines[k:k + chunk]
        r = client.request("POST", "/v1/messages:batch", "\n".join(part) + "\n",
                           {"Content-Type": "application/x-ndjson"})
        if r.status != 200:
            raise AssertionError("batch -> %r" % r)
        answers = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
        if len(answers) != len(part) or any("error" in a or a.get("duplicate") for a in answers):
            raise AssertionError("batch answers: %r" % [a for a in answers if "error" in a][:5])


def read_all_parallel(port, channels, threads=2):
    """{channel: full HTTP read}, with a few keep-alive connections."""
    out = {}
    chans = list(channels)
    errors = []

    def work(part):
        c = Client(port, timeout=30)
        try:
            for ch in part:
                out[ch] = c.read_all(ch)
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
        finally:
            c.close()

    ts = [threading.Thread(target=work, args=(chans[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return out


def metrics(port):
    """/metrics as {name: value} (unlabelled series only)."""
    c = Client(port, timeout=10)
    try:
        r = c.get("/metrics")
    finally:
        c.close()
    if r.status != 200:
        raise AssertionError("/metrics -> %r" % r)
    out = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 2 and "{" not in parts[0]:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def first_difference(got, want):
    """None if equal, else a description of the first difference."""
    for i in range(min(len(got), len(want))):
        if got[i] != want[i]:
            return "index %d: got %r, the log has %r" % (i, got[i], want[i])
    if len(got) != len(want):
        return "got %d messages, the log has %d (next in the log: %r; next got: %r)" % (
            len(got), len(want), want[len(got)] if len(want) > len(got) else None,
            got[len(want)] if len(got) > len(want) else None)
    return None


class ResumingWS:
    """A subscriber that stays subscribed: one WebSocket to port_fn(),
    every channel subscribed with the seq of the last message received
    (0 at first); when the connection ends it reconnects and resubscribes
    the same way (docs/subscribe.md, Resuming). Each channel's messages are
    checked as they come (last + 1)."""

    def __init__(self, port_fn, channels):
        self.port_fn = port_fn
        self.last = {ch: 0 for ch in channels}
        self.msgs = collections.defaultdict(list)
        self.problems = []
        self.connects = 0
        self.drops = []          # why each connection ended
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.ws = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                ws = WS(self.port_fn(), timeout=5)
            except (OSError, websocket.WebSocketException):
                self.stopping.wait(0.1)
                continue
            with self.cond:
                self.connects += 1
                positions = dict(self.last)
                self.ws = ws
            try:
                ws.send({"type": "subscribe", "id": "c%d" % self.connects, "channels": positions})
                ws.settimeout(None)
                while True:
                    f = ws.recv()
                    if f is None:
                        why = "closed by the server (%r %r)" % (ws.close_status, ws.close_reason)
                        break
                    with self.cond:
                        if f.get("type") == "message":
                            ch = f.get("channel")
                            m = message_of(f)
                            if m.get("seq") != self.last.get(ch, -1) + 1:
                                self.problems.append("%s: seq %r after %r (connection %d)"
                                                     % (ch, m.get("seq"), self.last.get(ch),
                                                        self.connects))
                            self.last[ch] = m.get("seq")
                            self.msgs[ch].append(m)
                        elif f.get("type") == "error":
                            self.problems.append("error frame %r" % f)
                        self.cond.notify_all()
            except (OSError, websocket.WebSocketException) as e:
                why = repr(e)
            if not self.stopping.is_set():
                with self.cond:
                    self.drops.append(why)
            ws.abort()

    def wait(self, pred, timeout):
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def stop(self):
        self.stopping.set()
        with self.cond:
            ws = self.ws
        if ws is not None:
            ws.abort()
        self.thread.join(10)

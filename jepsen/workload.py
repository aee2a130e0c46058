# SPDX-License-Identifier: Apache-2.0
"""The clients: appenders that retry with the same nonce, readers, and SSE
and WebSocket tailers, each recording what it did in the history. They
speak only herald's public HTTP and WebSocket API and know nothing of its
internals.

A client thread has one operation outstanding at a time; every attempt of
an append is its own invoke/completion pair in history.jsonl, and all
attempts of one logical append share its nonce."""

import json
import random
import socket
import threading
import time
import urllib.parse

import hclient

try:
    import websocket  # Debian's python3-websocket (websocket-client)
except ImportError:  # jepsen/run refuses --deletes without it
    websocket = None

APPEND_TIMEOUT = 5.0
READ_LIMIT = 1000
# 503 codes that promise nothing was written; anything else is unknown.
DEFINITE_503 = ("unavailable", "overloaded", "shutting_down")
# With trims on: the share of client operations that trim, and how many of
# a channel's last messages a trim keeps (at random in this range), so that
# what faults put at risk (the newest appends) stays checked for loss.
TRIM_SHARE = 0.005
TRIM_KEEP = (300, 1000)
# With deletes on: channels of their own, each with one appender, one
# deleter and one reader (deletes.jsonl), and one tailer (del_tails.jsonl);
# the seconds between a channel's deletes.
DELETE_CHANNELS = 2
DELETE_EVERY = (1.0, 4.0)
# How long a tailer stays on one node, and waits before it connects again
# (seconds, at random in these ranges). A delete channel's tailer hops
# often and waits long, so that deletes fall between its connections and
# it resumes from an epoch the channel has left.
TAIL_HOP = (5.0, 20.0)
TAIL_GAP = (0.1, 0.5)
DEL_TAIL_HOP = (1.0, 5.0)
DEL_TAIL_GAP = (0.1, 3.0)


def failure(a):
    """(kind, error) of an answer that was not a success: 'fail' when it
    promises nothing was done, else 'info' (unknown)."""
    if a.status is None:
        return ("info" if a.sent else "fail"), a.error
    code = a.error_code()
    # 507: under the node's free-space reserve, refused before anything was
    # written
    definite = ((a.status == 503 and code in DEFINITE_503) or 400 <= a.status < 500
                or a.status == 507)
    return ("fail" if definite else "info"), "%d %s" % (a.status, code)


class Recorder:
    """Appends records to a JSON-lines file with a shared index and clock."""

    def __init__(self, path, t0):
        self.f = open(path, "w")
        self.t0 = t0
        self.i = 0
        self.lock = threading.Lock()

    def now(self):
        return time.monotonic() - self.t0

    def record(self, rec):
        with self.lock:
            rec["i"] = self.i
            rec.setdefault("t", round(self.now(), 6))
            self.i += 1
            self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def close(self):
        with self.lock:
            self.f.close()


class Workload:
    def __init__(self, cluster, channels, history, tails, seed, n_clients, n_tailers,
                 deadline, trims=False, deletes=None, del_tails=None):
        self.cluster = cluster
        self.channels = channels
        self.history = history
        self.tails = tails
        self.seed = seed
        self.n_clients = n_clients
        self.n_tailers = n_tailers
        self.deadline = deadline      # monotonic time when clients stop
        self.trims = trims            # clients now and then trim a channel
        # deletes: the Recorder of deletes.jsonl, or None (no deletes);
        # del_tails: of del_tails.jsonl, what a tailer of each saw
        self.deletes = deletes
        self.del_tails = del_tails
        self.del_channels = ["del%d" % i for i in range(DELETE_CHANNELS if deletes else 0)]
        self.tail_stop = threading.Event()
        self.acked = []               # (channel, nonce, payload) acked, for re-sends
        self.known_seq = {ch: 0 for ch in channels + self.del_channels}
        self.lock = threading.Lock()
        self.threads = []

    def nodes(self):
        return self.cluster.nodes

    # --------------------------------------------------------- appends ---

    def _attempt(self, process, node, channel, nonce, payload, attempt, log):
        """One HTTP attempt, recorded in log; returns 'ok', 'fail' or 'info'."""
        base = {"process": process, "f": "append", "node": node.name, "channel": channel,
                "nonce": nonce}
        log.record(dict(base, type="invoke", payload=payload, attempt=attempt))
        a = hclient.request(node.ip, "POST",
                            "/v1/channels/%s/messages" % urllib.parse.quote(channel),
                            body={"nonce": nonce, "payload": payload},
                            timeout=APPEND_TIMEOUT)
        j = a.json()
        if a.status in (200, 201) and isinstance(j, dict) and "seq" in j:
            log.record(dict(base, type="ok", seq=j["seq"], ts=j["ts"],
                            duplicate=bool(j.get("duplicate"))))
            with self.lock:
                if j["seq"] > self.known_seq[channel]:
                    self.known_seq[channel] = j["seq"]
            return "ok"
        kind, err = failure(a)
        log.record(dict(base, type=kind, error=err))
        return kind

    def append(self, rng, process, channel, nonce, payload, log=None):
        """A logical append: retried with the same nonce, sometimes through
        another node, until it succeeds (True) or the run ends. Recorded in
        the history, or in log (a delete channel's)."""
        node = rng.choice(self.nodes())
        attempt = 1
        while True:
            kind = self._attempt(process, node, channel, nonce, payload, attempt,
                                 log or self.history)
            if kind == "ok":
                if log is None:
                    with self.lock:
                        self.acked.append((channel, nonce, payload))
                return True
            if time.monotonic() > self.deadline or attempt >= 30:
                return False
            attempt += 1
            time.sleep(rng.uniform(0.05, 0.3))
            if rng.random() < 0.5:
                node = rng.choice(self.nodes())

    def resend(self, rng, process):
        """Re-sends an append that already succeeded: it must come back as
        the original seq and ts, marked duplicate."""
        with self.lock:
            if not self.acked:
                return
            channel, nonce, payload = rng.choice(self.acked)
        self._attempt(process, rng.choice(self.nodes()), channel, nonce, payload, 0,
                      self.history)

    def trim(self, rng, process):
        """Trims a channel to about its last TRIM_KEEP messages (as known
        from this run's acks), through any node. Trims change no seq: what
        they remove is excused from the loss check, readers below them get
        410 and tailers a gone, and a retry of a trimmed append must still
        answer its original seq."""
        node = rng.choice(self.nodes())
        channel = rng.choice(self.channels)
        with self.lock:
            top = self.known_seq[channel]
        before = top - rng.randint(*TRIM_KEEP)
        if before < 2:
            return
        base = {"process": process, "f": "trim", "node": node.name, "channel": channel}
        self.history.record(dict(base, type="invoke", before_seq=before))
        a = hclient.request(node.ip, "POST", "/v1/channels/%s/trim" % urllib.parse.quote(channel),
                            body={"before_seq": before}, timeout=APPEND_TIMEOUT)
        if a.status == 200:
            self.history.record(dict(base, type="ok"))
            return
        kind, err = failure(a)
        self.history.record(dict(base, type=kind, error=err))

    # --------------------------------------------------------- deletes ---

    def del_appender(self, k):
        """Appends to delete channel k without pause, as client() does to
        the others, recorded in deletes.jsonl. 5% of its operations re-send
        a nonce acknowledged earlier (each once, one attempt): after a
        delete, whose dedup records went with it, that must write anew."""
        process = 1000 + k
        rng = random.Random("%s-del-appender-%d" % (self.seed, k))
        channel = self.del_channels[k]
        acked = []
        n = 0
        while time.monotonic() < self.deadline:
            if acked and rng.random() < 0.05:
                nonce, payload = acked.pop(rng.randrange(len(acked)))
                self._attempt(process, rng.choice(self.nodes()), channel, nonce, payload, 0,
                              self.deletes)
                continue
            n += 1
            nonce = "d%d-%d" % (k, n)
            payload = "%s:%08x" % (nonce, rng.getrandbits(32))
            if self.append(rng, process, channel, nonce, payload, self.deletes):
                acked.append((nonce, payload))

    def del_reader(self, k):
        """Reads delete channel k through any node with consistency=leader
        every 0.05-0.3 s: it must get an epoch no older than the deletes
        acknowledged before the read began (check_deletes.py)."""
        process = 3000 + k
        rng = random.Random("%s-del-reader-%d" % (self.seed, k))
        while time.monotonic() < self.deadline:
            time.sleep(rng.uniform(0.05, 0.3))
            self._read(process, rng.choice(self.nodes()), self.del_channels[k],
                       rng.randint(0, 100), self.deletes, leader=True)

    def deleter(self, k):
        """Deletes channel k every DELETE_EVERY seconds through any node,
        while its appender goes on: a delete forgets the messages and dedup
        records before it, and the acked deletes must each add one to the
        epoch (deletes_check.py)."""
        process = 2000 + k
        rng = random.Random("%s-deleter-%d" % (self.seed, k))
        channel = self.del_channels[k]
        while True:
            time.sleep(rng.uniform(*DELETE_EVERY))
            # The last seconds have no delete, so that what is appended
            # after the last one is there to be checked kept.
            if time.monotonic() > self.deadline - DELETE_EVERY[1]:
                return
            node = rng.choice(self.nodes())
            base = {"process": process, "f": "delete", "node": node.name, "channel": channel}
            self.deletes.record(dict(base, type="invoke"))
            a = hclient.request(node.ip, "DELETE", "/v1/channels/%s" % channel,
                                timeout=APPEND_TIMEOUT)
            j = a.json()
            if a.status == 200 and isinstance(j, dict) and isinstance(j.get("epoch"), int):
                self.deletes.record(dict(base, type="ok", epoch=j["epoch"]))
                continue
            kind, err = failure(a)
            self.deletes.record(dict(base, type=kind, error=err))

    # ----------------------------------------------------------- reads ---

    def read(self, rng, process):
        node = rng.choice(self.nodes())
        channel = rng.choice(self.channels)
        with self.lock:
            top = self.known_seq[channel]
        self._read(process, node, channel, rng.randint(max(0, top - 200), top), self.history)

    def _read(self, process, node, channel, after, log, leader=False):
        """Reads up to READ_LIMIT messages after a seq, recorded in log with
        the channel's epoch; leader: with consistency=leader."""
        base = {"process": process, "f": "read", "node": node.name, "channel": channel}
        log.record(dict(base, type="invoke", after_seq=after))
        a = hclient.request(node.ip, "GET", "/v1/channels/%s/messages?after_seq=%d&limit=%d%s"
                            % (channel, after, READ_LIMIT,
                               "&consistency=leader" if leader else ""),
                            timeout=APPEND_TIMEOUT)
        j = a.json()
        if a.status == 200 and isinstance(j, dict):
            msgs = [{"seq": m["seq"], "ts": m["ts"], "nonce": m["nonce"],
                     "payload": m.get("payload")} for m in j["messages"]]
            log.record(dict(base, type="ok", messages=msgs, epoch=j.get("epoch")))
        else:
            log.record(dict(base, type="fail" if not a.sent else "info",
                            error=a.error or "%s %s" % (a.status, a.error_code())))

    def client(self, process):
        rng = random.Random("%s-client-%d" % (self.seed, process))
        n = 0
        while time.monotonic() < self.deadline:
            r = rng.random()
            if r < 0.85:
                n += 1
                nonce = "p%d-%d" % (process, n)
                payload = "%s:%08x" % (nonce, rng.getrandbits(32))
                self.append(rng, process, rng.choice(self.channels), nonce, payload)
            elif r < 0.95:
                self.read(rng, process)
            elif self.trims and r >= 1 - TRIM_SHARE:
                self.trim(rng, process)
            else:
                self.resend(rng, process)

    # ----------------------------------------------------------- tails ---

    def tailer(self, tailer, channels, log, hop=TAIL_HOP, gap=TAIL_GAP, ws=False):
        """Follows channels from a random node, recorded in log: over SSE,
        one with its own tail, several with one multi-channel stream; or
        over one WebSocket (ws). On any error, or now and then on purpose,
        resumes on another node after the last position received of each
        (the seq, and its epoch once the channel was deleted)."""
        rng = random.Random("%s-tailer-%s" % (self.seed, tailer))
        # survives a connection that fails half-way
        pos = {ch: {"last": 0, "epoch": 0} for ch in channels}
        name = ",".join(channels)
        errors = (OSError, ValueError, KeyError) + (
            (websocket.WebSocketException,) if ws else ())
        while not self.tail_stop.is_set():
            node = rng.choice(self.nodes())
            log.record({"tailer": tailer, "node": node.name, "channel": name,
                        "event": "connect", "after": self._resume_id(channels, pos)})
            err = None
            try:
                follow = self._follow_ws if ws else self._follow
                follow(rng, tailer, node, channels, pos, log, hop)
            except errors as e:
                err = "%s: %s" % (e.__class__.__name__, e)
            log.record({"tailer": tailer, "node": node.name, "channel": name,
                        "event": "disconnect", "error": err})
            self.tail_stop.wait(rng.uniform(*gap))

    @staticmethod
    def _resume_id(channels, pos):
        """The Last-Event-ID that resumes every channel where pos has it: a
        one-channel tail's "seq[@epoch]" (an int while the epoch is 0), or
        a multi-channel stream's "index:seq[@epoch],..."."""
        def at(p):
            return "%d@%d" % (p["last"], p["epoch"]) if p["epoch"] else "%d" % p["last"]
        if len(channels) == 1:
            p = pos[channels[0]]
            return at(p) if p["epoch"] else p["last"]
        return ",".join("%d:%s" % (i, at(pos[ch])) for i, ch in enumerate(channels))

    def _follow(self, rng, tailer, node, channels, pos, log, hop):
        """Reads one SSE connection until it ends, fails, or its time is up,
        keeping pos at the last position received of each channel. The
        stream is plain (not chunked) and ends with the connection. A gone
        ends a one-channel tail; a multi-channel stream goes on with the
        other channels, and the next connection resumes that one."""
        until = time.monotonic() + rng.uniform(*hop)
        one = len(channels) == 1
        path = ("/v1/channels/%s/tail" % channels[0] if one else
                "/v1/tail?channels=" + ",".join("%s:0" % ch for ch in channels))
        s = hclient.connect(node.ip, 3.0)
        try:
            auth = "".join("%s: %s\r\n" % kv for kv in hclient.auth_headers().items())
            req = ("GET %s HTTP/1.1\r\nHost: %s\r\nLast-Event-ID: %s\r\n"
                   "Accept: text/event-stream\r\n%s\r\n"
                   % (path, node.ip, self._resume_id(channels, pos), auth))
            s.sendall(req.encode())
            s.settimeout(1.0)
            buf = b""
            head_done = False
            event = None
            epochs = {}
            while time.monotonic() < until and not self.tail_stop.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    raise ValueError("tail connection closed")
                buf += chunk
                if not head_done:
                    if b"\r\n\r\n" not in buf:
                        continue
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    status = head.split(b"\r\n", 1)[0]
                    if b" 410 " in status and one:
                        self._gone_at_start(s, tailer, node, channels[0], pos[channels[0]],
                                            head, buf, log)
                        return
                    if b" 200 " not in status:
                        raise ValueError("tail answered %r" % head[:80])
                    head_done = True
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"event: "):
                        event = line[7:].strip()
                    elif line.startswith(b"id: "):
                        epochs = self._id_epochs(line[4:].strip().decode(), channels)
                    elif line.startswith(b"data: ") and event == b"gone":
                        body = json.loads(line[6:])
                        ch = channels[0] if one else body["channel"]
                        self._gone(tailer, node, ch, pos[ch], body, log)
                        if one:
                            return
                    elif line.startswith(b"data: "):
                        m = json.loads(line[6:])
                        ch = channels[0] if one else m["channel"]
                        self._message(tailer, node, ch, pos[ch],
                                      epochs.get(ch, pos[ch]["epoch"]), m, log)
                    elif not line.strip():
                        event = None
        finally:
            s.close()

    def _follow_ws(self, rng, tailer, node, channels, pos, log, hop):
        """Follows channels over one WebSocket (/v1/subscribe) until it
        fails or its time is up, each subscribed from pos with its epoch.
        A message is of the epoch its channel's `subscribed` frame named; a
        `gone` subscribes that channel again on the same connection, from
        the first seq of the epoch it names; an `epoch_ahead` refusal (the
        node has not applied a delete this tailer has seen) asks again
        half a second later."""
        until = time.monotonic() + rng.uniform(*hop)
        ws = websocket.WebSocket(skip_utf8_validation=True)
        try:
            # the socket is hclient's (TLS-wrapped with --tls), so ws:// here
            ws.connect("ws://%s/v1/subscribe" % node.ip, socket=hclient.connect(node.ip, 3.0),
                       timeout=3.0,
                       header=["%s: %s" % kv for kv in hclient.auth_headers().items()])
            ws.settimeout(1.0)

            def subscribe(chs):
                ws.send(json.dumps({"type": "subscribe", "channels": {
                    ch: {"after_seq": pos[ch]["last"], "epoch": pos[ch]["epoch"]}
                    for ch in chs}}))

            subscribe(channels)
            epoch_of, again = {}, {}
            while time.monotonic() < until and not self.tail_stop.is_set():
                due = [ch for ch, t in again.items() if t <= time.monotonic()]
                if due:
                    for ch in due:
                        del again[ch]
                    subscribe(due)
                try:
                    f = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                kind, ch = f.get("type"), f.get("channel")
                if kind == "subscribed":
                    epoch_of[ch] = f.get("epoch", 0)
                elif kind == "message":
                    self._message(tailer, node, ch, pos[ch], epoch_of[ch], f, log)
                elif kind == "gone":
                    self._gone(tailer, node, ch, pos[ch], f, log)
                    subscribe([ch])
                elif kind == "error" and f.get("code") == "epoch_ahead":
                    again[ch] = time.monotonic() + 0.5
                elif kind in ("error", "closing"):
                    raise ValueError("websocket answered %r" % f)
        finally:
            ws.close(timeout=1.0)

    @staticmethod
    def _id_epochs(text, channels):
        """{channel: epoch} of an event's id ("seq[@epoch]", or
        "index:seq[@epoch],..." on a multi-channel stream). Only the entry
        of the event's own channel is taken: a multi-channel id also
        repeats the last position of a channel whose subscription ended."""
        epochs = {}
        for item in text.split(","):
            index, _, at = item.rpartition(":")
            _, _, epoch = at.partition("@")
            epochs[channels[int(index)] if index else channels[0]] = int(epoch) if epoch else 0
        return epochs

    @staticmethod
    def _message(tailer, node, channel, pos, epoch, m, log):
        """Records a message a tailer received (of `epoch`, 0 before any
        delete) and moves the channel's pos to it."""
        rec = {"tailer": tailer, "node": node.name, "channel": channel, "event": "message",
               "seq": m["seq"], "ts": m["ts"], "nonce": m["nonce"], "payload": m.get("payload")}
        if epoch:
            rec["epoch"] = epoch
        log.record(rec)
        pos["last"], pos["epoch"] = m["seq"], epoch

    def _gone(self, tailer, node, channel, pos, body, log):
        """A trim removed the messages after pos (the channel's), or a
        delete the channel: it resumes at the channel's first seq of the
        epoch the answer names (the checkers hold the gone to the trims and
        deletes)."""
        first, epoch = body["first_seq"], body.get("epoch", 0)
        rec = {"tailer": tailer, "node": node.name, "channel": channel, "event": "gone",
               "first_seq": first}
        if epoch:
            rec["epoch"] = epoch
        log.record(rec)
        if epoch != pos["epoch"]:
            pos["last"], pos["epoch"] = first - 1, epoch
        else:
            pos["last"] = max(pos["last"], first - 1)

    def _gone_at_start(self, s, tailer, node, channel, pos, head, body, log):
        """The resume position is below a trim or of an earlier epoch: 410
        with the channel's info."""
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise ValueError("410 answer cut short")
            body += chunk
        self._gone(tailer, node, channel, pos, json.loads(body[:length]), log)

    # -------------------------------------------------------- lifecycle ---

    def start(self):
        for p in range(self.n_clients):
            self.threads.append(threading.Thread(target=self.client, args=(p,), daemon=True))
        for k in range(len(self.del_channels)):
            for target in (self.del_appender, self.deleter, self.del_reader):
                self.threads.append(threading.Thread(target=target, args=(k,), daemon=True))
        self.n_writers = len(self.threads)
        for t in range(self.n_tailers):
            self.threads.append(threading.Thread(
                target=self.tailer, args=(t, [self.channels[t % len(self.channels)]],
                                          self.tails), daemon=True))
        # One tail of each delete channel, one SSE stream of them all, and
        # one WebSocket of them all.
        del_tails = [("d%d" % k, [ch], False) for k, ch in enumerate(self.del_channels)]
        if self.del_channels:
            del_tails += [("dm", self.del_channels, False), ("dw", self.del_channels, True)]
        for name, chs, ws in del_tails:
            self.threads.append(threading.Thread(
                target=self.tailer, args=(name, chs, self.del_tails, DEL_TAIL_HOP,
                                          DEL_TAIL_GAP, ws), daemon=True))
        for th in self.threads:
            th.start()

    def join_clients(self):
        for th in self.threads[:self.n_writers]:
            th.join()

    def stop_tailers(self):
        self.tail_stop.set()
        for th in self.threads[self.n_writers:]:
            th.join(10)

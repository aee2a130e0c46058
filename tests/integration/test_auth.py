#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tokens (heraldd --auth-file, docs/security.md) against a real heraldd.

1. every route family: 401 (+ WWW-Authenticate, JSON) without a token or
   with an unknown one, 403 (JSON) with a token that lacks the scope,
   success with the right one; a refused append or batch writes nothing;
2. batches are checked line by line: one channel outside the scope refuses
   the whole batch;
3. SSE tails (one and many channels) and the WebSocket take
   ?access_token=; a WebSocket subscribe or append outside the scope gets an
   error frame for that channel and the connection goes on;
4. membership routes and setting the retention policy need admin;
5. SIGHUP: an added token works, a removed one is refused and its open tail
   and WebSocket end (the other token's stay); a bad file is refused and the
   old tokens stay;
6. off loopback without --auth-file heraldd refuses to start unless
   --insecure; a bad auth file is refused at start with its line number;
7. herald token create prints a token and a line heraldd accepts;
8. refusals are logged with the token's name, never the token, and counted
   in /metrics;
9. limits per token: over limit:appends a request is answered 429 with
   Retry-After (a batch of 10 at 1/s leaves ~9 s of debt, so this holds
   however slow the machine) and nothing is written, while another token
   appends; limit:streams refuses a second tail or WebSocket until the
   first one closes; /metrics counts them by token name. limit:channels
   refuses an append (single, batch or WebSocket) to a third channel in
   the same second, not one to a channel already touched, and takes it in
   the next second.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NodeTestCase, SSEReader, run_tests  # noqa: E402
from ws_client import WS, require_websocket  # noqa: E402

TOKENS = {
    # name: (token, scopes)
    "writer": ("tok-writer-0123456789abcdef", "append:team-1:* status"),
    "reader": ("tok-reader-0123456789abcdef", "read:team-1:* subscribe:team-1:*"),
    "admin": ("tok-admin-0123456789abcdef", "admin status"),
    "all": ("tok-all-0123456789abcdef", "append:* read:* subscribe:*"),
    "slow": ("tok-slow-0123456789abcdef",
             "append:* subscribe:* limit:appends=1 limit:streams=1"),
    "spread": ("tok-spread-0123456789abcdef", "append:* limit:channels=2"),
}


def line(name, token, scopes):
    return "%s sha256:%s %s\n" % (name, hashlib.sha256(token.encode()).hexdigest(), scopes)


def auth_file_text(names):
    return "# test tokens\n" + "".join(line(n, *TOKENS[n]) for n in names)


def bearer(name):
    return {"Authorization": "Bearer " + TOKENS[name][0]}


class T(NodeTestCase):
    def auth_node(self, names=tuple(TOKENS)):
        self.auth_path = os.path.join(self.tmp, "tokens")
        with open(self.auth_path, "w") as f:
            f.write(auth_file_text(names))
        return self.new_node(args=["--auth-file", self.auth_path])

    def assert401(self, r):
        self.assertError(r, 401, "unauthenticated")
        self.assertTrue(r.headers.get("www-authenticate", "").startswith("Bearer"), r)

    def assert403(self, r):
        self.assertError(r, 403, "forbidden")

    def reload(self, n, names=None, text=None):
        before = n.log().count("auth reload")
        with open(self.auth_path, "w") as f:
            f.write(text if text is not None else auth_file_text(names))
        n.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while n.log().count("auth reload") == before:
            self.assertLess(time.time(), deadline, "no reload in the log:\n" + n.log())
            time.sleep(0.05)

    def test_appends_and_reads(self):
        n = self.auth_node()
        c = n.client()
        body = json.dumps({"nonce": "n1", "payload": "hi"})
        hdr = {"Content-Type": "application/json"}
        self.assert401(c.request("POST", "/v1/channels/team-1:a/messages", body, hdr))
        self.assert401(c.request("POST", "/v1/channels/team-1:a/messages", body,
                                 dict(hdr, Authorization="Bearer not-a-token")))
        self.assert401(c.request("POST", "/v1/channels/team-1:a/messages", body,
                                 dict(hdr, Authorization="Basic " + TOKENS["writer"][0])))
        self.assert403(c.request("POST", "/v1/channels/team-2:a/messages", body,
                                 dict(hdr, **bearer("writer"))))
        self.assert403(c.request("POST", "/v1/channels/team-1:a/messages", body,
                                 dict(hdr, **bearer("reader"))))
        r = c.request("POST", "/v1/channels/team-1:a/messages", body, dict(hdr, **bearer("writer")))
        self.assertEqual(r.status, 201, r)
        # reads: read scope only
        self.assert401(c.get("/v1/channels/team-1:a/messages?after_seq=0"))
        self.assert403(c.get("/v1/channels/team-1:a/messages?after_seq=0", bearer("writer")))
        self.assert403(c.get("/v1/channels/team-2:a/messages?after_seq=0", bearer("reader")))
        r = c.get("/v1/channels/team-1:a/messages?after_seq=0", bearer("reader"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual([m["payload"] for m in r.json()["messages"]], ["hi"])
        # the refused appends wrote nothing
        r = c.get("/v1/channels/team-2:a/messages?after_seq=0", bearer("all"))
        self.assertEqual(r.json()["messages"], [])
        # the token is not in the log; the refusals name token and route
        log = n.log()
        for tok, _ in TOKENS.values():
            self.assertNotIn(tok, log)
        self.assertNotIn("not-a-token", log)
        self.assertIn("token 'writer' lacks append on channel team-2:a", log)
        self.assertIn("POST /v1/channels/team-1:a/messages", log)
        self.assertIn("unknown token", log)

    def test_batch_checks_every_line(self):
        n = self.auth_node()
        c = n.client()
        lines = [{"channel": "team-1:a", "nonce": "b1", "payload": "x"},
                 {"channel": "team-2:a", "nonce": "b2", "payload": "y"}]
        body = "".join(json.dumps(l) + "\n" for l in lines)
        hdr = {"Content-Type": "application/x-ndjson"}
        self.assert401(c.request("POST", "/v1/messages:batch", body, hdr))
        self.assert403(c.request("POST", "/v1/messages:batch", body, dict(hdr, **bearer("writer"))))
        r = c.get("/v1/channels/team-1:a/messages?after_seq=0", bearer("all"))
        self.assertEqual(r.json()["messages"], [], "a refused batch wrote its allowed line")
        r = c.request("POST", "/v1/messages:batch", body, dict(hdr, **bearer("all")))
        self.assertEqual(r.status, 200, r)
        ok = "".join(json.dumps(l) + "\n" for l in lines[:1]).replace("b1", "b3")
        r = c.request("POST", "/v1/messages:batch", ok, dict(hdr, **bearer("writer")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body.decode().splitlines()[0])["seq"], 2)

    def test_status_metrics_and_cors_preflight(self):
        n = self.auth_node()
        c = n.client()

        def refused(reason):
            m = c.get("/metrics", bearer("admin")).body.decode()
            key = 'herald_auth_refused_total{reason="%s"} ' % reason
            return int(m.split(key)[1].split()[0])
        before = (refused("unauthenticated"), refused("forbidden"))
        for path in ("/v1/status", "/metrics"):
            self.assert401(c.get(path))
            self.assert403(c.get(path, bearer("reader")))
            self.assertEqual(c.get(path, bearer("writer")).status, 200)
        self.assertEqual(refused("unauthenticated") - before[0], 2)
        self.assertEqual(refused("forbidden") - before[1], 2)
        self.assertIn("herald_auth_tokens %d" % len(TOKENS),
                      c.get("/metrics", bearer("admin")).body.decode())
        # a CORS preflight carries no credentials: it stays open
        cn = self.new_node(args=["--auth-file", self.auth_path, "--cors-origins",
                                 "https://app.example"], name="cors")
        r = cn.client().request("OPTIONS", "/v1/channels/team-1:a/messages", None,
                                {"Origin": "https://app.example",
                                 "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 204, r)

    def test_membership_needs_admin(self):
        n = self.auth_node()
        c = n.client()
        body = json.dumps({"id": 9, "address": "127.0.0.1:1"})
        hdr = {"Content-Type": "application/json"}
        self.assert401(c.request("POST", "/v1/cluster/nodes", body, hdr))
        self.assert403(c.request("POST", "/v1/cluster/nodes", body, dict(hdr, **bearer("all"))))
        self.assert401(c.request("DELETE", "/v1/cluster/nodes/9"))
        self.assert403(c.request("DELETE", "/v1/cluster/nodes/9", None, bearer("writer")))
        # admin gets past auth: whatever the cluster answers, not 401/403
        r = c.request("DELETE", "/v1/cluster/nodes/9", None, bearer("admin"))
        self.assertNotIn(r.status, (401, 403), r)
        self.assertIn("membership: DELETE /v1/cluster/nodes/9 by token 'admin'", n.log())

    def test_retention_policy_needs_admin(self):
        n = self.auth_node()
        c = n.client()
        body = json.dumps({"rules": "team-1:*=messages:10"})
        self.assert401(c.request("PUT", "/v1/retention", body))
        self.assert403(c.request("PUT", "/v1/retention", body, bearer("writer")))
        self.assert403(c.request("DELETE", "/v1/retention", None, bearer("all")))
        self.assert403(c.request("GET", "/v1/retention", None, bearer("reader")))
        self.assertEqual(c.request("GET", "/v1/retention", None, bearer("writer")).json()["source"],
                         "config")  # reading it is a status read
        r = c.request("PUT", "/v1/retention", body, bearer("admin"))
        self.assertEqual((r.status, r.json()["source"]), (200, "cluster"), r)
        r = c.request("DELETE", "/v1/retention", None, bearer("admin"))
        self.assertEqual((r.status, r.json()["source"]), (200, "config"), r)

    def test_sse_tails_take_query_tokens(self):
        n = self.auth_node()
        c = n.client()
        c.request("POST", "/v1/channels/team-1:a/messages",
                  json.dumps({"nonce": "n1", "payload": "one"}),
                  dict({"Content-Type": "application/json"}, **bearer("writer")))
        t = SSEReader(n.port, "team-1:a", after_seq=0)
        self.assertEqual(t.wait_status(), 401)
        t.close()
        t = SSEReader(n.port, "team-1:a", after_seq=0,
                      extra_query="access_token=" + TOKENS["writer"][0])
        self.assertEqual(t.wait_status(), 403)
        t.close()
        t = SSEReader(n.port, "team-2:a", after_seq=0,
                      extra_query="access_token=" + TOKENS["reader"][0])
        self.assertEqual(t.wait_status(), 403)
        t.close()
        t = SSEReader(n.port, "team-1:a", after_seq=0,
                      extra_query="access_token=" + TOKENS["reader"][0])
        self.assertEqual(t.wait_status(), 200)
        self.assertTrue(t.wait_count(1))
        t.close()
        # many channels: one outside the scope refuses the stream
        q = "/v1/tail?channels=team-1:a:0,team-2:a:0&access_token=" + TOKENS["reader"][0]
        t = SSEReader(n.port, None, path=q)
        self.assertEqual(t.wait_status(), 403)
        t.close()
        t = SSEReader(n.port, None, path="/v1/tail?channels=team-1:a:0")
        self.assertEqual(t.wait_status(), 401)
        t.close()
        q = "/v1/tail?channels=team-1:a:0,team-1:b:0&access_token=" + TOKENS["reader"][0]
        t = SSEReader(n.port, None, path=q)
        self.assertEqual(t.wait_status(), 200)
        self.assertTrue(t.wait_count(1))
        t.close()
        self.assertNotIn(TOKENS["reader"][0], n.log())

    def test_websocket(self):
        require_websocket()
        import websocket
        n = self.auth_node()
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            WS(n.port, path="/v1/subscribe?access_token=tok-unknown")
        self.assertEqual(e.exception.status_code, 401)
        ws = WS(n.port, path="/v1/subscribe?access_token=" + TOKENS["reader"][0])
        ws.send({"type": "subscribe", "id": "s1", "channels": {"team-1:a": 0, "team-2:a": 0}})
        got = {}
        for _ in range(2):
            f, _ = ws.recv_until(lambda f: f.get("type") in ("subscribed", "error"))
            got[f["channel"]] = f
        self.assertEqual(got["team-1:a"]["type"], "subscribed")
        self.assertEqual(got["team-2:a"]["type"], "error")
        self.assertEqual(got["team-2:a"]["code"], "forbidden")
        # an append outside the scope: an error frame, the connection goes on
        ws.send({"type": "append", "id": "a1", "channel": "team-1:a", "nonce": "w1",
                 "payload": "nope"})
        f, _ = ws.recv_until(lambda f: f.get("id") == "a1")
        self.assertEqual((f["type"], f["code"]), ("error", "forbidden"))
        w2 = WS(n.port, headers=["Authorization: Bearer " + TOKENS["all"][0]])
        w2.send({"type": "append", "id": "a2", "channel": "team-1:a", "nonce": "w2",
                 "payload": "yes"})
        f, _ = w2.recv_until(lambda f: f.get("id") == "a2")
        self.assertEqual(f["type"], "ack", f)
        # the reader's subscription still delivers
        f, _ = ws.recv_until(lambda f: f.get("type") == "message")
        self.assertEqual(f["payload"], "yes")
        c = n.client()
        r = c.get("/v1/channels/team-1:a/messages?after_seq=0", bearer("all"))
        self.assertEqual([m["payload"] for m in r.json()["messages"]], ["yes"])
        ws.ws.close()
        w2.ws.close()

    def closed_by_server(self, ws):
        """Frames until the server closes: (frames, close status)."""
        frames = []
        while True:
            f = ws.recv()
            if f is None:
                return frames, ws.close_status
            frames.append(f)

    def test_websocket_token_in_first_frame(self):
        require_websocket()
        n = self.auth_node()
        # No token at the handshake: the first frame carries it, and then
        # the connection is the token's, scopes and all.
        ws = WS(n.port)
        ws.send({"type": "auth", "id": "x", "token": TOKENS["reader"][0]})
        f, _ = ws.recv_until(lambda f: f.get("type") in ("authenticated", "closing"))
        self.assertEqual(f, {"type": "authenticated", "id": "x"})
        ws.send({"type": "subscribe", "channels": {"team-1:a": 0, "team-2:a": 0}})
        got = {}
        for _ in range(2):
            f, _ = ws.recv_until(lambda f: f.get("type") in ("subscribed", "error"))
            got[f["channel"]] = f["type"] if f["type"] == "subscribed" else f["code"]
        self.assertEqual(got, {"team-1:a": "subscribed", "team-2:a": "forbidden"})
        ws.send({"type": "auth", "id": "y", "token": TOKENS["all"][0]})
        f, _ = ws.recv_until(lambda f: f.get("id") == "y")
        self.assertEqual((f["type"], f["code"]), ("error", "already_authenticated"))
        c = n.client()
        r = c.post_json("/v1/channels/team-1:a/messages", {"nonce": "f1", "payload": "hi"},
                        bearer("writer"))
        self.assertEqual(r.status, 201, r)
        f, _ = ws.recv_until(lambda f: f.get("type") == "message")
        self.assertEqual(f["payload"], "hi")

        # An unknown token, or any other first frame: closed, 1008, nothing done.
        before = n.log().count("auth: refused WebSocket /v1/subscribe")
        for first in ({"type": "auth", "token": "tok-unknown-0123456789"},
                      {"type": "subscribe", "channels": {"team-1:a": 0}},
                      {"type": "append", "id": "a", "channel": "team-1:a", "nonce": "f2",
                       "payload": "no"}):
            w2 = WS(n.port)
            w2.send(first)
            frames, status = self.closed_by_server(w2)
            self.assertEqual(status, 1008, frames)
            self.assertEqual([f["type"] for f in frames], ["closing"], frames)
            self.assertEqual(frames[0]["reason"], "unauthenticated")
        self.assertEqual(n.log().count("auth: refused WebSocket /v1/subscribe"), before + 1)
        self.assertNotIn("tok-unknown", n.log())
        r = c.get("/v1/channels/team-1:a/messages?after_seq=0", bearer("all"))
        self.assertEqual([m["nonce"] for m in r.json()["messages"]], ["f1"])

        # A token given in the first frame is revoked like any other.
        self.reload(n, [x for x in TOKENS if x != "reader"])
        frames, status = self.closed_by_server(ws)
        self.assertEqual(status, 1008)
        self.assertEqual(frames[-1]["reason"], "token_revoked", frames)

    def test_sighup_add_remove_and_bad_file(self):
        require_websocket()
        n = self.auth_node(names=("reader", "all", "admin"))
        c = n.client()
        self.assert401(c.get("/v1/status", bearer("writer")))
        # two tails and two WebSockets: the reader's must end, all's stay
        tr = SSEReader(n.port, "team-1:a", after_seq=0,
                       extra_query="access_token=" + TOKENS["reader"][0])
        ta = SSEReader(n.port, "team-1:a", after_seq=0,
                       extra_query="access_token=" + TOKENS["all"][0])
        self.assertEqual((tr.wait_status(), ta.wait_status()), (200, 200))
        wr = WS(n.port, path="/v1/subscribe?access_token=" + TOKENS["reader"][0])
        wa = WS(n.port, path="/v1/subscribe?access_token=" + TOKENS["all"][0])
        for w in (wr, wa):
            w.send({"type": "subscribe", "id": "s", "channels": {"team-1:a": 0}})
            w.recv_until(lambda f: f.get("type") == "subscribed")
        # a bad file is refused; the old tokens stay
        self.reload(n, text=auth_file_text(("all",)) + "broken line\n")
        self.assertIn("auth reload refused", n.log())
        self.assertIn("line 3", n.log())
        self.assertEqual(c.get("/v1/channels/team-1:a/messages", bearer("reader")).status, 200)
        # reader removed, writer added
        self.reload(n, names=("writer", "all", "admin"))
        self.assertTrue(tr.wait_eof(20), "the removed token's tail goes on")
        frames = wr.drain_to_close(20)
        self.assertEqual(wr.close_status, 1008)
        self.assertEqual(wr.close_reason, "token_revoked")
        self.assertTrue(any(f.get("reason") == "token_revoked" for f in frames), frames)
        self.assert401(c.get("/v1/channels/team-1:a/messages", bearer("reader")))
        self.assertEqual(c.get("/v1/status", bearer("writer")).status, 200)
        # the other token's tail and WebSocket still deliver
        r = c.request("POST", "/v1/channels/team-1:a/messages",
                      json.dumps({"nonce": "after", "payload": "after"}),
                      dict({"Content-Type": "application/json"}, **bearer("writer")))
        self.assertEqual(r.status, 201, r)
        self.assertTrue(ta.wait_count(1))
        self.assertFalse(ta.eof)
        f, _ = wa.recv_until(lambda f: f.get("type") == "message")
        self.assertEqual(f["payload"], "after")
        self.assertIn("token 'reader' removed", n.log())
        ta.close()
        tr.close()
        wa.ws.close()

    def test_safe_defaults(self):
        n = self.new_node(start=False)
        n.spawn(extra=["--listen", "0.0.0.0:%d" % n.port])
        rc = n.proc.wait(60)
        self.assertEqual(rc, 1)
        self.assertIn("not a loopback address and there is no --auth-file", n.log())
        n.start(extra=["--listen", "0.0.0.0:%d" % n.port, "--insecure"])
        self.assertEqual(n.client().get("/v1/status").status, 200)
        self.assertIn("--insecure", n.log())
        n.terminate()
        # loopback without a file: open as before
        m = self.new_node()
        self.assertEqual(m.client().get("/v1/status").status, 200)
        # a bad auth file is refused at start, with its line
        bad = os.path.join(self.tmp, "bad")
        with open(bad, "w") as f:
            f.write(auth_file_text(("admin",)) + "x sha256:zz admin\n")
        b = self.new_node(start=False, name="bad")
        b.spawn(extra=["--auth-file", bad])
        self.assertEqual(b.proc.wait(60), 1)
        self.assertIn("line 3: token 'x'", b.log())

    def test_token_limits(self):
        require_websocket()
        import websocket
        n = self.auth_node()
        c = n.client()
        hdr = dict({"Content-Type": "application/x-ndjson"}, **bearer("slow"))
        body = "".join(json.dumps({"channel": "lim", "nonce": "b%d" % i, "payload": "x"}) + "\n"
                       for i in range(10))
        r = c.request("POST", "/v1/messages:batch", body, hdr)
        self.assertEqual(r.status, 200, r)
        one = json.dumps({"nonce": "late", "payload": "late"})
        jh = {"Content-Type": "application/json"}
        r = c.request("POST", "/v1/channels/lim/messages", one, dict(jh, **bearer("slow")))
        self.assertError(r, 429, "rate_limited")
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)
        r = c.request("POST", "/v1/messages:batch", body.replace('"b', '"c'), hdr)
        self.assertError(r, 429, "rate_limited")
        # another token is not held back
        r = c.request("POST", "/v1/channels/lim/messages", json.dumps({"nonce": "o", "payload": "o"}),
                      dict(jh, **bearer("all")))
        self.assertEqual(r.status, 201, r)
        msgs = c.get("/v1/channels/lim/messages?after_seq=0", bearer("all")).json()["messages"]
        self.assertEqual([m["nonce"] for m in msgs], ["b%d" % i for i in range(10)] + ["o"])
        # a WebSocket append over the rate: an error frame, nothing written
        w = WS(n.port, path="/v1/subscribe?access_token=" + TOKENS["slow"][0])
        w.send({"type": "append", "id": "wa", "channel": "lim", "nonce": "ws", "payload": "x"})
        f, _ = w.recv_until(lambda f: f.get("id") == "wa")
        self.assertEqual((f["type"], f["code"]), ("error", "rate_limited"))
        # streams: the WebSocket is the one allowed; a tail is refused
        t = SSEReader(n.port, "lim", after_seq=0,
                      extra_query="access_token=" + TOKENS["slow"][0])
        self.assertEqual(t.wait_status(), 429)
        t.close()
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            WS(n.port, path="/v1/subscribe?access_token=" + TOKENS["slow"][0])
        self.assertEqual(e.exception.status_code, 429)
        w.ws.close()
        # once it is closed (the server notices on its own time), a tail opens
        deadline = time.time() + 30
        while True:
            t = SSEReader(n.port, "lim", after_seq=0,
                          extra_query="access_token=" + TOKENS["slow"][0])
            st = t.wait_status()
            if st == 200:
                break
            t.close()
            self.assertEqual(st, 429)
            self.assertLess(time.time(), deadline, "the closed WebSocket still counts")
            time.sleep(0.1)
        self.assertTrue(t.wait_count(11))
        t.close()
        m = c.get("/metrics", bearer("admin")).body.decode()
        limited = int(m.split('herald_token_limited_total{token="slow"} ')[1].split()[0])
        self.assertGreaterEqual(limited, 5)

    def test_channels_per_second(self):
        require_websocket()
        n = self.auth_node()
        c = n.client()
        jh = dict({"Content-Type": "application/json"}, **bearer("spread"))

        def append(ch, nonce):
            return c.request("POST", "/v1/channels/%s/messages" % ch,
                             json.dumps({"nonce": nonce, "payload": nonce}), jh)

        def at_second_start():
            """Waits for the start of a wall-clock second, so that what follows
            (a few requests) falls in one second of the node's clock."""
            time.sleep(1.0 - time.time() % 1.0 + 0.02)

        for attempt in range(5):
            at_second_start()
            t0 = int(time.time())
            r1, r2, r3, r4 = (append("sp-a", "a%d" % attempt), append("sp-b", "b%d" % attempt),
                              append("sp-c", "c%d" % attempt), append("sp-a", "a2-%d" % attempt))
            if int(time.time()) == t0:
                break
        self.assertEqual((r1.status, r2.status, r4.status), (201, 201, 201), (r1, r2, r4))
        self.assertError(r3, 429, "rate_limited")
        self.assertEqual(r3.headers["retry-after"], "1")
        self.assertIn("channels per second", r3.json()["error"]["message"])
        # a batch spreading over three channels at once, and a WebSocket
        # append to a third one
        at_second_start()
        body = "".join(json.dumps({"channel": ch, "nonce": "batch-" + ch, "payload": "x"}) + "\n"
                       for ch in ("sp-d", "sp-e", "sp-f"))
        r = c.request("POST", "/v1/messages:batch", body,
                      dict(jh, **{"Content-Type": "application/x-ndjson"}))
        self.assertError(r, 429, "rate_limited")
        at_second_start()
        w = WS(n.port, path="/v1/subscribe?access_token=" + TOKENS["spread"][0])
        for i, ch in enumerate(("sp-g", "sp-h", "sp-i")):
            w.send({"type": "append", "id": "w%d" % i, "channel": ch, "nonce": "ws", "payload": "x"})
        seen = {}
        while len(seen) < 3:
            f, _ = w.recv_until(lambda f: f.get("id") in ("w0", "w1", "w2"))
            seen[f["id"]] = f
        w.ws.close()
        frames = [seen["w%d" % i] for i in range(3)]
        kinds = [(f["type"], f.get("code")) for f in frames]
        self.assertIn(("error", "rate_limited"), kinds, frames)
        # the next second takes the refused channel
        at_second_start()
        self.assertEqual(append("sp-c", "later").status, 201)
        all_ = bearer("all")
        self.assertEqual([m["nonce"] for m in
                          c.get("/v1/channels/sp-c/messages?after_seq=0", all_).json()["messages"]],
                         ["later"])
        for ch in ("sp-d", "sp-e", "sp-f"):  # a refused batch writes no line
            self.assertEqual(c.get("/v1/channels/%s/messages?after_seq=0" % ch,
                                   all_).json()["messages"], [])

    def test_token_create(self):
        herald = harness.herald_cli()
        self.assertTrue(os.access(herald, os.X_OK), herald)
        p = subprocess.run([herald, "token", "create", "cli-made", "--scope", "append:team-9:*",
                            "--scope", "status"], capture_output=True, text=True, check=True)
        token, entry = p.stdout.splitlines()
        self.assertNotIn(token, entry)
        self.assertTrue(entry.startswith("cli-made sha256:%s "
                                         % hashlib.sha256(token.encode()).hexdigest()))
        bad = subprocess.run([herald, "token", "create", "x", "--scope", "write:*"],
                             capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        self.auth_path = os.path.join(self.tmp, "tokens")
        with open(self.auth_path, "w") as f:
            f.write(entry + "\n")
        n = self.new_node(args=["--auth-file", self.auth_path])
        # the CLI sends HERALD_TOKEN
        env = dict(os.environ, HERALD_TOKEN=token, HERALD_URL="http://127.0.0.1:%d" % n.port)
        ok = subprocess.run([herald, "append", "team-9:x", "hello"], env=env,
                            capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        no = subprocess.run([herald, "append", "team-8:x", "hello"], env=env,
                            capture_output=True, text=True)
        self.assertEqual(no.returncode, 1)
        self.assertIn("forbidden", no.stderr)
        st = subprocess.run([herald, "--token", "wrong", "status"], env=env,
                            capture_output=True, text=True)
        self.assertEqual(st.returncode, 1)
        self.assertIn("unauthenticated", st.stderr)
        # Every command sends the token: status, retention and channel too
        # (they once opened their clients without it).
        for args in (["status"], ["retention", "list"]):
            ok = subprocess.run([herald] + args, env=env, capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, (args, ok.stderr))
        no = subprocess.run([herald, "channel", "info", "team-9:x"], env=env,
                            capture_output=True, text=True)
        self.assertIn("forbidden", no.stderr)  # known token, no read scope: not 401


if __name__ == "__main__":
    run_tests()

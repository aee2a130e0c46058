#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""docs/openapi.yaml against a live node, so that the description cannot
drift from the server.

  routes     every route in api/v1/routes.c is a path of the file; every
             documented method of every path answers something other than
             404 "no such route", with a status the file lists for it; every
             method the file does not list answers 405; paths the file does
             not have answer 404 not_found.
  schemas    live answers of the main routes (status, append, duplicate,
             read, batch, membership, errors) carry the required fields of
             their documented schemas, with the documented types.

Reads the YAML with Debian's python3-yaml (scripts/install-deps.sh).
"""

import http.client
import json
import os
import re

import yaml

from harness import NodeTestCase, Client, run_tests

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPEC_PATH = os.path.join(ROOT, "docs", "openapi.yaml")
ROUTES_C = os.path.join(ROOT, "api", "v1", "routes.c")
METHODS = ("get", "head", "post", "put", "delete", "patch", "options")
ORIGIN = "http://allowed.example"

with open(SPEC_PATH) as f:
    SPEC = yaml.safe_load(f)


def resolve(schema):
    while "$ref" in schema:
        node = SPEC
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def check_schema(value, schema, where="$"):
    """Problems of value against schema: required fields, types, enums,
    allOf/oneOf. Only what the file says; no external validator."""
    schema = resolve(schema)
    problems = []
    if "allOf" in schema:
        for s in schema["allOf"]:
            problems += check_schema(value, s, where)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not check_schema(value, s, where)]
        if len(fits) != 1:
            problems.append("%s: fits %d of the oneOf schemas" % (where, len(fits)))
    if value is None and schema.get("nullable"):
        return problems
    t = schema.get("type")
    if t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return problems + ["%s: %r is not an integer" % (where, value)]
    elif t is not None and not isinstance(value, TYPES[t]):
        return problems + ["%s: %r is not a %s" % (where, value, t)]
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append("%s: required %r missing" % (where, key))
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += check_schema(value[key], sub, "%s.%s" % (where, key))
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check_schema(item, schema["items"], "%s[%d]" % (where, i))
    return problems


def response_schema(path, method, status, ctype="application/json"):
    resp = resolve(SPEC["paths"][path][method]["responses"][str(status)])
    return resp["content"][ctype]["schema"]


# A request per documented operation that changes nothing: malformed input
# where the route would write, a short-lived stream where it follows.
PROBES = {
    ("/", "get"): ("/", None, {}),
    ("/", "head"): ("/", None, {}),
    ("/v1/channels/{channel}", "get"): ("/v1/channels/oa", None, {}),
    ("/v1/channels/{channel}", "head"): ("/v1/channels/oa", None, {}),
    ("/v1/channels/{channel}", "delete"): ("/v1/channels/bad%20channel", None, {}),
    ("/v1/channels/{channel}/trim", "post"):
        ("/v1/channels/oa/trim", b"{not json", {"Content-Type": "application/json"}),
    ("/v1/channels/{channel}/messages", "post"):
        ("/v1/channels/oa/messages", b"{not json", {"Content-Type": "application/json"}),
    ("/v1/channels/{channel}/messages", "get"): ("/v1/channels/oa/messages", None, {}),
    ("/v1/channels/{channel}/messages", "head"): ("/v1/channels/oa/messages", None, {}),
    ("/v1/channels/{channel}/tail", "get"): ("/v1/channels/oa/tail?after_seq=0", None, {}),
    ("/v1/messages:batch", "post"): ("/v1/messages:batch", b"{not json}\n", {}),
    ("/v1/tail", "get"): ("/v1/tail?channels=oa:0", None, {}),
    ("/v1/tail", "post"): ("/v1/tail", b"oa:0", {"Content-Type": "text/plain"}),
    ("/v1/subscribe", "get"): ("/v1/subscribe", None, {}),
    ("/v1/status", "get"): ("/v1/status", None, {}),
    ("/v1/shards", "get"): ("/v1/shards", None, {}),
    ("/v1/retention", "get"): ("/v1/retention", None, {}),
    ("/v1/retention", "head"): ("/v1/retention", None, {}),
    ("/v1/retention", "put"): ("/v1/retention", b'{"rules": "x=age:7y"}', {}),
    ("/v1/retention", "delete"): ("/v1/retention", None, {}),
    ("/v1/cluster/nodes", "post"): ("/v1/cluster/nodes", b"{}", {}),
    ("/v1/backup", "post"): ("/v1/backup", b'{"dir": "not absolute"}', {}),
    ("/v1/cluster/nodes/{id}", "delete"): ("/v1/cluster/nodes/not-a-number", None, {}),
    ("/metrics", "get"): ("/metrics", None, {}),
}

# Paths the server must not have (404 not_found), near the real ones.
UNDOCUMENTED = ["/index.html", "/v1", "/v1/", "/v1/channels",
                "/v1/channels/oa/other", "/v1/channels/oa/messages/1", "/v1/status/x",
                "/v1/cluster", "/v1/cluster/node", "/metrics/x", "/v2/status",
                "/v1/messages", "/v1/subscribe/x", "/v1/tail/x"]


def instantiate(template):
    return template.replace("{channel}", "oa").replace("{id}", "7")


class OpenApi(NodeTestCase):
    node_args = ["--cors-origins", ORIGIN]

    def setUp(self):
        super().setUp()
        self.node = self.new_node()

    def call(self, method, path, body=None, headers=None):
        """Status, headers and (not for streams) body of one request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=30)
        try:
            conn.request(method.upper(), path, body=body, headers=headers or {})
            r = conn.getresponse()
            stream = r.getheader("Content-Type", "").startswith("text/event-stream")
            data = b"" if stream or method == "head" else r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def assertNotNoRoute(self, status, data, what):
        if status == 404:
            self.assertNotIn(b"no such route", data, what)

    def test_routes_of_the_server_are_documented(self):
        src = open(ROUTES_C).read()
        exact = set(re.findall(r'api__path_is\(req, "([^"]+)"\)', src))
        self.assertIn("/v1/status", exact)  # the pattern still finds them
        for p in exact:
            self.assertIn(p, SPEC["paths"], "routes.c serves %s" % p)
        # Prefix routes: /v1/channels/{channel}/..., /v1/cluster/nodes/{id}.
        prefixes = set(re.findall(r'#define \w+ "(/v1/[^"]*/)"', src))
        prefixes |= set(re.findall(r'memcmp\(req->path, "(/[^"]+/)", \d+\)', src))
        self.assertTrue(prefixes)
        for pre in prefixes:
            self.assertTrue(any(p.startswith(pre) and p != pre for p in SPEC["paths"]),
                            "routes.c serves paths under %s" % pre)
        for path, ops in SPEC["paths"].items():
            for method in ops:
                if method in METHODS:
                    self.assertIn((path, method), PROBES if method != "options" else
                                  [(path, "options")], "no probe for %s %s" % (method, path))

    def test_documented_operations_answer(self):
        for (path, method), (url, body, headers) in PROBES.items():
            self.assertIn(method, SPEC["paths"][path], "%s %s is probed, not documented"
                          % (method, path))
            status, _, data = self.call(method, url, body, headers)
            what = "%s %s -> %d %r" % (method.upper(), url, status, data[:200])
            self.assertNotNoRoute(status, data, what)
            self.assertIn(str(status), SPEC["paths"][path][method]["responses"], what)

    def test_cors_preflight_where_documented(self):
        for path, ops in SPEC["paths"].items():
            url = instantiate(path)
            status, headers, data = self.call("options", url, None, {
                "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
            if "options" in ops:
                self.assertEqual(status, 204, "OPTIONS %s: %r" % (url, data))
                self.assertIn(str(status), ops["options"]["responses"])
                self.assertEqual(headers.get("access-control-allow-origin"), ORIGIN)
            else:
                self.assertEqual(status, 405, "OPTIONS %s is not documented" % url)

    def test_other_methods_are_refused(self):
        for path, ops in SPEC["paths"].items():
            url = instantiate(path)
            for method in METHODS:
                if method in ops or method == "options":
                    continue
                status, _, data = self.call(method, url)
                what = "%s %s -> %d %r" % (method.upper(), url, status, data[:200])
                if path == "/v1/subscribe":  # documented: any non-handshake is 400
                    self.assertEqual(status, 400, what)
                    if method != "head":
                        self.assertIn(b"bad_handshake", data, what)
                else:
                    self.assertEqual(status, 405, what)

    def test_undocumented_paths_are_not_found(self):
        for url in UNDOCUMENTED:
            self.assertNotIn(url, SPEC["paths"])
            for method in ("get", "post"):
                status, _, data = self.call(method, url, b"{}" if method == "post" else None)
                self.assertEqual(status, 404, "%s %s -> %d" % (method, url, status))
                self.assertEqual(json.loads(data)["error"]["code"], "not_found")

    def assertFits(self, value, schema, what):
        problems = check_schema(value, schema)
        self.assertEqual(problems, [], "%s: %s" % (what, json.dumps(value)[:1000]))

    def test_live_answers_fit_the_schemas(self):
        c = Client(self.node.port)
        msgs = "/v1/channels/{channel}/messages"
        st = c.status()
        self.assertFits(st, response_schema("/v1/status", "get", 200), "status")
        r = c.request("PUT", "/v1/retention", b'{"rules": "oa*=messages:100"}')
        self.assertEqual(r.status, 200, r)
        self.assertFits(r.json(), response_schema("/v1/retention", "put", 200), "set retention")
        self.assertFits(c.get_json("/v1/retention"), response_schema("/v1/retention", "get", 200),
                        "retention")
        r = c.request("DELETE", "/v1/retention")
        self.assertEqual(r.status, 200, r)
        self.assertFits(r.json(), response_schema("/v1/retention", "delete", 200),
                        "clear retention")
        r = c.post_json("/v1/channels/oa/messages", {"nonce": "n1", "payload": "hi"})
        self.assertEqual(r.status, 201)
        self.assertFits(r.json(), response_schema(msgs, "post", 201), "append")
        r = c.post_json("/v1/channels/oa/messages", {"nonce": "n1", "payload": "hi"})
        self.assertEqual(r.status, 200)
        self.assertFits(r.json(), response_schema(msgs, "post", 200), "duplicate")
        self.assertIs(r.json()["duplicate"], True)
        r = c.request("POST", "/v1/channels/oa/messages", b"\xff\x00",
                      {"Content-Type": "application/octet-stream", "Idempotency-Key": "n2"})
        self.assertEqual(r.status, 201)
        r = c.get("/v1/channels/oa/messages?after_seq=0&limit=10")
        self.assertEqual(r.status, 200)
        self.assertFits(r.json(), response_schema(msgs, "get", 200), "read")
        self.assertEqual([m.get("payload", m.get("payload_b64")) for m in r.json()["messages"]],
                         ["hi", "/wA="])  # 0xff 0x00: not UTF-8
        r = c.request("POST", "/v1/messages:batch",
                      b'{"channel":"oa","nonce":"b1","payload":"x"}\n'
                      b'{"channel":"!","nonce":"b2","payload":"x"}\n')
        self.assertEqual(r.status, 200)
        lines = [json.loads(x) for x in r.body.decode().splitlines() if x]
        self.assertEqual(len(lines), 2)
        schema = response_schema("/v1/messages:batch", "post", 200, "application/x-ndjson")
        for line in lines:
            self.assertFits(line, schema, "batch line")
        self.assertIn("error", lines[1])
        # Errors, each in its documented shape and status.
        for method, url, body, status in [
                ("post", "/v1/channels/bad%20channel/messages", b"{}", 400),
                ("get", "/v1/channels/oa/messages?after_seq=x", None, 400),
                ("post", "/v1/cluster/nodes", b"{}", 400),
                ("put", "/v1/status", None, 405)]:
            r = c.request(method.upper(), url, body)
            self.assertEqual(r.status, status, url)
            self.assertFits(r.json(), SPEC["components"]["schemas"]["Error"], url)
        # Removing a node that is not a member changes nothing and answers 200.
        r = c.request("DELETE", "/v1/cluster/nodes/999?timeout_s=30")
        self.assertEqual(r.status, 200, r)
        self.assertFits(r.json(), response_schema("/v1/cluster/nodes/{id}", "delete", 200),
                        "remove")
        self.assertEqual(len(r.json()["shards"]), len(st["shards"]))
        r = c.get("/")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        c.close()


if __name__ == "__main__":
    run_tests()

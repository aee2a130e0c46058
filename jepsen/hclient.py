# SPDX-License-Identifier: Apache-2.0
"""A small HTTP client for herald's public API that tells a definite failure
(the request never reached the server) from an unknown outcome (it may
have been sent). The workload records the two differently: the first may
never show up in a log, the second may or may not."""

import http.client
import json
import socket
import ssl

PORT = 7400

# With --tls (set by use_tls): https with the run's CA, and a bearer token.
TLS = None      # an ssl.SSLContext, or None for plain http
TOKEN = None


def use_tls(ca_file, token):
    """Every request from here on goes over https, verified against
    ca_file, with Authorization: Bearer token."""
    global TLS, TOKEN
    TLS = ssl.create_default_context(cafile=ca_file)
    TOKEN = token


def auth_headers():
    return {"Authorization": "Bearer " + TOKEN} if TOKEN else {}


def connect(ip, timeout):
    """A connected socket to the node's API port (TLS-wrapped with --tls)."""
    s = socket.create_connection((ip, PORT), timeout=timeout)
    if TLS is None:
        return s
    try:
        return TLS.wrap_socket(s, server_hostname=ip)
    except BaseException:
        s.close()
        raise


class Answer:
    """status is None when there was no HTTP answer; sent tells whether the
    request may have reached the server."""

    def __init__(self, status=None, body=None, error=None, sent=False):
        self.status = status
        self.body = body
        self.error = error
        self.sent = sent

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, TypeError):
            return None

    def error_code(self):
        j = self.json()
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"].get("code")
        return None


def request(ip, method, path, body=None, headers=None, timeout=5.0):
    if TLS is None:
        conn = http.client.HTTPConnection(ip, PORT, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(ip, PORT, timeout=timeout, context=TLS)
    try:
        try:
            conn.connect()
        except (OSError, socket.timeout) as e:
            return Answer(error="connect: %s" % (e.__class__.__name__ if not str(e) else e))
        try:
            hdrs = {"Connection": "close"}
            hdrs.update(auth_headers())
            if body is not None:
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                    hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Answer(resp.status, data, sent=True)
        except (OSError, socket.timeout, http.client.HTTPException) as e:
            return Answer(error="%s: %s" % (e.__class__.__name__, e), sent=True)
    finally:
        conn.close()


def get_json(ip, path, timeout=3.0):
    """The decoded body of a 200 answer, or None."""
    a = request(ip, "GET", path, timeout=timeout)
    return a.json() if a.status == 200 else None

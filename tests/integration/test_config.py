#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""heraldd --config FILE and --check-config FILE: a node started from a
file, flags overriding it, errors naming the file, line and key (and no node
started, no data directory made), the shipped example ops/herald.conf, and
--log-format json (every line a JSON object)."""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Node, NodeTestCase, free_port, run_tests, sanitizer_hits  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(ROOT, "ops", "herald.conf")


def run_heraldd(args, timeout=30):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.run([harness.HERALDD] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class ConfigTest(NodeTestCase):
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def config_node(self, conf, port, extra=()):
        """A node whose command line is only --config conf (and extra)."""
        n = Node(self.tmp, name="cfg%d" % len(self.nodes), port=port)
        n.cmdline = lambda more=(): [harness.HERALDD, "--config", conf] + list(extra) + list(more)
        self.nodes.append(n)
        return n

    def assertRefused(self, args, want_in_err, data_dir):
        rc, out, err = run_heraldd(args)
        self.assertEqual(rc, 2, "%r: exit %d\n%s%s" % (args, rc, out, err))
        for w in want_in_err:
            self.assertIn(w, err, "%r: stderr lacks %r:\n%s" % (args, w, err))
        self.assertEqual(len(err.strip().splitlines()), 1, "not one line:\n" + err)
        self.assertEqual(sanitizer_hits(out + err), [], err)
        self.assertFalse(os.path.exists(data_dir), "a refused config created the data directory")
        return err

    def test_start_from_config_file(self):
        port, peer = free_port(), free_port()
        data = os.path.join(self.tmp, "from-file")
        conf = self.write("herald.conf", "# a node from a file\n"
                          "data = %s\nlisten = 127.0.0.1:%d\npeer-listen = 127.0.0.1:%d\n"
                          "\n; shards of the new cluster\nshards = 4\nno-uring = true\n"
                          "max-payload = 100\n" % (data, port, peer))
        n = self.config_node(conf, port).start()
        st = n.client().status()
        self.assertEqual(len(st["shards"]), 4, st)
        self.assertTrue(os.path.exists(os.path.join(data, "herald.id")))
        self.assertIn("options from %s" % conf, n.log())
        self.assertIn("pwrite+fdatasync", n.log())  # no-uring = true
        c = n.client()
        c.append_ok("cfg", "n1", "x" * 100)
        r = c.append("cfg", "n2", "x" * 101)  # over max-payload = 100
        self.assertEqual(r.json()["error"]["code"], "payload_too_large", r)
        n.terminate()

    def test_flag_overrides_file(self):
        port_file, port_flag, peer = free_port(), free_port(), free_port()
        data = os.path.join(self.tmp, "override")
        conf = self.write("herald.conf", "data = %s\nlisten = 127.0.0.1:%d\n"
                          "peer-listen = 127.0.0.1:%d\nshards = 4\nlog-level = warn\n"
                          % (data, port_file, peer))
        n = self.config_node(conf, port_flag, extra=["--listen", "127.0.0.1:%d" % port_flag,
                                                     "--shards", "2", "--log-level", "info"])
        n.start()
        self.assertEqual(len(n.client().status()["shards"]), 2)
        with self.assertRaises(OSError):
            harness.socket.create_connection(("127.0.0.1", port_file), timeout=1).close()
        self.assertIn("INFO", n.log())  # --log-level info beat the file's warn
        n.terminate()

    def test_unknown_key_exits_2_naming_the_line(self):
        data = os.path.join(self.tmp, "never")
        conf = self.write("bad.conf", "data = %s\n# comment\nlisten = 127.0.0.1:1\n"
                          "colour = blue\n" % data)
        err = self.assertRefused(["--config", conf], [conf + ":4:", "unknown key 'colour'"], data)
        self.assertTrue(err.startswith("heraldd: "), err)

    def test_bad_values_name_the_line_and_key(self):
        data = os.path.join(self.tmp, "never")
        head = "data = %s\nlisten = 127.0.0.1:1\n" % data
        cases = [
            ("max-payload = lots\n", ["max-payload must be a number"]),
            ("id = 0\n", ["id must be a number from 1"]),
            ("no-uring = yes\n", ["no-uring must be true or false"]),
            ("log-level = loud\n", ["log-level must be error, warn, info or debug"]),
            ("log-format = xml\n", ["log-format must be text or json"]),
            ("cors-origins = ftp//x\n", ["cors-origins: 'ftp//x' is not an origin"]),
            ("shards =\n", ["key 'shards' has no value"]),
            ("data = again\n", ["key 'data' is given twice (first on line 1)"]),
            ("[heraldd]\n", ["sections are not used"]),
            ("just words\n", ["not a 'key = value' line"]),
            ("config = other.conf\n", ["'config' is a command-line flag only"]),
        ]
        for i, (line, want) in enumerate(cases):
            conf = self.write("bad%d.conf" % i, head + line)
            self.assertRefused(["--config", conf], [conf + ":3: "] + want, data)
        # A value the flag would refuse is refused the same way in the file,
        # and a file that cannot be read is named.
        self.assertRefused(["--config", os.path.join(self.tmp, "missing.conf")],
                           ["cannot open config file", "missing.conf"], data)
        conf = self.write("nul.conf", head + "id = 1\x00\n")
        self.assertRefused(["--config", conf], [conf + ":3: ", "NUL"], data)

    def test_check_config(self):
        data = os.path.join(self.tmp, "never")
        good = self.write("good.conf", "data = %s\nlisten = 127.0.0.1:7400\nid = 2\n"
                          "bootstrap = 1=127.0.0.1:7401,2=127.0.0.1:7411\n"
                          "peer-listen = 127.0.0.1:7411\n" % data)
        rc, out, err = run_heraldd(["--check-config", good])
        self.assertEqual(rc, 0, out + err)
        self.assertIn("valid", out)
        rc, out, err = run_heraldd(["--config", good, "--check-config", good])
        self.assertEqual(rc, 0, out + err)
        self.assertFalse(os.path.exists(data), "--check-config created the data directory")
        # Bad key; and a file whose options contradict each other (this
        # node's peer address is not its --bootstrap address).
        bad = self.write("bad.conf", "data = %s\nlisten-address = x\n" % data)
        self.assertRefused(["--check-config", bad], [bad + ":2:", "listen-address"], data)
        clash = self.write("clash.conf", "data = %s\nid = 3\n"
                           "bootstrap = 1=127.0.0.1:7401,2=127.0.0.1:7411\n" % data)
        self.assertRefused(["--check-config", clash], ["does not list this node"], data)
        # The command line counts: a flag fixes the clash.
        rc, out, err = run_heraldd(["--check-config", clash, "--id", "1"])
        self.assertEqual(rc, 0, out + err)

    def test_shipped_example_and_readme_are_valid(self):
        rc, out, err = run_heraldd(["--check-config", EXAMPLE])
        self.assertEqual(rc, 0, out + err)
        # Every key the example names (set or commented out) is a flag --help lists.
        rc, helptext, _ = run_heraldd(["--help"])
        keys = re.findall(r"^#? ?([a-z][a-z-]+) = ", open(EXAMPLE).read(), re.M)
        self.assertGreater(len(keys), 10, keys)
        for k in keys:
            self.assertIn("--" + k + " ", helptext, k)
        # The config shown in the README.
        readme = open(os.path.join(ROOT, "README.md")).read()
        blocks = re.findall(r"```ini\n(.*?)```", readme, re.S)
        self.assertTrue(blocks, "README shows no ```ini config")
        for i, b in enumerate(blocks):
            rc, out, err = run_heraldd(["--check-config", self.write("readme%d.conf" % i, b)])
            self.assertEqual(rc, 0, "README config %d: %s%s" % (i, out, err))

    def test_json_log_lines(self):
        port, peer = free_port(), free_port()
        conf = self.write("json.conf", "data = %s\nlisten = 127.0.0.1:%d\n"
                          "peer-listen = 127.0.0.1:%d\nlog-format = json\n"
                          % (os.path.join(self.tmp, "j"), port, peer))
        n = self.config_node(conf, port).start()
        n.client().append_ok("j", "n1", "hello")
        n.terminate()
        lines = n.log().splitlines()
        self.assertGreater(len(lines), 3, n.log())
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail("not a JSON line: %r" % line)
            self.assertEqual(sorted(obj), ["level", "message", "time"], line)
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(obj["level"], ("error", "warn", "info", "debug"))
        messages = [json.loads(l)["message"] for l in lines]
        self.assertTrue(any("serving http://127.0.0.1:%d" % port in m for m in messages), messages)
        self.assertEqual(messages[-1], "stopped")


if __name__ == "__main__":
    run_tests()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ops/grafana-herald.json against a live node, so that the dashboard cannot
drift from the metrics.

  shape    a Grafana dashboard model: unique panel ids, every panel inside
           the 24-column grid and none overlapping another, every query on
           the dashboard's Prometheus variable.
  metrics  every metric an expression names is one a node exports now (a
           renamed or removed metric fails here, not on an operator's
           screen), and every label it groups by is one that metric has.
  readme   the README's metrics table has one row per family a node
           exports (with --auth-file and --retention, so that all of them
           show), with its type, and no row for a family it does not.
"""

import hashlib
import json
import os
import re
import urllib.request

from harness import NodeTestCase, run_tests

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DASHBOARD = os.path.join(ROOT, "ops", "grafana-herald.json")
README = os.path.join(ROOT, "README.md")
TOKEN = "tok-dashboard-0123456789"
METRIC = re.compile(r"\b((?:herald|process)_[a-z0-9_]+)\b")
# "by (labels) (rate(metric" or "by (labels) (metric": the grouping and the
# metric it applies to
GROUPED = re.compile(r"\bby \(([^)]*)\) \((?:rate\()?((?:herald|process)_[a-z0-9_]+)")


def exported(text):
    """{metric name: set of label names} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        name = name.split(" ")[0]
        labels = set(re.findall(r'([a-z_]+)="', rest.partition("}")[0])) if rest else set()
        out.setdefault(name, set()).update(labels)
    return out


def families(text):
    """{family: type} from the # TYPE lines of a Prometheus text page."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


class DashboardTest(NodeTestCase):
    def setUp(self):
        super().setUp()
        with open(DASHBOARD) as f:
            self.dash = json.load(f)
        self.panels = [p for p in self.dash["panels"] if p["type"] != "row"]

    def test_shape(self):
        self.assertEqual(self.dash["uid"], "herald-overview")
        ids = [p["id"] for p in self.dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        cells = set()
        for p in self.dash["panels"]:
            g = p["gridPos"]
            self.assertGreaterEqual(g["x"], 0, p["title"])
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, "%s overlaps another panel" % p["title"])
                    cells.add((x, y))
        self.assertTrue(self.panels)
        for p in self.panels:
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            self.assertTrue(p["targets"], p["title"])
        names = {v["name"] for v in self.dash["templating"]["list"]}
        self.assertEqual(names, {"datasource", "instance"})

    def test_metrics_exist(self):
        n = self.new_node()
        c = n.client()
        self.assertEqual(c.append("dash", "n1", "x").status, 201)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % n.port, timeout=10) as r:
            have = exported(r.read().decode())
        used = 0
        for p in self.panels:
            for t in p["targets"]:
                expr = t["expr"]
                names = METRIC.findall(expr)
                self.assertTrue(names, "%s: %s names no metric" % (p["title"], expr))
                for name in names:
                    used += 1
                    self.assertIn(name, have, "%s: %s is not exported" % (p["title"], name))
                for group, name in GROUPED.findall(expr):
                    labels = {x.strip() for x in group.split(",")} - {"instance"}
                    self.assertLessEqual(labels, have.get(name, set()),
                                         "%s: %s lacks a label it is grouped by" % (p["title"], name))
        self.assertGreater(used, 20)


    def test_readme_documents_every_metric(self):
        tokens = os.path.join(self.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("ops sha256:%s status\n" % hashlib.sha256(TOKEN.encode()).hexdigest())
        n = self.new_node(args=["--auth-file", tokens, "--retention", "*=age:1d"])
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % n.port,
                                     headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            have = families(r.read().decode())
        with open(README) as f:
            text = f.read()
        table = dict(re.findall(r"^\| `((?:herald|process)_[a-z0-9_]+)` \| (\w+) \|", text, re.M))
        self.assertEqual(table, have)


if __name__ == "__main__":
    run_tests()

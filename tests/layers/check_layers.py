#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the layering that docs/ARCHITECTURE.md describes, so it stays true.

1. Inside consensus/, no circle of calls between files: a file that calls a
   function defined in another file must not be called back by it, directly
   or around a loop (each file is one concept; a circle means two concepts
   are one).
2. Rooms include only rooms below them: consensus/raft_io/ nothing of peer/
   or node/, peer/ nothing of node/ or raft_io/.
3. client/ (libherald) includes nothing of cli/ or bench/; `herald bench`
   (bench/bench*) includes only public headers (include/herald/) and its
   own. The developers' instruments beside it (herald-http-floor,
   herald-apply-bench) may include what they measure.

Prints every violation and exits 1 if there is one.
"""
import glob
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def call_cycles(dirs):
    files = [f for d in dirs for f in sorted(glob.glob(os.path.join(ROOT, d, "*.c")))]
    src = {f: strip_comments(open(f).read()) for f in files}
    defined = {}
    for f, s in src.items():
        for m in re.finditer(r"^(?!static)[a-z][\w \*]*?\b(\w+)\([^;]*?\)\s*\{", s, re.M):
            defined[m.group(1)] = f
    calls = {f: set() for f in files}
    for f, s in src.items():
        for name, owner in defined.items():
            if owner != f and re.search(r"\b%s\b" % name, s):
                calls[f].add(owner)
    cycles = set()

    def walk(node, path):
        for nxt in calls[node]:
            if nxt in path:
                loop = path[path.index(nxt):]
                i = loop.index(min(loop))
                cycles.add(tuple(loop[i:] + loop[:i]))
            else:
                walk(nxt, path + [nxt])

    for f in files:
        walk(f, [f])
    return [" -> ".join(os.path.relpath(x, ROOT) for x in c + (c[0],)) for c in sorted(cycles)]


def includes(pattern):
    for f in sorted(glob.glob(os.path.join(ROOT, pattern))):
        for n, line in enumerate(open(f), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m:
                yield os.path.relpath(f, ROOT), n, m.group(1)


def header_home(name):
    """The folders that hold a header of this name."""
    hits = glob.glob(os.path.join(ROOT, "**", name), recursive=True)
    return {os.path.relpath(os.path.dirname(h), ROOT) for h in hits
            if "/build" not in h and "/.git/" not in h}


def forbidden_includes(pattern, forbidden):
    bad = []
    for f, n, inc in includes(pattern):
        homes = header_home(os.path.basename(inc))
        for home in homes:
            if any(home == fb or home.startswith(fb + "/") for fb in forbidden):
                bad.append("%s:%d includes %s (from %s/)" % (f, n, inc, home))
    return bad


def bench_includes():
    bad = []
    for f, n, inc in includes("bench/bench*.[ch]"):
        homes = header_home(os.path.basename(inc))
        if not inc.startswith("herald/") and homes != {"bench"}:
            bad.append("%s:%d includes %s: bench/ may use only public headers" % (f, n, inc))
    return bad


def main():
    problems = ["call circle: " + c for c in call_cycles(["consensus/raft_io", "consensus/peer",
                                                          "consensus/node"])]
    problems += forbidden_includes("consensus/raft_io/*.[ch]", ["consensus/peer", "consensus/node"])
    problems += forbidden_includes("consensus/peer/*.[ch]", ["consensus/raft_io", "consensus/node"])
    problems += forbidden_includes("client/*.[ch]", ["cli", "bench"])
    problems += bench_includes()
    for p in problems:
        print(p)
    print("layers: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

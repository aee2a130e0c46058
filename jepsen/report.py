# SPDX-License-Identifier: Apache-2.0
"""Turn one fault-injection run folder into a page a person can read.

    python3 jepsen/report.py RUN_DIR

reads history.jsonl, nemesis.jsonl, results.json (optional), run.json and
logs/*.log from RUN_DIR and writes into the same folder:

    latency.png     append latency over time, coloured by outcome,
                    with the fault windows shaded
    throughput.png  ok appends/s and fail+info appends/s per second,
                    with the same shading
    index.html      verdict, counters, per-fault numbers, the two images,
                    the first anomalies, the nemesis events and links
    plot-*.dat, plot.gp
                    the data and the script gnuplot drew from, kept so a
                    plot can be redrawn or tweaked by hand

Standard library only; the images come from the gnuplot program. Without
gnuplot (or when it fails) the page is still written, says why it has no
images, and the exit status stays 0: a report must never be the reason a
run looks broken.
"""

import html
import json
import math
import os
import shutil
import subprocess
import sys
import urllib.parse
from datetime import datetime, timezone

OUTCOME_COLOURS = {"ok": "#2ca02c", "fail": "#d62728", "info": "#ff7f0e"}
# Fault colours avoid green, red and orange, which already mean outcomes.
FAULT_PALETTE = ["#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                 "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39"]
FAULT_ALPHA = 0.18
COUNTERS = ("acked", "lost", "duplicated", "phantoms", "divergent",
            "tail_anomalies")
MAX_ANOMALIES = 50
MIN_LATENCY_MS = 0.001  # log scale: a zero latency still needs a place
GNUPLOT_TIMEOUT_S = 120


# ---------------------------------------------------------------- reading

def read_json(path, default):
    """A missing or unreadable file is a fact to report, not a crash."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read_jsonl(path):
    """Returns (records, bad_lines). A run killed mid-write leaves a torn
    last line; skipping it keeps the rest of the run readable."""
    records, bad = [], 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(rec, dict):
                    records.append(rec)
                else:
                    bad += 1
    except OSError:
        pass
    return records, bad


def as_float(x, default=None):
    """History fields come from another program; tolerate odd values."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


# --------------------------------------------------------------- analysis

def pair_operations(history):
    """Match each invoke with the next record of the same process, which is
    its completion (a process has one operation outstanding at a time).
    File order is the recording order, so it decides which record comes
    next (two records can share a timestamp). Returns (completed ops,
    invokes never completed)."""
    open_ops, ops, orphans = {}, [], []
    for rec in history:
        proc = rec.get("process")
        if rec.get("type") == "invoke":
            if proc in open_ops:  # an invoke with no completion before it
                orphans.append(open_ops[proc])
            open_ops[proc] = rec
            continue
        inv = open_ops.pop(proc, None)
        if inv is None:
            continue
        t0, t1 = as_float(inv.get("t")), as_float(rec.get("t"))
        if t0 is None or t1 is None:
            continue
        ops.append({"f": inv.get("f"), "type": rec.get("type"),
                    "t0": t0, "t1": t1, "latency_ms": (t1 - t0) * 1000.0})
    orphans.extend(open_ops.values())
    return ops, orphans


def run_end(history, nemesis):
    """The right edge of every plot: the last thing that happened."""
    ts = [as_float(r.get("t"), 0.0) for r in history + nemesis]
    return max(ts + [1.0])


def fault_windows(nemesis, end):
    """Pairs start/stop events per fault name in order (first start with
    first stop). A start with no stop lasts to the end of the run; a stop
    with no start and 'skip' events draw nothing."""
    pending, windows = {}, []
    for ev in sorted(nemesis, key=lambda e: as_float(e.get("t"), 0.0)):
        name, t = str(ev.get("fault", "?")), as_float(ev.get("t"), 0.0)
        if ev.get("phase") == "start":
            pending.setdefault(name, []).append(t)
        elif ev.get("phase") == "stop" and pending.get(name):
            windows.append((name, pending[name].pop(0), t))
    for name, starts in pending.items():
        windows.extend((name, t, end) for t in starts)
    return sorted(windows, key=lambda w: (w[1], w[0]))


def fault_colours(nemesis):
    """One colour per fault name, in order of first appearance, so both
    plots and the page agree."""
    colours = {}
    for ev in nemesis:
        name = str(ev.get("fault", "?"))
        if name not in colours:
            colours[name] = FAULT_PALETTE[len(colours) % len(FAULT_PALETTE)]
    return colours


def throughput(ops, end):
    """Appends completed per 1-second bucket (by completion time): ok, and
    fail+info together, since both mean the client got no clean answer."""
    n = int(math.floor(end)) + 1
    ok, bad = [0] * n, [0] * n
    for op in ops:
        if op["f"] != "append":
            continue
        b = min(max(int(math.floor(op["t1"])), 0), n - 1)
        if op["type"] == "ok":
            ok[b] += 1
        elif op["type"] in ("fail", "info"):
            bad[b] += 1
    return ok, bad


def history_counts(history, ops, orphans):
    """Counts straight from the history, independent of the checker, so
    the page is useful even when results.json is missing."""
    counts = {}
    for rec in history:
        key = (str(rec.get("f", "?")), str(rec.get("type", "?")))
        counts[key] = counts.get(key, 0) + 1
    lat = sorted(op["latency_ms"] for op in ops
                 if op["f"] == "append" and op["type"] == "ok")
    return counts, lat, len(orphans)


def percentile(sorted_vals, p):
    """Nearest-rank percentile; None when there is nothing to rank."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1,
                   int(math.ceil(p / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


# ------------------------------------------------------------------ plots

def gp_str(s):
    """Gnuplot single-quoted string: only a quote needs escaping."""
    return "'" + str(s).replace("'", "''") + "'"


def write_dat(path, header, rows):
    """Plain whitespace-separated columns, one header comment."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("# " + header + "\n")
        for row in rows:
            f.write(" ".join("%.6f" % v for v in row) + "\n")


def write_plot_data(run_dir, ops, ok_tp, bad_tp):
    """One file per latency outcome (so each gets its own colour and key
    entry, and empty ones can be left out) and one for throughput.
    Returns (written paths, outcomes that have points)."""
    written, present = [], []
    for outcome in OUTCOME_COLOURS:
        rows = [(op["t0"], max(op["latency_ms"], MIN_LATENCY_MS))
                for op in ops if op["f"] == "append" and op["type"] == outcome]
        path = os.path.join(run_dir, "plot-latency-%s.dat" % outcome)
        write_dat(path, "invoke_t_s latency_ms (append, %s)" % outcome, rows)
        written.append(path)
        if rows:
            present.append(outcome)
    path = os.path.join(run_dir, "plot-throughput.dat")
    write_dat(path, "bucket_mid_s ok_per_s fail_info_per_s",
              [(i + 0.5, ok_tp[i], bad_tp[i]) for i in range(len(ok_tp))])
    written.append(path)
    return written, present


def gnuplot_terminal(gnuplot):
    """pngcairo draws translucent fills and antialiased points; the libgd
    png terminal is the fallback and needs truecolor for translucency."""
    try:
        out = subprocess.run([gnuplot, "-e", "set terminal"],
                             capture_output=True, text=True, timeout=30)
        listing = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        listing = ""
    if "pngcairo" in listing:
        return "pngcairo size 1200,480 noenhanced font 'sans,10'"
    return "png truecolor size 1200,480 noenhanced"


def fault_shading(windows, colours):
    """Rectangles behind the data, full height, in x data coordinates."""
    lines = ["unset object"]
    for k, (name, t0, t1) in enumerate(windows, start=1):
        lines.append("set object %d rect from first %.6f, graph 0 to "
                     "first %.6f, graph 1 behind fc rgb %s "
                     "fs transparent solid %.2f noborder"
                     % (k, t0, max(t1, t0 + 0.05), gp_str(colours[name]),
                        FAULT_ALPHA))
    return lines


def fault_keys(windows, colours):
    """Key entries for the faults that actually have a window."""
    names = []
    for name, _, _ in windows:
        if name not in names:
            names.append(name)
    return ["keyentry with boxes fc rgb %s fs transparent solid %.2f "
            "noborder title %s" % (gp_str(colours[n]), FAULT_ALPHA * 2,
                                   gp_str("fault: " + n)) for n in names]


def plot_script(terminal, title, end, windows, colours, present):
    """The whole gnuplot program for both images. Every plot begins with
    'NaN notitle' so a run with no points still draws axes and shading."""
    common = ["set terminal " + terminal,
              "set xrange [0:%.6f]" % end,
              "set xlabel 'time since start (s)'",
              "set grid xtics ytics lc rgb '#dddddd'",
              "set key outside right top"]
    common += fault_shading(windows, colours)
    lat = ["set output 'latency.png'",
           "set title %s" % gp_str(title + " - append latency"),
           "set ylabel 'latency (ms, log scale)'",
           "set logscale y"]
    if not present:
        lat.append("set yrange [0.1:10000]")
    series = ["NaN notitle"]
    series += ["'plot-latency-%s.dat' using 1:2 with points pt 7 ps 0.4 "
               "lc rgb %s title %s" % (o, gp_str(OUTCOME_COLOURS[o]), gp_str(o))
               for o in present]
    series += fault_keys(windows, colours)
    lat.append("plot " + ", \\\n     ".join(series))
    tp = ["set output 'throughput.png'",
          "unset logscale y",
          "set yrange [0:*]",
          "set title %s" % gp_str(title + " - append throughput (1 s buckets)"),
          "set ylabel 'appends completed per second'"]
    series = ["NaN notitle",
              "'plot-throughput.dat' using 1:2 with histeps lw 2 lc rgb %s "
              "title 'ok/s'" % gp_str(OUTCOME_COLOURS["ok"]),
              "'plot-throughput.dat' using 1:3 with histeps lw 2 lc rgb %s "
              "title 'fail+info/s'" % gp_str(OUTCOME_COLOURS["fail"])]
    series += fault_keys(windows, colours)
    tp.append("plot " + ", \\\n     ".join(series))
    return "\n".join(common + [""] + lat + [""] + tp + ["unset output", ""])


def run_gnuplot(run_dir, title, end, windows, colours, present):
    """Writes plot.gp and runs gnuplot in the run folder (so the script
    names files relative to it and odd folder names need no quoting).
    Returns (files written, problem text or None)."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return [], "gnuplot is not installed, so this page has no plots."
    script = plot_script(gnuplot_terminal(gnuplot), title, end, windows,
                         colours, present)
    path = os.path.join(run_dir, "plot.gp")
    with open(path, "w", encoding="utf-8") as f:
        f.write(script)
    pngs = [os.path.join(run_dir, n) for n in ("latency.png", "throughput.png")]
    for p in pngs:  # a stale image from an earlier attempt must not pass
        if os.path.exists(p):
            os.remove(p)
    try:
        res = subprocess.run([gnuplot, "plot.gp"], cwd=run_dir,
                             capture_output=True, text=True,
                             timeout=GNUPLOT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        return [path], "gnuplot could not run: %s" % e
    made = [p for p in pngs if os.path.exists(p) and os.path.getsize(p) > 0]
    if res.returncode != 0 or len(made) < len(pngs):
        return [path] + made, "gnuplot failed (exit %d): %s" % (
            res.returncode, res.stderr.strip()[-2000:])
    return [path] + made, None


# ------------------------------------------------------------------- html

def esc(x):
    """Every piece of text on the page goes through here."""
    return html.escape(str(x), quote=True)


def fmt(v):
    """Numbers short, lists and dicts as their size, None as a dash."""
    if v is None:
        return "\u2014"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "%.3f" % v if abs(v) < 1000 else "%.0f" % v
    if isinstance(v, (list, dict)):
        return "%d" % len(v)
    return str(v)


def as_text(v):
    """Free-form detail fields: strings as they are, the rest as JSON."""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def table(header, rows):
    """A plain table; cells are escaped here, never by the caller."""
    out = ["<table>", "<tr>" + "".join("<th>%s</th>" % esc(h)
                                       for h in header) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join("<td>%s</td>" % esc(c)
                                    for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def link(run_dir, rel):
    """A link if the file is there, otherwise say it is absent."""
    href = esc(urllib.parse.quote(rel))
    if os.path.exists(os.path.join(run_dir, rel)):
        return '<a href="%s">%s</a>' % (href, esc(rel))
    return "%s (absent)" % esc(rel)


def run_time_text(t):
    """run.json 'time' may be epoch seconds or already a string."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        try:
            return datetime.fromtimestamp(t, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):
            pass
    return fmt(t)


def banner(results):
    """The verdict first: it is what a reader came for."""
    if not isinstance(results, dict) or "valid" not in results:
        return '<div class="banner unknown">NO VERDICT (results.json ' \
               'missing or unreadable)</div>'
    if results.get("valid") is True:
        return '<div class="banner valid">VALID</div>'
    return '<div class="banner invalid">INVALID</div>'


def results_section(results):
    """Checker counters, then any other plain fields it chose to add."""
    if not isinstance(results, dict):
        return "<p>No checker results.</p>"
    rows = [(k, fmt(results.get(k))) for k in COUNTERS]
    skip = set(COUNTERS) | {"valid", "faults", "anomalies"}
    rows += [(k, fmt(v)) for k, v in sorted(results.items())
             if k not in skip and not isinstance(v, (list, dict))]
    return table(("counter", "value"), rows)


def faults_section(results, colours):
    """Per-fault availability and recovery, plus whatever else the checker
    reported per fault (columns are the union of its keys)."""
    faults = results.get("faults") if isinstance(results, dict) else None
    if not isinstance(faults, dict) or not faults:
        return "<p>No per-fault results.</p>"
    cols = ["availability", "recovery_s"]
    for v in faults.values():
        for k in (v if isinstance(v, dict) else {}):
            if k not in cols:
                cols.append(k)
    out = ["<table>", "<tr><th>fault</th>" +
           "".join("<th>%s</th>" % esc(c) for c in cols) + "</tr>"]
    for name, v in faults.items():
        v = v if isinstance(v, dict) else {}
        swatch = colours.get(name, "#ffffff")
        out.append('<tr><td><span class="swatch" style="background:%s">'
                   '</span>%s</td>' % (esc(swatch), esc(name)) +
                   "".join("<td>%s</td>" % esc(fmt(v.get(c))) for c in cols)
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def anomalies_section(results):
    """The first few anomalies; the full list lives in results.json."""
    anomalies = results.get("anomalies") if isinstance(results, dict) else None
    if not isinstance(anomalies, list) or not anomalies:
        return "<p>No anomalies reported.</p>"
    rows = []
    for a in anomalies[:MAX_ANOMALIES]:
        a = a if isinstance(a, dict) else {"detail": a}
        rest = {k: v for k, v in a.items() if k not in ("kind", "detail")}
        rows.append((a.get("kind", "?"), as_text(a.get("detail", "")),
                     json.dumps(rest, sort_keys=True) if rest else ""))
    shown = "first %d of %d" % (len(rows), len(anomalies)) \
        if len(anomalies) > len(rows) else "%d" % len(rows)
    return "<p>%s shown.</p>\n%s" % (esc(shown), table(
        ("kind", "detail", "other fields"), rows))


def history_section(counts, ok_lat, orphans, bad_lines):
    """What the history itself says, checker or not."""
    rows = [("%s %s" % k, n) for k, n in sorted(counts.items())]
    for p in (50, 99, 100):
        rows.append(("ok append latency p%d (ms)" % p,
                     fmt(percentile(ok_lat, p))))
    rows.append(("invokes never completed", orphans))
    if bad_lines:
        rows.append(("unreadable history/nemesis lines", bad_lines))
    return table(("history", "count"), rows)


def nemesis_section(nemesis):
    """Every nemesis event in time order, skips included."""
    if not nemesis:
        return "<p>No nemesis events.</p>"
    rows = [("%.3f" % as_float(e.get("t"), 0.0), e.get("fault", "?"),
             e.get("phase", "?"), as_text(e.get("detail", "")))
            for e in sorted(nemesis, key=lambda e: as_float(e.get("t"), 0.0))]
    return table(("t (s)", "fault", "phase", "detail"), rows)


def links_section(run_dir):
    """Raw material for whoever wants to dig further."""
    rels = ["history.jsonl", "nemesis.jsonl", "results.json", "summary.txt",
            "run.json"]
    logs = os.path.join(run_dir, "logs")
    if os.path.isdir(logs):
        rels += ["logs/" + n for n in sorted(os.listdir(logs))
                 if n.endswith(".log")]
    return "<ul>\n" + "\n".join("<li>%s</li>" % link(run_dir, r)
                                for r in rels) + "\n</ul>"


CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left;
         vertical-align: top; font-size: 90%; }
th { background: #f3f3f3; }
.banner { font-size: 160%; font-weight: bold; padding: 0.4em 0.8em;
          margin: 0.5em 0; color: white; display: inline-block; }
.valid { background: #2ca02c; } .invalid { background: #d62728; }
.unknown { background: #7f7f7f; }
.warn { background: #fff3cd; border: 1px solid #e0c060; padding: 0.4em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em;
          margin-right: 0.4em; border: 1px solid #999; opacity: 0.6; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def page(run_dir, run, results, parts, images, plot_problem):
    """Assembles the page from already-escaped sections."""
    name = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    nemeses = run.get("nemeses", "?")
    nemeses = ", ".join(map(str, nemeses)) if isinstance(nemeses, list) \
        else str(nemeses)
    title = "%s \u2014 herald, seed %s, nemeses: %s" % (
        name, run.get("seed", "?"), nemeses)
    info = table(("run", "value"), [
        ("seed", fmt(run.get("seed"))), ("time", run_time_text(run.get("time"))),
        ("nemeses", nemeses),
        ("nodes", ", ".join(map(str, run.get("nodes") or [])) or "\u2014"),
        ("channels", fmt(run.get("channels"))),
        ("faulty_build", fmt(run.get("faulty_build")))])
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
           "<title>%s</title>" % esc(title), "<style>%s</style>" % CSS,
           "</head><body>", "<h1>%s</h1>" % esc(title), banner(results)]
    if run.get("faulty_build"):
        out.append('<p class="warn">This run used a deliberately faulty '
                   'build; INVALID is the expected verdict.</p>')
    out += [info, "<h2>Checker counters</h2>", parts["results"],
            "<h2>Faults</h2>", parts["faults"], "<h2>Plots</h2>"]
    if plot_problem:
        out.append('<p class="warn">%s</p>' % esc(plot_problem))
    for img in images:
        rel = os.path.basename(img)
        out.append('<p><img src="%s" alt="%s"></p>' % (
            esc(urllib.parse.quote(rel)), esc(rel)))
    out += ["<h2>History</h2>", parts["history"],
            "<h2>Anomalies</h2>", parts["anomalies"],
            "<h2>Nemesis events</h2>", parts["nemesis"],
            "<h2>Files</h2>", parts["links"], "</body></html>", ""]
    return "\n".join(out)


# ------------------------------------------------------------------- main

def render(run_dir):
    """Writes the plots and index.html into run_dir; returns the paths of
    every file written."""
    history, bad_h = read_jsonl(os.path.join(run_dir, "history.jsonl"))
    nemesis, bad_n = read_jsonl(os.path.join(run_dir, "nemesis.jsonl"))
    results = read_json(os.path.join(run_dir, "results.json"), None)
    run = read_json(os.path.join(run_dir, "run.json"), {})
    run = run if isinstance(run, dict) else {}

    ops, orphans = pair_operations(history)
    end = run_end(history, nemesis)
    windows = fault_windows(nemesis, end)
    colours = fault_colours(nemesis)
    ok_tp, bad_tp = throughput(ops, end)

    written, present = write_plot_data(run_dir, ops, ok_tp, bad_tp)
    title = "%s (seed %s)" % (
        os.path.basename(os.path.normpath(os.path.abspath(run_dir))),
        run.get("seed", "?"))
    made, plot_problem = run_gnuplot(run_dir, title, end, windows, colours,
                                     present)
    written += made
    images = [p for p in made if p.endswith(".png")]

    counts, ok_lat, n_orphans = history_counts(history, ops, orphans)
    parts = {"results": results_section(results),
             "faults": faults_section(results, colours),
             "anomalies": anomalies_section(results),
             "history": history_section(counts, ok_lat, n_orphans,
                                        bad_h + bad_n),
             "nemesis": nemesis_section(nemesis),
             "links": links_section(run_dir)}
    index = os.path.join(run_dir, "index.html")
    with open(index, "w", encoding="utf-8") as f:
        f.write(page(run_dir, run, results, parts, images, plot_problem))
    written.append(index)
    return written


def main(argv):
    """CLI wrapper: exit 0 with the page written, 2 on a bad argument."""
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: report.py RUN_DIR (an existing run folder)",
              file=sys.stderr)
        return 2
    for path in render(argv[1]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

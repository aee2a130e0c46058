# SPDX-License-Identifier: Apache-2.0
"""The end of a run: noticing nodes that died on their own, bringing every
node back, waiting until their logs agree, reading every node's whole log,
and the findings about the nodes themselves (crashes, sanitizer reports,
unclean stops) that the history cannot show."""

import os
import threading
import time

import hclient

SANITIZER_PATTERNS = ("AddressSanitizer", "LeakSanitizer", "runtime error",
                      "UndefinedBehaviorSanitizer", "assertion failed")
MAX_RESTARTS = 3
EXIT_CORRUPT = 3  # heraldd's exit status when it finds its state corrupt
EXIT_REPAIR = 6   # the same, marked for repair (--repair auto): a restart repairs
# heraldd's exit statuses when a write to its disk fails (WAL, then state)
EXIT_DISK = (4, 5)


class CrashWatcher:
    """Restarts a supervised node that exited by itself (as a process
    supervisor would) and records it; a node that keeps dying is left down
    after MAX_RESTARTS."""

    def __init__(self, cluster, recorder):
        self.cluster = cluster
        self.rec = recorder
        self.crashes = []
        self.detected = []  # fail-stops on corruption the nemesis injected
        self.disk_stops = []  # clean stops on a disk the nemesis failed or filled
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.done.set()
        self.thread.join()

    def _run(self):
        restarts = {}
        while not self.done.wait(0.5):
            for nd in self.cluster.nodes:
                if nd.repair_pending and nd.alive():
                    self.cluster.check_repaired(nd)
                code = nd.exited_with()
                if not nd.supervised or code is None:
                    continue
                nd.supervised = False
                event = {"t": round(self.rec.now(), 3), "node": nd.name, "id": nd.id,
                         "exit": code, "log_tail": log_tail(nd)}
                if nd.damaged and code in (EXIT_CORRUPT, EXIT_REPAIR):
                    # It found the damage the corrupt nemesis made and
                    # stopped, as it must: an operator replaces its disk,
                    # or (--repair) the restart repairs it.
                    self.detected.append(event)
                    if nd.repair and (nd.bootstrap_spec or nd.join_spec):
                        nd.repair_pending = True
                        nd.start()
                    else:
                        nd.needs_replace = True
                    continue
                if (nd.disk_failed or nd.disk_full) and code in EXIT_DISK:
                    # Its disk answered EIO or ran out, and it stopped as it
                    # must; the nemesis's heal brings the disk back and
                    # restarts it.
                    self.disk_stops.append(event)
                    continue
                self.crashes.append(event)
                restarts[nd.name] = restarts.get(nd.name, 0) + 1
                if restarts[nd.name] <= MAX_RESTARTS:
                    nd.start()


def log_tail(nd, lines=12):
    try:
        with open(nd.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


def replace_pending(cluster, recorder):
    """Replaces the nodes that stopped on detected corruption (remove, wipe,
    add back under a new id), recorded as a 'replace' fault window."""
    for nd in cluster.nodes:
        if not nd.needs_replace:
            continue
        nd.needs_replace = False
        recorder.record({"fault": "replace", "phase": "start",
                         "detail": "%s stopped on corrupt state" % nd.name})
        err = cluster.replace(nd)
        recorder.record({"fault": "replace", "phase": "stop",
                         "detail": "%s replaced as id %s%s" % (nd.name, nd.id,
                                                               ": " + err if err else "")})


def repairs_pending(cluster, timeout=120.0):
    """--repair runs: waits for nodes restarted on damage to serve under
    their new id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [nd for nd in cluster.nodes if nd.repair_pending and nd.alive()]
        if not waiting:
            return
        for nd in waiting:
            cluster.check_repaired(nd)
        time.sleep(0.5)


def restart_dead(cluster, recorder):
    """After the last fault: every member that is down is started again."""
    replace_pending(cluster, recorder)
    for nd in cluster.nodes:
        if nd.id is not None and not nd.alive():
            recorder.record({"fault": "final", "phase": "skip",
                             "detail": "%s was down at the end; restarted" % nd.name})
            nd.start()


def read_log(ip, channel, timeout=5.0):
    """A node's whole log of a channel, from what it has applied, and the
    channel's epoch (deletes so far); None if it could not be read."""
    out = []
    after = 0
    epoch = None
    while True:
        a = hclient.request(ip, "GET", "/v1/channels/%s/messages?after_seq=%d&limit=1000"
                            % (channel, after), timeout=timeout)
        j = a.json()
        if a.status == 410 and isinstance(j, dict) and not out:
            # Trimmed (--trims): the log starts at the channel's first seq.
            first = j.get("first_seq")
            if not isinstance(first, int) or first - 1 <= after:
                return None
            after = first - 1
            continue
        if a.status != 200 or not isinstance(j, dict):
            return None
        epoch = j.get("epoch") if epoch is None else epoch
        if j.get("epoch") != epoch:
            return None  # deleted while being read: not a final state
        msgs = j["messages"]
        if not msgs:
            return out, epoch
        out += [{"seq": m["seq"], "ts": m["ts"], "nonce": m["nonce"],
                 "payload": m.get("payload")} for m in msgs]
        after = msgs[-1]["seq"]


def identical(views):
    """Whether every node's view was read and all are the same."""
    first = next(iter(views.values()), None)
    return all(v is not None and v == first for v in views.values())


def converge(cluster, channels, timeout, recorder, del_channels=()):
    """Reads every member's logs until they are identical (or time is up);
    returns ({node: {channel: log} or None}, {node: {channel: {"epoch",
    "log"}} or None} of the delete channels, converged). Reading the whole
    logs may reach damage the corrupt nemesis left where no read went
    before (a RocksDB block): that node stops with exit 3 as it must, and
    is replaced here as during the run (or, with --repair, restarted by
    the watcher to repair itself), so the wait goes on with its successor."""
    deadline = time.monotonic() + timeout
    while True:
        replace_pending(cluster, recorder)
        logs, deleted = {}, {}
        for nd in cluster.nodes:
            if nd.id is None:
                continue
            read = [read_log(nd.ip, ch) for ch in list(channels) + list(del_channels)]
            if any(r is None for r in read):
                logs[nd.name] = deleted[nd.name] = None
                continue
            logs[nd.name] = {ch: r[0] for ch, r in zip(channels, read)}
            deleted[nd.name] = {ch: {"epoch": r[1], "log": r[0]}
                                for ch, r in zip(del_channels, read[len(channels):])}
        same = identical(logs) and identical(deleted)
        if same or time.monotonic() > deadline:
            return logs, deleted, same
        time.sleep(1.0)


def add_node_findings(results, run_dir, cluster, stops, watcher):
    """Adds crashes, sanitizer reports and unclean stops to the checker's
    results; each of them makes the run invalid."""
    found = []
    for c in watcher.crashes:
        found.append(dict(c, kind="crash",
                          detail="%s exited by itself with %s" % (c["node"], c["exit"])))
    for nd in cluster.nodes:
        try:
            text = open(nd.log_path, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        hits = [p for p in SANITIZER_PATTERNS if p in text]
        if hits:
            found.append({"kind": "sanitizer", "node": nd.name,
                          "detail": "%s log reports %s" % (nd.name, ", ".join(hits))})
        code = stops.get(nd.name)
        if nd.id is not None and code not in (0, None):
            found.append({"kind": "unclean_stop", "node": nd.name,
                          "detail": "SIGTERM: %s exited with %s" % (nd.name, code),
                          "log_tail": log_tail(nd)})
    if results.get("complete") is False:
        # A channel with no readable final log was not checked for losses:
        # such a run proves nothing and must not pass.
        found.append({"kind": "incomplete_check",
                      "detail": "no node's final log could be read for some channel"})
    results["node_anomalies"] = found
    results["detected_corruption"] = watcher.detected
    results["repairs"] = len(cluster.repairs)
    results["repair_events"] = cluster.repairs
    results["disk_stops"] = watcher.disk_stops
    if any(nd.eio for nd in cluster.nodes):  # disk-eio: EIO that hj-eiofs injected
        results["eio_injected"] = {nd.name: nd.eio_injected for nd in cluster.nodes}
    if found:
        results["valid"] = False
        results.setdefault("anomalies", []).extend(found)

# SPDX-License-Identifier: Apache-2.0
"""The suite's hosts: one network namespace per node, one for the clients,
and a bridge joining them in a namespace of its own.

Everything here is named with the prefix `hj-` so that cleanup can find it
after a failed run; `cleanup()` runs before every setup and after every run.
Addresses come from 198.51.100.0/24 (TEST-NET-2), which the suite refuses to
use when the host itself has an address or a route in it: traffic to such a
subnet from the host's namespace would leave the machine.
"""

import ctypes
import ipaddress
import os
import subprocess

SUBNET = ipaddress.ip_network("198.51.100.0/24")
CLIENT_IP = "198.51.100.100"
PREFIX = "hj-"
BRIDGE_NS = PREFIX + "br"
CLIENT_NS = PREFIX + "c"
VETH = "hjv"


def set_instance(name):
    """Runs with different instance names have their own namespaces and
    bridges (the same addresses on separate bridges never meet), so a
    long soak and the test suite can run side by side."""
    global PREFIX, BRIDGE_NS, CLIENT_NS, VETH
    if name:
        if not name.isalnum() or len(name) > 4:
            raise ValueError("instance names are 1-4 letters or digits")
        PREFIX = "hj%s-" % name
        VETH = "hj%sv" % name
        BRIDGE_NS = PREFIX + "br"
        CLIENT_NS = PREFIX + "c"


def node_ns(i):
    return PREFIX + "n%d" % i


def node_ip(i):
    return "198.51.100.%d" % (10 + i)


def sh(*args, check=True, input=None):
    """Runs a command; returns its stdout. Raises with stderr on failure."""
    p = subprocess.run(args, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), p.stderr.strip() or p.returncode))
    return p.stdout


def in_ns(ns):
    """The command prefix that runs a program in a namespace's network.
    nsenter, not `ip netns exec`: that one also gives the program a mount
    namespace of its own, a copy that would keep every node's file system
    mounted there after the suite unmounts it for a power cut."""
    return ["nsenter", "--net=/run/netns/" + ns]


def ns_exec(ns, *args, check=True, input=None):
    return sh(*in_ns(ns), *args, check=check, input=input)


def refuse_host_subnet():
    """Raises if the host's namespace already uses any part of SUBNET."""
    for line in sh("ip", "-4", "-o", "addr").splitlines():
        fields = line.split()
        if "inet" in fields:
            net = ipaddress.ip_interface(fields[fields.index("inet") + 1]).network
            if net.overlaps(SUBNET):
                raise RuntimeError("the host uses %s (%s): refusing to build the "
                                   "suite's network on %s" % (net, fields[1], SUBNET))
    for line in sh("ip", "-4", "route").splitlines():
        dest = line.split()[0]
        if dest != "default" and ipaddress.ip_network(dest, strict=False).overlaps(SUBNET):
            raise RuntimeError("the host routes %s: refusing %s" % (dest, SUBNET))


def our_namespaces():
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0].startswith(PREFIX)]


def cleanup():
    """Kills what runs in the suite's namespaces and deletes them (and with
    them every veth and the bridge)."""
    for ns in our_namespaces():
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            if int(pid) == os.getpid():
                continue  # the suite itself, whose threads live in the client namespace
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
    for ns in our_namespaces():
        sh("ip", "netns", "del", ns, check=False)


def _attach(ns, ip, veth):
    """A veth pair: `eth0` inside ns with ip, the other end on the bridge."""
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", veth, "netns", BRIDGE_NS)
    sh("ip", "-n", BRIDGE_NS, "link", "set", veth, "master", "br0")
    sh("ip", "-n", BRIDGE_NS, "link", "set", veth, "up")
    sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")


def setup(n_nodes):
    """Creates the bridge, the node namespaces 1..n and the client one."""
    refuse_host_subnet()
    cleanup()
    sh("ip", "netns", "add", BRIDGE_NS)
    sh("ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", BRIDGE_NS, "link", "set", "br0", "up")
    for i in range(1, n_nodes + 1):
        _attach(node_ns(i), node_ip(i), VETH + str(i))
    _attach(CLIENT_NS, CLIENT_IP, VETH + "c")


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def enter_client_ns():
    """Moves the calling thread (only it: setns is per thread) into the
    client namespace, so the sockets it opens reach the nodes."""
    fd = os.open("/run/netns/" + CLIENT_NS, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + CLIENT_NS)
    finally:
        os.close(fd)

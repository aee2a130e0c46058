#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# PID 1 of the container systemd_container.py makes (new PID, mount, cgroup
# and UTS namespaces, private mount propagation): lays out a machine of the
# test's own over the host's files, then becomes /lib/systemd/systemd. The
# host's files are never written: /etc, /usr/local and /var are overlays
# whose upper layers live in a tmpfs of this namespace, /run and /tmp are
# fresh tmpfs. Only /var/lib/herald is a real directory (DIR/var-lib-herald,
# on the file system of the test's temp dir: the WAL wants one that takes
# O_DIRECT, and the test reads it after).
#
#   init.sh DIR UNITDIR [KEEP...]
#     DIR      the container's directory
#     UNITDIR  units of the container's own (a target to boot, stand-ins
#              for the host's boot targets, journald)
#     KEEP     directories that stay visible (bind mounts, read and written
#              through) where the fresh /tmp would hide them: the source
#              tree and the build under test, wherever the checkout is
set -eu
dir=$1
units=$2
shift 2

# Writable layers over /etc, /usr/local and /var (install.sh writes there:
# binaries, units, config, the herald user). A tmpfs holds them wherever
# the temp dir is (an overlay cannot have its upper layer on overlayfs).
mkdir -p "$dir/layers" "$dir/var-lib-herald"
mount -t tmpfs -o mode=0700 tmpfs "$dir/layers"
for d in etc usr/local var; do
    layer=$dir/layers/$(echo "$d" | tr / -)
    mkdir -p "$layer.upper" "$layer.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$layer.upper,workdir=$layer.work" "/$d"
done
mkdir -p /var/lib/herald
mount --bind "$dir/var-lib-herald" /var/lib/herald
# The unit directory an administrator fills starts empty: nothing the host
# enabled is started here.
mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system
# Whatever systemd writes to /dev/console before the journal runs goes
# into a file, not onto the host's console.
if [ -e /dev/console ]; then
    : > "$dir/console.log"
    mount --bind "$dir/console.log" /dev/console
fi
# The units of the container's own, copied before /tmp is hidden; the
# journal lives in /run only, reads no kernel messages and drops nothing
# (systemd's debug lines, which the test reads, come in bursts).
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/herald-container/units /run/systemd/journald.conf.d
cp "$units"/* /run/herald-container/units/
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nRateLimitIntervalSec=0\nForwardToConsole=no\nForwardToSyslog=no\nForwardToWall=no\n' \
    > /run/systemd/journald.conf.d/herald-container.conf
# Each KEEP under /tmp is held in /run across the new /tmp, then put back.
i=0
for keep in "$@"; do
    case "$keep" in /tmp/*)
        mkdir -p "/run/herald-container/keep/$i"
        mount --bind "$keep" "/run/herald-container/keep/$i"
        i=$((i + 1)) ;;
    esac
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
i=0
for keep in "$@"; do
    case "$keep" in /tmp/*)
        mkdir -p "$keep"
        mount --move "/run/herald-container/keep/$i" "$keep"
        i=$((i + 1)) ;;
    esac
done
# The cgroup namespace's root (a cgroup the test made for this container)
# is the container's whole cgroup tree, cgroup v2 (systemd's unified mode).
mount -t cgroup2 cgroup2 /sys/fs/cgroup

# Units come only from the administrator's directory and the container's
# own: not from /lib/systemd/system, whose sysinit.target would start the
# host's boot services (tmpfiles, sysctl, sysusers, ...) in here.
export SYSTEMD_UNIT_PATH=/etc/systemd/system:/run/systemd/system:/run/herald-container/units
export container=herald-test
# systemd logs into the journal at debug level: each unit's journal then
# names every notification its service sent (READY=1, STOPPING=1).
exec /lib/systemd/systemd --system --unit=herald-container.target --log-target=journal --log-level=debug

#!/usr/bin/env bash
# Installs herald for systemd: heraldd and herald into PREFIX/bin, the units
# herald.service and herald@.service (one node per instance) into
# /etc/systemd/system (ExecStart pointing at PREFIX/bin/heraldd), the
# example config into /etc/herald/herald.conf
# (unless one is there: an existing config is never overwritten), and,
# run as root into the real root (no DESTDIR), the `herald` system user and
# its data directory /var/lib/herald.
#
#   scripts/install.sh [BUILD_DIR]       default BUILD_DIR: build-release,
#                                        built first when it has no heraldd
#   PREFIX=/usr/local (default)          where the binaries go
#   DESTDIR=/tmp/stage                   stage everything under this root
#                                        (packaging, tests); the user is then
#                                        not created and nothing is chowned
# Then: systemctl daemon-reload && systemctl enable --now herald
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build-release}
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
user=herald
datadir=/var/lib/herald

if [ ! -x "$build/heraldd/heraldd" ] || [ ! -x "$build/cli/herald" ]; then
  echo "install: building $build"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHERALD_WERROR=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target heraldd herald
fi

install -d -m 0755 "$dest$prefix/bin" "$dest/etc/systemd/system" "$dest/etc/herald"
install -m 0755 "$build/heraldd/heraldd" "$dest$prefix/bin/heraldd"
install -m 0755 "$build/cli/herald" "$dest$prefix/bin/herald"
echo "install: $dest$prefix/bin/heraldd, $dest$prefix/bin/herald"

# The units name the binary where it runs (PREFIX, without DESTDIR):
# herald.service for the node of this machine, herald@.service for several
# nodes on one machine (herald@NAME reads /etc/herald/NAME.conf).
for unit in herald.service herald@.service; do
  sed "s|^ExecStart=/usr/local/bin/heraldd |ExecStart=$prefix/bin/heraldd |" "ops/$unit" \
    > "$dest/etc/systemd/system/$unit.tmp"
  chmod 0644 "$dest/etc/systemd/system/$unit.tmp"
  mv "$dest/etc/systemd/system/$unit.tmp" "$dest/etc/systemd/system/$unit"
  echo "install: $dest/etc/systemd/system/$unit"
done

# Bash completion for the CLI, and the Grafana dashboard for operators to
# import (Dashboards > Import, or a provisioning folder).
install -D -m 0644 ops/herald.bash-completion "$dest$prefix/share/bash-completion/completions/herald"
install -D -m 0644 ops/grafana-herald.json "$dest$prefix/share/herald/grafana-herald.json"
echo "install: $dest$prefix/share/bash-completion/completions/herald, $dest$prefix/share/herald/grafana-herald.json"

conf="$dest/etc/herald/herald.conf"
if [ -e "$conf" ]; then
  echo "install: $conf exists, kept (the example is ops/herald.conf)"
else
  install -m 0640 ops/herald.conf "$conf"
  echo "install: $conf (from ops/herald.conf)"
fi

install -d -m 0750 "$dest$datadir"
if [ -n "$dest" ] || [ "$(id -u)" != 0 ]; then
  echo "install: user '$user' not created and nothing chowned (DESTDIR set or not root);"
  echo "         on the target: useradd --system --user-group --home-dir $datadir --shell /usr/sbin/nologin $user"
  echo "                        chown $user:$user $datadir; chgrp $user /etc/herald/herald.conf"
else
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$datadir" --no-create-home \
            --shell /usr/sbin/nologin "$user"
    echo "install: created system user $user"
  fi
  chown "$user:$user" "$datadir"
  chgrp "$user" "$conf"
  echo "install: $datadir owned by $user"
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "install: done; start with: systemctl enable --now herald"
  fi
fi
"$dest$prefix/bin/heraldd" --check-config "$conf"

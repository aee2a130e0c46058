#!/usr/bin/env bash
# Installs what herald needs to build, test and run, from Debian 12 packages.
# Run as root (or with sudo). Safe to run again: apt skips what is installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl python3
  python3-websocket  # tests/integration/test_subscribe*.py (websocket-client)
  python3-yaml       # tests/integration/test_openapi.py reads docs/openapi.yaml
  openssl            # throwaway CAs: test_tls.py, test_peer_tls.py, scripts/make-cluster-pki.sh
  libraft-dev liburing-dev libuv1-dev librocksdb-dev libzstd-dev
  libjansson-dev libhttp-parser-dev libisal-dev libxxhash-dev libcmocka-dev
  libwslay-dev libssl-dev
  libinih-dev libsystemd-dev  # heraldd --config (INI), sd_notify under systemd
  systemd  # tests/integration/test_systemd_container.py boots it in a container of its own
  clang libclang-rt-14-dev fio
  # tests/browser/: a real browser using the API from another origin
  chromium
  # jepsen/: namespaces, firewalls, clock faults, power cuts, packet delay, plots
  iproute2 util-linux e2fsprogs nftables iptables libfaketime xfsprogs
  libnetfilter-queue-dev gnuplot-nox
  libfuse3-dev fuse3  # jepsen/eiofs: EIO on single writes/fsyncs (disk-eio nemesis)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all dependencies present"

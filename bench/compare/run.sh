#!/usr/bin/env bash
# herald against Redis, NATS JetStream and etcd under the same load: one
# Node.js closed-loop client (client.mjs) drives each, 200-byte appends, at
# the given numbers in flight, and reads every server's CPU from /proc.
#
#   bench/compare/run.sh [--in-flight 256,1] [--duration 10] [--rounds 1]
#                        [--only herald,herald-ws,redis,nats,etcd] [--leader-aware]
#
# Needs a release build of heraldd (HERALDD, default build-release/heraldd/
# heraldd) and, installed here on first use (root, Debian 12): Debian's
# redis-server 7.0, nats-server 2.9 and etcd-server 3.4, and the client's
# npm packages (package-lock.json). Each system runs on loopback in a fresh
# directory under $TMPDIR and is stopped after its runs; ports 17100-17399.
#
# What each is: herald, one node and three (scripts/local-cluster.sh), over
# HTTP as a web application appends (keep-alive, one socket per append in
# flight, spread over the nodes) and over one WebSocket per node; Redis 7,
# one node, XADD with appendonly and appendfsync always (one connection,
# which node-redis pipelines); NATS JetStream, three nodes, a file stream
# of three replicas (it acknowledges before any fsync: sync_interval);
# etcd, three nodes, a put per append. Every run prints one JSON line; the
# table at the end is made of them. With --rounds R each system's runs are
# repeated R times, the systems taking turns. --leader-aware runs herald's
# three-node settings a second time with the client sending each channel's
# appends to its shard's leader (GET /v1/shards), so that none is forwarded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
heraldd=${HERALDD:-$repo/build-release/heraldd/heraldd}
in_flight=256,1
duration=10
rounds=1
only=herald,herald-ws,redis,nats,etcd

leader_aware=
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --in-flight) in_flight=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --leader-aware) leader_aware=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$heraldd" ] || { echo "run.sh: no heraldd at $heraldd (build it, or set HERALDD)" >&2; exit 2; }
wants() { [[ ",$only," == *",$1,"* ]]; }

need_pkgs=()
wants redis && ! command -v redis-server >/dev/null && need_pkgs+=(redis-server)
wants nats && ! command -v nats-server >/dev/null && need_pkgs+=(nats-server)
wants etcd && ! command -v etcd >/dev/null && need_pkgs+=(etcd-server)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi
[ -d "$here/node_modules" ] || (cd "$here" && npm ci --no-audit --no-fund --silent)

work=$(mktemp -d "${TMPDIR:-/tmp}/herald-compare.XXXXXX")
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_all
  HERALD_CLUSTER_DIR="$work/herald3" "$repo/scripts/local-cluster.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# wait_port PORT: until something listens there (10 s).
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: nothing listens on port $1" >&2
  return 1
}

results="$work/results.jsonl"
: >"$results"
# run SYSTEM TARGETS PIDS [--leader-aware]: one client run per number in flight.
run() {
  local n
  for n in ${in_flight//,/ }; do
    node "$here/client.mjs" --system "$1" --targets "$2" --in-flight "$n" \
      --duration "$duration" --pids "$3" ${4:-} | tee -a "$results"
  done
}

herald_one() {
  mkdir -p "$work/herald1"
  "$heraldd" --data "$work/herald1" --listen 127.0.0.1:17100 >"$work/herald1.log" 2>&1 &
  pids+=($!)
  wait_port 17100
  wants herald && run herald 127.0.0.1:17100 "${pids[-1]}"
  wants herald-ws && run herald-ws 127.0.0.1:17100 "${pids[-1]}"
  stop_all
}

herald_three() {
  HERALD_CLUSTER_DIR="$work/herald3" HERALD_BASE_PORT=17110 HERALDD="$heraldd" \
    "$repo/scripts/local-cluster.sh" up 3 >/dev/null
  local p
  p=$(cat "$work"/herald3/node{1,2,3}.pid | paste -sd,)
  local t=127.0.0.1:17110,127.0.0.1:17120,127.0.0.1:17130
  wants herald && run herald "$t" "$p"
  wants herald-ws && run herald-ws "$t" "$p"
  if [ -n "$leader_aware" ]; then
    wants herald && run herald "$t" "$p" --leader-aware
    wants herald-ws && run herald-ws "$t" "$p" --leader-aware
  fi
  HERALD_CLUSTER_DIR="$work/herald3" "$repo/scripts/local-cluster.sh" down >/dev/null
  rm -rf "$work/herald3"
}

redis_one() {
  mkdir -p "$work/redis"
  redis-server --port 17200 --bind 127.0.0.1 --dir "$work/redis" --appendonly yes \
    --appendfsync always --save '' >"$work/redis.log" 2>&1 &
  pids+=($!)
  wait_port 17200
  run redis 127.0.0.1:17200 "${pids[-1]}"
  stop_all
  rm -rf "$work/redis"
}

nats_three() {
  local i routes=nats://127.0.0.1:17311,nats://127.0.0.1:17312,nats://127.0.0.1:17313
  for i in 1 2 3; do
    mkdir -p "$work/nats$i"
    nats-server -js -sd "$work/nats$i" -a 127.0.0.1 -p "1730$i" -n "n$i" \
      --cluster_name bench --cluster "nats://127.0.0.1:1731$i" --routes "$routes" \
      >"$work/nats$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do wait_port "1730$i"; done
  sleep 3 # JetStream's meta group elects its leader
  run nats 127.0.0.1:17301,127.0.0.1:17302,127.0.0.1:17303 "$(IFS=,; echo "${pids[*]}")"
  stop_all
  rm -rf "$work"/nats?
}

etcd_three() {
  local i cluster=e1=http://127.0.0.1:17341,e2=http://127.0.0.1:17342,e3=http://127.0.0.1:17343
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$work/etcd$i" --listen-client-urls "http://127.0.0.1:1733$i" \
      --advertise-client-urls "http://127.0.0.1:1733$i" \
      --listen-peer-urls "http://127.0.0.1:1734$i" \
      --initial-advertise-peer-urls "http://127.0.0.1:1734$i" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token bench >"$work/etcd$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do wait_port "1733$i"; done
  sleep 2 # the first election
  run etcd 127.0.0.1:17331,127.0.0.1:17332,127.0.0.1:17333 "$(IFS=,; echo "${pids[*]}")"
  stop_all
  rm -rf "$work"/etcd?
}

for _ in $(seq "$rounds"); do
  { wants herald || wants herald-ws; } && { herald_three; herald_one; }
  wants nats && nats_three
  wants etcd && etcd_three
  wants redis && redis_one
done

node "$here/table.mjs" <"$results"

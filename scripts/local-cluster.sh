#!/usr/bin/env bash
# Runs an N-node herald cluster on loopback for demos and tests.
#   scripts/local-cluster.sh up [N]      start nodes 1..N (default 3), creating the cluster once,
#                                        and wait until every shard has a leader (spread)
#   scripts/local-cluster.sh up N --tls  the same with TLS on both ports (mutual TLS between
#                                        nodes) and an auth file: a throwaway CA, node
#                                        certificates and an admin token in the cluster's dir
#   scripts/local-cluster.sh down        stop them (SIGTERM, then SIGKILL after 10 s)
#   scripts/local-cluster.sh status      each node's pid and /v1/status summary
# Node i serves HTTP on 127.0.0.1:(BASE+10*(i-1)) and talks to peers on that
# port + 1. A cluster created with --tls stays a TLS cluster on later `up`s.
# Environment: HERALD_CLUSTER_DIR (default ./cluster-data),
# HERALD_BASE_PORT (default 7400), HERALDD (default build-release/heraldd/heraldd).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${HERALD_CLUSTER_DIR:-cluster-data}
base=${HERALD_BASE_PORT:-7400}
heraldd=${HERALDD:-build-release/heraldd/heraldd}
herald=${HERALD_CLI:-$(dirname "$(dirname "$heraldd")")/cli/herald}

http_port() { echo $((base + 10 * ($1 - 1))); }
peer_port() { echo $((base + 10 * ($1 - 1) + 1)); }

# A throwaway CA, a certificate per node and an admin token, made once.
make_tls() {
  local n=$1 pki="$dir/tls"
  [ -x "$herald" ] || { echo "no $herald: build first" >&2; exit 1; }
  for i in $(seq 1 "$n"); do
    [ -f "$pki/node$i.pem" ] || scripts/make-cluster-pki.sh "$pki" "node$i"
  done
  if [ ! -f "$pki/tokens" ]; then
    local out; out=$("$herald" token create admin --scope admin --scope status \
      --scope 'append:*' --scope 'read:*' --scope 'subscribe:*' 2>/dev/null)
    (umask 077; sed -n 1p <<<"$out" >"$pki/admin.token"; sed -n 2p <<<"$out" >"$pki/tokens")
  fi
}

tls_args() {
  local i=$1 pki="$dir/tls"
  echo --auth-file "$pki/tokens" --tls-cert "$pki/node$i.pem" --tls-key "$pki/node$i.key" \
    --peer-tls-cert "$pki/node$i.pem" --peer-tls-key "$pki/node$i.key" --peer-tls-ca "$pki/ca.pem"
}

up() {
  local n=${1:-3} tls=${2:-}
  [ -x "$heraldd" ] || { echo "no $heraldd: build first (scripts/run-node.sh builds it)" >&2; exit 1; }
  mkdir -p "$dir"
  if [ "$tls" = --tls ]; then
    make_tls "$n"
  elif [ -n "$tls" ]; then
    echo "usage: $0 up [N] [--tls]" >&2; exit 2
  fi
  local scheme=http
  [ -f "$dir/tls/tokens" ] && scheme=https
  local members=""
  for i in $(seq 1 "$n"); do members+="${members:+,}$i=127.0.0.1:$(peer_port "$i")"; done
  for i in $(seq 1 "$n"); do
    local data="$dir/node$i" args=()
    if [ -f "$dir/node$i.pid" ] && kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
      echo "node $i already running (pid $(cat "$dir/node$i.pid"))"; continue
    fi
    [ -f "$data/herald.id" ] || args+=(--bootstrap "$members")
    # shellcheck disable=SC2207 # paths under our own dir, no spaces
    [ "$scheme" = https ] && args+=($(tls_args "$i"))
    "$heraldd" --id "$i" --data "$data" --listen "127.0.0.1:$(http_port "$i")" \
      --peer-listen "127.0.0.1:$(peer_port "$i")" "${args[@]}" >>"$dir/node$i.log" 2>&1 &
    echo $! >"$dir/node$i.pid"
    echo "node $i: pid $!, $scheme://127.0.0.1:$(http_port "$i"), log $dir/node$i.log"
  done
  if [ "$scheme" = https ]; then
    local pki; pki=$(cd "$dir/tls" && pwd)
    echo "TLS on both ports, mutual TLS between nodes, tokens on. To use it:"
    echo "  export HERALD_CA_FILE=$pki/ca.pem HERALD_TOKEN=\$(cat $pki/admin.token)"
    echo "  $herald --server https://127.0.0.1:$(http_port 1) status"
    echo "  curl --cacert \$HERALD_CA_FILE -H \"Authorization: Bearer \$HERALD_TOKEN\" https://127.0.0.1:$(http_port 1)/v1/status"
  fi
  wait_ready "$n"
}

down() {
  for pidfile in "$dir"/node*.pid; do
    [ -f "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
  done
  echo "stopped"
}

# GET /v1/status of node $1 (with the CA and admin token of --tls).
node_status() {
  if [ -f "$dir/tls/tokens" ]; then
    curl -s --max-time 2 --cacert "$dir/tls/ca.pem" -H "Authorization: Bearer $(cat "$dir/tls/admin.token")" \
      "https://127.0.0.1:$(http_port "$1")/v1/status"
  else
    curl -s --max-time 2 "http://127.0.0.1:$(http_port "$1")/v1/status"
  fi
}

# Waits (up to 60 s) until nodes 1..$1 answer, agree on a leader for every
# shard, and none leads more than its share: the nodes spread leadership
# in their first seconds, and each handover leaves a shard without a
# leader for a moment, which a client sees as 503 unavailable.
wait_ready() {
  local n=$1
  for _ in $(seq 1 120); do
    local all=""
    for i in $(seq 1 "$n"); do
      all+="$(node_status "$i" | tr -d '\n' || true)"$'\n'
    done
    if printf '%s' "$all" | python3 -c '
import json, sys
nodes = [json.loads(l) for l in sys.stdin if l.strip()]
n = int(sys.argv[1])
views = [[s["leader"] for s in x["shards"]] for x in nodes]
share = -(-len(views[0]) // n)
ok = (len(nodes) == n and all(v == views[0] for v in views) and None not in views[0]
      and 0 not in views[0] and all(views[0].count(i) <= share for i in set(views[0])))
sys.exit(0 if ok else 1)' "$n" 2>/dev/null; then
      echo "ready: every shard has a leader, spread over the $n nodes"
      return 0
    fi
    sleep 0.5
  done
  echo "not ready after 60 s (see the logs, or: $0 status)" >&2
  return 1
}

status() {
  for pidfile in "$dir"/node*.pid; do
    [ -f "$pidfile" ] || continue
    local i; i=$(basename "$pidfile" .pid); i=${i#node}
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      local leads
      leads=$(node_status "$i" |
        python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(1 for x in s["shards"] if x["state"]=="leader"), "of", len(s["shards"]), "shards led;", sum(1 for p in s["peers"] if p["connected"]), "peers connected")' 2>/dev/null || echo "not answering")
      echo "node $i: pid $pid, $leads"
    else
      echo "node $i: not running"
    fi
  done
}

case "${1:-}" in
  up) up "${2:-3}" "${3:-}" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up [N] [--tls] | down | status" >&2; exit 2 ;;
esac

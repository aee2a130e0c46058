#!/usr/bin/env bash
# A throwaway certificate authority and node certificates for a TLS demo or
# test cluster (TLS on the client port, mutual TLS between nodes).
#   scripts/make-cluster-pki.sh DIR NAME [SAN...]
# makes DIR/ca.pem and DIR/ca.key once (a P-256 CA valid for 30 days), then
# DIR/NAME.pem and DIR/NAME.key signed by it, with the subject alternative
# names IP:127.0.0.1 and DNS:localhost plus every SAN given (IP:10.0.0.5,
# DNS:node1.example). Keys are written mode 600. Not for production: the
# CA key sits beside the certificates.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME [SAN...]" >&2; exit 2; }
dir=$1 name=$2
shift 2
command -v openssl >/dev/null || { echo "$0: needs the openssl command (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
sans="IP:127.0.0.1,DNS:localhost"
for s in "$@"; do sans+=",$s"; done
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -subj "/CN=herald throwaway CA" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >"$dir/$name.ext"
openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 30 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
rm -f "$dir/$name.csr" "$dir/$name.ext"
chmod 644 "$dir/ca.pem" "$dir/$name.pem"

#!/usr/bin/env bash
# scripts/make-certs.sh: a local certificate authority and the certificates
# gaffer's servers use for TLS, made with openssl.
#
#   scripts/make-certs.sh [DIR] [NAME...]
#
# DIR defaults to deploy/certs (gitignored: never commit what this writes).
# Each NAME is one more DNS name (or IP address) for both server
# certificates, for servers reached by a name that is not already listed.
#
# Writes, in DIR:
#   ca.pem                    the CA certificate: every client and server trusts it
#   ca-key.pem                the CA's private key: keep it off the servers
#   nats-server.pem, -key.pem NATS clients and routes (serverAuth + clientAuth:
#                             a route both accepts and dials), for localhost,
#                             127.0.0.1, ::1, nats-1, nats-2, nats-3 and NAMEs
#   etcd-server.pem, -key.pem etcd clients and peers (serverAuth + clientAuth),
#                             for localhost, 127.0.0.1, ::1, etcd-1..3 and NAMEs
#   client.pem, client-key.pem a client certificate (CN gaffer-client), for
#                             servers that verify clients (--nats-cert/--etcd-cert)
#
# Files that exist are kept, so running it again changes nothing; delete DIR
# to start over (say, to add a NAME). Private keys are mode 0600, owned by
# whoever runs this: the NATS and etcd images in docker-compose.yml run as
# root and can read them.

set -euo pipefail

dir=${1:-deploy/certs}
[ $# -gt 0 ] && shift
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077

days_ca=3650
days_leaf=825

# san NAME... prints a subjectAltName value: IP:x for addresses, DNS:x otherwise.
san() {
  local out="" n
  for n in "$@"; do
    if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then out+="${out:+,}IP:$n"; else out+="${out:+,}DNS:$n"; fi
  done
  printf '%s' "$out"
}

key() { # key FILE: a P-256 private key (small and fast to make; nats-server, etcd and Node all take it)
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

if [ ! -f ca.pem ] || [ ! -f ca-key.pem ]; then
  key ca-key.pem
  openssl req -x509 -new -key ca-key.pem -sha256 -days "$days_ca" -subj "/CN=gaffer local CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem
  chmod 644 ca.pem
  echo "make-certs: wrote $dir/ca.pem"
fi

# leaf NAME CN EKU SAN: a certificate signed by the CA, unless NAME.pem exists.
leaf() {
  local name=$1 cn=$2 eku=$3 alt=$4
  [ -f "$name.pem" ] && [ -f "$name-key.pem" ] && return 0
  key "$name-key.pem"
  local ext
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
  [ -n "$alt" ] && ext+="
subjectAltName=$alt"
  openssl req -new -key "$name-key.pem" -subj "/CN=$cn" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days_leaf" -sha256 -extfile <(printf '%s\n' "$ext") -out "$name.pem" 2>/dev/null
  rm -f "$name.csr"
  chmod 644 "$name.pem"
  echo "make-certs: wrote $dir/$name.pem"
}

leaf nats-server nats-server serverAuth,clientAuth "$(san localhost 127.0.0.1 ::1 nats-1 nats-2 nats-3 "$@")"
leaf etcd-server etcd-server serverAuth,clientAuth "$(san localhost 127.0.0.1 ::1 etcd-1 etcd-2 etcd-3 "$@")"
leaf client gaffer-client clientAuth ""

#!/bin/sh
# mint-cert NAME SUBJECT_ALT_NAME: a key and a certificate for this etcd member, signed by the
# peer CA in /etc/spillover/etcd/ (serverAuth and clientAuth: members dial each other, and show
# it to their clients). Run once at first boot; the peer CA key is deleted afterwards. Client
# certificates are never minted on a node: the client CA's key stays with the operator
# (`spillover etcd-certs`).
set -eu
dir=${SPILLOVER_CERT_DIR:-/etc/spillover/etcd}  # overridable for the tests
cd "$dir"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$1.key" -subj "/CN=$1" -out "$1.csr"
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
openssl x509 -req -in "$1.csr" -CA peer-ca.pem -CAkey peer-ca.key -CAcreateserial -days 825 \
  -extfile "$1.ext" -out "$1.pem"
chmod 0600 "$1.key"
rm -f "$1.csr" "$1.ext"

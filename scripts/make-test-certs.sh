#!/usr/bin/env bash
# Self-signed CA, a broker certificate and a client certificate for tests and lab brokers.
#   scripts/make-test-certs.sh DIR [BROKER_HOST] [CLIENT_NAME]
# writes DIR/ca.{key,crt}, DIR/server.{key,crt} (SAN: BROKER_HOST, localhost, 127.0.0.1)
# and DIR/client.{key,crt} (CN: CLIENT_NAME). Not for production: use your PKI there.
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR [BROKER_HOST] [CLIENT_NAME]}
host=${2:-localhost}
client=${3:-gw-test}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=askue test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout server.key -out server.csr 2>/dev/null
printf "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" "$host" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile server.ext -out server.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$client" -keyout client.key -out client.csr 2>/dev/null
printf "extendedKeyUsage=clientAuth\n" > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile client.ext -out client.crt 2>/dev/null
rm -f server.csr client.csr server.ext client.ext ca.srl
chmod 600 ca.key server.key client.key
echo "certificates in $dir: ca.crt server.crt server.key client.crt client.key"

#!/usr/bin/env bash
# Secrets for the compose stack (docker/compose.yaml), made locally with openssl; nothing is checked in.
#   docker/make-certs.sh [DIR]      (default DIR: docker/secrets; existing files are kept)
# Writes: ca.crt/ca.key (a private CA), server.crt/server.key (TLS for the SUT's gRPC and metrics ports
# and the harness's metrics port: names sut, harness, localhost, 127.0.0.1), client.crt/client.key (a
# harness certificate for a SUT that requires mTLS), sut_token (the bearer
# token the harness sends to the SUT), metrics_token (what Prometheus sends to both exporters),
# grafana_admin_password and postgres_password (the run store's; the harness and Grafana read it). Keys and secrets are readable by the containers' uid (they are bind-mounted
# as compose secrets); the directory itself is private to you.
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
days=365
if [ ! -s ca.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/O=lpuperf/CN=lpuperf compose CA" -keyout ca.key -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
if [ ! -s server.crt ]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=lpuperf/CN=sut" \
    -keyout server.key -out server.csr 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:sut,DNS:harness,DNS:localhost,IP:127.0.0.1" > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile server.ext -out server.crt 2>/dev/null
  rm -f server.csr server.ext ca.srl
fi
if [ ! -s client.crt ]; then  # for a SUT that requires client certificates (lpuperf serve --tls-client-ca)
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=lpuperf/CN=lpuperf-harness" \
    -keyout client.key -out client.csr 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=clientAuth" > client.ext
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile client.ext -out client.crt 2>/dev/null
  rm -f client.csr client.ext ca.srl
fi
for name in sut_token metrics_token grafana_admin_password postgres_password; do
  [ -s "$name" ] || openssl rand -hex 24 > "$name"
done
chmod 644 ca.crt server.crt server.key client.crt client.key sut_token metrics_token grafana_admin_password \
  postgres_password
chmod 600 ca.key
echo "secrets in $dir (CA ca.crt; grafana user admin, password in grafana_admin_password)"

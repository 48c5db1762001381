#!/usr/bin/env bash
# Make the Secrets deploy/base expects, in DIR (default out/secrets), then `kubectl apply -f DIR`:
#   netmapper-ca               ca.crt            the CA that signed the mapper's certificate
#   netmapper-mapper-tls       tls.crt, tls.key  the mapper's certificate (mapper.netmapper.svc)
#   netmapper-tokens           tokens.csv        TOKEN,NAME,ROLES[,NODE]: sniffer (report), reader (read), admin
#   netmapper-sniffer-token    token             the sniffers' report token
# Also writes reader.token and admin.token for `netmapper edges --ca ca.crt --token-file reader.token`.
# Rotating: rerun and apply; the mapper and the sniffers re-read the files, no restart.
# Node-bound sniffer credentials (a stolen token reports only for its node) need one credential per node:
# add lines TOKEN,sniffer-NODE,report,NODE, or issue client certificates with CN=node:NODE and O=report.
set -euo pipefail
dir=${1:-out/secrets}
ns=${NAMESPACE:-netmapper}
mkdir -p "$dir"
cd "$dir"
[[ -f ca.key ]] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
  -subj "/CN=netmapper-ca" -days 3650 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr -subj "/CN=mapper" 2>/dev/null
printf 'subjectAltName=DNS:mapper.%s.svc,DNS:mapper.%s.svc.cluster.local,DNS:mapper,DNS:localhost,IP:127.0.0.1\n' \
  "$ns" "$ns" > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 365 -extfile tls.ext 2>/dev/null
token() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; }
sniffer=$(token); reader=$(token); admin=$(token)
printf '%s,sniffer,report\n%s,reader,read\n%s,admin,read|admin\n' "$sniffer" "$reader" "$admin" > tokens.csv
printf '%s\n' "$sniffer" > sniffer.token; printf '%s\n' "$reader" > reader.token; printf '%s\n' "$admin" > admin.token
k() { kubectl create secret "$@" -n "$ns" --dry-run=client -o yaml; }
{ k generic netmapper-ca --from-file=ca.crt; echo ---
  k tls netmapper-mapper-tls --cert=tls.crt --key=tls.key; echo ---
  k generic netmapper-tokens --from-file=tokens.csv; echo ---
  k generic netmapper-sniffer-token --from-file=token=sniffer.token; } > secrets.yaml
rm -f tls.csr tls.ext
echo "wrote $dir/secrets.yaml (kubectl apply -f $dir/secrets.yaml); keep ca.key and the *.token files private"

#!/usr/bin/env bash
# The real kube-apiserver the API-server tests run against: built with the rest of Kubernetes v1.20.2 by
# scripts/kube-build.sh (cached), linked where tests/apiserver/cluster.py looks for it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/kube-build.sh
CACHE="${NETMAPPER_KUBE_CACHE:-/var/cache/netmapper/kubernetes-v1.20.2}"
ln -sfn "$CACHE/kube-apiserver" "${NETMAPPER_APISERVER_CACHE:-/var/cache/netmapper/kube-apiserver}"

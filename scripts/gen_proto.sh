#!/usr/bin/env bash
# Regenerate the Python gRPC stubs in netmapper/v1 from proto/. tests/unit/test_proto_stubs.py fails when stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
PY=${PY:-.venv/bin/python}
mkdir -p "$out/netmapper/v1"
"$PY" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/netmapper/v1/edge.proto proto/netmapper/v1/mapper.proto

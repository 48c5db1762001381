#!/usr/bin/env bash
# Regenerate the Python gRPC stubs in netmapper_api/v1 from proto/netmapper_api/v1 (`make proto`).
# The .proto path is the Python package path; the proto package (netmapper.v1) is what the wire says.
# tests/api/test_proto_stubs.py fails when the committed stubs are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
PY=${PY:-.venv/bin/python}
mkdir -p "$out/netmapper_api/v1"
"$PY" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/netmapper_api/v1/edge.proto proto/netmapper_api/v1/mapper.proto

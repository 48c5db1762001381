#!/usr/bin/env bash
# Regenerate the Python gRPC stubs in netmapper_api/v1 from proto/netmapper_api/v1 (`make proto`):
# messages (_pb2.py), services (_pb2_grpc.py) and their type stubs (.pyi, by mypy-protobuf) that
# `mypy --strict` checks the callers against. The .proto path is the Python package path; the proto
# package (netmapper.v1) is what the wire says. tests/api/test_proto_stubs.py fails when the
# committed stubs are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
PY=${PY:-.venv/bin/python}
# protoc finds the mypy-protobuf plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) beside the interpreter.
PATH="$(dirname "$PY"):$PATH"
mkdir -p "$out/netmapper_api/v1"
"$PY" -m grpc_tools.protoc -I proto --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/netmapper_api/v1/edge.proto proto/netmapper_api/v1/mapper.proto

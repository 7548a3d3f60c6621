#!/usr/bin/env bash
# Generate the Python protobuf/gRPC stubs from protos/ into edge_coat/v1/.
# The stubs are committed so an install needs no protoc; tests/test_protos.py fails when they are
# out of date with protos/. Never edit the generated files by hand: edit the .proto, rerun this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/edge_coat/v1/*.proto
echo "generated: $(ls edge_coat/v1/*_pb2*.py | tr '\n' ' ')"

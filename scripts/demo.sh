#!/usr/bin/env bash
# Install everything, then run the one-command demo with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edge-coat demo "$@"

#!/usr/bin/env bash
# One run of docs/coat-tiny-base-teacher on the card's held-out split:
#   OUT/llm/*-coat.json          the LLM alone (--no-readout), the figures the rule reads
#   OUT/llm/*-coat-nothink.json  the same with --no-thinking
#   OUT/fused/*-coat.json        with the run's own answer readout (fitted at the end of training)
# usage: evaluate.sh MODEL OUT
set -euo pipefail
MODEL=$1; OUT=$2
cd "$(dirname "$0")/../.."
E=docs/coat-tiny-1.5/evaluate.sh
NO_READOUT=1 bash "$E" "$MODEL" "$OUT/llm" "coat nothink"
bash "$E" "$MODEL" "$OUT/fused" coat

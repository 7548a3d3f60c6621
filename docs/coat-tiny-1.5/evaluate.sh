#!/usr/bin/env bash
# coat-tiny 1.5 on the card's held-out split -> OUT/*-{coat,coat-nothink}.json (docs/coat-tiny-1.5/README.md)
# usage: evaluate.sh MODEL OUT [ARMS]   ARMS: coat, nothink (default both); NO_READOUT=1: every figure with --no-readout
set -euo pipefail
MODEL=$1; OUT=$2; ARMS=${3:-"coat nothink"}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}; EC=(.venv/bin/python -m edge_coat); mkdir -p "$OUT"
HOLD=docs/coat-tiny-1.4/us8k_holdout.txt
RO=(); [ -n "${NO_READOUT:-}" ] && RO=(--no-readout)
ev() { local name=$1; shift; [ -f "$OUT/$name.json" ] && return; "${EC[@]}" eval --model "$MODEL" --json "$OUT/$name.json" "${RO[@]}" "$@" > "$OUT/$name.txt"; }
for arm in $ARMS; do
  case $arm in coat) tag=coat; extra=();; nothink) tag=coat-nothink; extra=(--no-thinking);; esac
  ev "emotion-$tag" --task emotion --data "$DATA/ravdess" --holdout-speakers 14,15,16 "${extra[@]}"
  ev "emotion-tel-$tag" --task emotion --data "$DATA/ravdess" --holdout-speakers 14,15,16 --channel telephone "${extra[@]}"
  ev "emotion-emovo-$tag" --task emotion --data "$DATA/emovo" --holdout-speakers f3,m3 --label-map '{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}' "${extra[@]}"
  ev "emotion-turev-$tag" --task emotion --data "$DATA/turev" --holdout-speakers 1984 --label-map '{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}' "${extra[@]}"
  ev "events-$tag" --task events --data "$DATA/urbansound8k" --holdout-sources "$HOLD" "${extra[@]}"
done
echo "done $OUT"

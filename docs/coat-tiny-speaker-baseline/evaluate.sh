#!/usr/bin/env bash
# The 1.6.0 candidate (docs/coat-tiny-speaker-baseline) on the card's held-out split -> OUT/*-{coat,coat-calm,coat-first,coat-nothink}.json
# coat: each clip after up to 8 other clips of its speaker (the baseline's default context); coat-calm: after the
# speaker's neutral and calm clips only; coat-first: as a stream's first window (no baseline); coat-nothink: the
# default context with --no-thinking. Events' readout is not relative: scored in coat and coat-nothink only.
# A desk readout (docs/coat-tiny-corpus-norm): arms desk (each clip after every other clip of its --data folder,
# every speaker's), desknothink (the same with --no-thinking), and first (a cold desk).
# usage: evaluate.sh MODEL OUT [ARMS]   ARMS: coat calm first nothink desk desknothink (default: the first four)
set -euo pipefail
MODEL=$1; OUT=$2; ARMS=${3:-"coat calm first nothink"}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}; EC=(.venv/bin/python -m edge_coat); mkdir -p "$OUT"
HOLD=docs/coat-tiny-1.4/us8k_holdout.txt
ev() { local name=$1; shift; [ -f "$OUT/$name.json" ] && return; "${EC[@]}" eval --model "$MODEL" --json "$OUT/$name.json" "$@" > "$OUT/$name.txt"; }
for arm in $ARMS; do
  case $arm in
    coat) tag=coat; extra=(--baseline-context speaker);;
    calm) tag=coat-calm; extra=(--baseline-context calm);;
    first) tag=coat-first; extra=(--baseline-context none);;
    nothink) tag=coat-nothink; extra=(--baseline-context speaker --no-thinking);;
    desk) tag=coat-desk; extra=(--baseline-context desk);;
    desknothink) tag=coat-desk-nothink; extra=(--baseline-context desk --no-thinking);;
  esac
  ev "emotion-$tag" --task emotion --data "$DATA/ravdess" --holdout-speakers 14,15,16 "${extra[@]}"
  ev "emotion-tel-$tag" --task emotion --data "$DATA/ravdess" --holdout-speakers 14,15,16 --channel telephone "${extra[@]}"
  ev "emotion-emovo-$tag" --task emotion --data "$DATA/emovo" --holdout-speakers f3,m3 --label-map '{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}' "${extra[@]}"
  ev "emotion-turev-$tag" --task emotion --data "$DATA/turev" --holdout-speakers 1984 --label-map '{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}' "${extra[@]}"
  case $arm in coat|nothink|desk|desknothink) ev "events-$tag" --task events --data "$DATA/urbansound8k" --holdout-sources "$HOLD" "${extra[@]}";; esac
done
echo "done $OUT"

#!/usr/bin/env bash
# held-out eval of OUT/RUN/model on a fold's split -> OUT/results/*-RUN.json (docs/coat-tiny-folds)
# usage: heldout.sh OUT RUN RAVDESS_SPEAKERS EMOVO_SPEAKERS TUREV_SPEAKERS
set -euo pipefail
OUT=$1; RUN=$2; RAV=$3; EMO=$4; TUR=$5
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}; EC=(.venv/bin/python -m edge_coat); m=$OUT/$RUN/model; mkdir -p "$OUT/results"
ev() { local name=$1; shift; [ -f "$OUT/results/$name.json" ] && return; "${EC[@]}" eval --json "$OUT/results/$name.json" "$@" > "$OUT/results/$name.txt"; }
ev "emotion-$RUN" --model "$m" --task emotion --data "$DATA/ravdess" --holdout-speakers "$RAV"
ev "emotion-tel-$RUN" --model "$m" --task emotion --data "$DATA/ravdess" --holdout-speakers "$RAV" --channel telephone
ev "emotion-emovo-$RUN" --model "$m" --task emotion --data "$DATA/emovo" --holdout-speakers "$EMO" --label-map '{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}'
ev "emotion-turev-$RUN" --model "$m" --task emotion --data "$DATA/turev" --holdout-speakers "$TUR" --label-map '{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}'
ev "events-$RUN" --model "$m" --task events --data "$DATA/urbansound8k" --holdout-sources "$OUT/us8k_holdout.txt"
echo "done $OUT $RUN"

#!/usr/bin/env bash
# MFCC+prosody+LR and frozen-Whisper+LR with the same speaker baseline as the relative readout (--speaker-baseline 8),
# on the card's held-out split and leave-one-corpus-out -> OUT/ref-*.json
# usage: [BASELINE=--desk-baseline] [PARTS="card loco"] references.sh OUT [MODEL]   (MODEL: a model folder whose frozen
# tower gives the whisper features; BASELINE: the normalisation, default --speaker-baseline 8; --desk-baseline is
# docs/coat-tiny-corpus-norm's; PARTS: the card's held-out split, leave one corpus out, or both)
set -euo pipefail
OUT=$1; MODEL=${2:-runs/coat-tiny-44/coat/model}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}; PY=.venv/bin/python; mkdir -p "$OUT"
ref() { local name=$1; shift; [ -f "$OUT/ref-$name.json" ] && return
  "$PY" -m bench.accuracy.reference_baselines --teacher-cache "${CACHE:-.cache/teacher}" --model "$MODEL" --max-seconds 10 \
    --feature-cache "${FEATURES:-.cache/ref-features}" ${BASELINE:---speaker-baseline 8} --features mfcc_prosody,whisper \
    --json "$OUT/ref-$name.json" "$@" > "$OUT/ref-$name.txt"; }
PARTS=${PARTS:-card loco}
if [[ " $PARTS " == *" card "* ]]; then
ref emotion --data "$DATA/ravdess" --task emotion --holdout-speakers 14,15,16
ref emotion-tel --data "$DATA/ravdess" --task emotion --holdout-speakers 14,15,16 --channel telephone
ref emotion-emovo --data "$DATA/emovo" --task emotion --holdout-speakers f3,m3
ref emotion-turev --data "$DATA/turev" --task emotion --holdout-speakers 1984
fi
if [[ " $PARTS " == *" loco "* ]]; then
for held in ravdess emovo turev; do
  train_data=(); for c in ravdess emovo turev; do [ "$c" = "$held" ] || train_data+=(--train-data "$DATA/$c"); done
  ref "loco-$held" --data "$DATA/$held" --task emotion --all-held-out "${train_data[@]}"
done
fi
echo "done $OUT"

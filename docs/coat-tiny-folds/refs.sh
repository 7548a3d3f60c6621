#!/usr/bin/env bash
# refs.sh OUT RAV EMO TUR: MFCC+LR and frozen Whisper+LR on a fold's held-out split (docs/coat-tiny-folds)
cd "$(dirname "$0")/../.."
OUT=$1; RAV=$2; EMO=$3; TUR=$4; D=../shared/data
ref() { local name=$1; shift; [ -f "$OUT/results/ref-$name.json" ] && return
  .venv/bin/python -m bench.accuracy.reference_baselines --teacher-cache "${CACHE:-.cache/teacher}" --model "$OUT/coat/model" --max-seconds 10 \
    --feature-cache .cache/ref-features --json "$OUT/results/ref-$name.json" "$@" > "$OUT/results/ref-$name.txt" 2>&1; }
ref emotion --data $D/ravdess --task emotion --holdout-speakers $RAV --features mfcc_prosody,whisper
ref emotion-emovo --data $D/emovo --task emotion --holdout-speakers $EMO --features mfcc_prosody,whisper
ref emotion-turev --data $D/turev --task emotion --holdout-speakers $TUR --features mfcc_prosody,whisper
ref events --data $D/urbansound8k --task events --holdout-sources $OUT/us8k_holdout.txt --features mfcc_prosody,whisper
echo "done $OUT"

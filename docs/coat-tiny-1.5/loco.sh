#!/usr/bin/env bash
# The leave-one-corpus-out models of the card's run (runs/coat-tiny-44/loco-*, docs/coat-tiny-readout) with a tower
# readout refitted on their two training corpora, scored on all of the third -> OUT/loco-*.json
# usage: [READOUT_ARGS="--channels clean,telephone,room,excerpt"] loco.sh RUN_ROOT OUT   (READOUT_ARGS: more options of
# the readout fit; default none, as 1.5 shipped)
set -euo pipefail
ROOT=$1; OUT=$2
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}; PY=.venv/bin/python; mkdir -p "$OUT"
source docs/coat-tiny-1.5/label_maps.sh
for held in ravdess emovo turev; do
  m=$OUT/models/loco-$held/model
  [ -f "$m/coat_config.json" ] || $PY -m edge_coat.train.readout "$ROOT/loco-$held" --input tower ${READOUT_ARGS:-} --out "$m" > "$OUT/readout-loco-$held.log" 2>&1
  cp "$OUT/models/loco-$held/readout.json" "$OUT/readout-loco-$held.json"
  [ -f "$OUT/loco-$held.json" ] || $PY -m edge_coat eval --model "$m" --task emotion --data "$DATA/$held" \
    --label-map "${MAP[$held]}" --json "$OUT/loco-$held.json" > "$OUT/loco-$held.txt"
done
echo "done $OUT"

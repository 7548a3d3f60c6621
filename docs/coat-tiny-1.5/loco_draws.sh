#!/usr/bin/env bash
# Leave-one-corpus-out with other draws of the readout's telephone and room copies (the fit's noise), for one readout
# input -> OUT/loco-HELD-INPUT-sSEED.json
# usage: loco_draws.sh RUN_ROOT OUT INPUT "SEEDS" ["CORPORA"]     e.g. loco_draws.sh runs/coat-tiny-44 OUT tower "1 2"
set -euo pipefail
ROOT=$1; OUT=$2; INPUT=$3; SEEDS=$4; CORPORA=${5:-"turev emovo ravdess"}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}; PY=.venv/bin/python; mkdir -p "$OUT"
source docs/coat-tiny-1.5/label_maps.sh
for held in $CORPORA; do
  for seed in $SEEDS; do
    tag=loco-$held-$INPUT-s$seed; m=$OUT/models/$tag/model
    [ -f "$m/coat_config.json" ] || $PY -m edge_coat.train.readout "$ROOT/loco-$held" --input "$INPUT" --seed "$seed" \
      --out "$m" > "$OUT/readout-$tag.log" 2>&1
    [ -f "$OUT/$tag.json" ] || $PY -m edge_coat eval --model "$m" --task emotion --data "$DATA/$held" \
      --label-map "${MAP[$held]}" --json "$OUT/$tag.json" > "$OUT/$tag.txt"
  done
done
echo "done $OUT $INPUT"

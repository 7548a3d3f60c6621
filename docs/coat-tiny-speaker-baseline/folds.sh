#!/usr/bin/env bash
# The relative readout (docs/coat-tiny-speaker-baseline) on the four folds of docs/coat-tiny-folds through the CLI: each
# fold's RUN model with a tower readout, emotion relative to the speaker's baseline
# (python -m edge_coat.train.readout --relative emotion) -> OUT/RUN-rel/model, scored by heldout.sh (eval's default
# context: each clip after up to 8 other clips of its speaker)
# -> OUT/results/*-RUN-rel.json
# usage: [READOUT_ARGS=... SUFFIX=...] folds.sh RUN "FOLDS"       e.g. folds.sh coat "a b c card"
#   READOUT_ARGS (default --relative emotion), SUFFIX (default rel): READOUT_ARGS="--relative emotion --with-absolute"
#   SUFFIX=rela gives the absolute+relative readout in OUT/RUN-rela
set -euo pipefail
RUN=$1; FOLDS=${2:-"a b c card"}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
for fold in $FOLDS; do
  case $fold in
    a) out=runs/coat-fold-a; spk=(01,02,03,04 f1,m1 1234);;
    b) out=runs/coat-fold-b; spk=(07,08,09,10 f2,m2 6783);;
    c) out=runs/coat-fold-c; spk=(05,06,11,12 f1,m2 7895);;
    card) out=runs/coat-tiny-44; spk=(14,15,16 f3,m3 1984);;
    *) echo "unknown fold $fold (a b c card)" >&2; exit 2;;
  esac
  m=$out/$RUN-${SUFFIX:-rel}/model
  [ -f "$m/coat_config.json" ] || .venv/bin/python -m edge_coat.train.readout "$out/$RUN" ${READOUT_ARGS:---relative emotion} --out "$m" > "$out/$RUN-${SUFFIX:-rel}.log" 2>&1
  bash docs/coat-tiny-folds/heldout.sh "$out" "$RUN-${SUFFIX:-rel}" "${spk[@]}"
done

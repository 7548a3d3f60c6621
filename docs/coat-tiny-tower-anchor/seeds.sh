#!/usr/bin/env bash
# The training-seed study (README.md here): coat (readout refitted, coat-ro3) and coat-lora-anchor of one seed's run
# folder, evaluated on that fold's held-out speakers and paired.
#   bash docs/coat-tiny-tower-anchor/seeds.sh OUT FOLD NAME [ARMS]   e.g. runs/coat-fold-a-s2 A A-s2
#   ARMS: which arms to evaluate (default "coat-ro3 coat-lora-anchor"); the pairs are printed when both exist.
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
R=$1; F=$2; N=$3; ARMS=${4:-coat-ro3 coat-lora-anchor}
D=docs/coat-tiny-tower-anchor/seeds; DATA=${DATA:-../shared/data}; EC=(.venv/bin/python -m edge_coat)
mkdir -p $D
case $F in A) rav=01,02,03,04 emo=f1,m1 tur=1234;; B) rav=07,08,09,10 emo=f2,m2 tur=6783;;
           C) rav=05,06,11,12 emo=f1,m2 tur=7895;; card) rav=14,15,16 emo=f3,m3 tur=1984;; esac
EMO='{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}'
TUR='{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}'
ev() { local out=$1; shift; [ -f $out.csv ] || "${EC[@]}" eval --json $out.json --predictions $out.csv "$@" > $out.txt 2>&1; }
for arm in $ARMS; do
  m=$R/$arm/model; [ -f $m/coat_config.json ] || { echo "$m not trained yet"; continue; }
  ev $D/$N-$arm-clean --model $m --task emotion --data $DATA/ravdess --holdout-speakers $rav
  ev $D/$N-$arm-telephone --model $m --task emotion --data $DATA/ravdess --holdout-speakers $rav --channel telephone
  ev $D/$N-$arm-emovo --model $m --task emotion --data $DATA/emovo --holdout-speakers $emo --label-map "$EMO"
  ev $D/$N-$arm-turev --model $m --task emotion --data $DATA/turev --holdout-speakers $tur --label-map "$TUR"
  ev $D/$N-$arm-events --model $m --task events --data $DATA/urbansound8k --holdout-sources $R/us8k_holdout.txt
done
for s in clean telephone emovo turev events; do
  case $s in clean|telephone) lab=ravdess;; events) lab=urbansound8k;; *) lab=$s;; esac
  [ -f $D/$N-coat-lora-anchor-$s.csv ] && [ -f $D/$N-coat-ro3-$s.csv ] || continue
  echo "== $N $s (coat-lora-anchor minus coat)"
  .venv/bin/python -m edge_coat.train.metrics --paired $DATA/$lab/labels.csv $D/$N-coat-lora-anchor-$s.csv $D/$N-coat-ro3-$s.csv
done

#!/usr/bin/env bash
# Paired RAVDESS predictions of CoAT and the no-expert ablation (both with readouts) on four folds (README.md here)
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1
D=docs/coat-tiny-folds/paired; mkdir -p $D
for spec in "A runs/coat-fold-a/coat-ro3 runs/coat-fold-a/no-experts-ro3 01,02,03,04" \
            "B runs/coat-fold-b/coat-ro3 runs/coat-fold-b/no-experts-ro3 07,08,09,10" \
            "C runs/coat-fold-c/coat-ro3 runs/coat-fold-c/no-experts-ro3 05,06,11,12" \
            "card runs/coat-tiny-44/coat-ro3 runs/coat-tiny-42/no-experts-ro3 14,15,16"; do
  set -- $spec; f=$1; spk=$4
  for arm in coat no-experts; do
    m=$2; [ $arm = no-experts ] && m=$3
    for ch in clean telephone; do
      out=$D/$f-$arm-$ch
      [ -f $out.csv ] || .venv/bin/python -m edge_coat eval --model $m/model --task emotion --data ../shared/data/ravdess \
        --holdout-speakers $spk --channel $ch --json $out.json --predictions $out.csv > $out.txt 2>&1
    done
  done
done
for arm in coat no-experts; do for ch in clean telephone; do
  { echo "file,prediction,score"; for f in A B C card; do tail -n +2 $D/$f-$arm-$ch.csv; done; } > $D/pooled-$arm-$ch.csv
done; done

# EMOVO and TurEV (clean): every fold's held-out speakers; EMOVO pooled over A, B and card (fold C repeats f1 and m2)
emo() { case $1 in A) echo f1,m1;; B) echo f2,m2;; C) echo f1,m2;; card) echo f3,m3;; esac; }
tur() { case $1 in A) echo 1234;; B) echo 6783;; C) echo 7895;; card) echo 1984;; esac; }
run_of() { case $1 in A|B|C) f=$(echo $1 | tr A-C a-c); [ $2 = coat ] && echo runs/coat-fold-$f/coat-ro3 || echo runs/coat-fold-$f/no-experts-ro3;;
           card) [ $2 = coat ] && echo runs/coat-tiny-44/coat-ro3 || echo runs/coat-tiny-42/no-experts-ro3;; esac; }
for f in A B C card; do for arm in coat no-experts; do
  m=$(run_of $f $arm)
  out=$D/$f-$arm-emovo; [ -f $out.csv ] || .venv/bin/python -m edge_coat eval --model $m/model --task emotion --data ../shared/data/emovo \
    --holdout-speakers $(emo $f) --label-map '{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}' \
    --json $out.json --predictions $out.csv > $out.txt 2>&1
  out=$D/$f-$arm-turev; [ -f $out.csv ] || .venv/bin/python -m edge_coat eval --model $m/model --task emotion --data ../shared/data/turev \
    --holdout-speakers $(tur $f) --label-map '{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}' \
    --json $out.json --predictions $out.csv > $out.txt 2>&1
done; done
for arm in coat no-experts; do
  { echo "file,prediction,score"; for f in A B card; do tail -n +2 $D/$f-$arm-emovo.csv; done; } > $D/pooled-$arm-emovo.csv
  { echo "file,prediction,score"; for f in A B C card; do tail -n +2 $D/$f-$arm-turev.csv; done; } > $D/pooled-$arm-turev.csv
done

#!/usr/bin/env bash
# coat-lora against coat (frozen tower), paired on each fold's held-out clips (README.md here).
#   bash docs/coat-tiny-tower-lora-coat/compare.sh [FOLDS...]   (default: A B C card; skips what exists)
# coat's predictions are docs/coat-tiny-folds/paired's (coat-ro3: 1.4's readout settings); coat-lora's readout was
# fitted with the same settings at the end of its training. Pools over the folds A, B, C (EMOVO over A and B: fold C
# repeats f1 and m2); the card split is reported alone.
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
D=docs/coat-tiny-tower-lora-coat; P=docs/coat-tiny-folds/paired; EC=(.venv/bin/python -m edge_coat)
DATA=${DATA:-../shared/data}
run_of() { case $1 in A|B|C) echo runs/coat-fold-$(echo $1 | tr A-C a-c);; card) echo runs/coat-tiny-44;; esac; }
rav() { case $1 in A) echo 01,02,03,04;; B) echo 07,08,09,10;; C) echo 05,06,11,12;; card) echo 14,15,16;; esac; }
emo() { case $1 in A) echo f1,m1;; B) echo f2,m2;; C) echo f1,m2;; card) echo f3,m3;; esac; }
tur() { case $1 in A) echo 1234;; B) echo 6783;; C) echo 7895;; card) echo 1984;; esac; }
EMO_MAP='{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}'
TUR_MAP='{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}'
ev() { local out=$1; shift; [ -f $out.csv ] || "${EC[@]}" eval --json $out.json --predictions $out.csv "$@" > $out.txt 2>&1; }
FOLDS=${*:-A B C card}
# LORA=coat-lora-r4 TAG=r4: another LoRA run of the folds (its files D/F-r4-*, its pairs in paired-r4.txt)
LORA=${LORA:-coat-lora}; TAG=${TAG:-lora}; OUTFILE=paired.txt; [ $TAG = lora ] || OUTFILE=paired-$TAG.txt
for f in $FOLDS; do
  r=$(run_of $f); m=$r/$LORA/model
  [ -f $m/coat_config.json ] || { echo "fold $f: $m not trained yet"; continue; }
  ev $D/$f-$TAG-clean --model $m --task emotion --data $DATA/ravdess --holdout-speakers $(rav $f)
  ev $D/$f-$TAG-telephone --model $m --task emotion --data $DATA/ravdess --holdout-speakers $(rav $f) --channel telephone
  ev $D/$f-$TAG-emovo --model $m --task emotion --data $DATA/emovo --holdout-speakers $(emo $f) --label-map "$EMO_MAP"
  ev $D/$f-$TAG-turev --model $m --task emotion --data $DATA/turev --holdout-speakers $(tur $f) --label-map "$TUR_MAP"
  ev $D/$f-$TAG-nothink-clean --model $m --task emotion --data $DATA/ravdess --holdout-speakers $(rav $f) --no-thinking
  ev $D/$f-coat-nothink-clean --model $r/coat-ro3/model --task emotion --data $DATA/ravdess --holdout-speakers $(rav $f) --no-thinking
  for arm in $TAG coat; do  # UrbanSound8K: both arms here (the folds' earlier events results kept no predictions)
    mm=$m; [ $arm = coat ] && mm=$r/coat-ro3/model
    ev $D/$f-$arm-events --model $mm --task events --data $DATA/urbansound8k --holdout-sources $r/us8k_holdout.txt
  done
done
pair() {  # set coat-csv lora-csv labels
  echo "== $1"
  .venv/bin/python -m edge_coat.train.metrics --paired $4 $3 $2
}
{
  echo "$LORA minus coat, paired clip bootstrap (UA and accuracy differences)"
  for f in $FOLDS; do
    for s in clean telephone emovo turev events; do
      case $s in clean|telephone) lab=$DATA/ravdess/labels.csv; ref=$P/$f-coat-$s.csv;; emovo) lab=$DATA/emovo/labels.csv; ref=$P/$f-coat-emovo.csv;;
                 turev) lab=$DATA/turev/labels.csv; ref=$P/$f-coat-turev.csv;; events) lab=$DATA/urbansound8k/labels.csv; ref=$D/$f-coat-events.csv;; esac
      [ -f $D/$f-$TAG-$s.csv ] && pair "$f $s" $ref $D/$f-$TAG-$s.csv $lab
    done
  done
  for f in $FOLDS; do  # the thinking block's part in the new model: fused output against --no-thinking
    [ -f $D/$f-$TAG-nothink-clean.csv ] && pair "$f clean, $LORA minus its own --no-thinking" $D/$f-$TAG-nothink-clean.csv \
      $D/$f-$TAG-clean.csv $DATA/ravdess/labels.csv
    [ -f $D/$f-coat-nothink-clean.csv ] && pair "$f clean, coat minus its own --no-thinking" $D/$f-coat-nothink-clean.csv \
      $P/$f-coat-clean.csv $DATA/ravdess/labels.csv
  done
  pooled=""; for f in A B C; do [ -f $D/$f-$TAG-turev.csv ] && pooled="$pooled $f"; done
  if [ -n "$pooled" ]; then
    for s in clean telephone emovo turev events; do
      use=$pooled; [ $s = emovo ] && use=$(echo $pooled | tr ' ' '\n' | grep -v C | tr '\n' ' ')
      for arm in coat $TAG; do
        { echo "file,prediction,score"; for f in $use; do
            src=$D/$f-$TAG-$s.csv; [ $arm = coat ] && { src=$P/$f-coat-$s.csv; [ $s = events ] && src=$D/$f-coat-events.csv; }
            tail -n +2 $src; done; } > $D/pooled-$arm-$s.csv
      done
      case $s in clean|telephone) lab=$DATA/ravdess/labels.csv;; *) lab=$DATA/$( [ $s = events ] && echo urbansound8k || echo $s )/labels.csv;; esac
      pair "pooled ($use) $s" $D/pooled-coat-$s.csv $D/pooled-$TAG-$s.csv $lab
    done
    for arm in $TAG coat; do
      { echo "file,prediction,score"; for f in $pooled; do tail -n +2 $D/$f-$arm-nothink-clean.csv; done; } > $D/pooled-$arm-nothink-clean.csv
    done
    pair "pooled ($pooled) clean, $LORA minus its own --no-thinking" $D/pooled-$TAG-nothink-clean.csv \
      $D/pooled-$TAG-clean.csv $DATA/ravdess/labels.csv
    pair "pooled ($pooled) clean, coat minus its own --no-thinking" $D/pooled-coat-nothink-clean.csv \
      $D/pooled-coat-clean.csv $DATA/ravdess/labels.csv
  fi
} | tee $D/$OUTFILE

#!/usr/bin/env bash
# The recipe of the embedded default model models/coat-tiny (issue 4): data, CoAT training, the
# no-expert-loss ablation, and every evaluation of the model card's table. Re-running it resumes
# each training from its last checkpoint and skips finished steps.
#
#   bash scripts/train_coat_tiny.sh                 # the full run (hours on this CPU)
#   RUNS=coat STAGES=train bash scripts/train_coat_tiny.sh & RUNS=no-experts STAGES=train bash scripts/train_coat_tiny.sh
#   STEPS=4 FACTORY_TRAIN=40 FACTORY_TEST=30 OUT=/tmp/ct bash scripts/train_coat_tiny.sh   # a smoke test
#
# Model: Qwen2-Audio family, size preset "tiny" (a few million parameters; edge_coat/train/config.py),
# 5 s encoder window, K=8 thinking vectors, audio encoder trained too (a new tiny encoder has no
# pretrained weights to keep frozen), tokenizer built from the tasks' prompts and labels.
# Splits (recorded in OUT/<run>/run_config.json and split.json):
#   - RAVDESS: speakers 14,15,16 held out and reported; speaker 13 only calibrates the temperature;
#     01-12 train.
#   - factory: training clips from seed 11, held-out clips from seed 99 (clip seeds seed*1e6+i: disjoint).
#   - UrbanSound8K: about a quarter of the source recordings held out, stratified by class
#     (python -m edge_coat.train.split), never trained on.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/coat-tiny}
DATA=${DATA:-../shared/data}
# ~1.9-2.7 s per step at batch 16 on one core of this machine (measured under load).
STEPS=${STEPS:-900}
# Stage 2 (warm restart): continue each stage-1 model for STEPS2 more steps with a fresh cosine
# schedule (lr LR2, seed 1, so the crops differ from stage 1). 0 = stop after stage 1.
STEPS2=${STEPS2:-800}
LR2=${LR2:-5e-4}
BATCH=${BATCH:-16}
THREADS=${THREADS:-1}
FACTORY_TRAIN=${FACTORY_TRAIN:-600}
FACTORY_TEST=${FACTORY_TEST:-200}
CACHE=${CACHE:-.cache/teacher}
EC=("$PY" -m edge_coat)

mkdir -p "$OUT/results"
log() { echo "[$(date +%H:%M:%S)] $*"; }

# 1. data -------------------------------------------------------------------------------------------
for part in train:11:$FACTORY_TRAIN test:99:$FACTORY_TEST; do
  IFS=: read -r name seed n <<<"$part"
  if [ ! -f "$OUT/data/factory-$name/labels.csv" ]; then
    log "generating factory-$name ($n clips, seed $seed)"
    "$PY" -m edge_coat.data.factory --out "$OUT/data/factory-$name" --n "$n" --seed "$seed" --duration 5 --instances 3
  fi
done
if [ ! -f "$OUT/us8k_holdout.txt" ]; then
  "$PY" -m edge_coat.train.split --data "$DATA/urbansound8k" --fraction 0.25 --seed 0 >"$OUT/us8k_holdout.txt"
fi

# 2. training: CoAT and the ablation without expert losses (identical otherwise) ---------------------
train() {  # $1 = run name, rest = extra options
  local run=$1; shift
  local resume=()
  [ -f "$OUT/$run/run_config.json" ] && resume=(--resume)
  if [ -f "$OUT/$run/model/coat.safetensors" ] && [ -f "$OUT/$run/checkpoints/latest" ] \
     && [ "$(cat "$OUT/$run/checkpoints/latest")" = "$(printf 'step-%06d.pt' "$([ -n "${FROM:-}" ] && echo "$STEPS2" || echo "$STEPS")")" ]; then
    log "$run: already trained"; return
  fi
  log "training $run (${resume[*]:-new run})"
  local t0=$SECONDS
  local steps=$STEPS src=(--init qwen2_audio --size tiny --max-seconds 5 --num-thinking 8) lr=1e-3 warm=200 seed=0
  if [ -n "${FROM:-}" ]; then src=(--model "$OUT/$FROM/model"); steps=$STEPS2 lr=$LR2 warm=50 seed=1; fi
  "${EC[@]}" -v train "${src[@]}" --train-encoder \
    --data "$DATA/ravdess:emotion" --data "$OUT/data/factory-train:anomaly" --data "$OUT/data/factory-train:fault" \
    --data "$DATA/urbansound8k:events" \
    --holdout-speakers 14,15,16 --val-speakers 13 --val-fraction 0.1 --holdout-sources "$OUT/us8k_holdout.txt" \
    --steps "$steps" --batch-size "$BATCH" --lr "$lr" --warmup-steps "$warm" --seed "$seed" \
    --checkpoint-every 250 --log-every 25 --crop-seconds 4 --gain-db 3 --noise-snr-db 20 \
    --teacher-cache "$CACHE" --threads "$THREADS" --out "$OUT/$run" "${resume[@]}" "$@"
  log "$run: done in $((SECONDS - t0)) s (this session)"
}
# RUNS picks which trainings this invocation does (two invocations can train them in parallel,
# one core each); STAGES=train stops after training.
for run in ${RUNS:-coat no-experts}; do
  case $run in
    coat) train coat
      [ "$STEPS2" -gt 0 ] && FROM=coat train coat-s2 ;;
    no-experts) train no-experts --no-expert-losses
      [ "$STEPS2" -gt 0 ] && FROM=no-experts train no-experts-s2 --no-expert-losses ;;
    *) echo "unknown run $run (coat | no-experts)" >&2; exit 2 ;;
  esac
done
[ "${STAGES:-all}" = train ] && exit 0

# 3. the model card's table --------------------------------------------------------------------------
ev() {  # $1 = result name, rest = eval options
  local name=$1; shift
  log "eval $name"
  "${EC[@]}" eval --json "$OUT/results/$name.json" "$@" | tee "$OUT/results/$name.txt"
}
S=""; [ "$STEPS2" -gt 0 ] && S=-s2   # the final model of each run: after stage 2 when there is one
for row in coat:coat$S: coat-nothink:coat$S:--no-thinking no-experts:no-experts$S:; do
  IFS=: read -r name run flag <<<"$row"
  m="$OUT/$run/model"
  ev "emotion-$name" --model "$m" --task emotion --data "$DATA/ravdess" --holdout-speakers 14,15,16 $flag
  ev "anomaly-$name" --model "$m" --task anomaly --data "$OUT/data/factory-test" $flag
  ev "anomaly-loudnorm-$name" --model "$m" --task anomaly --data "$OUT/data/factory-test" --loudness-norm -26 $flag
  ev "events-$name" --model "$m" --task events --data "$DATA/urbansound8k" --holdout-sources "$OUT/us8k_holdout.txt" $flag
done

log "reference baselines"
"$PY" -m bench.accuracy.reference_baselines --data "$DATA/ravdess" --task emotion --run "$OUT/coat" \
  --teacher-cache "$CACHE" --json "$OUT/results/references-emotion.json" | tee "$OUT/results/references-emotion.txt"
"$PY" -m bench.accuracy.reference_baselines --data "$DATA/urbansound8k" --task events --run "$OUT/coat" \
  --teacher-cache "$CACHE" --json "$OUT/results/references-events.json" | tee "$OUT/results/references-events.txt"

log "probes"
"${EC[@]}" probe --model "$OUT/coat$S/model" --task emotion --data "$DATA/ravdess" --holdout-speakers 14,15,16 \
  --teacher-cache "$CACHE" --json "$OUT/results/probe-emotion.json" | tee "$OUT/results/probe-emotion.txt"
"${EC[@]}" probe --model "$OUT/coat$S/model" --task anomaly --data "$OUT/data/factory-test" \
  --teacher-cache "$CACHE" --json "$OUT/results/probe-anomaly.json" | tee "$OUT/results/probe-anomaly.txt"
log "all results in $OUT/results"

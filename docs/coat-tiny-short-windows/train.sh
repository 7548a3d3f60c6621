# bash docs/coat-tiny-short-windows/train.sh a|b|c SEED [base] : the excerpt candidate of README.md (or, with "base", 1.5's
# recipe) on fold A, B or C, stage 2 seed SEED, from the fold's seed-0 stage 1 (trained by the first run of the fold that
# needs it, then shared through links). Resumes from its checkpoints.
set -euo pipefail
cd "$(dirname "$0")/../.."
F=$1 SEED=$2 ARM=${3:-ex}
case $F in
  a) H=01,02,03,04,f1,m1,1234; V=05; S=1 ;;
  b) H=07,08,09,10,f2,m2,6783; V=11; S=2 ;;
  c) H=05,06,11,12,f1,m2,7895; V=13; S=3 ;;
  *) echo "fold must be a, b or c" >&2; exit 2 ;;
esac
OUT=runs/coat-fold-$F-$ARM-s$SEED
mkdir -p "$OUT"
STAGE1=runs/coat-fold-$F-stage1   # the fold's stage 1, its tower import, factory data and UrbanSound8K hold-out
if [ -d "$STAGE1/coat-s1" ] && [ "$(readlink -f "$STAGE1")" != "$(readlink -f "$OUT")" ]; then
  for x in coat-s1 whisper data us8k_holdout.txt; do [ -e "$OUT/$x" ] || ln -s "$(readlink -f "$STAGE1/$x")" "$OUT/$x"; done
else
  [ -e "$STAGE1" ] || ln -s "$(basename "$OUT")" "$STAGE1"
fi
VARIANTS=clean,telephone,room,slow,fast; [ "$ARM" = ex ] && VARIANTS=$VARIANTS,excerpt
OUT=$OUT HOLDOUT=$H VAL_SPEAKERS=$V US8K_SEED=$S SELECT="--seed $SEED" TOWER=${TOWER:-/work/cache/tower} \
  CACHE=${CACHE:-/work/cache/teacher} TOWER_VARIANTS=$VARIANTS RUNS=coat STAGES=train bash scripts/train_coat_tiny.sh

# bash docs/coat-tiny-slot-time/train.sh b|c : the candidate of README.md on fold B or C (resumes from its checkpoints)
cd /work/main
F=$1
if [ "$F" = b ]; then H=07,08,09,10,f2,m2,6783; V=11; S=2; else H=05,06,11,12,f1,m2,7895; V=13; S=3; fi
OUT=runs/coat-fold-$F-st HOLDOUT=$H VAL_SPEAKERS=$V US8K_SEED=$S SELECT="--seed 1" TOWER=/work/cache/tower CACHE=/work/cache/teacher \
  NEW_OPTS="--standardize-tower --no-summary-mlp --thinking-slot-time" RUNS=coat STAGES=train bash scripts/train_coat_tiny.sh

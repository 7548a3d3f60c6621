# The held-out corpora's label maps for edge-coat eval (as scripts/train_coat_tiny.sh's evaluation block), sourced by
# loco.sh and loco_draws.sh
declare -A MAP=(
  [ravdess]='{"neutral":"neutral","calm":"calm","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}'
  [emovo]='{"neutral":"neutral","happy":"happy","sad":"sad","angry":"angry","fearful":"fearful","disgust":"disgust","surprised":"surprised"}'
  [turev]='{"angry":"angry","calm":"calm","happy":"happy","sad":"sad"}')

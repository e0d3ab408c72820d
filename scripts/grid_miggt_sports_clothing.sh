#!/usr/bin/env bash
# The MIG-GT half of issue #11's grid on Sports (real text + synthetic image) and Clothing (synthetic content):
# 2 datasets × 3 seeds, one results folder per (dataset, seed) holding the three regimes (interaction first, then
# item, then user), run as LANES parallel jobs at one thread each. About 35 core-hours on a 2-core CPU machine
# (docs/BENCHMARKS.md §9d), so it is meant to be started again and again: finished cells are kept, saved originals
# and Retrains are reused, and a model killed half-way goes on from its last training snapshot (≤ 5 min old).
#   bash scripts/grid_miggt_sports_clothing.sh                  # from the repository root, after the set-up below
#   LANES=1 JOBS="clothing:0" bash scripts/grid_miggt_sports_clothing.sh
# Set-up once: the real Sports text (30 s, docs/BENCHMARKS.md §9a):
#   .venv/bin/mmunlearn data encode-text ../shared/datasets/amazon-sports/item_text_idgenrec.txt sports \
#       --out runs/sports-text --cache runs/text-cache --threads 2
# The user regime runs without the user-level attack (its shadow is one more full training per seed).
# On a GPU: DEVICE=cuda THREADS=4 LANES=1. Logs: results/logs/grid-<dataset>-miggt-s<seed>.log.
set -u
LANES=${LANES:-2}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-1}
MM=${MM:-.venv/bin/mmunlearn}
JOBS=${JOBS:-"sports-text:0 sports-text:1 clothing:0 clothing:1 sports-text:2 clothing:2"}
# TRU's ablations too (issue #11: "all methods and ablations"); in the user regime TRU takes no step after the
# reset, so there they cost seconds and return TRU's model
METHODS=${METHODS:-rebuild,rebuild-reset,neggrad,mmrecun,tru,tru-no-gate,tru-no-scaling,tru-no-isolation,tru-no-repair}
mkdir -p results/logs

run_job() {  # dataset:seed
  local name=${1%%:*} seed=${1##*:} data extra=()
  if [ "$name" = sports-text ]; then
    data=runs/sports-text; extra=(--set-model 'miggt.modalities=["image","text"]')
    [ -f runs/sports-text/mmunlearn.json ] || { echo "runs/sports-text: not encoded (see the set-up line above)" >&2; return 1; }
  else
    data=$name
  fi
  "$MM" bench run --config configs/grid-sports-clothing-miggt.toml --datasets "$data" "${extra[@]}" \
    --seeds "$seed" --regimes interaction,item,user --methods "$METHODS" --no-user-attack --extend \
    --device "$DEVICE" --threads "$THREADS" --quiet --out "results/grid-$name-miggt-s$seed" \
    >> "results/logs/grid-$name-miggt-s$seed.log" 2>&1
  local rc=$?
  echo "[$(date -u +%FT%TZ)] grid-$name-miggt-s$seed rc=$rc"
}

lane() {  # every LANES-th job from $1
  local i=0
  for job in $JOBS; do
    [ $((i % LANES)) -eq "$1" ] && run_job "$job"
    i=$((i + 1))
  done
}

for k in $(seq 0 $((LANES - 1))); do lane "$k" & done
wait

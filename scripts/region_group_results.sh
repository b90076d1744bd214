#!/usr/bin/env bash
# Reproduces docs/results/an8flower_region_group.md (and its occurrence plots) on CPU:
#   bash scripts/region_group_results.sh [OUT]      (OUT defaults to outputs/results)
# 1. region grouping on an8flower single6c (experiment=an8flower_region_group) with the
#    part-occurrence prior, without it (method.prior_weight=0, the paper's "w/o regularization")
#    and without attention (method.attention=false), one seed each;
# 2. evaluate.py of each on the same 500 test images: the landmark error (% of the image
#    size), the IoU of the explanation Q^T a with the flower's centre (part_mask) and the IoU of
#    the part maps with the flower's parts (Hungarian matching, metrics.part_iou);
# 3. the table, written under docs/results/ by scripts/merge_results.py, train.py's test accuracy
#    of each run, and the empirical
#    part-occurrence histograms against the Beta prior (scripts/region_group_occurrence.py).
# TRAIN_ARGS is added to every train.py call (e.g. TRAIN_ARGS=seed=1). The three runs train in
# parallel, one torch thread each (OMP_NUM_THREADS=1; their logs go to $OUT/<run>.log): on the
# shared 2-core machine one run with torch's default 2 threads trained at 0.45 it/s, three
# 1-thread runs side by side at 1-2 it/s each. PARALLEL=0 trains them one after the other.
# EVAL_ARGS is added to every evaluate.py call (e.g. EVAL_ARGS="data.subset=50" for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/results}
PY=${PY:-.venv/bin/python}
DOCS=${DOCS:-docs/results}  # where the table and plots go (DOCS=/tmp/x for a quick look)
TRAIN_ARGS=${TRAIN_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:-data.subset=500 data.subset_seed=0}
source scripts/results_lib.sh

declare -A ABLATION=(
  [rg_prior]=""
  [rg_no_prior]="method.prior_weight=0"
  [rg_no_attention]="method.attention=false"
)
RUNS=(rg_prior rg_no_prior rg_no_attention)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
train_run() {
  local run=$1
  SECONDS=0
  # TRAIN_ARGS and the ablation are split into words on purpose: several overrides each
  # shellcheck disable=SC2086
  train "$run" experiment=an8flower_region_group ${ABLATION[$run]} $TRAIN_ARGS >"$OUT/$run.log" 2>&1
  echo "trained $run in ${SECONDS}s (log: $OUT/$run.log)"
}
pids=()
for run in "${RUNS[@]}"; do
  if [[ ${PARALLEL:-1} == 1 ]]; then
    train_run "$run" &
    pids+=($!)
  else
    train_run "$run"
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done  # each wait fails the script if its run failed

# the landmark regression runs on the same 500 images it scores (5-fold cross-fitting)
for run in "${RUNS[@]}"; do
  evaluate "$run" "$run" "explainers=[method]" "metrics=[iou,landmarks,part_iou]" \
    metrics.landmarks.normalizer=image
done

MADE_BY="bash scripts/region_group_results.sh (trains the three region_group runs, then runs:)"
TABLE=$DOCS/an8flower_region_group.md
$PY scripts/merge_results.py --out "$TABLE" --made-by "$MADE_BY" \
  --title "Region grouping on an8flower single6c: the prior and attention ablations (test split)" \
  "$OUT/eval_rg_prior:method=region_group" "$OUT/eval_rg_no_prior:method=w/o prior" \
  "$OUT/eval_rg_no_attention:method=w/o attention"
# per run, in one pass over all 1000 test images of its last.ckpt: the test accuracy and the
# part-occurrence histograms against the Beta prior (scripts/region_group_occurrence.py)
for run in "${RUNS[@]}"; do
  $PY scripts/region_group_occurrence.py --ckpt "$OUT/$run/checkpoints/last.ckpt" \
    --out "$DOCS/an8flower_region_group_occurrence_${run#rg_}.png" >"$OUT/occurrence_$run.txt"
done
{
  echo
  echo "Test accuracy of the same last.ckpt files, all 1000 test images:"
  echo
  echo "| run | overrides | accuracy |"
  echo "|---|---|---:|"
  for run in "${RUNS[@]}"; do
    # shellcheck disable=SC2086  # echo squeezes the spaces of empty overrides
    overrides=$(echo experiment=an8flower_region_group ${ABLATION[$run]} $TRAIN_ARGS)
    echo "| $run | \`$overrides\` | $(awk '/^accuracy:/ {print $2}' "$OUT/occurrence_$run.txt") |"
  done
  for run in "${RUNS[@]}"; do
    png=an8flower_region_group_occurrence_${run#rg_}.png
    echo
    echo "Part occurrence t_k of $run against its Beta prior, all test images: [$png]($png)"
    echo
    grep '^|' "$OUT/occurrence_$run.txt"
    echo
    echo "    python scripts/region_group_occurrence.py --ckpt $OUT/$run/checkpoints/last.ckpt --out $DOCS/$png"
  done
} >>"$TABLE"
cat "$TABLE"

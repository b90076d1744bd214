#!/usr/bin/env bash
# EAT on an8flower double12c, the two acceptance figures of issue 5, on CPU (~10 minutes):
#   bash scripts/eat_an8flower_results.sh [OUT]      (OUT defaults to outputs/results_eat)
# 1. experiment=an8flower_eat, then scripts/eat_an8flower_attributes.py: how often the top-3
#    textual explanation of a correctly classified test image names the class's part colour;
# 2. EAT and the plain classifier (same small_cnn, same 10 epochs, same optimiser) trained with
#    data.bias=0.8, evaluated by evaluate.py on the same 500 test images (Grad-CAM for both, and
#    EAT's own explain()), merged into OUT/an8flower_eat_far_table.md (the table of
#    docs/results/an8flower_eat_far.md, whose discussion is written by hand).
# EVAL_ARGS is added to every evaluate.py call.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/results_eat}
PY=${PY:-.venv/bin/python}
EVAL_ARGS=${EVAL_ARGS:-data.subset=500 data.subset_seed=0}
source scripts/results_lib.sh

train eat experiment=an8flower_eat
$PY scripts/eat_an8flower_attributes.py --ckpt "$OUT/eat/checkpoints/last.ckpt" | tee "$OUT/eat_attributes.txt"

train eat_bias08 experiment=an8flower_eat data.bias=0.8
train classifier_bias08 experiment=an8flower_double12c data.bias=0.8 trainer.max_epochs=10
evaluate eat_bias08 eat_bias08 "explainers=[method,gradcam]"
evaluate classifier_bias08 classifier_bias08 "explainers=[gradcam]"

$PY scripts/merge_results.py --out "$OUT/an8flower_eat_far_table.md" \
  --made-by "bash scripts/eat_an8flower_results.sh (trains EAT and the classifier with data.bias=0.8, then runs:)" \
  --title "EAT vs the plain classifier on biased an8flower double12c (data.bias=0.8), unbiased test split" \
  "$OUT/eval_eat_bias08:method=EAT explain() (Grad-CAM of c),gradcam=EAT + Grad-CAM" \
  "$OUT/eval_classifier_bias08:gradcam=classifier + Grad-CAM"

#!/usr/bin/env bash
# Reproduces docs/results/an8flower_relevant_features.md (and its PNGs) on CPU:
#   bash scripts/relevant_features_results.sh [OUT]      (OUT defaults to outputs/results)
# Oramas, Wang & Tuytelaars, "Visual Explanation by Interpretation" (ICLR 2019), on an8flower
# single6c and double12c with the default small_cnn classifier of each:
# 1. train the two classifiers (skipped when $OUT/<run>/metrics.json exists);
# 2. fit the relevant features (mu-Lasso, mu = 10) on each training split, all layers and
#    only the convolutional ones (scripts/fit_relevant_features.py);
# 3. the ablation (Fig. 4): class accuracy after zeroing each class's relevant filters (All,
#    OnlyConv) against as many random filters per layer (5 seeds);
# 4. explanation accuracy (Fig. 8 / 9): evaluate.py's IoU against part_mask on the same 500 test
#    images for upsampled activation maps, deconvnet and guided backprop (both with the stride
#    fix) and the relevant-features heatmap; the curve at five thresholds and its mean (mIoU);
# 5. the average images (Fig. 5) and the visual-quality grid with the stride-artifact table
#    (Fig. 2 / 7).
# EVAL_ARGS is added to every evaluate.py call (e.g. EVAL_ARGS="data.subset=50" for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/results}
PY=${PY:-.venv/bin/python}
DOCS=${DOCS:-docs/results}  # where the table and PNGs go (DOCS=/tmp/x for a quick look)
EVAL_ARGS=${EVAL_ARGS:-data.subset=500 data.subset_seed=0}
source scripts/results_lib.sh
mkdir -p "$OUT" "$DOCS"

declare -A RUN=([single6c]=classifier [double12c]=classifier_double12c)
declare -A EXPERIMENT=([single6c]=an8flower_classifier [double12c]=an8flower_double12c)
TABLE=$DOCS/an8flower_relevant_features.md
BODY=$OUT/relevant_features_body.md
: >"$BODY"
for variant in single6c double12c; do
  run=${RUN[$variant]}
  train "$run" experiment="${EXPERIMENT[$variant]}"
  ckpt=$OUT/$run/checkpoints/last.ckpt
  dir=$(dirname "$ckpt")
  /usr/bin/time -f "%e s wall, %M KB peak" -o "$OUT/fit_$variant.time" \
    $PY scripts/fit_relevant_features.py --ckpt "$ckpt" >"$OUT/fit_$variant.log" 2>&1
  $PY scripts/fit_relevant_features.py --ckpt "$ckpt" --layers only_conv \
    --out "$dir/relevant_features_only_conv.pt" >"$OUT/fit_only_conv_$variant.log" 2>&1
  $PY scripts/relevant_features_ablation.py --ckpt "$ckpt" --seeds 5 \
    --features "$dir/relevant_features.pt" "$dir/relevant_features_only_conv.pt" \
    --out "$OUT/ablation_$variant.md" >"$OUT/ablation_$variant.log" 2>&1
  evaluate "rf_$variant" "$run" "explainers=[activation,deconvnet,guided_backprop,relevant_features]" \
    explainers.deconvnet.stride_fix=true explainers.guided_backprop.stride_fix=true \
    "metrics=[iou]" "metrics.iou.report_at=[0.1,0.3,0.5,0.7,0.9]" metrics.iou.auc=mean
  $PY scripts/merge_results.py --out "$OUT/iou_$variant.md" \
    --title "IoU against part_mask, an8flower $variant test split" \
    "$OUT/eval_rf_$variant:activation=upsampled activation,deconvnet=deconvnet + fix,guided_backprop=guided backprop + fix,relevant_features=relevant features (ours in the paper)"
  $PY scripts/relevant_features_average_images.py --ckpt "$ckpt" \
    --out "$DOCS/an8flower_relevant_features_average_$variant.png" >"$OUT/average_$variant.md"
  {
    echo "## $variant"
    echo
    echo "Classifier: \`python train.py experiment=${EXPERIMENT[$variant]}\`, test accuracy" \
      "$(grep -o '"test/acc": [0-9.]*' "$OUT/$run/metrics.json" | awk '{print $2}')."
    echo
    echo "Fitting (\`python scripts/fit_relevant_features.py --ckpt $ckpt\`, all layers):"
    echo
    grep -E '^(layers|mu =|non-zeros|relevant filters|time:)' "$OUT/fit_$variant.log" | sed 's/^/    /'
    echo "    /usr/bin/time: $(cat "$OUT/fit_$variant.time")"
    echo
    echo "### Ablation (Fig. 4)"
    echo
    cat "$OUT/ablation_$variant.md"
    echo
    echo "### Explanation accuracy (Fig. 8 / 9)"
    echo
    sed -n '2,$p' "$OUT/iou_$variant.md"
    echo
    echo "### Average images (Fig. 5): [an8flower_relevant_features_average_$variant.png](an8flower_relevant_features_average_$variant.png)"
    echo
    grep '^|' "$OUT/average_$variant.md"
    echo
  } >>"$BODY"
done
$PY scripts/relevant_features_visual_quality.py --ckpt "$OUT/${RUN[single6c]}/checkpoints/last.ckpt" \
  --out "$DOCS/an8flower_relevant_features_visual_quality.png" >"$OUT/visual_quality.md"
{
  echo "## Visual quality (Fig. 2 / 7), single6c: [an8flower_relevant_features_visual_quality.png](an8flower_relevant_features_visual_quality.png)"
  echo
  cat "$OUT/visual_quality.md"
} >>"$BODY"
echo "wrote $BODY (the findings above it in $TABLE are written by hand)"

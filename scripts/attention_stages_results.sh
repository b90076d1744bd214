#!/usr/bin/env bash
# Reproduces docs/results/an8flower_attention_stages.md (and its PNGs) on CPU:
#   bash scripts/attention_stages_results.sh [OUT]      (OUT defaults to outputs/results)
# Xie et al., "Deep Features Analysis with Attention Networks", Tables 1 and 2 in miniature:
# 1. the sweep `python train.py experiment=an8flower_attention_stages` (attention kind none /
#    residual / sharable x stage early / middle / late on small_cnn, an8flower single6c; each job
#    scores its own attention mask by IoU against part_mask and mask on 1000 test images),
#    skipped when $OUT/attention_stages holds 9 finished jobs (about an hour on 2 CPU cores);
# 2. its table by the sweep-report command (python -m explainbench.report);
# 3. layer-wise feature heatmaps (explainers=[layer_heatmaps], the paper's Fig. 2) of the plain
#    classifier and of the sharable-attention model at the early stage, and the latter's
#    gallery of every stage's mask (explainers=[method]).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/results}
PY=${PY:-.venv/bin/python}
DOCS=${DOCS:-docs/results}
SWEEP=$OUT/attention_stages
source scripts/results_lib.sh
mkdir -p "$OUT" "$DOCS"

if [[ $(ls "$SWEEP"/*/metrics.json 2>/dev/null | wc -l) -lt 9 ]]; then
  rm -rf "$SWEEP"
  $PY train.py experiment=an8flower_attention_stages logger=csv hydra.sweep.dir="$SWEEP"
fi
$PY -m explainbench.report "$SWEEP" --out "$OUT/attention_stages_table.md" \
  --metrics "test/acc,test/iou_auc/method,test/iou_mask_auc/method,test/iou@0.5/method,test/iou_mask@0.5/method"

train classifier experiment=an8flower_classifier
# the sweep's job 6 is kind=sharable stage=early (kind varies slowest)
SHARABLE_EARLY=$(grep -l "kind=sharable" "$SWEEP"/*/.hydra/overrides.yaml | xargs grep -l "stage=early" | head -1 | xargs dirname | xargs dirname)
for name in classifier sharable_early; do
  run=$OUT/$name
  [[ $name == sharable_early ]] && run=$SHARABLE_EARLY
  $PY evaluate.py ckpt_path="$run/checkpoints/last.ckpt" hydra.run.dir="$OUT/eval_layers_$name" \
    "explainers=[layer_heatmaps]" "metrics=[iou]" data.subset=200 data.subset_seed=0 \
    gallery_images=4 gallery_per_image=true
  cp "$OUT/eval_layers_$name/gallery.png" "$DOCS/an8flower_layer_heatmaps_$name.png"
done
$PY evaluate.py ckpt_path="$SHARABLE_EARLY/checkpoints/last.ckpt" hydra.run.dir="$OUT/eval_masks_sharable_early" \
  "explainers=[method]" "metrics=[iou]" data.subset=200 data.subset_seed=0 gallery_images=4
cp "$OUT/eval_masks_sharable_early/gallery.png" "$DOCS/an8flower_attention_masks_sharable_early.png"
cat "$OUT/attention_stages_table.md"

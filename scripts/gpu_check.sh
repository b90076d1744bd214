#!/usr/bin/env bash
# The GPU checks of issue #15, about 5 minutes on one GPU (none was available when this was
# written: run it where one is and paste its output into docs/results/performance.md).
#
#   bash scripts/gpu_check.sh                 # on a GPU machine
#   bash scripts/gpu_check.sh --device cpu    # dry run at tiny sizes: checks that every step runs
#
# Prints, in order:
#  1. scripts/bench_explainers.py --device cuda: our Score-CAM vs the grad-cam package's (the
#     package synchronises the device per masked batch; ours does not: the ratio should grow on
#     a GPU), Grad-CAM, Grad-CAM++, RISE on resnet18 at 224 px;
#  2. training throughput of resnet50 at 224 px, framework vs plain loop, fp32 vs bf16-mixed vs
#     bf16-mixed + channels_last (scripts/bench_train.py);
#  3. a 1-GPU trainer=ddp run end to end: train.py (1 epoch on a small an8flower) then
#     evaluate.py trainer=ddp on its checkpoint, and evaluate.py estimate=true for the same run;
#  4. the cost model with measured GPU times per pass: scripts/cost_table.py --device cuda
#     (VGG16, ResNet50 at 224 px; hours of the papers' benchmarks on 1, 8, 64 GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
if [[ "${1:-}" == "--device" ]]; then DEVICE="${2:?--device needs a value: cuda or cpu}"; fi
PY="${PYTHON:-python}"
export WANDB_MODE=offline PYTHONUNBUFFERED=1
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

if [[ "$DEVICE" == cuda ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with --device cpu for a dry run')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  EXPLAIN=(--device cuda --batch 8 --size 224 --repeats 3 --threads 0)
  TRAIN=(--backbone resnet50 --size 224 --batch 32 --warmup 5 --batches 15 --repeats 1 --device cuda)
  COST=(--device cuda --batch 32)
  TRAINER=(trainer=ddp trainer.devices=1)
  DATA=(data.image_size=224 data.train_size=1024 data.val_size=128)
  IMAGES=64
else  # a dry run: every step, tiny sizes
  EXPLAIN=(--device cpu --batch 1 --size 64 --repeats 1 --rise-masks 50 --skip pgc.ScoreCAM scorecam[pgc,compile])
  TRAIN=(--backbone resnet50 --size 64 --batch 4 --warmup 1 --batches 2 --repeats 1 --device cpu)
  TRAINER=(trainer=ddp_sim trainer.devices=1)
  DATA=(data.image_size=64 data.train_size=32 data.val_size=16 data.batch_size=8)
  COST=(--device cpu --size 32 --batch 2 --repeats 1 --backbones resnet18)
  IMAGES=8
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== 1. explainers: ours vs the grad-cam package ($DEVICE) =="
"$PY" scripts/bench_explainers.py "${EXPLAIN[@]}"

echo "== 2. training throughput, resnet50: fp32 / bf16-mixed / bf16-mixed + channels_last =="
"$PY" scripts/bench_train.py "${TRAIN[@]}" --precision 32-true 2>&1 | grep -E '^(machine|settings|\|)'
"$PY" scripts/bench_train.py "${TRAIN[@]}" --precision bf16-mixed 2>&1 | grep -E '^(machine|settings|\|)'
"$PY" scripts/bench_train.py "${TRAIN[@]}" --precision bf16-mixed --channels-last 2>&1 | grep -E '^(machine|settings|\|)'

echo "== 3. 1-device ${TRAINER[*]} end to end =="
start=$SECONDS
"$PY" train.py "${TRAINER[@]}" backbone=resnet18 "${DATA[@]}" "data.test_size=$IMAGES" \
  trainer.max_epochs=1 test=false callbacks.model_summary=null "paths.log_dir=$OUT" > "$OUT/train.log" 2>&1 \
  || { tail -30 "$OUT/train.log"; exit 1; }
run_dir="$(grep '^run_dir: ' "$OUT/train.log" | tail -1 | cut -d' ' -f2-)"
echo "train.py: $((SECONDS - start)) s, run_dir $run_dir"
ckpt="$run_dir/checkpoints/last.ckpt"
"$PY" evaluate.py "ckpt_path=$ckpt" "${TRAINER[@]}" explainers=[gradcam,scorecam] estimate=true \
  "paths.log_dir=$OUT" 2>&1 | grep -E '^(Estimate|\|)'
start=$SECONDS
"$PY" evaluate.py "ckpt_path=$ckpt" "${TRAINER[@]}" explainers=[gradcam,scorecam] \
  gallery_images=4 "paths.log_dir=$OUT" > "$OUT/evaluate.log" 2>&1 \
  || { tail -30 "$OUT/evaluate.log"; exit 1; }
grep -E '^(timing|run_dir)|┃|│' "$OUT/evaluate.log" || true
echo "evaluate.py: $((SECONDS - start)) s"

echo "== 4. cost model, measured per-pass times on $DEVICE =="
"$PY" scripts/cost_table.py "${COST[@]}"
echo "gpu_check: all steps passed"

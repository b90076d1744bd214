# Shared by the scripts/*_results.sh scripts (source it after setting OUT, PY and EVAL_ARGS):
#   train <name> <overrides...>             train.py into $OUT/<name>, skipped when it finished (metrics.json)
#   evaluate <name> <ckpt run> <overrides...>  evaluate.py of $OUT/<run> into $OUT/eval_<name>
export WANDB_MODE=${WANDB_MODE:-offline}

train() {
  local name=$1; shift
  # metrics.json is written when a run ends: an interrupted run (last.ckpt only) is trained again
  [[ -f $OUT/$name/metrics.json ]] || $PY train.py "$@" logger=csv hydra.run.dir="$OUT/$name"
}

evaluate() {
  local name=$1 run=$2; shift 2
  # EVAL_ARGS is split into words on purpose: several overrides in one variable
  # shellcheck disable=SC2086
  $PY evaluate.py ckpt_path="$OUT/$run/checkpoints/last.ckpt" hydra.run.dir="$OUT/eval_$name" $EVAL_ARGS "$@"
}

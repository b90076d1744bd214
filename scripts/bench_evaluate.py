"""Explanations per second of ``evaluate.py``, 1 process vs ``trainer=ddp_sim`` (2 CPU processes),
and the share of the test loop spent inside the explainer calls.

    python scripts/bench_evaluate.py [--ckpt PATH] [--images 64] [--explainers gradcam scorecam]
                                     [--trainers default ddp_sim] [--metrics default passes]
                                     [--repeats 1] [OVERRIDE ...]

Without ``--ckpt`` a 1-epoch small_cnn classifier on an8flower (64 px) is trained first
(``train.py``, in a temporary folder). Each (metrics, explainer, trainer) combination is one
``python evaluate.py ckpt_path=... explainers=[<name>] data.test_size=<images>
gallery_images=0 trainer=<trainer>`` subprocess, as a user runs it; ``--metrics default`` is
conf/metrics/default.yaml (AD/IC, deletion/insertion — about 45 forwards per image of their
own —, IoU, pointing game, FAR, passes), any other value a ``metrics=[...]`` list (``passes``:
only the pass counter, i.e. the framework's own cost around the explainer).

Columns:
- loop img/s: images / the test loop's wall time per process (data, explainer, metrics,
  logging: everything between ``on_test_epoch_start`` and ``on_test_epoch_end``), from the
  ``timing:`` line evaluate.py prints;
- end-to-end img/s: images / the subprocess' wall time (start-up, checkpoint, data rendering,
  DDP launch, files included);
- inside %: explainer-call seconds / loop seconds, both summed over processes (the
  explainers' forwards and backwards plus their own small tensor work);
- ms/img: evaluate.py's ``ms_per_image`` (explainer seconds summed over processes / images).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING = re.compile(r"timing: (\d+) images, (\d+) process\(es\), loop ([\d.]+) s per process, "
                    r"([\d.]+) % inside the explainers")  # fmt: skip


def python(script: str, args: list[str], log_dir: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    env.setdefault("PYTHONPATH", str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *args, f"paths.log_dir={log_dir}"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc, seconds


def train_checkpoint(log_dir: str, images: int) -> str:
    proc, _ = python(
        "train.py",
        ["backbone=small_cnn", "data.image_size=64", "data.train_size=512", "data.val_size=64",
         f"data.test_size={images}", "trainer.max_epochs=1", "trainer.accelerator=cpu",
         "test=false", "callbacks.model_summary=null"],
        log_dir,
    )  # fmt: skip
    run_dir = re.findall(r"^run_dir: (.+)$", proc.stdout, flags=re.M)[-1]
    return str(Path(run_dir) / "checkpoints" / "last.ckpt")


def evaluate(ckpt: str, explainer: str, trainer: str, metrics: str, images: int, log_dir: str,
             extra: list[str]) -> dict:  # fmt: skip
    args = [f"ckpt_path={ckpt}", f"explainers=[{explainer}]", f"data.test_size={images}",
            "gallery_images=0", f"trainer={trainer}", *extra]  # fmt: skip
    if metrics != "default":
        args.append(f"metrics=[{metrics}]")
    proc, seconds = python("evaluate.py", args, log_dir)
    match = TIMING.search(proc.stdout)
    if match is None:
        raise RuntimeError(f"no timing line in evaluate.py's output:\n{proc.stdout[-3000:]}")
    n, processes, loop, inside = (float(g) for g in match.groups())
    run_dir = re.findall(r"^run_dir: (.+)$", proc.stdout, flags=re.M)[-1]
    flat = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {
        "loop": n / loop,
        "end_to_end": n / seconds,
        "inside": inside,
        "ms": flat[f"test/ms_per_image/{explainer}"],
        "processes": int(processes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="a checkpoint to evaluate (default: train a small one)")
    parser.add_argument("--images", type=int, default=64, help="test images (data.test_size)")
    parser.add_argument("--explainers", nargs="+", default=["gradcam", "scorecam"])
    parser.add_argument("--trainers", nargs="+", default=["default", "ddp_sim"])
    parser.add_argument("--metrics", nargs="+", default=["default", "passes"])
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the median")
    parser.add_argument("overrides", nargs="*", help="extra evaluate.py overrides")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        ckpt = args.ckpt or train_checkpoint(log_dir, args.images)
        print(f"checkpoint: {ckpt if args.ckpt else 'small_cnn, an8flower 64 px, 1 epoch'}")
        for metrics in args.metrics:
            for explainer in args.explainers:
                for trainer in args.trainers:
                    runs = [evaluate(ckpt, explainer, trainer, metrics, args.images, log_dir,
                                     args.overrides) for _ in range(args.repeats)]  # fmt: skip
                    row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    rows.append((metrics, explainer, trainer, row))
                    print(f"  {metrics} / {explainer} / {trainer}: {row}", flush=True)
    print()
    print(f"{args.images} test images, an8flower 64 px")
    print("| metrics | explainer | trainer | processes | loop img/s | end-to-end img/s "
          "| inside explainers | ms/img |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for metrics, explainer, trainer, r in rows:
        print(f"| {metrics} | {explainer} | {trainer} | {r['processes']} | {r['loop']:.1f} "
              f"| {r['end_to_end']:.1f} | {r['inside']:.1f} % | {r['ms']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()

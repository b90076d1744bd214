"""Tiny train → fit_relevant_features.py → evaluate.py explainers=[relevant_features] → ablation."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from explainbench.train import run

from ..helpers import ROOT, TINY_DATA, compose_cfg, run_cli, run_dirs


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


FIT = "python scripts/fit_relevant_features.py --ckpt <run>/checkpoints/last.ckpt"
EVALUATE = (
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt "
    "explainers=[relevant_features,guided_backprop,activation]"
)


@pytest.mark.slow
@pytest.mark.readme(
    "python scripts/fit_relevant_features.py --ckpt <run>/checkpoints/last.ckpt",
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt "
    "explainers=[relevant_features,guided_backprop,activation]",
)
def test_fit_then_evaluate_then_ablate(readme, tmp_path):
    cfg = compose_cfg(
        ["trainer.max_epochs=1", "trainer.accelerator=cpu", "callbacks.model_summary=null",
         *TINY_DATA],
        tmp_path / "train",
    )  # fmt: skip
    run(cfg)
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"

    # before fitting: the explainer names the fitting command
    proc = run_cli(
        "evaluate.py", [f"ckpt_path={ckpt}", "explainers=[relevant_features]", "metrics=[iou]"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "fit_relevant_features.py --ckpt" in proc.stderr + proc.stdout

    subs = {"run": ckpt.parents[1]}
    proc = readme.run(tmp_path, FIT, subs=subs, extra=["--max-images", "48"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    features = torch.load(ckpt.parent / "relevant_features.pt", weights_only=True)
    assert features["W"].shape == (len(features["index"]), 6) and features["num_classes"] == 6
    assert features["images"] == 48 and features["mu"] == 10.0
    assert (features["W"].abs().sum(0) <= 10.0 + 1e-4).all()

    proc = readme.run(
        tmp_path, EVALUATE, subs=subs, extra=["metrics=[iou]", "data.subset=8", "gallery_images=2"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["explainer"] for r in rows] == ["relevant_features", "guided_backprop", "activation"]
    assert (out / "gallery.png").is_file()

    proc = script("fit_relevant_features.py", "--ckpt", str(ckpt), "--layers", "conv9")
    assert proc.returncode != 0 and "backbone.extractor.0 (conv)" in proc.stderr
    proc = script("fit_relevant_features.py", "--ckpt", str(ckpt), "--mu", "0")
    assert proc.returncode != 0 and "must be > 0" in proc.stderr

    proc = script("relevant_features_ablation.py", "--ckpt", str(ckpt), "--seeds", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| **mean (mCA)** |" in proc.stdout and "Random like All" in proc.stdout

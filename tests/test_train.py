"""The training spine end to end: fast_dev_run for every backbone and method, metrics.json,
sweeps with W&B offline runs, DDP on CPU, and the clear errors of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from explainbench.backbones import BACKBONES
from explainbench.train import run

from .helpers import CONF, TINY_DATA, compose_cfg, run_cli, run_dirs, run_unwrapped

METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))


@pytest.mark.parametrize(
    "backbone",
    # the full-width attention stacks: tests/test_attention_modules.py trains narrow ones fast
    [pytest.param(b, marks=pytest.mark.slow) if b.startswith("ran") else b for b in BACKBONES],
)
def test_fast_dev_run_every_backbone(backbone, tmp_path):
    cfg = compose_cfg(
        ["debug=fdr", f"backbone={backbone}", *TINY_DATA, "data.batch_size=4"], tmp_path
    )
    metrics = run(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0


# methods that explain a frozen, trained classifier and so need backbone weights
NEED_TRAINED_BACKBONE = {"lcam_fm", "lcam_img"}


@pytest.mark.parametrize("method", METHODS)
def test_fast_dev_run_every_method(method, tmp_path):
    extra = []
    if method in NEED_TRAINED_BACKBONE:
        import torch

        from explainbench.backbones import build_backbone

        path = tmp_path / "classifier.pt"
        torch.save(build_backbone("small_cnn", num_classes=6).state_dict(), path)
        extra = [f"backbone.checkpoint={path}"]
    cfg = compose_cfg(["debug=fdr", f"method={method}", *TINY_DATA, *extra], tmp_path)
    metrics = run(cfg)
    assert "test/loss" in metrics


def test_run_writes_metrics_json_and_tests_best_checkpoint(tmp_path, monkeypatch):
    import lightning

    tested = []  # (ckpt_path given to Trainer.test, the trainer's best checkpoint at that time)
    original_test = lightning.Trainer.test

    def spy_test(trainer, *args, **kwargs):
        tested.append((kwargs.get("ckpt_path"), trainer.checkpoint_callback.best_model_path))
        return original_test(trainer, *args, **kwargs)

    monkeypatch.setattr(lightning.Trainer, "test", spy_test)
    cfg = compose_cfg(
        [
            "trainer.max_epochs=2",
            "trainer.accelerator=cpu",
            "callbacks.model_summary=null",
            *TINY_DATA,
        ],
        tmp_path,
    )
    metrics = run(cfg)
    assert len(tested) == 1
    given, best = tested[0]
    assert given and Path(given) == Path(best) and Path(best).name.startswith("epoch"), tested
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    assert {"val/acc", "val/acc_best", "val/loss", "test/acc", "test/loss"} <= set(saved)
    assert all(k.startswith(("val/", "test/", "data/")) for k in saved)
    assert saved["data/skipped_images"] == 0  # counted whatever the data (here: none unreadable)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and len(checkpoints) == 2


@pytest.mark.readme("python train.py -m method.optimizer.lr=0.01,0.001 logger=wandb")
def test_multirun_sweep_makes_one_job_dir_and_wandb_run_each(readme, tmp_path):
    proc = readme.run(
        tmp_path,
        extra=[
            "trainer.max_epochs=1",
            "callbacks.model_summary=null",
            "trainer.log_every_n_steps=1",
            *TINY_DATA,
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(proc.stdout)
    assert len(dirs) == 2 and dirs[0] != dirs[1]
    for job in dirs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert "val/acc" in metrics and "test/acc" in metrics
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"expected one offline W&B run in {job}"
        history = read_wandb_history(runs[0])
        assert any("train/loss" in row for row in history)
        assert any("val/acc" in row for row in history)
    assert {json.loads((d / "metrics.json").read_text())["val/loss"] for d in dirs}.__len__() == 2


def read_wandb_history(run_dir: Path) -> list[dict]:
    """History rows of an offline W&B run, read back with `wandb leet inspect --json`."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


@pytest.mark.readme("python train.py trainer=ddp_sim trainer.max_epochs=1")
def test_ddp_sim_runs_two_processes_one_run_dir(readme, tmp_path):
    proc = readme.run(tmp_path, extra=["callbacks.model_summary=null", *TINY_DATA], timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(proc.stdout)
    assert len(dirs) == 1, proc.stdout[-2000:]
    assert (dirs[0] / "metrics.json").is_file()
    assert len(list((tmp_path / "train" / "runs").iterdir())) == 1
    assert "distributed_backend=gloo" in proc.stdout + proc.stderr
    assert (
        "All distributed processes registered. Starting with 2 processes"
        in proc.stdout + proc.stderr
    )


def test_multirun_with_ddp_fails_fast(tmp_path):
    proc = run_cli(
        "train.py", ["-m", "trainer=ddp_sim", "seed=1,2", *TINY_DATA], tmp_path, timeout=120
    )
    assert proc.returncode != 0
    assert "ddp_spawn" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["backbone=resnet9000"], "Could not find 'backbone/resnet9000'"),
        # one process each (~5 s): the fast suite keeps two, `make test-full` runs all
        pytest.param(["data.variant=triple99"], "single6c", marks=pytest.mark.slow),
        pytest.param(
            ["data=an8flower_folder", "data.root=/nonexistent/an8flower"],
            "/nonexistent/an8flower",
            marks=pytest.mark.slow,
        ),
        (["backbone.checkpoint=/nonexistent/model.ckpt"], "/nonexistent/model.ckpt"),
        pytest.param(
            ["backbone.num_classes=10"], "does not match the 6 classes", marks=pytest.mark.slow
        ),
    ],
)
def test_bad_input_is_one_clear_error(args, needle, tmp_path):
    sizes = [] if "data=an8flower_folder" in args else TINY_DATA  # the folder layout has no sizes
    proc = run_cli("train.py", [*args, *sizes, "trainer.max_epochs=1"], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(b"\x00garbage")
    cfg = compose_cfg([f"backbone.checkpoint={bad}", *TINY_DATA], tmp_path)
    with pytest.raises(Exception, match="Cannot read backbone checkpoint"):
        run_unwrapped(cfg)


def test_train_cli_prints_run_dir(tmp_path):
    proc = run_cli("train.py", ["debug=fdr", *TINY_DATA], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(run_dirs(proc.stdout)) == 1

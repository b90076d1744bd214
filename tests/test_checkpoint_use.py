"""``ckpt_path=`` means what it says: ``train=false`` tests that checkpoint, a checkpoint of
another architecture is refused in one line, and a run that trains nothing ends cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from explainbench.train import run

from .helpers import TINY_DATA, compose_cfg, run_cli, run_unwrapped

QUIET = [
    "trainer.accelerator=cpu",
    "callbacks.model_summary=null",
    "callbacks.progress_bar=null",
    *TINY_DATA,
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[dict[str, float], Path]:
    """A one-epoch small_cnn run: its final metrics and run dir."""
    run_dir = tmp_path_factory.mktemp("trained")
    metrics = run(compose_cfg(["trainer.max_epochs=1", *QUIET], run_dir))
    return metrics, run_dir


def best_checkpoint(run_dir: Path) -> Path:
    (best,) = (run_dir / "checkpoints").glob("epoch*.ckpt")
    return best


def test_train_false_tests_the_given_checkpoint(trained, tmp_path):
    metrics, run_dir = trained
    tested = run(
        compose_cfg(
            ["train=false", f"ckpt_path={best_checkpoint(run_dir)}", *QUIET], tmp_path / "a"
        )
    )
    assert tested["test/loss"] == pytest.approx(metrics["test/loss"])
    assert tested["test/acc"] == pytest.approx(metrics["test/acc"])
    untrained = run(compose_cfg(["train=false", *QUIET], tmp_path / "b"))
    assert untrained["test/loss"] != pytest.approx(metrics["test/loss"])


def test_max_epochs_0_exits_cleanly_without_optimized_metric_error(tmp_path):
    proc = run_cli("train.py", ["trainer.max_epochs=0", *QUIET], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "was not logged" not in proc.stderr
    assert "optimized_metric 'val/acc_best' is not checked" in proc.stdout + proc.stderr


def test_checkpoint_of_another_architecture_is_one_clear_error(trained, tmp_path):
    _, run_dir = trained
    cfg = compose_cfg(
        ["backbone=resnet18", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", *QUIET],
        tmp_path,
    )
    with pytest.raises(
        ValueError, match=r"holds backbone=small_cnn.*builds backbone=resnet18"
    ) as err:
        run_unwrapped(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "checkpoints").exists(), "the check must come before training"


def test_checkpoint_of_other_widths_names_the_setting(trained, tmp_path):
    _, run_dir = trained
    cfg = compose_cfg(
        [
            "backbone.widths=[8,16,32,64]",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            *QUIET,
        ],
        tmp_path,
    )
    with pytest.raises(ValueError, match=r"widths=\[16, 32, 64, 128\].*widths=\[8, 16, 32, 64\]"):
        run_unwrapped(cfg)


def test_unreadable_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"\x00garbage")
    cfg = compose_cfg([f"ckpt_path={bad}", *QUIET], tmp_path)
    with pytest.raises(
        ValueError, match=r"Cannot read ckpt_path '.*garbage.ckpt': not a PyTorch checkpoint"
    ):
        run_unwrapped(cfg)

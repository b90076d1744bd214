"""Runs that stop: SIGTERM saves and exits 143, last.ckpt is the latest epoch, resume reproduces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from explainbench.callbacks.checkpoint import ModelCheckpoint
from explainbench.train import run

from .helpers import ROOT, TINY_DATA, compose_cfg, run_dirs

CPU = ["trainer.accelerator=cpu", "callbacks.model_summary=null", "callbacks.progress_bar=null"]
STEPS_PER_EPOCH = 4  # TINY_DATA: 64 training images, batches of 16


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class SigtermAtStep(Callback):
    """Sends this process a SIGTERM after training step ``step`` (Lightning stops after the batch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_exits_143_with_a_checkpoint_and_the_resume_command(tmp_path):
    args = ["trainer.max_epochs=200", *CPU, *TINY_DATA, f"paths.log_dir={tmp_path}"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("train/runs/*/checkpoints/last.ckpt")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr[-3000:]
    (run_dir,) = run_dirs(stdout)
    ckpt = run_dir / "checkpoints" / "interrupted.ckpt"
    assert ckpt.is_file()
    assert 0 < load_checkpoint(ckpt)["global_step"] < 200 * STEPS_PER_EPOCH
    command = f"resume with: python {ROOT / 'train.py'} {' '.join(args)} ckpt_path={ckpt}"
    assert command in stdout.splitlines(), stdout[-3000:]
    assert "Error: interrupted by SIGTERM" in stderr


def test_last_ckpt_is_the_latest_epoch_when_val_acc_stops_improving(tmp_path):
    # lr=0: the weights, and so val/acc, never change; only the first epoch is a "best"
    run(
        compose_cfg(["trainer.max_epochs=2", "method.optimizer.lr=0.0", *CPU, *TINY_DATA], tmp_path)
    )
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 2 * STEPS_PER_EPOCH)
    assert [p.name for p in (tmp_path / "checkpoints").glob("epoch_*.ckpt")] == ["epoch_000.ckpt"]


# lr=0.3 and seed=1 make the first epoch the best (val/acc 0.19 then 0.16), so a resumed run
# must also remember the interrupted run's best accuracy and best checkpoint to match.
RESUME = ["trainer.max_epochs=2", "method.optimizer.lr=0.3", "seed=1", *CPU, *TINY_DATA]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The run dir of the RESUME configuration trained without interruption."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    run(compose_cfg(RESUME, run_dir))
    return run_dir


def test_resume_from_an_end_of_epoch_checkpoint_writes_the_same_metrics(uninterrupted, tmp_path):
    full = json.loads((uninterrupted / "metrics.json").read_text())
    assert full["val/acc_best"] > full["val/acc"]  # the case described above
    # stopped at the end of the first epoch (as if pre-empted there), then resumed
    run(compose_cfg([*RESUME, f"+trainer.max_steps={STEPS_PER_EPOCH}"], tmp_path / "first"))
    run(
        compose_cfg(
            [*RESUME, f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"],
            tmp_path / "resumed",
        )
    )
    assert (tmp_path / "resumed" / "metrics.json").read_text() == (
        uninterrupted / "metrics.json"
    ).read_text()


def test_resume_after_a_mid_epoch_sigterm_ends_at_the_same_epoch_and_step(uninterrupted, tmp_path):
    sigterm = [
        f"+callbacks.sigterm.step={STEPS_PER_EPOCH + 2}",
        f"+callbacks.sigterm._target_={__name__}.SigtermAtStep",
    ]
    with pytest.raises(SIGTERMException):
        run(compose_cfg([*RESUME, *sigterm], tmp_path / "stopped"))
    interrupted = tmp_path / "stopped" / "checkpoints" / "interrupted.ckpt"
    assert load_checkpoint(interrupted)["global_step"] == STEPS_PER_EPOCH + 2
    run(compose_cfg([*RESUME, f"ckpt_path={interrupted}"], tmp_path / "resumed"))
    full = load_checkpoint(uninterrupted / "checkpoints" / "last.ckpt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert (
        (resumed["epoch"], resumed["global_step"]) == (full["epoch"], full["global_step"]) == (1, 8)
    )


def test_resumed_checkpointing_keeps_the_best_of_the_interrupted_run_while_its_files_exist(
    tmp_path,
):
    best = tmp_path / "old" / "epoch_000.ckpt"
    state = {
        "dirpath": str(best.parent),
        "best_model_path": str(best),
        "best_model_score": torch.tensor(0.5),
        "best_k_models": {str(best): torch.tensor(0.5)},
        "kth_best_model_path": str(best),
        "kth_value": torch.tensor(0.5),
        "last_model_path": str(best.parent / "last.ckpt"),
    }
    best.parent.mkdir()
    best.touch()
    kept = ModelCheckpoint(dirpath=tmp_path / "new", monitor="val/acc", mode="max")
    kept.load_state_dict(state)
    assert (kept.best_model_score, kept.best_k_models) == (0.5, {str(best): 0.5})
    assert kept.last_model_path == ""  # last.ckpt is this run's own
    best.unlink()
    gone = ModelCheckpoint(dirpath=tmp_path / "new", monitor="val/acc", mode="max")
    with pytest.warns(UserWarning, match="checkpoints of the resumed run are gone"):
        gone.load_state_dict(state)
    assert (gone.best_model_score, gone.best_k_models) == (None, {})

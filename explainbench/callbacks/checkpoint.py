"""``ModelCheckpoint``: Lightning's, with what a run that stops and resumes needs.

Two differences, both about resuming (``python train.py ckpt_path=<run>/checkpoints/last.ckpt``):

* ``last.ckpt`` is rewritten at the end of every training epoch. Lightning writes it only when
  a top-k checkpoint is saved in the same step, so with ``save_top_k: 1`` an epoch without a
  new best left ``last.ckpt`` at the older best epoch, and resuming from it silently repeated
  the epochs after it.
* A resumed run writes into a new run dir. Lightning then forgets the interrupted run's best
  score (it keeps ``best_model_path`` only), so the first epoch after resuming always became
  "the best" and the run tested another checkpoint than an uninterrupted run would have.
  Here the best scores and paths are kept whatever the directory, as long as the interrupted
  run's checkpoints are still there; they are never deleted (Lightning removes only files
  under its own ``dirpath``), and the resumed run may test the best one of them.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn


class ModelCheckpoint(LightningModelCheckpoint):
    """:class:`lightning.pytorch.callbacks.ModelCheckpoint` whose ``last.ckpt`` is always the
    latest end of epoch and whose best checkpoint survives a resume in a new directory."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Skipped when a checkpoint (and so last.ckpt) was already saved at this step.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        with warnings.catch_warnings():  # "... won't be reloaded": they are, below
            warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            return
        previous = state_dict.get("best_k_models") or {}
        if not all(get_filesystem(path).exists(path) for path in previous):
            # moved or deleted: Lightning's behaviour, this run's first epoch becomes the best
            rank_zero_warn(
                f"The checkpoints of the resumed run are gone ({', '.join(map(str, previous))}): "
                "the best checkpoint will be chosen among this run's epochs only."
            )
            return
        # last_model_path stays: it names a file of this run's directory
        self.best_model_score = state_dict["best_model_score"]
        self.best_k_models = state_dict.get("best_k_models", self.best_k_models)
        self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
        self.kth_value = state_dict.get("kth_value", self.kth_value)

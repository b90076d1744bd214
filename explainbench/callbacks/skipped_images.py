"""Unreadable images: counted in the run's metrics, and a clear stop when a split has none left.

Datasets that skip unreadable files (ImageNet, CUB, SUN Attribute, attribute folders) warn
once per file and list the skipped files in ``batch["skipped"]``
(:func:`~explainbench.data.folder.collate_skipping_none`). The list is built by the collate
function in the DataLoader worker and travels with the batch, so this callback, in the main
process, sees every skipped file whatever ``data.num_workers`` is. Every method attaches it
(``ExplainableMethod.configure_callbacks``), so it runs whatever ``callbacks`` the config lists.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..data.folder import SKIPPED_KEY

METRIC = "data/skipped_images"
SHOWN_FILES = 5


class UnreadableSplitError(RuntimeError):
    """A pass over a split found no readable image."""


class SkippedImages(Callback):
    """Logs ``data/skipped_images``, the number of distinct files skipped so far in the run
    (an unreadable file seen in several epochs counts once), and raises
    :class:`UnreadableSplitError` naming the split and its first files when a whole pass over
    a split read no image: that would otherwise be an empty epoch, ending in "ModelCheckpoint
    could not find val/acc" or in a test without results."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        # per split of the pass in progress: images read, files skipped
        self._read: dict[str, int] = {}
        self._skipped: dict[str, list[str]] = {}

    # -- per batch ----------------------------------------------------------------------------
    def _count(self, split: str, batch: Any) -> None:
        if not isinstance(batch, dict):
            return
        skipped = batch.get(SKIPPED_KEY) or []
        label = batch.get("label")
        self._read[split] = self._read.get(split, 0) + (len(label) if label is not None else 0)
        self._skipped.setdefault(split, []).extend(skipped)
        self.files.update(skipped)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._count("train", batch)

    def on_validation_batch_start(
        self, trainer, pl_module, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._count("val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._count("test", batch)

    # -- per pass -------------------------------------------------------------------------------
    def _end_of_pass(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        read, skipped = self._read.pop(split, 0), self._skipped.pop(split, [])
        if trainer.sanity_checking:  # a couple of batches only: no verdict on the split
            return
        if read == 0 and skipped:
            shown = ", ".join(skipped[:SHOWN_FILES]) + (
                ", ..." if len(skipped) > SHOWN_FILES else ""
            )
            raise UnreadableSplitError(
                f"No image of the {split} split could be read: all {len(skipped)} files this "
                f"epoch were unreadable, e.g. {shown}. Check data.root and the files (are they "
                "images, complete, readable by this user?)."
            )
        pl_module.log(METRIC, float(len(self.files)), reduce_fx="sum", sync_dist=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._end_of_pass(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._end_of_pass(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end_of_pass(trainer, pl_module, "test")

"""``ExplanationMetrics``: explanation quality logged next to accuracy, during fit and test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from ..evaluation import ExplanationEvaluator
from ..utils.instantiate import instantiate_named_dict


class ExplanationMetrics(Callback):
    """Runs explainers on the first ``max_samples`` images of each val/test epoch and logs
    ``{stage}/{metric}/{explainer}`` (e.g. ``test/ad@15/gradcam``).

    Args:
        explainers: name → explainer (or its ``_target_`` config), in table order: the
            composed ``explainers`` group (``explainers=[gradcam,scorecam]``). ``method`` uses
            the model's own ``explain()``. ``None`` entries are skipped.
        metrics: name → metric *prototype* (or its config): the composed ``metrics`` group.
        max_samples: images per stage and process (the first ones of the loader).
        every_n_epochs: run on validation every n epochs (test always runs).
        stages: which of ``val`` / ``test``.

    Lightning validates without gradients; the evaluator re-enables them for the explainers.
    Metric states are torchmetrics states, so DDP processes are reduced before logging.
    """

    def __init__(
        self,
        explainers: Mapping[str, Any],
        metrics: Mapping[str, Any],
        max_samples: int = 256,
        every_n_epochs: int = 1,
        stages: Sequence[str] = ("val", "test"),
    ) -> None:
        bad = set(stages) - {"val", "test"}
        if bad:
            raise ValueError(
                f"ExplanationMetrics stages must be 'val' and/or 'test', got {sorted(bad)}."
            )
        self.explainers = instantiate_named_dict(explainers)
        self.metrics = instantiate_named_dict(metrics)
        self.max_samples = max_samples
        self.every_n_epochs = max(1, every_n_epochs)
        self.stages = tuple(stages)
        self.evaluator: ExplanationEvaluator | None = None
        self._active = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.evaluator is not None:
            return
        # metrics are checked against the data's annotations here, once, not batch by batch
        datamodule = trainer.datamodule
        self.evaluator = ExplanationEvaluator(
            self.explainers,
            self.metrics,
            mean=datamodule.mean,
            std=datamodule.std,
            annotations=datamodule.annotations,
        )

    # -- one routine for both stages ------------------------------------------------------------
    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._active = stage in self.stages and not trainer.sanity_checking
        if stage == "val":
            self._active = self._active and trainer.current_epoch % self.every_n_epochs == 0
        if self._active:
            self.evaluator.to(pl_module.device).reset()

    def _batch(self, pl_module: L.LightningModule, batch: dict) -> None:
        if not self._active or self.evaluator.images >= self.max_samples:
            return
        room = self.max_samples - self.evaluator.images
        if batch["image"].shape[0] > room:
            batch = {k: v[:room] if isinstance(v, Tensor) else v for k, v in batch.items()}
        self.evaluator.update(pl_module, batch)

    def _end(self, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active:
            return
        self._active = False
        for explainer, row in self.evaluator.compute().items():
            for key, value in row.items():
                # values are already reduced across processes by torchmetrics
                pl_module.log(
                    f"{stage}/{key}/{explainer}", value, sync_dist=False, rank_zero_only=False
                )

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module, "val")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._batch(pl_module, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._end(pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module, "test")

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._batch(pl_module, batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end(pl_module, "test")

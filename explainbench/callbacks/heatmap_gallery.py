"""``HeatmapGallery``: the same few images with each explainer's overlay, to every image logger."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

from ..evaluation import render_gallery
from ..utils.instantiate import instantiate_named_dict
from ..viz import figure_to_array, save_figure


class HeatmapGallery(Callback):
    """Logs a gallery of ``num_images`` fixed images (the first of the val/test loader) with one
    overlay per explainer: to W&B and TensorBoard when they are active, and as PNG under
    ``<run_dir>/gallery/``.

    Args:
        explainers: name → explainer (or its ``_target_`` config): the composed
            ``explainers`` group, one gallery column each (``None`` entries are skipped).
        num_images: rows of the gallery.
        every_n_epochs: how often during validation (the test gallery is always drawn).
        dirpath: where PNGs go (default: the trainer's ``default_root_dir``/gallery).
    """

    def __init__(
        self,
        explainers: Mapping[str, Any],
        num_images: int = 8,
        every_n_epochs: int = 5,
        dirpath: str | None = None,
    ) -> None:
        self.explainers = instantiate_named_dict(explainers)
        self.num_images = num_images
        self.every_n_epochs = max(1, every_n_epochs)
        self.dirpath = dirpath
        self._images: dict[str, dict[str, Tensor]] = {}

    def _keep(self, stage: str, batch: dict) -> None:
        if stage not in self._images:  # fixed: the first images of the loader, every epoch
            self._images[stage] = {
                k: v[: self.num_images].detach().clone()
                for k, v in batch.items()
                if isinstance(v, Tensor)
            }

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or stage not in self._images:
            return
        dm = trainer.datamodule
        batch = {k: v.to(pl_module.device) for k, v in self._images[stage].items()}
        fig = render_gallery(
            pl_module, batch, self.explainers, dm.mean, dm.std, getattr(dm, "class_names", None)
        )
        image = figure_to_array(fig)
        step, key = trainer.current_epoch, f"{stage}/gallery"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=trainer.global_step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
        folder = Path(self.dirpath or trainer.default_root_dir) / "gallery"
        save_figure(fig, folder / (f"val_epoch{step:03d}.png" if stage == "val" else "test.png"))

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self._keep("val", batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._draw(trainer, pl_module, "val")

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if batch_idx == 0:
            self._keep("test", batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "test")

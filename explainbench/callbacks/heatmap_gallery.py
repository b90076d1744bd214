"""``HeatmapGallery``: the same few images with each explainer's overlay, to every image logger."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

from ..utils.image import denormalize
from ..viz import figure_to_array, gallery_figure, save_figure
from .evaluator import _copy_for_autograd
from .resolve import resolve_explainers


def render_gallery(
    model: torch.nn.Module,
    batch: Mapping[str, Tensor],
    explainers: Mapping[str, Any],
    mean,
    std,
    class_names: list[str] | None = None,
):
    """Explain ``batch`` with each explainer and lay the overlays out in one figure.

    A model with ``gallery_extras(x) -> (texts, maps)`` (EAT: its sentence and attribute maps)
    adds a text line under each caption and its own map columns after the explainers'.
    """
    texts: list[str] = []
    with torch.inference_mode(False):
        batch = _copy_for_autograd(batch)
        x = batch["image"]
        maps = {name: explainer(model, x).saliency.detach().cpu() for name, explainer in explainers.items()}
        extras = getattr(model, "gallery_extras", None)
        if callable(extras):
            texts, own_maps = extras(x)
            maps.update({name: m.detach().cpu() for name, m in own_maps.items()})
        with torch.no_grad():
            pred = model(x).argmax(1).cpu()
    label = batch["label"].cpu()

    def name(i: int) -> str:
        return class_names[i] if class_names else str(i)

    captions = [f"y={name(int(t))}\np={name(int(p))}" for t, p in zip(label, pred, strict=True)]
    if texts:  # wrapped narrow enough to sit beside one image row
        captions = [c + "\n" + textwrap.fill(t, 28) for c, t in zip(captions, texts, strict=True)]
    return gallery_figure(denormalize(x.detach().cpu(), mean, std), maps, captions)


class HeatmapGallery(Callback):
    """Logs a gallery of ``num_images`` fixed images (the first of the val/test loader) with one
    overlay per explainer: to W&B and TensorBoard when they are active, and as PNG under
    ``<run_dir>/gallery/``.

    Args:
        explainers: names from ``conf/explainer/`` or a dict name → config/object.
        num_images: rows of the gallery.
        every_n_epochs: how often during validation (the test gallery is always drawn).
        dirpath: where PNGs go (default: the trainer's ``default_root_dir``/gallery).
    """

    def __init__(self, explainers: Any = ("gradcam",), num_images: int = 8, every_n_epochs: int = 5,
                 dirpath: str | None = None) -> None:
        self.explainer_spec = explainers
        self.num_images = num_images
        self.every_n_epochs = max(1, every_n_epochs)
        self.dirpath = dirpath
        self.explainers: dict[str, Any] | None = None
        self._images: dict[str, dict[str, Tensor]] = {}

    def setup(self, trainer, pl_module, stage) -> None:
        if self.explainers is None:
            self.explainers = resolve_explainers(self.explainer_spec)

    def _keep(self, stage: str, batch: dict) -> None:
        if stage not in self._images:  # fixed: the first images of the loader, every epoch
            self._images[stage] = {k: v[: self.num_images].detach().clone() for k, v in batch.items()
                                   if isinstance(v, Tensor)}

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or stage not in self._images:
            return
        dm = trainer.datamodule
        batch = {k: v.to(pl_module.device) for k, v in self._images[stage].items()}
        fig = render_gallery(pl_module, batch, self.explainers, dm.mean, dm.std, getattr(dm, "class_names", None))
        image = figure_to_array(fig)
        step, key = trainer.current_epoch, f"{stage}/gallery"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=trainer.global_step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
        folder = Path(self.dirpath or trainer.default_root_dir) / "gallery"
        save_figure(fig, folder / (f"val_epoch{step:03d}.png" if stage == "val" else "test.png"))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self._keep("val", batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._draw(trainer, pl_module, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:
            self._keep("test", batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._draw(trainer, pl_module, "test")

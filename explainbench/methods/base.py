"""``ExplainableMethod``: the LightningModule every method (classifier, L-CAM, EAT, ...) extends.

A subclass implements :meth:`loss` (named loss terms plus the logits they came from) and,
if it has a built-in explanation, :meth:`explain`. The base logs every term as
``{stage}/loss/{term}``, the total as ``{stage}/loss`` and accuracy as ``{stage}/acc``, and
builds the optimiser and scheduler from the ``_partial_`` configs it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MultilabelAccuracy

from ..backbones import Backbone
from ..callbacks.skipped_images import SkippedImages
from ..explainers.base import Explanation
from ..utils.hparams import PlainHyperparameters

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ExplainableMethod(PlainHyperparameters, L.LightningModule):
    """Base class. ``forward(x) → logits``; ``features``/``head`` expose the explanation layer
    so every post-hoc explainer works on any method.

    Args:
        backbone: the network split at its explanation layer.
        optimizer: a partially-initialised optimiser (``_partial_: true``), called with the
            trainable parameters.
        scheduler: optional partially-initialised LR scheduler, stepped once per epoch.
        scheduler_monitor: metric a ``ReduceLROnPlateau``-style scheduler watches.
        multilabel: the data gives ``num_classes`` independent 0/1 labels per image (``label``
            float ``[B, num_classes]``, e.g. CelebA's 40 attributes) instead of one class:
            :meth:`classification_loss` is then the mean per-label BCE and ``acc`` the mean
            per-label accuracy (the "average class accuracy" of CelebA papers). Set from the data
            module's ``multilabel`` by ``build_method``, stored with the checkpoint.
    """

    def __init__(
        self,
        backbone: Backbone,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        multilabel: bool = False,
    ) -> None:
        super().__init__()
        # The backbone is a module (saved in the state dict); its *config* is stored with the
        # checkpoint by train.py (see on_save_checkpoint), so hparams stay small and loggable;
        # plain containers only (PlainHyperparameters), for weights_only checkpoint loads.
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"], logger=False)
        self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = backbone.num_classes
        self.run_config: dict | None = None
        self.multilabel = bool(multilabel)
        if self.multilabel:
            acc = MultilabelAccuracy(num_labels=self.num_classes, average="macro")
        else:
            acc = MulticlassAccuracy(num_classes=self.num_classes, average="micro")
        self.accuracy = nn.ModuleDict({s: acc.clone() for s in ("train_", "val_", "test_")})
        self.val_acc_best = MaxMetric()
        # the best accuracy of the run a resumed run continues (see on_load_checkpoint)
        self._resumed_val_acc_best: Tensor | None = None

    # -- the explanation contract -------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        return self.backbone.features(x)

    def head(self, a: Tensor) -> Tensor:
        return self.backbone.head(a)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def explain(self, x: Tensor, target: Tensor | int | None = None) -> Explanation:
        raise NotImplementedError(
            f"{type(self).__name__} has no built-in explanation: evaluate it with a post-hoc "
            "explainer instead (e.g. explainer=gradcam)."
        )

    def gallery_extras(self, x: Tensor) -> tuple[list[str], dict[str, Tensor]]:
        """What the method adds to a heatmap gallery (:func:`~explainbench.evaluation.render_gallery`):
        one text per image, shown under its caption, and named ``[B,1,H,W]`` maps in ``[0, 1]``,
        shown as columns after the explainers'. None by default; EAT adds its sentence and the
        maps of its top attributes."""
        return [], {}

    # -- what subclasses implement ---------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Return ``(logits, terms)``: the logits used for accuracy and the named, already
        weighted loss terms whose sum is minimised."""
        raise NotImplementedError

    def classification_loss(self, logits: Tensor, label: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """Cross-entropy against the class, or (``multilabel``) the mean over labels and images of
        the per-label binary cross-entropy; smoothing moves 0/1 targets towards 1/2 there."""
        if not self.multilabel:
            return F.cross_entropy(logits, label, label_smoothing=label_smoothing)
        target = label.float() * (1.0 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits, target)

    # -- Lightning plumbing ----------------------------------------------------------------
    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor | None:
        if batch["label"].numel() == 0:  # every image of the batch was unreadable and skipped
            return None
        logits, terms = self.loss(batch)
        total = torch.stack(list(terms.values())).sum()
        # train: per-step curves named exactly `train/loss`, `train/loss/<term>`; val/test: epoch means
        train = stage == "train"
        log = dict(on_step=train, on_epoch=not train, sync_dist=not train, batch_size=batch["label"].shape[0])
        if len(terms) > 1:
            for name, value in terms.items():
                self.log(f"{stage}/loss/{name}", value.detach(), **log)
        self.log(f"{stage}/loss", total.detach(), prog_bar=True, **log)
        acc = self.accuracy[f"{stage}_"]
        if self.multilabel:
            # probabilities, not logits: torchmetrics would take logits that all happen to lie
            # in [0, 1] for probabilities and skip its sigmoid
            acc(logits.detach().sigmoid(), batch["label"].long())
        else:
            acc(logits.detach(), batch["label"])
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=not train,
                 batch_size=log["batch_size"])
        return total

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_start(self) -> None:
        # Sanity-check validation would otherwise leak into the best-accuracy tracker.
        self.val_acc_best.reset()
        if self._resumed_val_acc_best is not None:
            self.val_acc_best.update(self._resumed_val_acc_best)
            self._resumed_val_acc_best = None

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.accuracy["val_"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError(f"{type(self).__name__} has no optimizer: set method.optimizer in the config.")
        optimizer = self.optimizer_factory(params=self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": self.hparams.scheduler_monitor},
        }

    def configure_callbacks(self) -> list[L.Callback]:
        # Counting unreadable images and refusing a split with none readable must not depend
        # on the `callbacks` config; one instance for fit and test, so files count once.
        if getattr(self, "_skipped_images", None) is None:
            self._skipped_images = SkippedImages()
        return [self._skipped_images]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lets evaluate.py rebuild the exact backbone and method from the checkpoint alone.
        if self.run_config is not None:
            checkpoint["explainbench_config"] = self.run_config
        # torchmetrics keeps metric states out of the state dict: without this a resumed run
        # would forget the best accuracy so far and report val/acc_best of its own epochs only
        if self.val_acc_best.update_called:
            checkpoint["val_acc_best"] = self.val_acc_best.compute().detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # applied in on_train_start, which resets the tracker first
        self._resumed_val_acc_best = checkpoint.get("val_acc_best")

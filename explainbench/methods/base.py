"""``ExplainableMethod``: the LightningModule every method (classifier, L-CAM, EAT, ...) extends.

A subclass implements :meth:`loss` (named loss terms plus the logits they came from) and,
if it has a built-in explanation, :meth:`explain`. The base logs every term as
``{stage}/loss/{term}``, the total as ``{stage}/loss`` and accuracy as ``{stage}/acc``, and
builds the optimiser and scheduler from the ``_partial_`` configs it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MultilabelAccuracy

from ..backbones import Backbone
from ..callbacks.skipped_images import SkippedImages
from ..data.info import DataInfo
from ..explainers.base import Explanation
from ..utils.hparams import PlainHyperparameters, to_plain

# The checkpoint entry holding ``build_config`` (see ExplainableMethod); read back by
# explainbench.methods.build.load_method.
BUILD_CONFIG_KEY = "build_config"

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def check_label_kind(method: type[ExplainableMethod], data_info: DataInfo) -> None:
    """Refuse multi-label data for a method that learns one class per image."""
    if data_info.multilabel and not method.supports_multilabel:
        raise ValueError(
            f"{method.__name__} learns one class per image, but the data gives several 0/1 "
            "labels per image (multi-label): use method=classifier, or data with one class "
            "per image."
        )


class ExplainableMethod(PlainHyperparameters, L.LightningModule):
    """Base class. ``forward(x) → logits``; ``features``/``head`` expose the explanation layer
    so every post-hoc explainer works on any method.

    Args:
        backbone: the network split at its explanation layer.
        data_info: the facts about the data (class, attribute and landmark names, mean/std,
            annotations; see :class:`~explainbench.data.info.DataInfo`), given by
            :func:`~explainbench.methods.build.build_method` from the data module, saved with the
            hyper-parameters (as a plain dict) and read back by ``self.data_info``. ``None``
            (a method built by hand) knows only the backbone's class count.
        optimizer: a partially-initialised optimiser (``_partial_: true``), called with the
            trainable parameters.
        scheduler: optional partially-initialised LR scheduler, stepped once per epoch.
        scheduler_monitor: metric a ``ReduceLROnPlateau``-style scheduler watches.
        build_config: the resolved ``data``, ``backbone`` and ``method`` configs the method was
            built from (given by ``build_method``/``load_method``); stored with ``data_info`` in
            every checkpoint under :data:`BUILD_CONFIG_KEY`, so
            evaluate.py rebuilds the method from the checkpoint alone. ``None``: nothing stored.

    Multi-label data (``data_info.multilabel``: ``label`` float ``[B, num_classes]`` of
    independent 0/1 labels, e.g. CelebA's 40 attributes): :meth:`classification_loss` is the mean
    per-label BCE and ``acc`` the mean per-label accuracy (the "average class accuracy" of CelebA
    papers). Only methods that set ``supports_multilabel`` accept it (:func:`check_label_kind`).
    """

    # whether the method's loss works on multi-label targets (classification_loss); one whose
    # loss or explanation picks one class per image (EAT's sentence, L-CAM's target) does not
    supports_multilabel: ClassVar[bool] = False

    def __init__(
        self,
        backbone: Backbone,
        data_info: DataInfo | Mapping | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        build_config: Mapping | None = None,
    ) -> None:
        super().__init__()
        data_info = DataInfo.coerce(data_info, backbone.num_classes)
        check_label_kind(type(self), data_info)
        if data_info.num_classes != backbone.num_classes:
            raise ValueError(
                f"The backbone has {backbone.num_classes} classes but the data has "
                f"{data_info.num_classes}: build the backbone for this data."
            )
        # The backbone is a module (saved in the state dict); its *config* is stored with the
        # checkpoint (see on_save_checkpoint), so hparams stay small and loggable; plain
        # containers only (PlainHyperparameters, data_info as a dict), for weights_only loads.
        self.save_hyperparameters(
            ignore=["backbone", "optimizer", "scheduler", "build_config"], logger=False
        )
        self.backbone = backbone
        self.data_info = data_info
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = backbone.num_classes
        self.build_config: dict[str, Any] | None = None
        if build_config is not None:
            self.build_config = {**to_plain(dict(build_config)), "data_info": data_info.to_dict()}
        self.multilabel = data_info.multilabel
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

    def classification_loss(
        self, logits: Tensor, label: Tensor, label_smoothing: float = 0.0
    ) -> Tensor:
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
        log = dict(
            on_step=train,
            on_epoch=not train,
            sync_dist=not train,
            batch_size=batch["label"].shape[0],
        )
        if len(terms) > 1:
            for name, value in terms.items():
                self.log(f"{stage}/loss/{name}", value.detach(), **log)
        self.log(f"{stage}/loss", total.detach(), prog_bar=True, **log)
        acc = self.accuracy[f"{stage}_"]
        if self.multilabel:
            # probabilities, not logits: torchmetrics would take logits that all happen to lie
            # in [0, 1] for probabilities and skip its sigmoid
            preds, target = logits.detach().sigmoid(), batch["label"].long()
        else:
            preds, target = logits.detach(), batch["label"]
        if train:
            # only the state update per step; the epoch value is logged in on_train_epoch_end.
            # Logging the metric object every step cost ~1 ms per step (Lightning moves it to the
            # device in every self.log) and calling it computed a batch value nobody logs:
            # 18 % of the training throughput of small_cnn at 32 px (scripts/bench_train.py)
            acc.update(preds, target)
            return total
        acc(preds, target)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=log["batch_size"])  # fmt: skip
        return total

    def on_train_epoch_end(self) -> None:
        # the epoch's training accuracy (torchmetrics syncs its state over processes in compute())
        acc = self.accuracy["train_"]
        if acc.update_called:
            self.log("train/acc", acc.compute())
            acc.reset()

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
            raise ValueError(
                f"{type(self).__name__} has no optimizer: set method.optimizer in the config."
            )
        optimizer = self.optimizer_factory(params=self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": "epoch",
                "monitor": self.hparams.scheduler_monitor,
            },
        }

    def configure_callbacks(self) -> list[L.Callback]:
        # Counting unreadable images and refusing a split with none readable must not depend
        # on the `callbacks` config; one instance for fit and test, so files count once.
        if getattr(self, "_skipped_images", None) is None:
            self._skipped_images = SkippedImages()
        return [self._skipped_images]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lets evaluate.py rebuild the exact backbone and method from the checkpoint alone.
        if self.build_config is not None:
            checkpoint[BUILD_CONFIG_KEY] = self.build_config
        # torchmetrics keeps metric states out of the state dict: without this a resumed run
        # would forget the best accuracy so far and report val/acc_best of its own epochs only
        if self.val_acc_best.update_called:
            checkpoint["val_acc_best"] = self.val_acc_best.compute().detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # applied in on_train_start, which resets the tracker first
        self._resumed_val_acc_best = checkpoint.get("val_acc_best")

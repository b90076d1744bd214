"""Region grouping with the part-occurrence prior.

Huang & Li, "Interpretable and Accurate Fine-grained Recognition via Region Grouping", CVPR 2020.

The last block of the backbone is replaced (``attach``: ResNet after ``layer3``, see
:mod:`explainbench.backbones.truncate`) by

* a grouping unit: part dictionary ``D`` (K parts), soft assignment ``Q [K,H,W]`` (Eq. 1) and
  region features ``Z = [z_1..z_K]`` (Eq. 3), see :class:`~.region_group_parts.GroupingUnit`;
* ``f_z``: residual bottleneck blocks of 1x1 convolutions over each region feature;
* attention ``a = softmax_k(f_a(Z))`` (1x1 bottlenecks, a 1x1 conv to one score, BN, ReLU);
* the prediction ``W f_z(Z) a`` (the authors' code puts a BatchNorm before ``W``; kept).

Loss: ``CE`` (multi-label data: the mean of per-label binary cross-entropies, CelebA's 40
attributes) ``+ prior_weight × prior``, where the prior term is Eq. 2: the log-scale 1D Wasserstein
distance between each part's occurrence over the batch and Beta(α, β) quantiles.

Explanation: the pixel attribution ``Qᵀa`` upsampled to the input (one forward pass); the part
maps ``Q`` come with it (``extras["parts"]``) and from :meth:`RegionGroup.part_maps`, for the
landmark metric. ``features``/``head`` split at the attach layer, so post-hoc explainers work too.

Ablations: ``prior_weight=0`` (no prior; the paper's "w/o regularization") and
``attention=false`` (``a`` uniform, ``1/K``: the region features are averaged).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..backbones.truncate import truncate_backbone
from ..explainers.base import Explanation, normalize_per_image, resolve_target
from .base import ExplainableMethod
from .region_group_parts import (
    GroupingUnit,
    bottleneck_stack,
    check_prior_batch,
    part_occurrence,
    prior_loss,
)


class RegionOutputs(NamedTuple):
    """One pass through the region-grouping head."""

    logits: Tensor  # [B,C]
    parts: Tensor  # Q [B,K,H,W]
    attention: Tensor  # a [B,K]


class RegionGroup(ExplainableMethod):
    """Region grouping on any backbone (see the module docstring).

    Args:
        backbone: cut at ``attach``; its later layers and classifier are dropped.
        num_parts: ``K`` (paper: 9 CelebA, 5 CUB, 8 iNaturalist).
        attach: the backbone stage the grouping unit sits on, or ``"auto"`` (ResNet ``layer3``,
            ``small_cnn`` its stage before the last; see :mod:`explainbench.backbones.truncate`).
        region_channels: channels of ``f_z(Z)`` (default: twice the attach layer's, as ResNet's
            ``layer4`` doubles ``layer3``'s 1024 to 2048).
        feature_blocks, attention_blocks: bottleneck blocks in ``f_z`` and ``f_a`` (code: 4, 2).
        attention: ``False`` replaces ``a`` by ``1/K`` (the "w/o attention" ablation).
        prior_weight: weight of the prior term relative to the classification loss's 1 (CUB 2:1
            → 0.5, CelebA and iNaturalist 10:1 → 0.1); 0 drops the term.
        prior_alpha, prior_beta: the Beta prior of part occurrence (paper: 1, 1e-3).
        smooth_radius, smooth_std: the Gaussian applied to ``Q`` before the occurrence max-pool
            (code: radius 2, i.e. 5x5, std 0.4).
        head_lr_multiplier: learning rate of the new modules relative to the backbone's (the
            authors' code: 20); applied to the optimizer's ``lr``.
        **kwargs: optimizer / scheduler, see :class:`ExplainableMethod`.
    """

    # CelebA's 40 attributes: the base's per-label BCE and accuracy (DataInfo.multilabel)
    supports_multilabel = True

    def __init__(
        self,
        backbone,
        num_parts: int = 5,
        attach: str = "auto",
        region_channels: int | None = None,
        feature_blocks: int = 4,
        attention_blocks: int = 2,
        attention: bool = True,
        prior_weight: float = 0.5,
        prior_alpha: float = 1.0,
        prior_beta: float = 1e-3,
        smooth_radius: int = 2,
        smooth_std: float = 0.4,
        head_lr_multiplier: float = 1.0,
        **kwargs,
    ) -> None:
        if prior_weight < 0:
            raise ValueError(f"method.prior_weight must be >= 0, got {prior_weight}")
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError(
                f"the Beta prior needs alpha, beta > 0, got {prior_alpha}, {prior_beta}"
            )
        truncate_backbone(backbone, attach)
        super().__init__(backbone, **kwargs)
        self.num_parts = int(num_parts)
        self.use_attention = bool(attention)
        self.prior_weight = float(prior_weight)
        self.prior_alpha, self.prior_beta = float(prior_alpha), float(prior_beta)
        self.smooth_radius, self.smooth_std = int(smooth_radius), float(smooth_std)
        self.head_lr_multiplier = float(head_lr_multiplier)

        channels = backbone.feature_channels
        out = int(region_channels or 2 * channels)
        self.grouping = GroupingUnit(channels, self.num_parts)
        self.region_net = bottleneck_stack(channels, out, feature_blocks)  # f_z
        self.attention_net = (  # f_a
            nn.Sequential(
                *bottleneck_stack(channels, channels, attention_blocks),
                nn.Conv2d(channels, 1, 1),
                nn.BatchNorm2d(1),
                nn.ReLU(inplace=True),
            )
            if self.use_attention
            else None
        )
        self.region_norm = nn.BatchNorm1d(out)
        self.classifier = nn.Linear(out, self.num_classes)  # W
        self._small_batch_warned = False

    # -- the network -------------------------------------------------------------------------
    def outputs(self, x: Tensor) -> RegionOutputs:
        """Logits, part maps and attention for attach-layer features ``x [B,D,H,W]``."""
        z, q = self.grouping(x)
        regions = z.unsqueeze(-1)  # [B,D,K,1]: 1x1 convolutions act on each region feature
        if self.attention_net is not None:
            a = self.attention_net(regions).flatten(1).softmax(dim=1)  # [B,K]
        else:
            a = q.new_full((q.shape[0], self.num_parts), 1.0 / self.num_parts)
        pooled = torch.einsum("bck,bk->bc", self.region_net(regions).squeeze(-1), a)  # f_z(Z) a
        return RegionOutputs(self.classifier(self._normalize_regions(pooled)), q, a)

    def _normalize_regions(self, pooled: Tensor) -> Tensor:
        """The BatchNorm before ``W``; a one-image training batch (a split's remainder) has no
        batch statistics, so it uses the running ones instead of failing."""
        if not (self.training and pooled.shape[0] == 1):
            return self.region_norm(pooled)
        self.region_norm.eval()
        try:
            return self.region_norm(pooled)
        finally:
            self.region_norm.train()

    def head(self, a: Tensor) -> Tensor:
        return self.outputs(a).logits

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def part_maps(self, x: Tensor) -> Tensor:
        """``Q [B,K,H,W]`` at the attach layer's resolution (the landmark metric's input)."""
        return self.grouping(self.features(x)).parts

    # -- training ----------------------------------------------------------------------------
    def trainable_parameters(self) -> list:
        """One parameter group, or with ``head_lr_multiplier != 1`` two: the (pretrained) backbone
        at the optimizer's lr and the new modules at ``head_lr_multiplier`` × lr."""
        params = super().trainable_parameters()
        if self.head_lr_multiplier == 1.0:
            return params
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        if lr is None:
            raise ValueError(
                "method.head_lr_multiplier needs the optimizer's lr in its config (method.optimizer.lr)."
            )
        backbone = {id(p) for p in self.backbone.parameters()}
        return [
            {"params": [p for p in params if id(p) in backbone], "lr": lr},
            {
                "params": [p for p in params if id(p) not in backbone],
                "lr": lr * self.head_lr_multiplier,
            },
        ]

    def on_fit_start(self) -> None:
        # Fail before the first step rather than at it: the prior needs >= 2 images per batch.
        datamodule = getattr(self.trainer, "datamodule", None)
        size = getattr(datamodule, "batch_size", None)
        if self.prior_weight > 0 and isinstance(size, int):
            check_prior_batch(size)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.outputs(self.features(batch["image"]))
        # the base's loss: CE, or on multi-label data (CelebA's 40 attributes) the mean BCE
        ce = self.classification_loss(out.logits, batch["label"])
        terms = {"bce" if self.multilabel else "ce": ce}
        if self.prior_weight > 0:
            n = out.parts.shape[0]
            if n >= 2:
                occurrence = part_occurrence(out.parts, self.smooth_radius, self.smooth_std)
                terms["prior"] = self.prior_weight * prior_loss(
                    occurrence, self.prior_alpha, self.prior_beta
                )
            elif not self._small_batch_warned:  # a one-image remainder batch (batch_size >= 2)
                self._small_batch_warned = True
                warnings.warn(
                    "A batch of 1 image has no part-occurrence distribution: its prior term is skipped "
                    "(the last batch of a split whose size leaves a remainder of 1).",
                    stacklevel=2,
                )
        return out.logits, terms

    # -- explanations ------------------------------------------------------------------------
    @torch.no_grad()
    def explain(self, x: Tensor, target: Tensor | int | None = None) -> Explanation:
        """``Qᵀa`` upsampled to the input, min-max normalised; one forward pass.

        The attribution is the same for every class (one attention over parts); ``target`` only
        sets which class is reported. ``extras``: ``parts`` (``Q``) and ``attention`` (``a``).
        """
        out = self.outputs(self.features(x))
        target = resolve_target(out.logits, target)
        attribution = torch.einsum("bkhw,bk->bhw", out.parts, out.attention).unsqueeze(1)
        attribution = F.interpolate(
            attribution, size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        saliency = normalize_per_image(attribution).clamp(0, 1)
        extras = {"parts": out.parts, "attention": out.attention}
        return Explanation(saliency, target, forward_passes=1.0, backward_passes=0.0, extras=extras)

    @torch.no_grad()
    def part_segmentation(self, x: Tensor) -> Tensor:
        """``[B,1,H,W]`` in [0, 1]: each pixel's most likely part ``k`` as ``k/(K−1)``, so a
        colour map draws the parts in ``K`` distinct colours."""
        parts = F.interpolate(
            self.part_maps(x), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return (parts.argmax(dim=1, keepdim=True).float() / (self.num_parts - 1)).clamp(0, 1)

    def gallery_extras(self, x: Tensor) -> tuple[list[str], dict[str, Tensor]]:
        """The coloured part segmentation as a column, and each image's part attention as text
        (``p<k>:<a_k>``, largest first); see :meth:`ExplainableMethod.gallery_extras`."""
        with torch.no_grad():
            attention = self.outputs(self.features(x)).attention
        texts = [
            " ".join(
                f"p{k}:{row[k]:.2f}" for k in sorted(range(len(row)), key=lambda k: -row[k])[:3]
            )
            for row in attention.tolist()
        ]
        return texts, {"parts": self.part_segmentation(x)}

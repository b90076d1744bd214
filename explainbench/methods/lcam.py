"""L-CAM-Fm and L-CAM-Img: a learned attention on a frozen classifier.

Gkartzonika, Gkalelis, Mezaris, "Learning visual explanations for DCNN-based image classifiers
using an attention mechanism", ECCV 2022 workshops.

The classifier f (the backbone) is frozen. An attention g is a 1x1 convolution from the K
channels of the explanation layer A to R class maps L; for class y the map L^(y) is kept and
squashed, S = σ(L^(y)).

* L-CAM-Fm re-weights the feature maps: u = head(A ⊙ S).
* L-CAM-Img masks the image: u = f(X ⊙ θ(S)), θ = bilinear upsampling, applied to the
  un-normalised [0,1] image (masked pixels are black) and re-normalised before f.

Loss: λ1·TV(S) + λ2·AV(S) + λ3·CE(y, u) with TV(S) = Σ_{p,q} (s_{p,q}−s_{p,q+1})² +
(s_{p,q}−s_{p+1,q})² per image and AV(S) = mean(S^λ4); during training y is f's own top-1
("model truth"). The explanation of any class c is θ(ζ(L^(c))) (min-max, then upsample): one
forward pass, no backward.

Paper, not the authors' code. Where the two differ, this module follows the paper's Eqs. (6)-(8),
because the paper is what readers compare against and its λ values were tuned for those terms:

* TV: the paper's Σ of squared horizontal and vertical differences. The code halves it and adds a
  0.3-weighted border term.
* AV: the paper's mean(S^λ4). The code uses mean((S + 5e-4)^0.3); here a clamp at 1e-30 only
  keeps the gradient finite (the value moves by at most 1e-9 per pixel).
* Maps: each image's own target map (B maps per batch), as Eq. (6) reads. The code's training
  script builds N×N maps (every image's map for every label in the batch), N times the work.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..explainers.base import Explanation, normalize_per_image, resolve_target
from ..utils.image import denormalize, normalize
from .base import ExplainableMethod


def total_variation(s: Tensor) -> Tensor:
    """Σ over each ``[B,1,P,Q]`` map of squared horizontal and vertical differences, averaged over B."""
    dh = (s[..., :, :-1] - s[..., :, 1:]).pow(2).flatten(1).sum(1)
    dv = (s[..., :-1, :] - s[..., 1:, :]).pow(2).flatten(1).sum(1)
    return (dh + dv).mean()


def area_loss(s: Tensor, exponent: float) -> Tensor:
    """mean(S^λ4): small exponents push the mask towards few, confident regions.

    The clamp only keeps the gradient λ4·s^(λ4−1) finite where σ underflows to 0; it changes
    the value by at most 1e-9 per pixel.
    """
    return s.clamp_min(1e-30).pow(exponent).mean()


class LCAM(ExplainableMethod):
    """L-CAM on a frozen backbone (see module docstring).

    Args:
        backbone: the trained classifier to explain; it must come with weights
            (``backbone.weights`` or ``backbone.checkpoint``).
        variant: ``"fm"`` (re-weight feature maps) or ``"img"`` (mask the input image).
        tv_weight, area_weight, ce_weight: λ1, λ2, λ3 (paper: 0.01, 2, 1.5).
        area_exponent: λ4 (paper: 0.3).
        ce_only: the paper's L-CAM-Fm*/Img* ablation (only the CE term).
        target_source: ``"model"`` (f's top-1, the paper) or ``"label"`` (ground truth).
        classifier: ``"auto"``: train.py finds or trains the frozen classifier when the backbone
            config has neither weights nor checkpoint (see
            :mod:`explainbench.methods.frozen_classifier`); ``None``: one must be given. Read by
            train.py before the backbone is built; kept here so the config instantiates.
        **kwargs: data_info (its mean/std), optimizer / scheduler, see :class:`ExplainableMethod`.
    """

    def __init__(
        self,
        backbone,
        variant: Literal["fm", "img"] = "img",
        tv_weight: float = 0.01,
        area_weight: float = 2.0,
        ce_weight: float = 1.5,
        area_exponent: float = 0.3,
        ce_only: bool = False,
        target_source: Literal["model", "label"] = "model",
        classifier: Literal["auto"] | None = "auto",
        **kwargs,
    ) -> None:
        if variant not in ("fm", "img"):
            raise ValueError(f"L-CAM variant must be 'fm' or 'img', got '{variant}'.")
        if target_source not in ("model", "label"):
            raise ValueError(f"target_source must be 'model' or 'label', got '{target_source}'.")
        if not backbone.has_trained_weights:
            raise ValueError(
                "L-CAM explains a trained, frozen classifier, but the backbone has no weights. Set "
                "backbone.weights=IMAGENET1K_V1 (torchvision, from the torch hub cache) or "
                "backbone.checkpoint=<run>/checkpoints/last.ckpt of a `python train.py method=classifier` run, "
                "or build the method with train.py and method.classifier=auto to get one made."
            )
        super().__init__(backbone, **kwargs)
        self.variant = variant
        self.tv_weight, self.area_weight, self.ce_weight = tv_weight, area_weight, ce_weight
        self.area_exponent = area_exponent
        self.ce_only = ce_only
        self.target_source = target_source
        self.backbone.requires_grad_(False)
        self.backbone.eval()  # from the start, not only once Lightning calls .train()
        self.attention = nn.Conv2d(backbone.feature_channels, backbone.num_classes, kernel_size=1)
        # The data's normalisation (L-CAM-Img masks pixels, not normalised values), from
        # data_info; buffers, so checkpoints written before data_info existed keep theirs.
        self.register_buffer("pixel_mean", torch.tensor(self.data_info.mean))
        self.register_buffer("pixel_std", torch.tensor(self.data_info.std))

    # -- keep f frozen -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> LCAM:
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics and Dropout stay as f was trained
        return self

    # -- the attention -------------------------------------------------------------------------
    def class_maps(self, a: Tensor, target: Tensor) -> Tensor:
        """L^(target): ``[B,1,P,Q]`` rows of the 1x1 conv, computed only for the needed classes."""
        weight = self.attention.weight[target]  # [B,K,1,1]
        bias = self.attention.bias[target]  # [B]
        return (a * weight).sum(1, keepdim=True) + bias.view(-1, 1, 1, 1)

    def masked_logits(self, x: Tensor, a: Tensor, s: Tensor) -> Tensor:
        """The frozen classifier's logits u on the attention-masked input or features."""
        if self.variant == "fm":
            return self.backbone.head(a * s)
        mask = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
        pixels = denormalize(x, self.pixel_mean, self.pixel_std) * mask
        return self.backbone(normalize(pixels, self.pixel_mean, self.pixel_std))

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x = batch["image"]
        with torch.no_grad():
            a = self.backbone.features(x)
            truth = (
                self.backbone.head(a).argmax(1) if self.target_source == "model" else batch["label"]
            )
        s = torch.sigmoid(self.class_maps(a, truth))
        logits = self.masked_logits(x, a, s)
        terms = {"ce": self.ce_weight * F.cross_entropy(logits, truth)}
        if not self.ce_only:
            terms["tv"] = self.tv_weight * total_variation(s)
            terms["av"] = self.area_weight * area_loss(s, self.area_exponent)
        return logits, terms

    # -- explanation ---------------------------------------------------------------------------
    @torch.no_grad()
    def explain(self, x: Tensor, target: Tensor | int | None = None) -> Explanation:
        """θ(ζ(L^(target))): min-max normalised class map upsampled to the input; one forward pass."""
        a = self.backbone.features(x)
        if target is None:
            target = resolve_target(self.backbone.head(a), None)  # same pass: features → head
        else:
            target = resolve_target(a.new_empty(a.shape[0], self.num_classes), target)
        maps = normalize_per_image(self.class_maps(a, target))
        saliency = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return Explanation(saliency.clamp(0, 1), target, forward_passes=1.0, backward_passes=0.0)

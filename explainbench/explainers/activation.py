"""The upsampled activation map of the explanation layer: a class-agnostic baseline.

Averaging the feature maps of a convolutional layer and upsampling them to the image is the
simplest "where does the network look" map; it is the baseline that class-discriminative
maps (CAM, Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016;
Grad-CAM and its successors) are compared against, and the layer-wise feature heatmaps of
the attention papers are of this kind.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Explanation, features_and_target, outside_inference_mode, upsample_to

REDUCTIONS = ("mean", "max")


def check_reduction(reduction: str) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else a ``ValueError`` listing them."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def channel_map(feats: Tensor, reduction: str = "mean") -> Tensor:
    """``[B,K,P,Q]`` activations → ``[B,1,P,Q]``: their mean or max over the channels."""
    if reduction == "mean":
        return feats.mean(dim=1, keepdim=True)
    return feats.amax(dim=1, keepdim=True)


class ActivationMap:
    """Channel-reduced activations of ``model.features(x)``, upsampled to the input size.

    One forward pass, no backward. The map ignores the target class; the target (top-1 when
    None) is still resolved from the same forward pass so the Explanation says which class the
    prediction was, and so out-of-range classes are rejected like for every other explainer.

    Args:
        reduction: ``"mean"`` (default) or ``"max"`` over the channels.
    """

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = check_reduction(reduction)

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        x, feats, target = features_and_target(model, x, target)
        with torch.inference_mode():
            cam = channel_map(feats, self.reduction)
            saliency = upsample_to(cam, x.shape[-2:])
        saliency, target, cam = outside_inference_mode(saliency, target, cam)
        return Explanation(
            saliency, target, forward_passes=1.0, backward_passes=0.0, extras={"cam": cam}
        )

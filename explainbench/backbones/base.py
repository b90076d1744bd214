"""The Backbone contract: a classifier split at its explanation layer."""

from __future__ import annotations

from torch import Tensor, nn


class Backbone(nn.Module):
    """``forward = head ∘ features``, split at the layer that explanations look at.

    Args:
        extractor: module mapping images ``[B,3,H,W]`` to the explanation layer ``A [B,K,P,Q]``.
        classifier: module mapping ``A`` to logits ``[B,R]``.
        feature_channels: ``K``.
        feature_stride: input pixels per cell of ``A`` (e.g. 8 for 8x8 maps at 64 px).
        name: registry name, for messages.

    ``extractor`` is a plain attribute so post-hoc tools that hook a layer (e.g. the
    ``grad-cam`` package's ``target_layers``) can target ``backbone.extractor``.
    """

    def __init__(
        self,
        extractor: nn.Module,
        classifier: nn.Module,
        feature_channels: int,
        feature_stride: int,
        num_classes: int,
        name: str = "backbone",
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.classifier = classifier
        self.feature_channels = feature_channels
        self.feature_stride = feature_stride
        self.num_classes = num_classes
        self.name = name
        # "torchvision:<tag>", "checkpoint:<path>" or None (random init); set by build_backbone
        self.source: str | None = None

    # channels of the input images; builders of other inputs (small_cnn) set it
    in_channels: int = 3

    @property
    def has_trained_weights(self) -> bool:
        """Whether the weights were loaded (torchvision or a checkpoint) rather than randomly
        initialised: methods that explain a frozen classifier (L-CAM) require it."""
        return self.source is not None

    def features(self, x: Tensor) -> Tensor:
        return self.extractor(x)

    def head(self, a: Tensor) -> Tensor:
        return self.classifier(a)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

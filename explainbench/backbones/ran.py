"""Residual Attention Networks (Wang et al., CVPR 2017) as backbones: ``ran56`` and ``ran92``.

Layout: a stem, then three stages, each a pre-activation bottleneck unit (stride 2 from the second
stage on) followed by ``modules[i]`` :class:`~.attention.ResidualAttention` modules
(Attention-56: 1, 1, 1; Attention-92: 1, 2, 3), then a fourth stage of three units (the first
with stride 2) and BN-ReLU. The explanation layer is that BN-ReLU output (the last feature maps
before global average pooling); the head is average pooling + linear.

Choices (the paper's numbers where it gives them):

* ``stem``: ``"cifar"`` a 3x3 convolution, no pooling (stride 1; 32x32 CIFAR inputs keep their
  resolution in stage 1), ``"imagenet"`` the 7x7/2 convolution + BN-ReLU + 3x3/2 max-pool of the
  224x224 networks (stride 4). Defaults: ``ran56`` cifar, ``ran92`` imagenet; configurable.
* ``base_width``: the bottleneck width of stage 1; the stages output ``4·base_width·2^i``
  channels. 64 gives the paper's ImageNet widths (256 .. 2048); ``ran56`` defaults to 16
  (64 .. 512) so that it trains on a CPU, a narrower network than the paper's CIFAR one.
* ``mask_depths``: max-poolings of each stage's soft-mask branch, RAN's 3, 2, 1 (56, 28, 14 ->
  7x7 at 224 px). The smallest input is the largest ``stage stride × 2^depth``: 8 px for the
  cifar stem, 32 px for the imagenet stem (an8flower's 64 px works with both).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .attention import ResidualAttention, ResidualUnit, min_mask_side
from .base import Backbone

# name -> attention modules per stage (Wang et al., Table 1 / Sec. 4)
RAN_MODULES: dict[str, tuple[int, int, int]] = {"ran56": (1, 1, 1), "ran92": (1, 2, 3)}
STEM_STRIDE = {"cifar": 1, "imagenet": 4}


class RanExtractor(nn.Sequential):
    """The network up to its explanation layer; refuses inputs its mask branches cannot pool."""

    def __init__(self, *layers: nn.Module, min_size: int, name: str) -> None:
        super().__init__(*layers)
        self.min_size = min_size
        self.net_name = name

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"Input {x.shape[-2]}x{x.shape[-1]} is too small for {self.net_name}: its "
                f"soft-mask branches need inputs of at least {self.min_size}x{self.min_size} px "
                "(stage stride x 2^max-poolings); use larger images (e.g. data.image_size) or a "
                "smaller backbone.mask_depths."
            )
        return super().forward(x)


def _stem(kind: str, width: int) -> list[nn.Module]:
    if kind == "cifar":
        return [nn.Conv2d(3, width, 3, padding=1, bias=False)]
    if kind == "imagenet":
        return [
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
    raise ValueError(f"Unknown RAN stem '{kind}'. Valid: {', '.join(STEM_STRIDE)}.")


def ran(
    name: str,
    num_classes: int,
    stem: str | None = None,
    base_width: int | None = None,
    mask_depths: Sequence[int] = (3, 2, 1),
) -> Backbone:
    """``ran56`` or ``ran92`` with a ``num_classes``-way head (see the module docstring)."""
    if name not in RAN_MODULES:
        raise ValueError(f"Unknown RAN '{name}'. Valid: {', '.join(RAN_MODULES)}.")
    stem = stem or ("cifar" if name == "ran56" else "imagenet")
    base = int(base_width or (16 if name == "ran56" else 64))
    depths = [int(d) for d in mask_depths]
    if len(depths) != 3 or min(depths) < 1:
        raise ValueError(
            f"backbone.mask_depths must be three max-pooling counts >= 1 (one per attention "
            f"stage), got {list(mask_depths)}"
        )
    layers = _stem(stem, base)
    cin = base
    min_size = 1
    for i, (count, depth) in enumerate(zip(RAN_MODULES[name], depths, strict=True)):
        width = 4 * base * 2**i
        layers.append(ResidualUnit(cin, width, stride=1 if i == 0 else 2))
        layers += [ResidualAttention(width, depth=depth) for _ in range(count)]
        min_size = max(min_size, STEM_STRIDE[stem] * 2**i * min_mask_side(depth))
        cin = width
    width = 4 * base * 8
    layers += [ResidualUnit(cin, width, stride=2), ResidualUnit(width, width)]
    layers += [ResidualUnit(width, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    extractor = RanExtractor(*layers, min_size=min_size, name=name)
    classifier = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(width, num_classes)
    )
    stride = STEM_STRIDE[stem] * 8
    return Backbone(extractor, classifier, width, stride, num_classes, name=name)

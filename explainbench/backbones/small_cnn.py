"""A compact VGG-style CNN with BatchNorm: the default backbone for small images (an8flower, CIFAR)."""

from __future__ import annotations

from torch import nn

from .base import Backbone


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def small_cnn(
    num_classes: int,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    convs_per_stage: int = 2,
    dropout: float = 0.2,
    in_channels: int = 3,
) -> Backbone:
    """VGG-style stages of ``convs_per_stage`` 3x3 conv+BN+ReLU, a 2x2 max-pool between stages.

    With the default four stages the explanation layer is the last stage's ReLU output at
    stride 8 (8x8 maps at 64 px): no pool follows it, since that would halve the resolution
    explanations are read from. The head is global average pooling + dropout + linear, so
    CAM-style maps are meaningful. The default widths keep a training step cheap on CPU.
    ``in_channels``: 3 for RGB, 1 for grey images (MNIST with ``data.channels=1``).
    """
    if in_channels < 1:
        raise ValueError(f"backbone.in_channels must be >= 1, got {in_channels}")
    layers: list[nn.Module] = []
    cin = in_channels
    for stage, width in enumerate(widths):
        if stage > 0:
            layers.append(nn.MaxPool2d(2))
        for _ in range(convs_per_stage):
            layers += _conv_bn_relu(cin, width)
            cin = width
    classifier = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)
    )
    stride = 2 ** (len(widths) - 1)
    backbone = Backbone(
        nn.Sequential(*layers), classifier, cin, stride, num_classes, name="small_cnn"
    )
    backbone.in_channels = in_channels
    return backbone

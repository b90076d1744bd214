"""torchvision classifiers split at their explanation layer.

Each builder returns a :class:`Backbone` whose ``extractor`` ends at the layer the
papers explain (e.g. VGG-16 conv5_3+ReLU for Grad-CAM / L-CAM) and whose
``classifier`` is the rest of the network, so ``head(features(x))`` equals the
original torchvision forward pass.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD
from .base import Backbone


def _replace_linear(module: nn.Sequential | nn.Module, attr: str | int, num_classes: int) -> None:
    """Swap the final ``nn.Linear`` for one with ``num_classes`` outputs when the count differs."""
    layer = module[attr] if isinstance(attr, int) else getattr(module, attr)
    if layer.out_features == num_classes:
        return
    new = nn.Linear(layer.in_features, num_classes)
    if isinstance(attr, int):
        module[attr] = new
    else:
        setattr(module, attr, new)


def resnet(arch: str, net: models.ResNet, num_classes: int) -> Backbone:
    """Explanation layer: the output of ``layer4`` (stride 32)."""
    extractor = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    _replace_linear(net, "fc", num_classes)
    classifier = nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)
    return Backbone(extractor, classifier, net.fc.in_features, 32, num_classes, name=arch)


def vgg16(net: models.VGG, num_classes: int, after_pool: bool = False) -> Backbone:
    """Explanation layer: conv5_3+ReLU (14x14 at 224, stride 16), or with ``after_pool`` the
    7x7 maps after the last max-pool (stride 32; L-CAM-Img†)."""
    split = len(net.features) if after_pool else len(net.features) - 1
    extractor = net.features[:split]
    _replace_linear(net.classifier, 6, num_classes)
    classifier = nn.Sequential(*net.features[split:], net.avgpool, nn.Flatten(1), net.classifier)
    stride = 32 if after_pool else 16
    name = "vgg16_7x7" if after_pool else "vgg16"
    return Backbone(extractor, classifier, 512, stride, num_classes, name=name)


def alexnet(net: models.AlexNet, num_classes: int) -> Backbone:
    """Explanation layer: conv5+ReLU, before the last max-pool (13x13 at 224, stride 16)."""
    extractor = net.features[:-1]
    _replace_linear(net.classifier, 6, num_classes)
    classifier = nn.Sequential(net.features[-1], net.avgpool, nn.Flatten(1), net.classifier)
    return Backbone(extractor, classifier, 256, 16, num_classes, name="alexnet")


class _GoogLeNetTrunk(nn.Module):
    """GoogLeNet up to inception5b.

    torchvision's pretrained GoogLeNet was trained on inputs scaled to [-1, 1]; with
    ``transform_input`` the ImageNet-normalised input is mapped there first, as torchvision does.
    """

    def __init__(self, net: models.GoogLeNet, transform_input: bool) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.layers = nn.Sequential(
            net.conv1, net.maxpool1, net.conv2, net.conv3, net.maxpool2,
            net.inception3a, net.inception3b, net.maxpool3,
            net.inception4a, net.inception4b, net.inception4c, net.inception4d, net.inception4e,
            net.maxpool4, net.inception5a, net.inception5b,
        )  # fmt: skip
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # normalised -> pixels -> [-1, 1]:  x * std / 0.5 + (mean - 0.5) / 0.5
        self.register_buffer("_scale", std / 0.5, persistent=False)
        self.register_buffer("_shift", (mean - 0.5) / 0.5, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform_input:
            x = x * self._scale + self._shift
        return self.layers(x)


def googlenet(net: models.GoogLeNet, num_classes: int, transform_input: bool = False) -> Backbone:
    """Inception-v1 without auxiliary heads. Explanation layer: inception5b (stride 32)."""
    _replace_linear(net, "fc", num_classes)
    extractor = _GoogLeNetTrunk(net, transform_input)
    classifier = nn.Sequential(net.avgpool, nn.Flatten(1), net.dropout, net.fc)
    return Backbone(extractor, classifier, 1024, 32, num_classes, name="googlenet")

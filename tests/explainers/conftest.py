"""Shared fixtures for explainer tests: small seeded Backbones, input batches, a pass counter.

* ``make_toy_backbone(...)`` / ``toy_backbone``: a 3-conv CNN (stride 4, ``channels`` maps)
  with a global-average-pool + linear head, seeded, in eval mode. ``dead_channels`` get a
  large negative bias so their post-ReLU map is all zeros (constant-map edge cases).
* ``resnet18_backbone``: torchvision resnet18 split at ``layer4`` (random init, seed 0,
  10 classes, eval mode); a fresh copy per test, so tests may hook or modify it.
* ``make_images(batch, size, seed)``: a normalised-looking ``[B,3,H,W]`` batch.
* ``plain_model``: an ``nn.Module`` classifier without ``features``/``head``.
* ``counting``: ``counting(model)`` wraps a Backbone and counts images through
  ``features``/``head`` and the largest batch seen.

Every explainer test runs with one torch thread (restored afterwards): on a shared 2-core
machine a 2-thread OpenMP pool stalls at each barrier whenever another process holds a core,
which made the same resnet18 forward 50x slower; with one thread these tests take seconds.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from explainbench.backbones.base import Backbone


def _toy_backbone(
    channels: int = 6, num_classes: int = 5, dead_channels: tuple[int, ...] = (), seed: int = 0
) -> Backbone:
    gen = torch.Generator().manual_seed(seed)
    extractor = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, channels, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    classifier = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes)
    )
    model = Backbone(extractor, classifier, channels, 4, num_classes, name="toy")
    with torch.no_grad():
        for p in model.parameters():
            # Seeded, and scaled so the logits spread (default init gives near-equal scores).
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for k in dead_channels:
            extractor[-2].bias[k] = -1e3
    return model.eval()


def _resnet18(num_classes: int = 10, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    try:
        from explainbench.backbones import build_backbone

        return build_backbone("resnet18", num_classes=num_classes).eval()
    except ImportError:  # registry not there yet: split torchvision's resnet18 the same way
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=num_classes)
        extractor = nn.Sequential(
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        classifier = nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)
        return Backbone(extractor, classifier, 512, 32, num_classes, name="resnet18").eval()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_toy_backbone():
    return _toy_backbone


@pytest.fixture
def toy_backbone() -> Backbone:
    return _toy_backbone()


@pytest.fixture(scope="session")
def _resnet18_master() -> Backbone:
    return _resnet18()


@pytest.fixture
def resnet18_backbone(_resnet18_master) -> Backbone:
    return copy.deepcopy(_resnet18_master)


@pytest.fixture
def make_images():
    def make(batch: int = 2, size: int | tuple[int, int] = 64, seed: int = 0) -> torch.Tensor:
        h, w = (size, size) if isinstance(size, int) else size
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, h, w, generator=gen)

    return make


@pytest.fixture
def plain_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(4, 3)
    )


class CountingModel(nn.Module):
    """Delegates ``features``/``head`` to ``model`` and counts the images each one sees."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.feature_images = 0
        self.head_images = 0
        self.feature_calls = 0
        self.max_batch = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.feature_calls += 1
        self.feature_images += x.shape[0]
        self.max_batch = max(self.max_batch, x.shape[0])
        return self.model.features(x)

    def head(self, a: torch.Tensor) -> torch.Tensor:
        self.head_images += a.shape[0]
        return self.model.head(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture
def counting():
    return CountingModel

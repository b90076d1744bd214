"""Toy models whose class probabilities are known by hand.

:class:`RegionModel` outputs two classes with p(1) = mean pixel intensity (over channels) inside a
fixed region R of the un-normalised image and p(0) = 1 − p(1): logits = log(p), so the softmax
returns p exactly (log 0 = −inf → probability exactly 0).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD, denormalize

IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
IMAGENET = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}


class RegionModel(nn.Module):
    """p(class 1 | x) = mean intensity of the un-normalised image inside ``region`` [H,W] bool."""

    def __init__(self, region: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.mean, self.std = mean, std
        self.calls = 0  # forward passes
        self.images = 0  # images seen
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        self.inputs.append(x.detach().clone())
        pixels = denormalize(x, self.mean, self.std).mean(1)  # [B,H,W]
        p1 = ((pixels * self.region).sum((1, 2)) / self.region.sum()).clamp(0, 1)
        return torch.log(torch.stack([1 - p1, p1], dim=1))


def region(h: int, w: int, pixels: list[tuple[int, int]]) -> torch.Tensor:
    r = torch.zeros(h, w, dtype=torch.bool)
    for i, j in pixels:
        r[i, j] = True
    return r


def images(values: list[float], h: int, w: int, norm: dict) -> torch.Tensor:
    """A batch of constant grey images (one value each), normalised with ``norm``."""
    from explainbench.utils.image import normalize

    pixels = torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, h, w)
    return normalize(pixels.contiguous(), norm["mean"], norm["std"])


@pytest.fixture
def toys():
    """Access to the helpers from test modules without importing conftest."""
    return type(
        "Toys",
        (),
        {
            "RegionModel": RegionModel,
            "region": staticmethod(region),
            "images": staticmethod(images),
            "IDENTITY": IDENTITY,
            "IMAGENET": IMAGENET,
        },
    )

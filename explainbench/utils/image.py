"""Moving images between the normalised space models see and the [0,1] pixel space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stat(values: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def denormalize(image: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Normalised ``[B,C,H,W]`` → ``[0,1]`` pixels (not clamped, so it round-trips exactly)."""
    return image * _stat(std, image) + _stat(mean, image)


def normalize(pixels: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``[0,1]`` pixels ``[B,C,H,W]`` → the normalised space the model was trained in."""
    return (pixels - _stat(mean, pixels)) / _stat(std, pixels)

"""Shared pieces of the perturbation metrics (AD/IC, deletion/insertion).

All perturbations happen in ``[0, 1]`` pixel space: the normalised batch is un-normalised, pixels
are blended with a *baseline* image, and the result is re-normalised before the model sees it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BaselineSpec = str | Sequence[float]
BASELINE_NAMES = ("black", "white", "mean", "blur")


def saliency_rank(saliency: Tensor) -> Tensor:
    """Rank of every pixel in decreasing saliency, ``[B,1,H,W]`` → ``[B, H*W]`` long (0 = most salient).

    The sort is *stable*: equal saliency values are ranked in raster order (row by row, left to
    right), so "the top-k pixels" is always exactly k pixels, deterministic on every device. A
    constant map therefore keeps/removes pixels from the top-left corner onwards.
    """
    flat = saliency.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def fraction_count(fraction: float, n: int) -> int:
    """``round(fraction * n)`` rounded half up (not to even), clamped to ``[0, n]``."""
    # The 1e-9 absorbs float noise such as 0.15 * 16 = 2.4000000000000004.
    return max(0, min(n, int(fraction * n + 0.5 + 1e-9)))


def gaussian_blur(pixels: Tensor, kernel_size: int = 11, sigma: float = 5.0) -> Tensor:
    """Blur ``[B,C,H,W]`` with a normalised ``kernel_size``² Gaussian (RISE's substrate: 11, σ=5).

    Edges are replicate-padded so a constant image stays exactly constant (RISE zero-pads the
    normalised tensor, which darkens borders towards the dataset mean) and tiny images work.
    """
    radius = kernel_size // 2
    x = torch.arange(kernel_size, dtype=pixels.dtype, device=pixels.device) - radius
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    channels = pixels.shape[1]
    padded = F.pad(pixels, (radius, radius, radius, radius), mode="replicate")
    # Separable: rows then columns, one depthwise conv each.
    out = F.conv2d(padded, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def check_baseline(spec: BaselineSpec) -> BaselineSpec:
    """Validate a baseline spec early (in ``__init__``) so a bad config fails before evaluation."""
    if isinstance(spec, str):
        if spec not in BASELINE_NAMES:
            raise ValueError(f"baseline {spec!r} is not one of {BASELINE_NAMES} or an RGB triple")
        return spec
    values = tuple(float(v) for v in spec)
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"baseline colour must be 3 values in [0, 1] (RGB pixels), got {values}")
    return values


def baseline_pixels(
    spec: BaselineSpec,
    pixels: Tensor,
    mean: Sequence[float],
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
) -> Tensor:
    """The image removed pixels turn into, in ``[0,1]`` pixel space, shaped like ``pixels``.

    ``"black"`` = 0, ``"white"`` = 1, ``"mean"`` = the dataset mean colour (what
    multiplying a *normalised* tensor by a mask amounts to; the L-CAM reference code masks
    un-normalised images, i.e. ``"black"``), ``"blur"``
    = :func:`gaussian_blur` of the image, or an explicit ``(r, g, b)`` colour in ``[0, 1]``.
    """
    if spec == "blur":
        return gaussian_blur(pixels, blur_kernel, blur_sigma)
    if spec == "black":
        colour: Sequence[float] = (0.0, 0.0, 0.0)
    elif spec == "white":
        colour = (1.0, 1.0, 1.0)
    elif spec == "mean":
        colour = mean
    else:
        colour = check_baseline(spec)
    value = torch.as_tensor(colour, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    return value.expand_as(pixels)


def class_probability(model: nn.Module, images: Tensor, target: Tensor) -> Tensor:
    """Softmax probability of ``target`` for normalised ``images``: ``[N]`` float32."""
    with torch.inference_mode():
        logits = model(images)
    probs = torch.softmax(logits.float(), dim=1)
    return probs.gather(1, target.view(-1, 1).to(probs.device))[:, 0]

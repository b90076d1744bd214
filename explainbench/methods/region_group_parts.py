"""Building blocks of region grouping (Huang & Li, CVPR 2020): the grouping unit (Eq. 1, 3),
part occurrence and the Beta-prior loss (Eq. 2), and the 1x1 residual bottleneck blocks.

Where the paper is silent the authors' code (interpretability-by-parts) decides: the 5x5
Gaussian (std 0.4) without padding before the max-pool of the occurrence, the dictionary's
Kaiming initialisation, σ = sigmoid(s) with s = 0 at the start, the bottleneck blocks with a
zero-initialised last BatchNorm (each block starts as the identity).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn
from torch.nn import functional as F

EPS = 1e-5  # Eq. 2's ε
# the smallest number of images per batch whose part occurrences have a distribution to compare
MIN_PRIOR_BATCH = 2
# at least this many images per batch estimate the occurrence distribution usefully
SUGGESTED_PRIOR_BATCH = 16


class Grouping(NamedTuple):
    """Output of :class:`GroupingUnit` for features ``X [B,D,H,W]``."""

    regions: Tensor  # Z [B,D,K]: the normalised region features z_k (Eq. 3)
    parts: Tensor  # Q [B,K,H,W]: the soft part assignment (Eq. 1), Σ_k q = 1 per pixel


class GroupingUnit(nn.Module):
    """Part dictionary ``D = [d_1..d_K]``, smoothing factors ``σ_k = sigmoid(s_k) ∈ (0, 1)``.

    ``q_ij^k = softmax_k(−‖(x_ij − d_k)/σ_k‖²/2)`` (Eq. 1) and
    ``z'_k = Σ_ij q_ij^k (x_ij − d_k)/σ_k / Σ_ij q_ij^k``, ``z_k = z'_k/‖z'_k‖`` (Eq. 3).

    The authors' code writes the same softmax as ``−‖x − d‖²/β`` with ``β = sigmoid(s)``
    (i.e. σ² = β/2); the issue asks for ``σ = sigmoid(s)``, which keeps σ in (0, 1) as the
    paper states, so that is what this unit learns.
    """

    def __init__(self, channels: int, num_parts: int) -> None:
        super().__init__()
        if num_parts < 2:
            raise ValueError(
                f"region grouping needs at least 2 parts (method.num_parts), got {num_parts}"
            )
        self.dictionary = nn.Parameter(torch.empty(num_parts, channels))
        self.smoothing = nn.Parameter(torch.zeros(num_parts))  # s; σ = sigmoid(s) = 0.5 at start
        nn.init.kaiming_normal_(self.dictionary)
        with torch.no_grad():
            self.dictionary.clamp_(min=1e-5)

    @property
    def sigma(self) -> Tensor:
        return torch.sigmoid(self.smoothing)

    def forward(self, x: Tensor) -> Grouping:
        b, c, h, w = x.shape
        d, sigma = self.dictionary, self.sigma
        flat = x.flatten(2)  # [B,D,HW]
        # ‖x − d‖² = ‖x‖² − 2 d·x + ‖d‖², clamped: rounding must not make a distance negative
        dist = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * torch.einsum("kd,bdn->bkn", d, flat)
            + d.pow(2).sum(1)[:, None]
        )
        logits = -dist.clamp_min(0) / (2 * sigma.pow(2)[:, None])
        q = logits.softmax(dim=1)  # [B,K,HW]
        mass = q.sum(2, keepdim=True).clamp_min(EPS)  # Σ_ij q_ij^k
        mean = torch.einsum("bkn,bdn->bkd", q, flat) / mass  # Σ q x / Σ q
        z = (mean - d[None]) / sigma[None, :, None]  # Σ q (x − d)/σ / Σ q
        z = F.normalize(z, dim=2)
        return Grouping(z.transpose(1, 2), q.view(b, -1, h, w))


def gaussian_kernel(radius: int, std: float) -> Tensor:
    """``[2r+1, 2r+1]`` Gaussian weights summing to 1."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * std * std))
    return kernel / kernel.sum()


def part_occurrence(parts: Tensor, radius: int = 2, std: float = 0.4) -> Tensor:
    """``t_k = max_ij (G * Q^k)``: ``[B,K]`` occurrences in (0, 1).

    ``G`` is a ``(2·radius+1)²`` Gaussian applied without padding (the authors' 5x5, std 0.4), so
    border pixels are not averaged with zeros. Maps smaller than the kernel get the largest
    kernel that fits (a warning says so); ``radius=0`` is a plain max-pool.
    """
    h, w = parts.shape[-2:]
    fit = (min(h, w) - 1) // 2
    if radius > fit:
        warnings.warn(
            f"part maps of {h}x{w} are smaller than the {2 * radius + 1}x{2 * radius + 1} occurrence "
            f"smoothing kernel: using {2 * fit + 1}x{2 * fit + 1}. Use larger inputs for the paper's setting.",
            stacklevel=2,
        )
        radius = fit
    if radius > 0:
        k = parts.shape[1]
        kernel = gaussian_kernel(radius, std).to(parts)[None, None].expand(k, 1, -1, -1)
        parts = F.conv2d(parts, kernel, groups=k)
    return parts.flatten(2).amax(dim=2)


@lru_cache(maxsize=64)
def _beta_quantiles(n: int, alpha: float, beta: float) -> tuple[float, ...]:
    grid = (2 * np.arange(1, n + 1) - 1) / (2 * n)
    return tuple(float(v) for v in stats.beta.ppf(grid, a=alpha, b=beta))


def beta_quantiles(n: int, alpha: float, beta: float) -> np.ndarray:
    """``F̂⁻¹((2n−1)/2N)``, n = 1..N, of Beta(α, β): the prior's sorted "samples" for a batch of
    ``N`` images (computed by scipy once per (N, α, β), cached)."""
    return np.asarray(_beta_quantiles(int(n), float(alpha), float(beta)))


def check_prior_batch(n: int) -> None:
    """Refuse a batch too small for the prior, saying why and what to use instead."""
    if n < MIN_PRIOR_BATCH:
        raise ValueError(
            f"The part-occurrence prior needs at least {MIN_PRIOR_BATCH} images per batch, got {n}: it "
            "compares the distribution of each part's occurrence over the images of a batch with the "
            f"quantiles of the Beta prior (Eq. 2), and {n} image(s) have no distribution. Use "
            f"data.batch_size={SUGGESTED_PRIOR_BATCH} or more (the paper: 32 for CelebA/CUB, 128 for "
            "iNaturalist), or method.prior_weight=0 to train without the prior."
        )


def prior_loss(occurrence: Tensor, alpha: float, beta: float, eps: float = EPS) -> Tensor:
    """Eq. 2 averaged over parts: ``mean_k (1/N) Σ_n |log(τ*_k[n] + ε) − log(F̂⁻¹((2n−1)/2N) + ε)|``.

    ``occurrence`` is ``T [N,K]`` (one row per image); each part's column is sorted ascending
    and compared with the Beta(α, β) quantiles: the 1D Wasserstein distance on a log scale.
    """
    n = occurrence.shape[0]
    check_prior_batch(n)
    empirical = occurrence.sort(dim=0).values
    prior = torch.as_tensor(
        beta_quantiles(n, alpha, beta), dtype=occurrence.dtype, device=occurrence.device
    )
    return ((empirical + eps).log() - (prior[:, None] + eps).log()).abs().mean()


class Bottleneck1x1(nn.Module):
    """A residual bottleneck of three 1x1 convolutions with BatchNorm and ReLU (ResNet's block
    with 1x1 kernels), applied to region features laid out as ``[B,C,K,1]``."""

    def __init__(self, cin: int, cout: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.shortcut = (
            nn.Identity()
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        nn.init.zeros_(self.body[-1].weight)  # the block starts as its shortcut

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def bottleneck_stack(cin: int, cout: int, blocks: int) -> nn.Sequential:
    """``blocks`` bottlenecks from ``cin`` to ``cout`` channels (width ``cout/4``, ResNet's ratio)."""
    width = max(1, math.ceil(cout / 4))
    return nn.Sequential(
        *(Bottleneck1x1(cin if i == 0 else cout, cout, width) for i in range(blocks))
    )

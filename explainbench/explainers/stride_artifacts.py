"""How much of a heatmap's structure is the grid of strided back-propagation.

A strided layer's backward pass scatters its signal onto a lattice of period ``P`` in the
input (``P`` is the layer's jump, see :func:`~explainbench.explainers.receptive_field.stride_periods`),
so the grid artifact of deconvnet / guided-backprop maps is energy at the frequencies
``k·N/P`` (``k = 0 … P−1``) of a 2-D DFT of size ``N``. :func:`stride_frequency_share` is
the share of a map's non-DC spectral energy at those frequencies. The paper (Oramas et al.,
ICLR 2019, Fig. 2 / 7) shows the artifacts only qualitatively; this measure is our choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def stride_frequency_mask(size: tuple[int, int], periods: Sequence[int]) -> Tensor:
    """``[H, W]`` bool: the DFT bins ``(u, v)`` with ``u`` and ``v`` both multiples of a
    stride frequency ``k·N/P`` (``u = 0`` or ``v = 0`` included: stripes along one axis),
    DC excluded. ``k·N/P`` is rounded to the nearest bin when ``P`` does not divide ``N``."""
    axes = []
    for n in size:
        bins = torch.zeros(n, dtype=torch.bool)
        for p in periods:
            if p < 1:
                raise ValueError(f"stride periods must be positive integers, got {list(periods)}")
            for k in range(p):
                bins[round(k * n / p) % n] = True
        axes.append(bins)
    mask = axes[0][:, None] & axes[1][None, :]
    mask[0, 0] = False
    return mask


def stride_frequency_share(maps: Tensor, periods: Sequence[int]) -> Tensor:
    """Per map of ``maps [..., H, W]``: energy at the stride frequencies of ``periods`` (see
    :func:`stride_frequency_mask`) over the total non-DC energy, in ``[0, 1]``. A pure
    period-2 checkerboard gives 1, a smooth blob almost 0. A constant map (no non-DC energy
    at all) gives 0: it has no grid."""
    power = torch.fft.fft2(maps.double()).abs().square()
    mask = stride_frequency_mask(tuple(maps.shape[-2:]), periods).to(power.device)
    total = power.sum(dim=(-2, -1)) - power[..., 0, 0]
    at_stride = (power * mask).sum(dim=(-2, -1))
    share = torch.where(total > 0, at_stride / total.clamp_min(1e-300), torch.zeros_like(total))
    return share.to(maps.dtype if maps.is_floating_point() else torch.float32)

"""Exact Euclidean projection onto the L1 ball, batched over columns.

Duchi, Shalev-Shwartz, Singer & Chandra, "Efficient Projections onto the l1-Ball for Learning
in High Dimensions", ICML 2008, Fig. 1 (the O(F log F) sort-based algorithm): the projection of
``v`` with ``‖v‖₁ > μ`` is the soft threshold ``sign(v) · max(|v| − θ, 0)`` whose θ makes the
L1 norm exactly μ; θ is read off the sorted magnitudes. Sorting F ≤ a few ten thousand
entries per column is cheap next to the solver's matrix products, so the linear-time
variants of the same paper are not worth their complexity here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_radius(mu: float) -> float:
    """μ must be a positive number: μ ≤ 0 would force every weight to zero."""
    mu = float(mu)
    if not mu > 0:
        raise ValueError(f"mu (the L1 radius of the μ-Lasso) must be > 0, got {mu}")
    return mu


def project_l1_ball(v: Tensor, mu: float) -> Tensor:
    """Project every column of ``v`` ``[F, C]`` (or a vector ``[F]``) onto ``{w: ‖w‖₁ ≤ μ}``.

    Columns already inside (``‖v_j‖₁ ≤ μ``) are returned unchanged, exactly.
    """
    mu = check_radius(mu)
    vector = v.ndim == 1
    cols = v[:, None] if vector else v
    mags = cols.abs()
    inside = mags.sum(dim=0) <= mu  # [C]
    u = mags.sort(dim=0, descending=True).values
    cssv = u.cumsum(dim=0) - mu
    k = torch.arange(1, u.shape[0] + 1, device=v.device, dtype=v.dtype)[:, None]
    # ρ = the largest k with u_k > (Σ_{i≤k} u_i − μ) / k; the condition holds for a prefix of k
    positive = u * k > cssv
    rho = positive.to(torch.long).sum(dim=0).clamp_min(1)  # [C]
    theta = cssv.gather(0, (rho - 1)[None]) / rho[None].to(v.dtype)  # [1, C]
    projected = cols.sign() * (mags - theta).clamp_min(0)
    out = torch.where(inside[None], cols, projected)
    return out[:, 0] if vector else out

"""The μ-Lasso of Oramas et al. (ICLR 2019, Eq. 1), solved by spectral projected gradient.

    W* = argmin_W ‖XᵀW − Lᵀ‖²_F   subject to   ‖w_j‖₁ ≤ μ  for every class j

with ``X`` the ``[F, N]`` filter-wise responses of the N training images and ``L`` the
``[C, N]`` binary labels (the paper: ``l_i ∈ {0,1}^C``). The problem separates over the
columns ``w_j``; all C are solved at once (one matrix product per iteration for all classes).

Solver: SPG2 of Birgin, Martínez & Raydan, "Nonmonotone Spectral Projected Gradient Methods on
Convex Sets", SIAM J. Optim. 2000 (the paper cites the spectral projected-gradient method,
as implemented in van den Berg & Friedlander's SPGL1): per column, the direction
``d = P(w − α g) − w`` with the Barzilai–Borwein step ``α = sᵀs / sᵀy`` (safeguarded to
``[α_min, α_max]``), the exact L1-ball projection ``P`` (:func:`.projection.project_l1_ball`),
and the non-monotone Armijo line search over the last ``memory`` objective values with
safeguarded quadratic interpolation. The objective is quadratic, so ``f(w + λd) = f + λ gᵀd +
λ² dᵀHd`` is exact and the line search needs no further products. Stops when every column's
projected gradient ``‖P(w − g) − w‖_∞`` is below ``tol`` times its value at the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from .projection import check_radius, project_l1_ball

log = logging.getLogger("explainbench")

# SPG2's constants (Birgin et al. 2000, Sec. 3): sufficient decrease, interpolation safeguards
GAMMA, SIGMA1, SIGMA2 = 1e-4, 0.1, 0.9
ALPHA_MIN, ALPHA_MAX = 1e-10, 1e10


@dataclass
class LassoResult:
    """``W`` ``[F, C]``; per class: the objective ``‖Xᵀw_j − l_j‖²``, the non-zero count and the
    final projected-gradient norm; the iterations run and whether every class converged."""

    W: Tensor
    objective: Tensor
    nonzeros: Tensor
    projected_gradient: Tensor
    iterations: int
    converged: bool


def solve_mu_lasso(
    responses: Tensor,
    labels: Tensor,
    mu: float,
    max_iter: int = 5000,
    tol: float = 1e-6,
    memory: int = 10,
    dtype: torch.dtype = torch.float64,
    log_every: int = 100,
) -> LassoResult:
    """Solve the μ-Lasso for every class at once, on ``responses``' device.

    Args:
        responses: ``[N, F]``, row i the response x_i of image i (``Xᵀ`` of the paper).
        labels: ``[N, C]`` binary targets (one-hot for single-label data, the paper's ``Lᵀ``).
        mu: the L1 radius μ (> 0); the paper uses 10.
        max_iter, tol: stop after ``max_iter`` iterations or when every column's projected
            gradient (∞-norm) fell below ``tol`` × its initial value.
        memory: the non-monotone line search compares with the max of the last ``memory``
            objective values (SPG2's M = 10).
        dtype: float64 by default: the Gram matrix of thousands of images loses digits in
            float32 and F is small enough that the cost does not matter.
    """
    mu = check_radius(mu)
    if responses.ndim != 2 or labels.ndim != 2 or responses.shape[0] != labels.shape[0]:
        raise ValueError(
            f"responses [N, F] and labels [N, C] must share N, got {tuple(responses.shape)} "
            f"and {tuple(labels.shape)}"
        )
    R = responses.to(dtype)
    Y = labels.to(device=R.device, dtype=dtype)
    n, f = R.shape
    if f <= n:  # the [F, F] Gram matrix is the cheaper operator
        gram = R.T @ R
        hess_mul = gram.__matmul__
    else:
        hess_mul = lambda D: R.T @ (R @ D)  # noqa: E731
    b = R.T @ Y  # [F, C]
    const = Y.square().sum(dim=0)  # ‖l_j‖²

    def objective(W: Tensor, HW: Tensor) -> Tensor:
        return (W * HW).sum(0) - 2 * (b * W).sum(0) + const

    W = torch.zeros_like(b)
    HW = torch.zeros_like(b)
    fval = objective(W, HW)
    grad = 2 * (HW - b)
    pg = (project_l1_ball(W - grad, mu) - W).abs().amax(0)
    target = tol * pg.clamp_min(torch.finfo(dtype).tiny)
    alpha = 1.0 / pg.clamp_min(torch.finfo(dtype).tiny)  # SPG2's first step
    history = fval[None].repeat(memory, 1)  # the last `memory` objective values per column
    active = pg > target
    it = 0
    while it < max_iter and bool(active.any()):
        it += 1
        P = project_l1_ball(W - alpha * grad, mu)
        D = (P - W) * active  # converged columns stay where they are
        HD = hess_mul(D)
        gtd = (grad * D).sum(0)
        dhd = (D * HD).sum(0)
        fmax = history.amax(0)
        lam = torch.ones_like(fval)
        trial = fval + lam * gtd + lam.square() * dhd
        for _ in range(60):  # halving at least once a step: 60 steps reach 1e-18
            reject = trial > fmax + GAMMA * lam * gtd
            if not bool(reject.any()):
                break
            # exact minimiser along d of the quadratic, kept inside [σ1 λ, σ2 λ] (SPG2)
            quad = -gtd / (2 * dhd.clamp_min(torch.finfo(dtype).tiny))
            ok = (quad >= SIGMA1 * lam) & (quad <= SIGMA2 * lam)
            lam = torch.where(reject, torch.where(ok, quad, lam / 2), lam)
            trial = fval + lam * gtd + lam.square() * dhd
        # a full step lands on P itself: its exact zeros are kept (W + (P − W) may round)
        W_new = torch.where(active & (lam == 1), P, W + lam * D)
        HW_new = HW + lam * HD
        step = W_new - W
        grad_new = 2 * (HW_new - b)
        sy = (step * (grad_new - grad)).sum(0)
        ss = step.square().sum(0)
        bb = torch.where(sy > 0, ss / sy.clamp_min(torch.finfo(dtype).tiny), ALPHA_MAX)
        alpha = torch.where(active, bb.clamp(ALPHA_MIN, ALPHA_MAX), alpha)
        W, HW, grad = W_new, HW_new, grad_new
        fval = objective(W, HW)
        history = torch.cat([history[1:], fval[None]])
        pg = (project_l1_ball(W - grad, mu) - W).abs().amax(0)
        active = pg > target
        if log_every and it % log_every == 0:
            log.info(
                "mu-lasso iteration %d: objective %.6g, non-zeros per class %s, %d classes left",
                it, float(fval.sum()), (W != 0).sum(0).tolist(), int(active.sum()),
            )  # fmt: skip
    nonzeros = (W != 0).sum(0)
    converged = not bool(active.any())
    log.info(
        "mu-lasso (mu=%g): %d iterations, %s; objective per class %s; non-zeros per class %s",
        mu, it, "converged" if converged else f"NOT converged (max_iter={max_iter})",
        [round(v, 4) for v in fval.tolist()], nonzeros.tolist(),
    )  # fmt: skip
    return LassoResult(W, fval, nonzeros, pg, it, converged)

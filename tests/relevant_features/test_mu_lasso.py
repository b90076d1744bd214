"""The L1-ball projection and the spectral projected-gradient μ-Lasso solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainbench.relevant_features.mu_lasso import solve_mu_lasso
from explainbench.relevant_features.projection import project_l1_ball


def reference_projection(v: list[float], mu: float) -> list[float]:
    """Duchi et al. (2008), Fig. 1, written out in plain Python, one vector at a time."""
    if sum(abs(a) for a in v) <= mu:
        return list(v)
    u = sorted((abs(a) for a in v), reverse=True)
    total, theta = 0.0, 0.0
    for k, value in enumerate(u, start=1):
        total += value
        if value - (total - mu) / k > 0:
            theta = (total - mu) / k
    return [(1 if a > 0 else -1) * max(abs(a) - theta, 0.0) for a in v]


def long_projected_gradient(R, Y, mu, steps=5000):
    """The reference solution: plain projected gradient with step 1/L (no BB, no line search),
    in numpy, each column projected by :func:`reference_projection`'s rule."""
    R, Y = R.numpy(), Y.numpy()
    gram, rhs = R.T @ R, R.T @ Y
    step = 1 / (2 * np.linalg.eigvalsh(gram).max())  # 1 / the gradient's Lipschitz constant
    W = np.zeros_like(rhs)
    for _ in range(steps):
        V = W - step * 2 * (gram @ W - rhs)
        for j in range(V.shape[1]):
            v = V[:, j]
            if np.abs(v).sum() > mu:
                u = np.sort(np.abs(v))[::-1]
                css = np.cumsum(u) - mu
                rho = np.nonzero(u * np.arange(1, len(u) + 1) > css)[0][-1]
                v = np.sign(v) * np.maximum(np.abs(v) - css[rho] / (rho + 1), 0)
            W[:, j] = v
    return torch.from_numpy(W)


@pytest.mark.parametrize("mu", [0.1, 1.0, 3.0, 25.0])
def test_projection_equals_sort_reference(mu):
    torch.manual_seed(0)
    v = torch.randn(40, 7, dtype=torch.float64) * 2
    got = project_l1_ball(v, mu)
    for j in range(v.shape[1]):
        want = torch.tensor(reference_projection(v[:, j].tolist(), mu), dtype=torch.float64)
        torch.testing.assert_close(got[:, j], want, rtol=0, atol=1e-12)
    assert (got.abs().sum(0) <= mu + 1e-9).all()
    # it is the projection: (v − p)·(z − p) ≤ 0 for every z in the ball
    z = project_l1_ball(torch.randn(40, 7, dtype=torch.float64) * 5, mu)
    assert ((v - got) * (z - got)).sum(0).max() <= 1e-9


def test_projection_boundary_cases():
    inside = torch.tensor([0.5, -0.25, 0.0])
    assert torch.equal(project_l1_ball(inside, 1.0), inside)  # already inside: unchanged
    on = torch.tensor([0.5, -0.5])
    assert torch.equal(project_l1_ball(on, 1.0), on)  # on the boundary: unchanged
    assert torch.equal(project_l1_ball(torch.zeros(4), 1.0), torch.zeros(4))
    # negative entries keep their signs: |v| = (3, 1, 2) → θ = 1 for μ = 3 → (2, 0, 1)
    torch.testing.assert_close(
        project_l1_ball(torch.tensor([-3.0, 1.0, -2.0]), 3.0), torch.tensor([-2.0, 0.0, -1.0])
    )
    # ties: (2, 2, -2, 1), μ = 3 → θ = 1 for the three tied entries, the 1 drops to 0
    torch.testing.assert_close(
        project_l1_ball(torch.tensor([2.0, 2.0, -2.0, 1.0]), 3.0),
        torch.tensor([1.0, 1.0, -1.0, 0.0]),
    )
    # a single entry beyond the radius is clipped to it
    torch.testing.assert_close(
        project_l1_ball(torch.tensor([0.0, -5.0]), 2.0), torch.tensor([0.0, -2.0])
    )


@pytest.mark.parametrize("mu", [0.0, -1.0])
def test_nonpositive_radius_is_an_error(mu):
    with pytest.raises(ValueError, match="mu .* must be > 0"):
        project_l1_ball(torch.ones(3), mu)
    with pytest.raises(ValueError, match="mu .* must be > 0"):
        solve_mu_lasso(torch.ones(4, 2), torch.ones(4, 1), mu)


def test_orthogonal_design_gives_the_soft_threshold():
    """With orthonormal columns of Xᵀ the objective is ‖w − b‖² + const, so the solution is the
    projection of b: b = (3, −1, 0.5, 2), μ = 3 → θ = 1 → w = (2, 0, 0, 1); for μ = 10 (b inside
    the ball) w = b; the second class b = (0, 4, −4, 0.5), μ = 3 → θ = 2.5 → (0, 1.5, −1.5, 0)."""
    torch.manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(9, 4, dtype=torch.float64))
    b = torch.tensor([[3.0, 0.0], [-1.0, 4.0], [0.5, -4.0], [2.0, 0.5]], dtype=torch.float64)
    result = solve_mu_lasso(q, q @ b, 3.0)
    want = torch.tensor([[2.0, 0.0], [0.0, 1.5], [0.0, -1.5], [1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(result.W, want, rtol=0, atol=1e-8)
    assert result.converged
    assert result.nonzeros.tolist() == [2, 2]
    torch.testing.assert_close(solve_mu_lasso(q, q @ b, 10.0).W, b, rtol=0, atol=1e-8)


def test_solver_matches_a_long_projected_gradient_run():
    torch.manual_seed(0)
    R = torch.rand(150, 25, dtype=torch.float64)
    Y = torch.nn.functional.one_hot(torch.randint(0, 3, (150,)), 3).double()
    mu = 1.5
    result = solve_mu_lasso(R, Y, mu)
    assert result.converged
    assert (result.W.abs().sum(0) <= mu + 1e-9).all()
    W = long_projected_gradient(R, Y, mu)
    torch.testing.assert_close(result.W, W, rtol=0, atol=1e-6)
    objective = (R @ W - Y).square().sum(0)
    torch.testing.assert_close(result.objective, objective, rtol=1e-9, atol=1e-9)


def test_more_filters_than_images_uses_the_data_operator():
    """F > N takes the X(Xᵀ·) route instead of the Gram matrix. The solution need not be
    unique there, its objective is: compare that, and the constraint."""
    torch.manual_seed(2)
    R = torch.rand(12, 30, dtype=torch.float64)
    Y = torch.nn.functional.one_hot(torch.arange(12) % 2, 2).double()
    result = solve_mu_lasso(R, Y, 0.8)
    W = long_projected_gradient(R, Y, 0.8)
    torch.testing.assert_close(result.objective, (R @ W - Y).square().sum(0), rtol=1e-6, atol=0)
    assert (result.W.abs().sum(0) <= 0.8 + 1e-9).all()

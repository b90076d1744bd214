"""The stride-frequency energy share on synthetic maps with hand-known spectra."""

from __future__ import annotations

import pytest
import torch

from explainbench.explainers.stride_artifacts import stride_frequency_mask, stride_frequency_share


def test_period_two_checkerboard_is_all_grid():
    i, j = torch.meshgrid(torch.arange(16), torch.arange(12), indexing="ij")
    checker = 1.0 + ((i + j) % 2)  # DC + energy only at (8, 6) = (16/2, 12/2)
    assert stride_frequency_share(checker, [2]).item() == pytest.approx(1.0)


def test_smooth_gaussian_is_almost_no_grid():
    i, j = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((i - 13) ** 2 + (j - 18) ** 2) / (2 * 4.0**2))
    assert stride_frequency_share(blob, [2, 4, 8]).item() < 0.01


def test_period_four_rows_by_hand():
    """x[i, j] = 1 where i % 4 == 0 (H = 16): a period-4 impulse train along rows, constant
    along columns. Its DFT is nonzero only at v = 0 and u ∈ {0, 4, 8, 12}, with equal
    magnitude. Non-DC: three equal bins. Periods [2, 4] cover all three → 1; period 2 only
    u = 8 → 1/3; period 3 (bins 0, 5, 11) none → 0."""
    x = torch.zeros(16, 10)
    x[::4] = 1.0
    assert stride_frequency_share(x, [2, 4]).item() == pytest.approx(1.0)
    assert stride_frequency_share(x, [2]).item() == pytest.approx(1 / 3)
    assert stride_frequency_share(x, [3]).item() == pytest.approx(0.0, abs=1e-12)


def test_mask_batches_and_constant_maps():
    mask = stride_frequency_mask((8, 6), [2])
    assert mask.nonzero().tolist() == [[0, 3], [4, 0], [4, 3]]
    maps = torch.stack(
        [torch.ones(8, 6), torch.rand(8, 6, generator=torch.Generator().manual_seed(0))]
    )
    share = stride_frequency_share(maps[:, None], [2])
    assert share.shape == (2, 1) and share[0, 0] == 0 and 0 < share[1, 0] < 1
    with pytest.raises(ValueError, match="positive"):
        stride_frequency_mask((4, 4), [0])

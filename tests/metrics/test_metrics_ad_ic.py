"""AD / IC against values computed by hand (see the arithmetic in the comments)."""

from __future__ import annotations

import pytest
import torch

from explainbench.explainers.base import Explanation
from explainbench.metrics import AverageDropIncrease, keep_top_fraction
from explainbench.metrics.perturbation import fraction_count, saliency_rank
from explainbench.utils.image import normalize

# 4x4 saliency; the stable descending order is
# (0,0)=1 (0,1)=.9 (1,0)=.8 (1,1)=.7 (2,0)=.6 (2,1)=.5 (2,2)=.4 (1,2)=.3 (0,2)=.2 (0,3)=.1, then zeros
SAL = torch.tensor(
    [
        [1.0, 0.9, 0.2, 0.1],
        [0.8, 0.7, 0.3, 0.0],
        [0.6, 0.5, 0.4, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
).view(1, 1, 4, 4)
FIRST_COLUMN = [(0, 0), (1, 0), (2, 0), (3, 0)]


def _run(toys, metric, model, x, sal, target):
    metric.update_batch(model, {"image": x}, Explanation(saliency=sal, target=target))
    return {k: v.item() for k, v in metric.compute().items()}


def test_continuous_mask_hand_values(toys):
    # Two grey-0.8 images, model p1 = mean of R = first column. A explains class 1 (Y = 0.8), B
    # explains class 0 (Y = 1 - 0.8 = 0.2). Continuous mask, black baseline: O_1 = 0.8 * mean(m on R).
    # nu=100%: m on R = (1, .8, .6, 0) -> O_1 = .8 * 2.4/4 = .48: A drop (.8-.48)/.8 = .4; B: O_0 = .52 > .2
    # nu=50% (k=8): R pixels (0,0),(1,0),(2,0) kept, (3,0) removed (saliency 0 anyway) -> same as 100%
    # nu=15% (k=round(2.4)=2): (0,0),(0,1) kept -> O_1 = .8 * 1/4 = .2: A drop .75; B: O_0 = .8 > .2
    model = toys.RegionModel(toys.region(4, 4, FIRST_COLUMN))
    x = toys.images([0.8, 0.8], 4, 4, toys.IMAGENET)
    metric = AverageDropIncrease(**toys.IMAGENET)
    out = _run(toys, metric, model, x, SAL.expand(2, -1, -1, -1), torch.tensor([1, 0]))
    expected = {
        "ad@100": 20.0,
        "ic@100": 50.0,
        "ad@50": 20.0,
        "ic@50": 50.0,
        "ad@15": 37.5,
        "ic@15": 50.0,
    }
    assert list(out) == list(expected)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-4), key


def test_binary_mask_and_strict_ic(toys):
    # binary: kept pixels get 1. nu=100% keeps the image unchanged -> O == Y exactly (through the
    # ImageNet normalise round trip): no drop and, IC being strict, no increase either.
    # nu=50%: R kept 3/4 -> A: O=.6, drop .25; B: O_0=.4 > .2.  nu=15%: R kept 1/4 -> A drop .75.
    model = toys.RegionModel(toys.region(4, 4, FIRST_COLUMN))
    x = toys.images([0.8, 0.8], 4, 4, toys.IMAGENET)
    metric = AverageDropIncrease(binary=True, **toys.IMAGENET)
    out = _run(toys, metric, model, x, SAL.expand(2, -1, -1, -1), torch.tensor([1, 0]))
    assert out["ad@100"] == 0.0 and out["ic@100"] == 0.0  # exact, not approx
    assert out["ad@50"] == pytest.approx(12.5, abs=1e-4) and out["ic@50"] == 50.0
    assert out["ad@15"] == pytest.approx(37.5, abs=1e-4) and out["ic@15"] == 50.0


def test_update_from_probabilities_and_zero_probability():
    # Y=0 -> drop term defined as 0 (not NaN); O=.3 > Y=0 counts as an increase.
    # Y=.5, O=.5 -> no drop, no increase (strict). Y=.4, O=.1 -> drop .75.
    metric = AverageDropIncrease(fractions=(1.0,))
    metric.update(torch.tensor([0.0, 0.5, 0.4]), torch.tensor([[0.3], [0.5], [0.1]]))
    out = metric.compute()
    assert out["ad@100"].item() == pytest.approx(100 * 0.75 / 3)
    assert out["ic@100"].item() == pytest.approx(100 / 3)


def test_zero_probability_class_through_the_model(toys):
    # A black image: p1 = 0 exactly (logit log 0 = -inf), so Y = O = 0: AD = IC = 0, no NaN.
    model = toys.RegionModel(toys.region(4, 4, FIRST_COLUMN), **toys.IDENTITY)
    x = toys.images([0.0], 4, 4, toys.IDENTITY)
    metric = AverageDropIncrease(**toys.IDENTITY)
    out = _run(toys, metric, model, x, SAL, torch.tensor([1]))
    assert all(v == 0.0 for v in out.values()), out


def test_constant_colour_baseline(toys):
    # binary, nu=15%, grey-0.5 baseline: R = (0.8 kept, 0.5, 0.5, 0.5) -> O = 2.3/4 = .575,
    # drop (.8 - .575)/.8 = .28125
    model = toys.RegionModel(toys.region(4, 4, FIRST_COLUMN))
    x = toys.images([0.8], 4, 4, toys.IMAGENET)
    metric = AverageDropIncrease(
        fractions=(0.15,), binary=True, baseline=(0.5, 0.5, 0.5), **toys.IMAGENET
    )
    out = _run(toys, metric, model, x, SAL, torch.tensor([1]))
    assert out["ad@15"] == pytest.approx(28.125, abs=1e-4)


def test_mean_baseline_is_masking_the_normalised_tensor(toys):
    # baseline="mean": x*m + mean*(1-m) in pixels == normalised image times m (the L-CAM code).
    model = toys.RegionModel(toys.region(4, 4, FIRST_COLUMN))
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 4, 4)
    x = normalize(pixels, *toys.IMAGENET.values())
    metric = AverageDropIncrease(fractions=(0.5,), baseline="mean", **toys.IMAGENET)
    metric.update_batch(model, {"image": x}, Explanation(saliency=SAL, target=torch.tensor([1])))
    m = keep_top_fraction(SAL, 0.5)
    torch.testing.assert_close(model.inputs[-1], x * m, atol=1e-5, rtol=1e-5)


def test_constant_saliency_keeps_exactly_nu_percent_in_raster_order(toys):
    # Constant map, binary: nu=50% keeps rows 0-1 (8 pixels), nu=15% keeps (0,0),(0,1).
    # Model region = row 0, grey 0.8, class 1 (Y=.8): nu=50% -> O = Y (drop 0, no increase);
    # nu=15% -> O = .8 * 2/4 = .4, drop .5.  Region = row 3: nu=50% removes it, drop 1.
    flat = torch.full((1, 1, 4, 4), 0.5)
    x = toys.images([0.8], 4, 4, toys.IMAGENET)
    top = toys.RegionModel(toys.region(4, 4, [(0, j) for j in range(4)]))
    metric = AverageDropIncrease(fractions=(0.5, 0.15), binary=True, **toys.IMAGENET)
    out = _run(toys, metric, top, x, flat, torch.tensor([1]))
    assert out == pytest.approx({"ad@50": 0.0, "ic@50": 0.0, "ad@15": 50.0, "ic@15": 0.0}, abs=1e-4)
    bottom = toys.RegionModel(toys.region(4, 4, [(3, j) for j in range(4)]))
    metric = AverageDropIncrease(fractions=(0.5,), binary=True, **toys.IMAGENET)
    assert _run(toys, metric, bottom, x, flat, torch.tensor([1]))["ad@50"] == pytest.approx(100.0)

    keep = keep_top_fraction(flat, 0.5, binary=True)[0, 0]
    assert keep[:2].eq(1).all() and keep[2:].eq(0).all()
    cont = keep_top_fraction(flat, 0.5)[0, 0]  # continuous: kept pixels keep their value 0.5
    assert cont[:2].eq(0.5).all() and cont[2:].eq(0).all()


@pytest.mark.parametrize(
    ("fraction", "n", "expected"),
    [(0.15, 49, 7), (0.5, 49, 25), (0.15, 16, 2), (1.0, 16, 16), (0.15, 224 * 224, 7526)],
)
def test_exact_count_with_ties(fraction, n, expected):
    # round half up: 7.35 -> 7, 24.5 -> 25, 2.4 -> 2, 7526.4 -> 7526
    assert fraction_count(fraction, n) == expected
    side = int(n**0.5)
    torch.manual_seed(1)
    sal = torch.randint(0, 3, (2, 1, side, side)).float() / 2  # heavy ties: values {0, .5, 1}
    keep = keep_top_fraction(sal, fraction, binary=True).flatten(1).bool()
    assert keep.sum(1).tolist() == [expected, expected]
    flat = sal.flatten(1)
    for b in range(2):  # every kept pixel is at least as salient as every removed one
        if keep[b].all():
            continue
        assert flat[b][keep[b]].min() >= flat[b][~keep[b]].max()
        # and among tied values at the boundary, the earlier raster positions are kept
        rank = saliency_rank(sal[b : b + 1])[0]
        assert keep[b].eq(rank < expected).all()


def test_saliency_is_resized_to_the_image(toys):
    # A 2x2 constant map upsampled to 4x4 is still constant -> same as the constant case.
    x = toys.images([0.8], 4, 4, toys.IMAGENET)
    top = toys.RegionModel(toys.region(4, 4, [(0, j) for j in range(4)]))
    metric = AverageDropIncrease(fractions=(0.15,), binary=True, **toys.IMAGENET)
    out = _run(toys, metric, top, x, torch.full((1, 1, 2, 2), 0.3), torch.tensor([1]))
    assert out["ad@15"] == pytest.approx(50.0, abs=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="fractions"):
        AverageDropIncrease(fractions=(0.0,))
    with pytest.raises(ValueError, match="baseline"):
        AverageDropIncrease(baseline="grey")
    with pytest.raises(ValueError, match="RGB"):
        AverageDropIncrease(baseline=(0.5, 2.0, 0.0))


class _BitProbe(torch.nn.Module):
    """logit_1 = 1e6 * |x - x0|: any change of the input, even 1 ulp, moves the probability."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0

    def forward(self, x):
        d = 1e6 * (x - self.x0).abs().flatten(1).sum(1)
        return torch.stack([torch.zeros_like(d), d], dim=1)


def test_unchanged_image_is_not_an_increase_despite_normalisation_round_trip(toys):
    # normalize(denormalize(x)) differs from x by ~1 ulp in some pixels. Y is computed on the same
    # round-tripped image as O, so "keep everything" (binary, nu=100%) gives O == Y: IC = 0.
    torch.manual_seed(0)
    x = normalize(torch.rand(4, 3, 8, 8), *toys.IMAGENET.values())
    metric = AverageDropIncrease(fractions=(1.0,), binary=True, **toys.IMAGENET)
    sal = torch.rand(4, 1, 8, 8)
    metric.update_batch(
        _BitProbe(x), {"image": x}, Explanation(sal, torch.ones(4, dtype=torch.long))
    )
    assert metric.compute() == {"ad@100": 0.0, "ic@100": 0.0}

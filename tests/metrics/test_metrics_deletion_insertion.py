"""Deletion / insertion curves and AUCs against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from explainbench.explainers.base import Explanation
from explainbench.metrics import DeletionInsertion
from explainbench.metrics.deletion_insertion import step_counts
from explainbench.metrics.perturbation import gaussian_blur

# 2x2 white images; the model's p1 = mean of the top row R = {pixel 0, pixel 1}.
# Saliency (raster) [.9, .5, .7, .1] -> visiting order 0, 2, 1, 3.
SAL = torch.tensor([0.9, 0.5, 0.7, 0.1]).view(1, 1, 2, 2)


def _setup(toys, values=(1.0,), norm=None):
    norm = norm or toys.IMAGENET
    model = toys.RegionModel(toys.region(2, 2, [(0, 0), (0, 1)]), **norm)
    x = toys.images(list(values), 2, 2, norm)
    return model, x


def test_curves_and_auc_four_steps(toys):
    # n=4, k = 0,1,2,3,4, x = 0,.25,.5,.75,1.
    # deletion (black), class 1: 1, .5 (px0 gone), .5 (px2 gone, not in R), 0 (px1 gone), 0
    #   AUC = .25 * [(1+.5)/2 + (.5+.5)/2 + (.5+0)/2 + 0] = .375
    # insertion (black), class 1: 0, .5, .5, 1, 1 -> AUC = .25 * [.25 + .5 + .75 + 1] = .625
    # image 2 explains class 0 (p0 = 1 - p1): deletion 0,.5,.5,1,1 (.625); insertion 1,.5,.5,0,0 (.375)
    model, x = _setup(toys, (1.0, 1.0))
    metric = DeletionInsertion(n_steps=4, insertion_baseline="black", **toys.IMAGENET)
    sal, target = SAL.expand(2, -1, -1, -1), torch.tensor([1, 0])
    curves, xs = metric.curves(model, x, sal, target)
    torch.testing.assert_close(xs, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    exp_del = torch.tensor([[1.0, 0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 1.0, 1.0]])
    torch.testing.assert_close(curves["deletion"], exp_del, atol=1e-5, rtol=0)
    torch.testing.assert_close(curves["insertion"], 1 - exp_del, atol=1e-5, rtol=0)
    # original once + 4 deletion steps + 3 insertion steps (all-black point shared): 8 forwards of 2
    assert model.calls == 8 and model.images == 16

    metric.update(curves, xs)
    out = metric.compute()
    assert out["deletion"].item() == pytest.approx((0.375 + 0.625) / 2, abs=1e-6)
    assert out["insertion"].item() == pytest.approx((0.625 + 0.375) / 2, abs=1e-6)
    mean_curves = metric.compute_curves()
    torch.testing.assert_close(mean_curves["deletion"], exp_del.mean(0), atol=1e-5, rtol=0)


def test_single_image_auc_and_grey_insertion_canvas(toys):
    # insertion into grey 0.5: 0.5, .75, .75, 1, 1 -> .25 * [.625 + .75 + .875 + 1] = .8125
    model, x = _setup(toys)
    metric = DeletionInsertion(n_steps=4, insertion_baseline=(0.5, 0.5, 0.5), **toys.IMAGENET)
    metric.update_batch(model, {"image": x}, Explanation(saliency=SAL, target=torch.tensor([1])))
    out = metric.compute()
    assert out["deletion"].item() == pytest.approx(0.375, abs=1e-6)
    assert out["insertion"].item() == pytest.approx(0.8125, abs=1e-6)
    assert model.calls == 9  # baselines differ: the all-baseline point is not shared


def test_uneven_steps_use_the_true_fraction_axis(toys):
    # N=4, n=3: k = round(4/3)=1, round(8/3)=3 -> x = 0, .25, .75, 1 (not 0, 1/3, 2/3, 1)
    # deletion 1, .5, 0, 0 -> .25*.75 + .5*.25 + .25*0 = .3125
    # insertion (black) 0, .5, 1, 1 -> .25*.25 + .5*.75 + .25*1 = .6875
    assert step_counts(4, 3) == [0, 1, 3, 4]
    model, x = _setup(toys)
    metric = DeletionInsertion(n_steps=3, insertion_baseline="black", **toys.IMAGENET)
    metric.update_batch(model, {"image": x}, Explanation(saliency=SAL, target=torch.tensor([1])))
    out = metric.compute()
    assert out["deletion"].item() == pytest.approx(0.3125, abs=1e-6)
    assert out["insertion"].item() == pytest.approx(0.6875, abs=1e-6)


def test_chunked_steps_match_and_save_forwards(toys):
    model1, x = _setup(toys, (1.0, 0.6))
    model3, _ = _setup(toys)
    sal = torch.stack([SAL[0], SAL[0].flip(-1)])
    target = torch.tensor([1, 0])
    one = DeletionInsertion(n_steps=4, insertion_baseline="black", **toys.IMAGENET)
    three = DeletionInsertion(
        n_steps=4, insertion_baseline="black", steps_per_forward=3, **toys.IMAGENET
    )
    c1, _ = one.curves(model1, x, sal, target)
    c3, _ = three.curves(model3, x, sal, target)
    for mode in ("deletion", "insertion"):
        torch.testing.assert_close(c1[mode], c3[mode])
    # 7 jobs in chunks of 3 -> 3 forwards, plus the original image
    assert model3.calls == 4 and model3.images == model1.images == 16


def test_blur_canvas_of_a_constant_image_is_the_image(toys):
    # Replicate-padded Gaussian blur leaves a constant image unchanged: the insertion curve is flat
    # at p1 = 0.6, AUC = 0.6. (Deletion to black: 4 pixels, R loses .3 at steps 1 and 3 ->
    # .6, .3, .3, 0, 0 -> .25 * (.45 + .3 + .15) = .225.)
    model, x = _setup(toys, (0.6,))
    metric = DeletionInsertion(n_steps=4, **toys.IMAGENET)
    metric.update_batch(model, {"image": x}, Explanation(saliency=SAL, target=torch.tensor([1])))
    out = metric.compute()
    assert out["insertion"].item() == pytest.approx(0.6, abs=1e-5)
    assert out["deletion"].item() == pytest.approx(0.225, abs=1e-5)


def test_gaussian_blur_kernel_by_hand():
    # 3-tap Gaussian, sigma 1: taps e^-.5, 1, e^-.5 over (1 + 2e^-.5); a centred delta on 5x5 gives
    # centre = 1/(1+2e^-.5)^2 and corner-adjacent (1,1) offset = e^-1/(1+2e^-.5)^2.
    delta = torch.zeros(1, 3, 5, 5)
    delta[:, :, 2, 2] = 1
    out = gaussian_blur(delta, kernel_size=3, sigma=1.0)
    z = (1 + 2 * math.exp(-0.5)) ** 2
    assert out[0, 0, 2, 2].item() == pytest.approx(1 / z, rel=1e-5)
    assert out[0, 1, 1, 1].item() == pytest.approx(math.exp(-1) / z, rel=1e-5)
    assert out.sum().item() == pytest.approx(3.0, rel=1e-5)


def test_only_one_mode_and_ties_in_raster_order(toys):
    # Constant saliency: deletion goes in raster order, px0, px1 (both R) first:
    # 1, .5, 0, 0, 0 -> .25 * (.75 + .25) = .25
    model, x = _setup(toys)
    metric = DeletionInsertion(n_steps=4, modes=("deletion",), **toys.IMAGENET)
    flat = torch.full((1, 1, 2, 2), 0.4)
    metric.update_batch(model, {"image": x}, Explanation(saliency=flat, target=torch.tensor([1])))
    assert metric.compute() == {"deletion": pytest.approx(0.25, abs=1e-6)}
    assert model.calls == 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="modes"):
        DeletionInsertion(modes=("delete",))
    with pytest.raises(ValueError, match="n_steps"):
        DeletionInsertion(n_steps=0)

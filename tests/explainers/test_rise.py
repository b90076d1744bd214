"""RISE: mask geometry by hand, the map against a direct loop over masks, masking, streaming.

The loop reference rebuilds the masks from the documented draw order with one
``F.interpolate`` and one slice per mask (no batched gather) and scores each masked image with
its own forward pass, so it shares no code path with the chunked implementation.
"""

from __future__ import annotations

import math

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from explainbench.backbones.base import Backbone
from explainbench.explainers.rise import RISE, draw_grids, render_masks, rise_masks
from explainbench.utils.paths import CONF_DIR

CONF = CONF_DIR / "explainers"


def images(batch: int = 2, size: int | tuple[int, int] = 16, seed: int = 0) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def toy(seed: int = 0, num_classes: int = 5) -> Backbone:
    gen = torch.Generator().manual_seed(seed)
    extractor = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, num_classes))
    model = Backbone(extractor, classifier, 8, 2, num_classes, name="toy")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model.eval()


# -- mask geometry ---------------------------------------------------------------------------


def test_render_masks_by_hand():
    """s = 2 on 4 × 6 px: cells 2 × 3 px, upsampled grid 6 × 9. Bilinear with pixel centres:
    output i samples the grid at u = (i + ½)·2/L − ½, clamped to [0, 1], and a lone on-cell
    (top-left) gives 1 − u. Along 2 → 6: 1, 1, 2/3, 1/3, 0, 0; along 2 → 9:
    1, 1, 17/18, 13/18, 1/2, 5/18, 1/18, 0, 0. Crop at (dy, dx) = (1, 2): rows 1..4, cols 2..7."""
    grids = torch.tensor([[[1.0, 0], [0, 0]]])
    masks = render_masks(grids, torch.tensor([[1, 2]]), (4, 6))
    rows = torch.tensor([1, 2 / 3, 1 / 3, 0])
    cols = torch.tensor([17, 13, 9, 5, 1, 0]) / 18
    assert masks.shape == (1, 4, 6)
    torch.testing.assert_close(masks[0], torch.outer(rows, cols))


def test_draw_grids_follow_the_documented_protocol():
    grids, shifts = draw_grids(500, 7, 0.3, (20, 30), seed=3)
    assert grids.shape == (500, 7, 7) and shifts.shape == (500, 2)
    assert set(grids.unique().tolist()) <= {0.0, 1.0}
    assert abs(grids.mean().item() - 0.3) < 0.02
    cells = (math.ceil(20 / 7), math.ceil(30 / 7))
    assert shifts.min() >= 0 and (shifts < torch.tensor(cells)).all()
    assert len(shifts[:, 0].unique()) == cells[0]  # every offset 0..C-1 occurs
    again = draw_grids(500, 7, 0.3, (20, 30), seed=3)
    assert torch.equal(grids, again[0]) and torch.equal(shifts, again[1])
    assert not torch.equal(grids, draw_grids(500, 7, 0.3, (20, 30), seed=4)[0])


def reference_masks(n: int, s: int, p: float, size: tuple[int, int], seed: int) -> torch.Tensor:
    """The documented protocol, one mask at a time: draw, upsample, slice."""
    gen = torch.Generator().manual_seed(seed)
    grids = (torch.rand(n, s, s, generator=gen) < p).float()
    ch, cw = math.ceil(size[0] / s), math.ceil(size[1] / s)
    dy = torch.randint(0, ch, (n,), generator=gen)
    dx = torch.randint(0, cw, (n,), generator=gen)
    masks = []
    for i in range(n):
        up = F.interpolate(grids[i][None, None], size=((s + 1) * ch, (s + 1) * cw),
                           mode="bilinear", align_corners=False)[0, 0]  # fmt: skip
        masks.append(up[dy[i] : dy[i] + size[0], dx[i] : dx[i] + size[1]])
    return torch.stack(masks)


def test_rise_masks_equal_the_one_by_one_reference():
    got = rise_masks(9, 3, 0.5, (10, 13), seed=5)
    torch.testing.assert_close(got, reference_masks(9, 3, 0.5, (10, 13), seed=5))
    assert got.min() >= 0 and got.max() <= 1


# -- the map ---------------------------------------------------------------------------------


def loop_reference(model, x, target, n, s, p, seed, score="prob"):
    """Σ_i f_c(x ∘ M_i) M_i / (N p), one image and one mask per forward pass."""
    masks = reference_masks(n, s, p, tuple(x.shape[-2:]), seed)
    raw = torch.zeros(x.shape[0], 1, *x.shape[-2:])
    with torch.no_grad():
        for b in range(x.shape[0]):
            for m in masks:
                logits = model(x[b : b + 1] * m)
                f = logits.softmax(1) if score == "prob" else logits
                raw[b, 0] += f[0, target[b]] * m
    raw /= n * p
    lo, hi = raw.amin(dim=(2, 3), keepdim=True), raw.amax(dim=(2, 3), keepdim=True)
    return raw, (raw - lo) / (hi - lo)


@pytest.mark.parametrize("score", ["prob", "logit"])
@pytest.mark.parametrize("batch_size", [1, 4, 50])
def test_map_equals_a_direct_loop_over_masks(score, batch_size):
    model, x = toy(), images(batch=2, size=(12, 14), seed=1)
    target = torch.tensor([3, 1])
    ex = RISE(n_masks=9, grid_size=3, p=0.4, batch_size=batch_size, seed=2, score=score)(
        model, x, target
    )
    raw, saliency = loop_reference(model, x, target, 9, 3, 0.4, 2, score)
    torch.testing.assert_close(ex.extras["raw"], raw, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ex.saliency, saliency, atol=1e-5, rtol=0)
    assert ex.forward_passes == 9.0 and ex.backward_passes == 0.0


def test_p_one_keeps_every_pixel_so_the_raw_map_is_the_unmasked_probability():
    """With p = 1 every mask is all ones: raw = f_c(x) everywhere, a constant (all-zero) map."""
    model, x = toy(), images(batch=2, size=12, seed=2)
    ex = RISE(n_masks=5, grid_size=3, p=1.0, batch_size=2)(model, x)
    with torch.no_grad():
        prob = model(x).softmax(1).gather(1, ex.target[:, None])
    torch.testing.assert_close(ex.extras["raw"], prob[:, :, None, None].expand(2, 1, 12, 12))
    assert torch.equal(ex.saliency, torch.zeros(2, 1, 12, 12))


class RegionMean(nn.Module):
    """Class 0's logit is 6 × the mean of channel 0 over ``region``; class 1's is 0 (the
    factor spreads the softmax probability over most of (½, 1))."""

    def __init__(self, region: tuple[slice, slice]) -> None:
        super().__init__()
        self.region = region
        self.seen: list[torch.Tensor] = []

    def features(self, x):
        self.seen.append(x.clone())
        return x

    def head(self, a):
        score = 6 * a[:, 0, self.region[0], self.region[1]].mean(dim=(1, 2))
        return torch.stack([score, torch.zeros_like(score)], dim=1)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("score", ["prob", "logit"])
def test_saliency_peaks_on_the_region_the_score_reads(score):
    region = (slice(4, 12), slice(20, 28))
    model, x = RegionMean(region), torch.ones(1, 3, 32, 32)
    ex = RISE(n_masks=1000, grid_size=4, p=0.5, batch_size=250, score=score)(model, x, 0)
    sal = ex.saliency[0, 0]
    inside = torch.zeros_like(sal, dtype=torch.bool)
    inside[region] = True
    peak = divmod(sal.argmax().item(), 32)
    assert inside[peak]
    assert sal[inside].mean() > 0.8 and sal[~inside].mean() < 0.4


def test_masks_multiply_the_normalised_input():
    """Masked pixels become 0 in the model's (normalised) input space: x ∘ M_i, in order."""
    model, x = RegionMean((slice(0, 4), slice(0, 4))), images(batch=2, size=10, seed=3)
    RISE(n_masks=5, grid_size=2, p=0.5, batch_size=3, seed=7)(model, x, 0)
    masks = reference_masks(5, 2, 0.5, (10, 10), seed=7)
    seen = torch.cat(model.seen)  # chunks of 3 + 2 masks, image 0 then image 1 in each
    order = [(0, slice(0, 3)), (1, slice(0, 3)), (0, slice(3, 5)), (1, slice(3, 5))]
    expected = torch.cat([x[b : b + 1] * masks[i, None] for b, i in order])
    torch.testing.assert_close(seen, expected)


# -- streaming, determinism, contract --------------------------------------------------------


@pytest.mark.parametrize("given", [True, False])
def test_streams_in_chunks_and_counts_passes(counting, given):
    model = counting(toy())
    x = images(batch=3, size=12)
    target = torch.tensor([0, 1, 2]) if given else None
    ex = RISE(n_masks=10, grid_size=3, batch_size=4)(model, x, target)
    assert model.max_batch == 4  # never more masked images than batch_size at once
    assert model.feature_images == 3 * 10 + (0 if given else 3)
    assert ex.forward_passes == (10.0 if given else 11.0)


def test_same_seed_same_map_other_seed_other_map():
    model, x = toy(), images(batch=2, size=16, seed=4)
    a = RISE(n_masks=20, grid_size=4, seed=1, batch_size=7)(model, x, 1).saliency
    b = RISE(n_masks=20, grid_size=4, seed=1, batch_size=20)(model, x, 1).saliency
    c = RISE(n_masks=20, grid_size=4, seed=2, batch_size=7)(model, x, 1).saliency
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert (a - c).abs().max() > 1e-2


def test_contract(plain_model):
    model, rise = toy(), RISE(n_masks=8, grid_size=3, batch_size=5)
    x = images(batch=3, size=(12, 16), seed=5)
    ex = rise(model, x)
    assert ex.saliency.shape == (3, 1, 12, 16) and ex.saliency.dtype == x.dtype
    assert ex.saliency.min() >= 0 and ex.saliency.max() <= 1
    torch.testing.assert_close(ex.saliency.amax(dim=(1, 2, 3)), torch.ones(3))
    with torch.no_grad():
        assert torch.equal(ex.target, model(x).argmax(1))
    by_int, by_tensor = rise(model, x, 4), rise(model, x, torch.tensor([4, 4, 4]))
    assert torch.equal(by_int.target, torch.tensor([4, 4, 4]))
    torch.testing.assert_close(by_int.saliency, by_tensor.saliency)
    target = torch.tensor([1, 0, 4])
    batched = rise(model, x, target).saliency
    single = torch.cat([rise(model, x[i : i + 1], target[i : i + 1]).saliency for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    for bad in (5, -1, torch.tensor([0, 7, 1])):
        with pytest.raises(ValueError, match="outside the model's 5 classes"):
            rise(model, x, bad)
    with pytest.raises(TypeError, match=r"features\(\)"):
        rise(plain_model, x)


@pytest.mark.parametrize("outer", ["inference_mode", "no_grad"])
def test_under_lightning_style_no_grad_and_outputs_are_ordinary_tensors(outer):
    model, x, rise = toy(), images(batch=2, size=12, seed=6), RISE(n_masks=6, grid_size=3)
    expected = rise(model, x, 2)
    assert not expected.saliency.is_inference() and not expected.extras["raw"].is_inference()
    expected.saliency.add_(0)  # callers may edit the result in place
    with torch.inference_mode() if outer == "inference_mode" else torch.no_grad():
        got = rise(model, x.clone(), 2)
    torch.testing.assert_close(got.saliency, expected.saliency)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    model, x = toy(), images(batch=2, size=16, seed=8)
    rise = RISE(n_masks=16, grid_size=4, batch_size=5)
    cpu = rise(model, x, 1)
    gpu = rise(model.cuda(), x.cuda(), 1)
    assert gpu.saliency.device.type == "cuda"
    torch.testing.assert_close(gpu.saliency.cpu(), cpu.saliency, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_masks": 0}, {"grid_size": 0}, {"p": 0.0}, {"p": 1.5}, {"batch_size": 0}, {"score": "x"}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RISE(**kwargs)


def test_config_file_instantiates_with_the_l_cam_defaults():
    cfg = OmegaConf.load(CONF / "rise.yaml").rise
    rise = hydra.utils.instantiate(cfg)
    assert type(rise) is RISE
    assert (rise.n_masks, rise.grid_size, rise.p, rise.seed) == (4000, 7, 0.5, 0)
    small = hydra.utils.instantiate(OmegaConf.merge(cfg, {"n_masks": 10, "batch_size": 5}))
    assert (small.n_masks, small.batch_size) == (10, 5)

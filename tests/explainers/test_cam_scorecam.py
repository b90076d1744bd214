"""Score-CAM: the paper weightings against a naive per-image, per-channel loop, and the
batching machinery (chunks, skipped channels, pass counts) against itself."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from explainbench.explainers.scorecam import WEIGHTINGS, ScoreCAM


def naive_scorecam(model, x, target, weighting):
    """One masked forward at a time, straight from the paper's definitions."""
    maps = []
    with torch.no_grad():
        baseline = model(torch.zeros_like(x[:1]))
        for img, c in zip(x, target.tolist(), strict=True):
            feats = model.features(img[None])[0]
            scores = []
            for a in feats:
                up = F.interpolate(
                    a[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False
                )
                mask = (up - up.min()) / (up.max() - up.min() + 1e-8)
                logits = model(img[None] * mask)[0]
                scores.append(logits[c] if weighting == "logit_softmax" else logits.softmax(0)[c])
            scores = torch.stack(scores)
            if weighting == "logit_softmax":
                weights = scores.softmax(0)
            elif weighting == "prob":
                weights = scores
            else:
                weights = scores - baseline[0].softmax(0)[c]
            cam = (weights[:, None, None] * feats).sum(0).relu()
            up = F.interpolate(
                cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False
            )
            span = up.max() - up.min()
            maps.append((up - up.min()) / span if span > 0 else torch.zeros_like(up))
    return torch.cat(maps)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_weightings_match_the_naive_loop(make_toy_backbone, make_images, weighting):
    model = make_toy_backbone(dead_channels=(1,))
    x = make_images(batch=2, size=32, seed=4)
    target = model(x).argmax(1)
    ex = ScoreCAM(weighting=weighting, batch_size=3)(model, x, target)
    expected = naive_scorecam(model, x, target, weighting)
    assert (expected.amax(dim=(1, 2, 3)) == 1).all()  # non-trivial maps, or the test proves nothing
    torch.testing.assert_close(ex.saliency, expected, atol=1e-5, rtol=0)


def test_prob_increase_weights_are_the_increase_over_the_zero_image(make_toy_backbone, make_images):
    model = make_toy_backbone(dead_channels=(0, 4))
    x = make_images(batch=2, size=32)
    ex = ScoreCAM()(model, x, target=3)
    weights = ex.extras["channel_weights"]
    # Dead channels mask everything away: their masked input *is* the baseline.
    assert torch.equal(weights[:, [0, 4]], torch.zeros(2, 2))
    assert (weights[:, [1, 2, 3, 5]] != 0).all()


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_skipping_constant_channels_is_exact_and_saves_passes(
    make_toy_backbone, make_images, counting, weighting
):
    model = counting(make_toy_backbone(channels=6, dead_channels=(2,)))
    x = make_images(batch=2, size=32)
    skip = ScoreCAM(weighting=weighting, skip_constant=True)(model, x)
    images_with_skip = model.feature_images
    model.feature_images = 0
    full = ScoreCAM(weighting=weighting, skip_constant=False)(model, x)
    # Equal up to float rounding: the same zero image is forwarded in a batch of another size
    # (oneDNN picks kernels by batch shape); a wrong skip moves the maps by ~1e-1.
    torch.testing.assert_close(skip.saliency, full.saliency, atol=1e-5, rtol=0)
    assert torch.equal(skip.extras["skipped_channels"], torch.tensor([1, 1]))
    assert torch.equal(full.extras["skipped_channels"], torch.tensor([0, 0]))
    # 2 unmasked + 2x5 masked + 1 shared zero image,
    # against 2 + 2x6 (+1 baseline for prob_increase).
    assert images_with_skip == 13 and skip.forward_passes == 6.5
    baseline = 1 if weighting == "prob_increase" else 0
    assert model.feature_images == 14 + baseline
    assert full.forward_passes == 1 + (12 + baseline) / 2


def test_chunking_across_images_and_channels(make_toy_backbone, make_images, counting):
    """Chunk size changes nothing but the batches the model sees, which never exceed it."""
    model = counting(make_toy_backbone(channels=7))
    x = make_images(batch=3, size=32, seed=6)
    full = ScoreCAM(batch_size=1000)(model, x)
    pairs = 3 * 7 - int(full.extras["skipped_channels"].sum())
    for chunk in (1, 4, 7, 20):
        model.max_batch = 0
        got = ScoreCAM(batch_size=chunk)(model, x).saliency
        torch.testing.assert_close(got, full.saliency, atol=1e-6, rtol=0)
        # the unmasked batch of 3, then masked chunks of at most `chunk`
        assert model.max_batch == max(min(chunk, pairs), 3)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("align_corners", [True, False])
def test_layout_and_mask_upsampling_knobs(toy_backbone, make_images, channels_last, align_corners):
    x = make_images(batch=2, size=32)
    ex = ScoreCAM(channels_last=channels_last, align_corners=align_corners)(toy_backbone, x)
    other = ScoreCAM(channels_last=not channels_last, align_corners=align_corners)(toy_backbone, x)
    torch.testing.assert_close(ex.saliency, other.saliency, atol=1e-5, rtol=0)


def test_all_channels_constant_gives_an_all_zero_map(make_toy_backbone, make_images, counting):
    model = counting(make_toy_backbone(channels=3, dead_channels=(0, 1, 2)))
    ex = ScoreCAM()(model, make_images(batch=2, size=32))
    assert torch.equal(ex.saliency, torch.zeros(2, 1, 32, 32))
    assert model.feature_images == 3  # the batch and the zero image, nothing masked


def test_bfloat16_autocast_is_close_but_not_exact(toy_backbone, make_images):
    x = make_images(batch=2, size=32)
    exact = ScoreCAM()(toy_backbone, x)
    fast = ScoreCAM(autocast_dtype="bfloat16")(toy_backbone, x)
    assert torch.equal(fast.target, exact.target)
    assert fast.saliency.dtype == x.dtype
    torch.testing.assert_close(fast.saliency, exact.saliency, atol=0.05, rtol=0)


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"weighting": "softmax"}, {"autocast_dtype": "float64"}]
)
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ScoreCAM(**kwargs)

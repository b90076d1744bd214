"""Region grouping: the prior loss and its Beta quantiles by hand, Eq. 1's assignment, the
attach point, one-pass explanations, the ablations and the clear errors."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from scipy import stats

from explainbench.backbones import build_backbone
from explainbench.backbones.truncate import truncate_backbone
from explainbench.explainers.method import MethodExplainer
from explainbench.methods.region_group import RegionGroup
from explainbench.methods.region_group_parts import (
    GroupingUnit,
    beta_quantiles,
    gaussian_kernel,
    part_occurrence,
    prior_loss,
)


def make_model(**kwargs) -> RegionGroup:
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", num_classes=3, widths=(4, 8, 8))
    kwargs = {"num_parts": 4, "feature_blocks": 1, "attention_blocks": 1, **kwargs}
    return RegionGroup(backbone, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs)


def batch(n: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {"image": torch.randn(n, 3, 32, 32, generator=gen), "label": torch.arange(n) % 3}


# -- the prior (Eq. 2) ------------------------------------------------------------------------
def test_beta_quantiles_are_scipys_ppf_at_the_mid_grid():
    n = 7
    expected = stats.beta.ppf((2 * np.arange(1, n + 1) - 1) / (2 * n), 2e-3, 1e-3)
    np.testing.assert_allclose(beta_quantiles(n, 2e-3, 1e-3), expected, rtol=1e-12)
    np.testing.assert_allclose(
        beta_quantiles(3, 1.0, 1e-3), stats.beta.ppf([1 / 6, 1 / 2, 5 / 6], 1.0, 1e-3)
    )


def test_prior_loss_equals_a_direct_numpy_computation():
    occurrence = np.array([[0.9, 0.2, 0.5], [0.1, 0.99, 0.4], [0.6, 0.7, 1e-4], [0.3, 0.05, 0.8],
                           [0.95, 0.5, 0.45]])  # fmt: skip
    n, k = occurrence.shape
    eps = 1e-5
    # the paper's Beta(1, 1e-3) (quantiles all ~1) and a U-shaped one whose quantiles spread out,
    # so the sort order matters
    for alpha, beta in ((1.0, 1e-3), (0.5, 0.5)):
        prior = stats.beta.ppf((2 * np.arange(1, n + 1) - 1) / (2 * n), alpha, beta)
        per_part = [
            np.mean(np.abs(np.log(np.sort(occurrence[:, j]) + eps) - np.log(prior + eps)))
            for j in range(k)
        ]
        got = prior_loss(torch.tensor(occurrence, dtype=torch.float64), alpha, beta)
        assert got.item() == pytest.approx(np.mean(per_part), rel=1e-10)


def test_occurrence_is_the_max_of_the_unpadded_5x5_gaussian_smoothing():
    q = torch.rand(2, 3, 8, 9, dtype=torch.float64)
    kernel = gaussian_kernel(2, 0.4).double()
    offsets = np.arange(-2, 3)
    direct = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 0.4**2))
    np.testing.assert_allclose(kernel.numpy(), direct / direct.sum(), rtol=1e-6)
    smoothed = np.zeros((2, 3, 4, 5))  # 8-4 x 9-4: no padding
    for i in range(4):
        for j in range(5):
            smoothed[:, :, i, j] = (q[:, :, i : i + 5, j : j + 5].numpy() * kernel.numpy()).sum(
                (2, 3)
            )
    np.testing.assert_allclose(part_occurrence(q).numpy(), smoothed.max((2, 3)), rtol=1e-10)


def test_a_batch_of_one_image_is_a_clear_error_suggesting_a_size():
    with pytest.raises(ValueError, match=r"at least 2 images per batch.*data.batch_size=16"):
        prior_loss(torch.rand(1, 5), 1.0, 1e-3)


# -- grouping (Eq. 1, 3) -------------------------------------------------------------------------
def test_assignment_sums_to_one_per_pixel_and_matches_eq1():
    torch.manual_seed(0)
    unit = GroupingUnit(6, 4).double()
    with torch.no_grad():
        unit.smoothing.copy_(torch.tensor([-0.5, 0.0, 1.0, 3.0]))  # every part keeps some mass
    x = 0.3 * torch.randn(2, 6, 5, 7, dtype=torch.float64)
    z, q = unit(x)
    assert q.sum((2, 3)).min() > 1e-3  # far from the 1e-5 clamp of empty parts
    torch.testing.assert_close(q.sum(1), torch.ones(2, 5, 7, dtype=torch.float64))
    sigma = torch.sigmoid(unit.smoothing)
    d = unit.dictionary
    diff = (x[:, None] - d[None, :, :, None, None]) / sigma[
        None, :, None, None, None
    ]  # [B,K,D,H,W]
    expected_q = (-diff.pow(2).sum(2) / 2).softmax(dim=1)
    torch.testing.assert_close(q, expected_q)
    zp = (expected_q[:, :, None] * diff).sum((3, 4)) / expected_q.sum((2, 3))[:, :, None]  # [B,K,D]
    torch.testing.assert_close(z, torch.nn.functional.normalize(zp, dim=2).transpose(1, 2))


def test_sigma_stays_in_the_open_unit_interval():
    unit = GroupingUnit(3, 4)
    with torch.no_grad():
        unit.smoothing.copy_(torch.tensor([-50.0, -2.0, 3.0, 15.0]))
    sigma = unit.sigma
    assert ((sigma > 0) & (sigma < 1)).all()
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # large steps on s: σ stays in (0, 1)
    for _ in range(3):
        optimizer.zero_grad()
        _, terms = model.loss(batch())
        sum(terms.values()).backward()
        optimizer.step()
    assert ((model.grouping.sigma > 0) & (model.grouping.sigma < 1)).all()


# -- the model ---------------------------------------------------------------------------------
def test_attach_points_cut_resnet_after_layer3_and_small_cnn_before_its_last_stage():
    resnet = truncate_backbone(build_backbone("resnet18", 3))
    assert (
        len(resnet.extractor) == 7
        and resnet.feature_channels == 256
        and resnet.feature_stride == 16
    )
    cnn = truncate_backbone(build_backbone("small_cnn", 3))  # widths 16, 32, 64, 128
    assert cnn.feature_channels == 64 and cnn.feature_stride == 4
    with pytest.raises(ValueError, match="Unknown attach stage 'layer9'.*layer3"):
        truncate_backbone(build_backbone("resnet18", 3), "layer9")


def test_explain_is_one_forward_pass_with_parts_and_attention():
    model = make_model().eval()
    calls = []
    model.backbone.extractor.register_forward_hook(lambda *args: calls.append(1))
    x = batch()["image"]
    explanation = MethodExplainer()(model, x)
    assert len(calls) == 1 and explanation.forward_passes == 1 and explanation.backward_passes == 0
    parts, attention = explanation.extras["parts"], explanation.extras["attention"]
    assert parts.shape == (4, 4, 16, 16) and attention.shape == (4, 4)  # stage 2 of 3: stride 2
    # Qᵀa, upsampled and min-max normalised
    expected = torch.einsum("bkhw,bk->bhw", parts, attention)[:, None]
    expected = torch.nn.functional.interpolate(
        expected, size=(32, 32), mode="bilinear", align_corners=False
    )
    lo = expected.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = expected.flatten(1).max(1).values.view(-1, 1, 1, 1)
    torch.testing.assert_close(explanation.saliency, (expected - lo) / (hi - lo))
    torch.testing.assert_close(model.part_maps(x), parts)


def test_loss_terms_and_the_two_ablations():
    b = batch()
    logits, terms = make_model(prior_weight=0.5).loss(b)
    occurrence = part_occurrence(make_model().grouping(make_model().features(b["image"])).parts)
    assert set(terms) == {"ce", "prior"}
    expected = 0.5 * prior_loss(occurrence, 1.0, 1e-3)
    torch.testing.assert_close(terms["prior"], expected)
    torch.testing.assert_close(terms["ce"], torch.nn.functional.cross_entropy(logits, b["label"]))
    _, terms = make_model(prior_weight=0.0).loss(b)
    assert set(terms) == {"ce"}
    flat = make_model(attention=False).eval()
    assert flat.attention_net is None
    torch.testing.assert_close(
        flat.explain(b["image"]).extras["attention"], torch.full((4, 4), 0.25)
    )


def test_multi_label_data_uses_the_mean_binary_cross_entropy():
    from explainbench.data.info import DataInfo

    model = make_model(data_info=DataInfo(num_classes=3, multilabel=True))
    label = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    logits, terms = model.loss({**batch(), "label": label})
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, label.float())
    torch.testing.assert_close(terms["bce"], expected)


def test_head_lr_multiplier_gives_the_new_modules_their_own_learning_rate():
    model = make_model(head_lr_multiplier=20.0)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [0.1, 2.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_gallery_shows_the_part_segmentation_in_k_colours():
    model = make_model().eval()
    x = batch()["image"]
    texts, maps = model.gallery_extras(x)
    seg = maps["parts"]
    assert seg.shape == (4, 1, 32, 32) and len(texts) == 4 and texts[0].startswith("p")
    parts = torch.nn.functional.interpolate(
        model.part_maps(x), size=(32, 32), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(seg * 3, parts.argmax(1, keepdim=True).float())  # part k -> k/(K-1)

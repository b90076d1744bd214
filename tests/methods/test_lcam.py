"""L-CAM: loss terms by hand, a frozen classifier, one-pass explanations, black masked pixels."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch

from explainbench.backbones import build_backbone
from explainbench.data.info import DataInfo
from explainbench.methods.lcam import LCAM, area_loss, total_variation
from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize


def trained_backbone(num_classes: int = 4):
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", num_classes=num_classes, widths=(8, 8, 16, 16))
    backbone.source = "checkpoint:test"  # stands in for loaded weights
    return backbone


def make_lcam(variant: str = "img", **kwargs) -> LCAM:
    return LCAM(
        trained_backbone(), variant=variant, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs
    )


def test_total_variation_by_hand():
    # map [[0, 1, 3], [2, 2, 2]]: horizontal (0-1)^2 + (1-3)^2 + 0 + 0 = 5; vertical 4 + 1 + 1 = 6
    s = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).view(1, 1, 2, 3)
    assert total_variation(s).item() == pytest.approx(11.0)
    # batch of two: the mean of 11 and 0
    assert total_variation(torch.cat([s, torch.ones_like(s)])).item() == pytest.approx(5.5)


def test_area_loss_by_hand():
    s = torch.tensor([0.0, 0.25, 1.0, 0.5]).view(1, 1, 2, 2)
    expected = (0.0 + 0.25**0.3 + 1.0 + 0.5**0.3) / 4
    assert area_loss(s, 0.3).item() == pytest.approx(expected, rel=1e-6)


def test_loss_terms_are_weighted_as_configured():
    model = make_lcam("fm", tv_weight=0.5, area_weight=3.0, ce_weight=2.0)
    x = torch.randn(2, 3, 32, 32)
    _, terms = model.loss({"image": x, "label": torch.tensor([0, 1])})
    with torch.no_grad():
        a = model.backbone.features(x)
        truth = model.backbone.head(a).argmax(1)
        s = torch.sigmoid(model.class_maps(a, truth))
        ce = torch.nn.functional.cross_entropy(model.backbone.head(a * s), truth)
    assert terms["tv"].item() == pytest.approx(0.5 * total_variation(s).item(), rel=1e-5)
    assert terms["av"].item() == pytest.approx(3.0 * area_loss(s, 0.3).item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx(2.0 * ce.item(), rel=1e-5)
    _, only_ce = make_lcam("fm", ce_only=True).loss({"image": x, "label": torch.tensor([0, 1])})
    assert set(only_ce) == {"ce"}


def test_class_maps_equal_the_full_1x1_conv_row():
    model = make_lcam()
    a = torch.randn(3, model.backbone.feature_channels, 4, 4)
    target = torch.tensor([2, 0, 3])
    full = model.attention(a)
    torch.testing.assert_close(
        model.class_maps(a, target), full[torch.arange(3), target].unsqueeze(1)
    )


@pytest.mark.parametrize("variant", ["fm", "img"])
def test_training_step_leaves_the_classifier_bit_identical(variant):
    model = make_lcam(variant)
    model.train()
    before = copy.deepcopy(model.backbone.state_dict())
    optimizer = model.optimizer_factory(params=model.trainable_parameters())
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    _, terms = model.loss(batch)
    sum(terms.values()).backward()
    optimizer.step()
    for key, value in model.backbone.state_dict().items():  # weights and BatchNorm buffers
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.attention.weight.grad is not None and model.attention.weight.grad.abs().sum() > 0
    assert not model.backbone.training  # BatchNorm/Dropout stay in eval mode while training


def test_explain_is_one_forward_pass_and_no_backward():
    model = make_lcam().eval()
    calls = {"extractor": 0, "classifier": 0}
    model.backbone.extractor.register_forward_hook(
        lambda *_: calls.__setitem__("extractor", calls["extractor"] + 1)
    )
    model.backbone.classifier.register_forward_hook(
        lambda *_: calls.__setitem__("classifier", calls["classifier"] + 1)
    )
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    explanation = model.explain(x)
    assert calls == {"extractor": 1, "classifier": 1}
    assert explanation.forward_passes == 1 and explanation.backward_passes == 0
    assert not explanation.saliency.requires_grad and x.grad is None
    assert explanation.saliency.shape == (2, 1, 32, 32)
    assert explanation.saliency.min() >= 0 and explanation.saliency.max() <= 1
    # any target class: class-specific maps, still one pass, no head needed
    calls.update(extractor=0, classifier=0)
    other = model.explain(x, target=3)
    assert calls == {"extractor": 1, "classifier": 0}
    assert torch.equal(other.target, torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="outside"):
        model.explain(x, target=7)


def test_explain_is_the_min_max_normalised_upsampled_class_map():
    """θ(ζ(L^(c))): the class map of the 1x1 attention, min-max normalised per image to [0, 1],
    then bilinearly upsampled; not the raw sigmoid that the loss uses (IoU, FAR and AD/IC read
    the values)."""
    model = make_lcam().eval()
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    target = torch.tensor([0, 2, 3])
    with torch.no_grad():
        a = model.backbone.features(x)
        w, b = model.attention.weight[:, :, 0, 0], model.attention.bias  # [R,K], [R]
        maps = torch.einsum("bkpq,bk->bpq", a, w[target]) + b[target].view(-1, 1, 1)
        lo = maps.amin(dim=(1, 2), keepdim=True)
        hi = maps.amax(dim=(1, 2), keepdim=True)
        expected = torch.nn.functional.interpolate(
            ((maps - lo) / (hi - lo)).unsqueeze(1),
            size=(32, 32),
            mode="bilinear",
            align_corners=False,
        )
    saliency = model.explain(x, target=target).saliency
    assert torch.allclose(saliency, expected, atol=1e-5)
    # each map spans [0, 1] before upsampling: the corners of an upsampled map keep their values
    assert saliency.amax(dim=(1, 2, 3)).min() > 0.9 and saliency.amin(dim=(1, 2, 3)).max() < 0.1


def test_img_variant_masks_pixels_to_black():
    model = make_lcam("img").eval()
    seen = {}
    model.backbone.extractor.register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("x", args[0].detach())
    )
    x = torch.randn(1, 3, 32, 32)
    s = torch.ones(1, 1, 4, 4)
    s[..., :, :2] = (
        0.0  # left half of the map off → left half of the image (beyond the blend) black
    )
    with torch.no_grad():
        a = model.backbone.features(x)
        model.masked_logits(x, a, s)
    pixels = denormalize(seen["x"], IMAGENET_MEAN, IMAGENET_STD)
    assert pixels[..., :, :12].abs().max() < 1e-5  # bilinear blend only touches columns 12-19
    torch.testing.assert_close(
        pixels[..., :, 20:], denormalize(x, IMAGENET_MEAN, IMAGENET_STD)[..., :, 20:]
    )


def test_untrained_backbone_is_refused():
    backbone = build_backbone("small_cnn", num_classes=4)
    with pytest.raises(ValueError, match="method=classifier"):
        LCAM(backbone)


def test_black_is_taken_in_the_data_infos_own_normalisation():
    """L-CAM-Img masks pixels in [0, 1] space with the data's mean/std, which come with its
    data_info (and so with the checkpoint), not from a trainer's datamodule at fit time."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    model = make_lcam("img", data_info=DataInfo(num_classes=4, mean=mean, std=std)).eval()
    seen = {}
    model.backbone.extractor.register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("x", args[0].detach())
    )
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        model.masked_logits(x, model.backbone.features(x), torch.zeros(1, 1, 2, 2))
    black = normalize(torch.zeros(1, 3, 8, 8), torch.tensor(mean), torch.tensor(std))
    torch.testing.assert_close(seen["x"], black)
    assert model.hparams["data_info"]["mean"] == list(mean)

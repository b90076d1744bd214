"""Layer-wise feature heatmaps: a hand-built backbone whose layer outputs are known, the default
layers of every registered backbone, the error for an unknown layer, and the gallery columns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainbench.backbones.base import Backbone
from explainbench.backbones.registry import BACKBONES, build_backbone
from explainbench.evaluation import gallery_records
from explainbench.explainers.activation import ActivationMap
from explainbench.explainers.layer_heatmaps import LayerHeatmaps, default_layers


def hand_backbone() -> Backbone:
    """conv0 (x0, 3·x1) → ReLU in place → pool → conv3 (a0, 2·a1 − a0) → ReLU → pool →
    conv6 (b0, −b1, b0 + b1): stages end at extractor.1, .4 and .6."""
    conv0 = nn.Conv2d(3, 2, 1, bias=False)
    conv3 = nn.Conv2d(2, 2, 1, bias=False)
    conv6 = nn.Conv2d(2, 3, 1, bias=False)
    with torch.no_grad():
        conv0.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 3, 0]]).view(2, 3, 1, 1))
        conv3.weight.copy_(torch.tensor([[1.0, 0], [-1, 2]]).view(2, 2, 1, 1))
        conv6.weight.copy_(torch.tensor([[1.0, 0], [0, -1], [1, 1]]).view(3, 2, 1, 1))
    extractor = nn.Sequential(
        conv0, nn.ReLU(inplace=True), nn.MaxPool2d(2), conv3, nn.ReLU(), nn.MaxPool2d(2), conv6
    )
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(3, 4))
    return Backbone(extractor, classifier, 3, 4, 4, name="hand").eval()


def pool2(t: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool by reshaping, ``[B,C,H,W]``."""
    b, c, h, w = t.shape
    return t.view(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))


def bilinear_1d(values: list[float], size: int) -> list[float]:
    """Bilinear resize with half-pixel centres (align_corners=False), clamped at the edges."""
    n, out = len(values), []
    for i in range(size):
        src = min(max((i + 0.5) * n / size - 0.5, 0.0), n - 1)
        lo = int(src)
        hi, frac = min(lo + 1, n - 1), src - lo
        out.append(values[lo] * (1 - frac) + values[hi] * frac)
    return out


def by_hand(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B,P,Q]`` maps → resized (rows, then columns) and min-max normalised per image."""
    out = []
    for m in cam.tolist():
        rows = [bilinear_1d(r, size[1]) for r in m]
        cols = [bilinear_1d(list(c), size[0]) for c in zip(*rows, strict=True)]
        img = torch.tensor(cols).T
        out.append((img - img.min()) / (img.max() - img.min()))
    return torch.stack(out).unsqueeze(1)


@pytest.fixture
def images() -> torch.Tensor:
    # non-square, and the second image ten times the first plus noise: per-image normalisation
    gen = torch.Generator().manual_seed(3)
    first = torch.randn(1, 3, 8, 12, generator=gen)
    return torch.cat([first, 10 * first + torch.randn(1, 3, 8, 12, generator=gen)])


def expected_maps(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Channel means of every layer, computed from the weights above without the model."""
    pre = torch.stack([x[:, 0], 3 * x[:, 1]], 1)  # conv0, before the in-place ReLU
    a = pool2(pre.clamp_min(0))
    c = torch.stack([a[:, 0], 2 * a[:, 1] - a[:, 0]], 1).clamp_min(0)  # conv3 + ReLU
    b = pool2(c)
    d = torch.stack([b[:, 0], -b[:, 1], b[:, 0] + b[:, 1]], 1)  # conv6
    size = tuple(x.shape[-2:])
    return {
        "conv0": by_hand(pre.mean(1), size),
        "low": by_hand(pre.clamp_min(0).mean(1), size),
        "middle": by_hand(c.mean(1), size),
        "high": by_hand(d.mean(1), size),
        "high_max": by_hand(d.amax(1), size),
    }


def test_default_layers_of_the_hand_backbone_are_its_stage_ends():
    assert default_layers(hand_backbone()) == ("extractor.1", "extractor.4", "extractor.6")


def test_maps_equal_the_hand_computed_ones(images):
    model = hand_backbone()
    ex = LayerHeatmaps()(model, images)
    want = expected_maps(images)
    assert ex.extras["layer_names"] == {
        "low": "extractor.1",
        "middle": "extractor.4",
        "high": "extractor.6",
    }
    for level in ("low", "middle", "high"):
        torch.testing.assert_close(ex.extras["layer_maps"][level], want[level], atol=1e-5, rtol=0)
    torch.testing.assert_close(ex.saliency, want["high"], atol=1e-5, rtol=0)
    assert torch.equal(ex.target, model(images).argmax(1))
    assert (ex.forward_passes, ex.backward_passes) == (1.0, 0.0)
    # the high layer is 2x3 cells: the hand-made bilinear really interpolates something
    assert ((want["high"] > 0.01) & (want["high"] < 0.99)).any()


def test_a_layer_is_read_before_a_later_in_place_relu_changes_it(images):
    """extractor.0's output is overwritten by the in-place ReLU after it."""
    ex = LayerHeatmaps(layers=["extractor.0", "stage2", "stage3"])(hand_backbone(), images)
    torch.testing.assert_close(
        ex.extras["layer_maps"]["low"], expected_maps(images)["conv0"], atol=1e-5, rtol=0
    )


def test_chosen_layer_reduction_and_gallery_columns(images):
    model = hand_backbone()
    want = expected_maps(images)
    middle = LayerHeatmaps(layer="middle")(model, images)
    torch.testing.assert_close(middle.saliency, want["middle"], atol=1e-5, rtol=0)
    other = LayerHeatmaps(layer="extractor.0")(model, images)  # none of the three
    torch.testing.assert_close(other.saliency, want["conv0"], atol=1e-5, rtol=0)
    assert list(other.extras["gallery_maps"]) == [
        "low\nextractor.1",
        "middle\nextractor.4",
        "high\nextractor.6",
        "saliency\nextractor.0",
    ]
    by_max = LayerHeatmaps(reduction="max")(model, images)
    torch.testing.assert_close(by_max.saliency, want["high_max"], atol=1e-5, rtol=0)


def test_names_relative_to_a_methods_backbone(images):
    class Method(nn.Module):  # what ExplainableMethod exposes: .backbone, features, head
        def __init__(self) -> None:
            super().__init__()
            self.backbone = hand_backbone()

        def features(self, x):
            return self.backbone.features(x)

        def head(self, a):
            return self.backbone.head(a)

    method = Method()
    short = LayerHeatmaps(layers=["extractor.1", "extractor.4", "extractor.6"])(method, images)
    full = LayerHeatmaps(
        layers=["backbone.extractor.1", "backbone.extractor.4", "backbone.extractor.6"]
    )(method, images)
    default = LayerHeatmaps()(method, images)
    torch.testing.assert_close(short.saliency, expected_maps(images)["high"], atol=1e-5, rtol=0)
    torch.testing.assert_close(full.extras["layer_maps"], default.extras["layer_maps"])


def test_unknown_layer_lists_the_stage_outputs(images):
    model = hand_backbone()
    with pytest.raises(ValueError) as err:
        LayerHeatmaps(layers=["extractor.1", "extractor.9", "extractor.6"])(model, images)
    assert str(err.value) == (
        "layer_heatmaps: unknown layer 'extractor.9'. Stage outputs: extractor.1 (stage1), "
        "extractor.4 (stage2), extractor.6 (stage3); close module names: extractor.6, extractor.5, "
        "extractor.4; any of the model's 12 module names is valid (print(model) shows them)."
    )
    with pytest.raises(ValueError, match="must name 3 layers"):
        LayerHeatmaps(layers=["extractor.1"])


@pytest.mark.parametrize(
    "layer,message",
    [("classifier.1", r"outputs \(2, 3\), not \[B,C,H,W\]"), ("unused", "did not run")],
)
def test_layers_that_give_no_maps_are_errors_and_leave_no_hooks(images, layer, message):
    model = hand_backbone()
    model.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match=message):
        LayerHeatmaps(layer=layer)(model, images)
    assert not any(m._forward_hooks for m in model.modules())


# the paper leaves the layers open; these are ours (first, middle, last stage), pinned
DEFAULTS = {
    "small_cnn": ("extractor.5", "extractor.19", "extractor.26"),
    "resnet18": ("extractor.4", "extractor.6", "extractor.7"),
    "resnet50": ("extractor.4", "extractor.6", "extractor.7"),
    "vgg16": ("extractor.3", "extractor.15", "extractor.29"),
    "vgg16_7x7": ("extractor.3", "extractor.15", "extractor.29"),
    "alexnet": ("extractor.1", "extractor.4", "extractor.11"),
    "googlenet": ("extractor.layers.6", "extractor.layers.12", "extractor.layers.15"),
    # after the first and third attention stage, and the final BN-ReLU
    "ran56": ("extractor.2", "extractor.6", "extractor.11"),
    "ran92": ("extractor.5", "extractor.12", "extractor.17"),
}
# cheap enough to run on CPU at a small input; the others are resolved on the meta device
RUN = {"small_cnn": 32, "resnet18": 64, "alexnet": 64}


@pytest.mark.parametrize("name", BACKBONES)
def test_default_layers_resolve_on_every_backbone(name):
    with torch.device("meta"):  # structure only: no weights are initialised
        meta = build_backbone(name, num_classes=3)
    assert default_layers(meta) == DEFAULTS[name]
    names, _ = LayerHeatmaps().resolve(meta)
    assert tuple(names.values()) == DEFAULTS[name]
    if name in RUN:
        torch.manual_seed(0)
        model = build_backbone(name, num_classes=3).eval()
        size = RUN[name]
        ex = LayerHeatmaps()(model, torch.randn(2, 3, size, size))
        for m in ex.extras["layer_maps"].values():
            assert m.shape == (2, 1, size, size)
            assert torch.allclose(m.amax(dim=(1, 2, 3)), torch.ones(2))


def test_gallery_shows_the_three_maps_as_columns(images):
    model = hand_backbone()
    batch = {"image": images, "label": torch.tensor([0, 1])}
    explainers = {"activation": ActivationMap(), "layer_heatmaps": LayerHeatmaps()}
    maps = gallery_records(model, batch, explainers, [0.0] * 3, [1.0] * 3).maps
    assert list(maps) == [
        "activation",
        "low\nextractor.1",
        "middle\nextractor.4",
        "high\nextractor.6",
    ]
    torch.testing.assert_close(maps["middle\nextractor.4"], expected_maps(images)["middle"])
    # a second explainer with the same column titles gets its name in front
    explainers["again"] = LayerHeatmaps(reduction="max")
    maps = gallery_records(model, batch, explainers, [0.0] * 3, [1.0] * 3).maps
    assert list(maps)[-3:] == [
        "again/low\nextractor.1",
        "again/middle\nextractor.4",
        "again/high\nextractor.6",
    ]
    torch.testing.assert_close(maps["again/high\nextractor.6"], expected_maps(images)["high_max"])

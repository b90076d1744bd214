"""method=attention_net: attention at a backbone stage, the stage mapping, the explanation, the
plain-backbone baseline, the clear errors and one CLI sweep on tiny an8flower."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.nn import functional as F

from explainbench.backbones import build_backbone
from explainbench.explainers.base import normalize_per_image
from explainbench.explainers.gradcam import GradCAM
from explainbench.explainers.method import MethodExplainer
from explainbench.methods.attention_net import AttentionNet
from tests.helpers import TINY_DATA, run_cli, run_dirs


def make(backbone="small_cnn", kind="sharable", stage="early", **extra) -> AttentionNet:
    torch.manual_seed(0)
    kwargs = {"widths": (4, 8, 8, 16)} if backbone == "small_cnn" else {}
    net = build_backbone(backbone, num_classes=3, **kwargs)
    return AttentionNet(net, attention={"kind": kind, "stage": stage, **extra}).eval()


STAGES = {
    "small_cnn": ["stage2", "stage3", "stage4"],
    "resnet18": ["layer2", "layer3", "layer4"],
    "resnet50": ["layer2", "layer3", "layer4"],
    "googlenet": ["inception3b", "inception4e", "inception5b"],
}


@pytest.mark.parametrize(
    "backbone",
    [
        "small_cnn",
        # ~15-30 s each on 2 cores: the fast suite keeps small_cnn, which has the same stages
        pytest.param("resnet18", marks=pytest.mark.slow),
        pytest.param("googlenet", marks=pytest.mark.slow),
        pytest.param("resnet50", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize(
    # sharable's shapes are also checked module by module in tests/test_attention_modules.py
    "kind",
    ["residual", pytest.param("sharable", marks=pytest.mark.slow)],
)
def test_every_backbone_and_stage_keeps_the_explanation_layer_shape(backbone, kind):
    plain = build_backbone(
        backbone, num_classes=3, **({"widths": (4, 8, 8, 16)} if backbone == "small_cnn" else {})
    )
    for position, name in zip(["early", "middle", "late"], STAGES[backbone], strict=True):
        model = make(backbone, kind, position)
        assert model.stage == name
        expected_masks = (
            STAGES[backbone][STAGES[backbone].index(name) :] if kind == "sharable" else [name]
        )
        assert model.mask_stages == expected_masks
        for size in [(64, 64), (65, 67)]:
            x = torch.randn(2, 3, *size)
            with torch.no_grad():
                a = model.features(x)
                logits = model(x)
                reference = plain.eval().features(x)
            assert a.shape == reference.shape, (position, size)
            torch.testing.assert_close(logits, model.head(a))
            assert logits.shape == (2, 3)


def test_kind_none_is_the_plain_backbone():
    torch.manual_seed(0)
    plain = build_backbone("resnet18", num_classes=3).eval()
    model = AttentionNet(copy.deepcopy(plain), attention={"kind": "none", "stage": "middle"}).eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x))
        feats, maps = model.attention_maps(x)
        # its "map" is the chosen stage's features (layer3)
        cut = plain.extractor[:7]
        torch.testing.assert_close(maps["layer3"], cut(x))


@pytest.mark.parametrize("kind", ["residual", "sharable"])
def test_explain_is_the_chosen_stage_mask_channel_averaged_and_upsampled(kind):
    model = make("small_cnn", kind, "middle")
    x = torch.randn(3, 3, 37, 45)
    ext = model.backbone.extractor
    with torch.no_grad():
        h = ext.attention.pre(ext.first(x))  # stage3 features through the pre units
        if kind == "residual":
            mask = ext.attention.mask_head(ext.attention.mask_body(h)[0])
        else:
            mask = ext.attention.heads[0](ext.attention.shared(h)[0])
        logits = model(x)
    assert mask.shape[1] == 8 and mask.shape[-2:] == (9, 11)  # stage3: stride 4
    expected = normalize_per_image(
        F.interpolate(
            mask.mean(1, keepdim=True), size=(37, 45), mode="bilinear", align_corners=False
        )
    )
    explanation = MethodExplainer()(model, x)
    torch.testing.assert_close(explanation.saliency, expected)
    assert explanation.saliency.shape == (3, 1, 37, 45)
    assert explanation.saliency.min() == 0 and explanation.saliency.max() == 1
    assert torch.equal(explanation.target, logits.argmax(1))
    assert explanation.forward_passes == 1
    assert torch.equal(model.explain(x, 2).target, torch.full((3,), 2))


def test_gallery_shows_every_scale_mask():
    model = make("small_cnn", "sharable", "early")
    x = torch.randn(2, 3, 32, 32)
    texts, maps = model.gallery_extras(x)
    assert texts == [] and list(maps) == ["mask stage2", "mask stage3", "mask stage4"]
    with torch.no_grad():
        _, raw = model.attention_maps(x)
    assert [tuple(m.shape[-2:]) for m in raw.values()] == [(16, 16), (8, 8), (4, 4)]
    for name, m in maps.items():
        assert m.shape == (2, 1, 32, 32)
        small = raw[name.split()[1]].mean(1, keepdim=True)
        expected = normalize_per_image(
            F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
        )
        torch.testing.assert_close(m, expected)


def test_post_hoc_explainers_see_the_attended_features():
    model = make("resnet18", "sharable", "early")
    x = torch.randn(2, 3, 64, 64)
    explanation = GradCAM()(model, x)
    assert explanation.saliency.shape == (2, 1, 64, 64)


def test_an_unknown_stage_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        make("resnet18", "residual", "layer9")
    assert (
        "Unknown method.attention.stage 'layer9' for backbone 'resnet18'. Valid: early, middle, "
        "late, layer1, layer2, layer3, layer4." in str(info.value)
    )
    # a stage name of the table works too
    assert make("resnet18", "residual", "layer1").stage == "layer1"


def test_an_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Valid: none, residual, sharable"):
        make("small_cnn", "spatial")


def test_input_too_small_for_the_mask_poolings_names_the_minimum():
    model = make("resnet18", "sharable", "early")  # layer2, stride 8, 3 poolings -> 64 px
    with pytest.raises(ValueError, match=r"Input 40x70 is too small .* at least 64x64 px"):
        model(torch.randn(1, 3, 40, 70))
    # small_cnn: stage2 (stride 2) with depth 3 needs 16 px, refused before any pooling fails
    small = make("small_cnn", "residual", "early")
    with pytest.raises(ValueError, match="at least 16x16 px"):
        small.explain(torch.randn(1, 3, 12, 12))
    with torch.no_grad():
        small(torch.randn(2, 3, 16, 16))


def test_ran_backbones_are_refused_with_a_pointer_to_the_classifier():
    net = build_backbone("ran56", num_classes=3, base_width=4)
    with pytest.raises(
        ValueError, match="already has residual attention modules: train it with method=classifier"
    ):
        AttentionNet(net, attention={"kind": "residual"})


@pytest.mark.slow  # two training jobs (~8 s); the method's pieces are tested in-process above
def test_cli_sweep_trains_residual_and_sharable_and_scores_their_masks(tmp_path):
    proc = run_cli(
        "train.py",
        [
            "--multirun",
            "experiment=an8flower_attention_stages",
            *TINY_DATA,
            "data.image_size=32",
            "backbone.widths=[4,8,8,16]",
            "trainer.max_epochs=1",
            "callbacks.heatmap_gallery.num_images=2",
            "method.attention.kind=residual,sharable",
            "method.attention.stage=early",
        ],
        tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = run_dirs(proc.stdout)
    assert len(dirs) == 2
    for run_dir in dirs:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for key in ("test/acc", "test/iou_auc/method", "test/iou_mask_auc/method"):
            assert 0.0 <= metrics[key] <= 1.0, (run_dir, key)


def test_layer_heatmaps_read_the_attention_extractor_stages():
    """layer_heatmaps' defaults on attention_net: the backbone up to the chosen stage, then each
    later stage (the extractor's own stage_outputs(), not a child returning a tuple)."""
    from explainbench.explainers.layer_heatmaps import LayerHeatmaps, default_layers

    model = make("small_cnn", "sharable", "early").eval()
    assert default_layers(model.backbone) == (
        "extractor.first",
        "extractor.later.0",
        "extractor.later.1",
    )
    x = torch.randn(2, 3, 32, 32)
    ext = model.backbone.extractor
    with torch.no_grad():
        first = ext.first(x)
    ex = LayerHeatmaps()(model, x)
    expected = normalize_per_image(
        F.interpolate(first.mean(1, keepdim=True), size=(32, 32), mode="bilinear")
    )
    torch.testing.assert_close(ex.extras["layer_maps"]["low"], expected)

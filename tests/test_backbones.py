"""Backbone registry: the features/head split, torchvision equivalence, weights and checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision import models

from explainbench.backbones import BACKBONES, build_backbone
from explainbench.backbones import torchvision_nets as tvn

# (name, input size, expected explanation-layer side at that size, channels, stride)
SHAPES = [
    ("small_cnn", 64, 8, 128, 8),
    ("resnet18", 64, 2, 512, 32),
    ("resnet50", 64, 2, 2048, 32),
    ("vgg16", 224, 14, 512, 16),
    ("vgg16_7x7", 224, 7, 512, 32),
    ("alexnet", 224, 13, 256, 16),
    ("googlenet", 64, 2, 1024, 32),
    ("ran56", 32, 4, 512, 8),  # cifar stem
    ("ran92", 64, 2, 2048, 32),  # imagenet stem
]


def test_every_registered_backbone_is_covered():
    assert {name for name, *_ in SHAPES} == set(BACKBONES)


# full-width attention stacks take 10-15 s each on 2 cores; tests/test_attention_modules.py checks
# narrow ones in the fast suite
SLOW_SHAPES = {"ran56", "ran92"}


@pytest.mark.parametrize(
    ("name", "size", "side", "channels", "stride"),
    [
        pytest.param(*row, marks=pytest.mark.slow) if row[0] in SLOW_SHAPES else row
        for row in SHAPES
    ],
)
def test_split_shapes_and_forward(name, size, side, channels, stride):
    torch.manual_seed(0)
    backbone = build_backbone(name, num_classes=5).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        a = backbone.features(x)
        logits = backbone(x)
        assert torch.equal(logits, backbone.head(a))
    assert a.shape == (2, channels, side, side)
    assert logits.shape == (2, 5)
    assert backbone.feature_channels == channels and backbone.feature_stride == stride


@pytest.mark.parametrize(
    ("ctor", "split"),
    [
        (models.resnet18, lambda n: tvn.resnet("resnet18", n, 1000)),
        (models.alexnet, lambda n: tvn.alexnet(n, 1000)),
        (
            lambda **kw: models.googlenet(aux_logits=False, init_weights=True, **kw),
            lambda n: tvn.googlenet(n, 1000),
        ),
    ],
)
def test_split_equals_torchvision_forward(ctor, split):
    torch.manual_seed(0)
    net = ctor(weights=None).eval()
    reference = copy.deepcopy(net)
    backbone = split(net).eval()
    x = torch.randn(1, 3, 96, 96) if ctor is not models.alexnet else torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), reference(x))


def test_missing_pretrained_weights_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        build_backbone("resnet18", num_classes=10, weights="IMAGENET1K_V1")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_cached_weights_load_from_hub_cache(tmp_path, monkeypatch):
    """A file in the hub cache under torchvision's file name is what weights=IMAGENET1K_V1 loads."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    source = models.resnet18(weights=None)
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(source.state_dict(), folder / "resnet18-f37072fd.pth")
    backbone = build_backbone("resnet18", num_classes=1000, weights="IMAGENET1K_V1").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), source.eval()(x))
    # a different class count keeps the pretrained trunk and replaces only the last layer
    small = build_backbone("resnet18", num_classes=7, weights="IMAGENET1K_V1")
    torch.testing.assert_close(small.extractor[0].weight, source.conv1.weight)
    assert small.classifier[-1].out_features == 7


def test_unknown_names_are_clear():
    with pytest.raises(ValueError, match="Available: small_cnn"):
        build_backbone("vgg99", num_classes=3)
    with pytest.raises(ValueError, match="Valid: IMAGENET1K_V1"):
        build_backbone("resnet18", num_classes=3, weights="IMAGENET9K")


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    trained = build_backbone("small_cnn", num_classes=6)
    # the layout a Lightning checkpoint of a method has: backbone.* keys under state_dict
    state = {f"backbone.{k}": v for k, v in trained.state_dict().items()}
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = build_backbone("small_cnn", num_classes=6, checkpoint=path)
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # the explicit flag methods that explain a frozen classifier check (L-CAM)
    assert loaded.has_trained_weights and not trained.has_trained_weights

    with pytest.raises(ValueError, match=r"shape mismatch.*classifier\.3\.weight"):
        build_backbone("small_cnn", num_classes=12, checkpoint=path)
    with pytest.raises(ValueError, match="missing keys"):
        build_backbone("resnet18", num_classes=6, checkpoint=path)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        build_backbone("small_cnn", num_classes=6, checkpoint=tmp_path / "nope.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Cannot read backbone checkpoint"):
        build_backbone("small_cnn", num_classes=6, checkpoint=garbage)

"""The attention modules (RAN's residual attention, Xie et al.'s sharable attention) and the
ran56 / ran92 backbones: shapes at odd sizes, (1 + M) * T, one shared structure, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainbench.backbones import build_backbone
from explainbench.backbones.attention import (
    BottomUpTopDown,
    MaskInputTooSmall,
    ResidualAttention,
    SharableAttention,
)

SIZES = [(33, 47), (64, 64), (65, 65)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("depth", [1, 3])
def test_residual_attention_keeps_the_shape_and_gives_a_mask_in_0_1(size, depth):
    torch.manual_seed(0)
    module = ResidualAttention(8, depth=depth).eval()
    x = torch.randn(2, 8, *size)
    out, mask = module.forward_with_mask(x)
    assert out.shape == x.shape and mask.shape == x.shape
    assert 0 < mask.min() and mask.max() < 1


def later_stages() -> list[nn.Module]:
    """Two stand-in backbone stages: 8 -> 12 channels at stride 2, 12 -> 16 at stride 2."""
    return [nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.Conv2d(12, 16, 3, stride=2, padding=1)]


@pytest.mark.parametrize("size", SIZES)
def test_sharable_attention_gives_each_scale_a_mask_of_its_shape(size):
    torch.manual_seed(0)
    later = later_stages()
    module = SharableAttention(8, [8, 12, 16], depth=3).eval()
    x = torch.randn(2, 8, *size)
    out, masks = module(x, later)
    # each scale's features: the previous one's through its stage (stride 2, ceil)
    sides = [size, *[tuple((s + 1) // 2 for s in size)], tuple((s + 3) // 4 for s in size)]
    assert [tuple(m.shape) for m in masks] == [
        (2, c, *side) for c, side in zip([8, 12, 16], sides, strict=True)
    ]
    assert out.shape == (2, 16, *sides[-1])
    assert all(0 < m.min() and m.max() < 1 for m in masks)


def _set_mask_logit(head: nn.Sequential, bias: float) -> None:
    last = head[-2]  # the 1x1 convolution before the sigmoid
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, bias)


def test_residual_output_is_the_trunk_when_the_mask_is_zero():
    torch.manual_seed(0)
    module = ResidualAttention(8, depth=2).eval()
    x = torch.randn(2, 8, 20, 24)
    with torch.no_grad():
        pre = module.pre(x)
        trunk = module.trunk(pre)
        assert trunk.abs().mean() > 0.1  # a real trunk, not zeros
        _set_mask_logit(module.mask_head, -1e4)  # sigmoid(-1e4) == 0 exactly
        out, mask = module.forward_with_mask(x)
        assert torch.count_nonzero(mask) == 0
        torch.testing.assert_close(out, module.post(trunk))
        # and the "1 +" is really there: a mask of 1/2 scales the trunk by 3/2, not 1/2
        _set_mask_logit(module.mask_head, 0.0)
        out, mask = module.forward_with_mask(x)
        torch.testing.assert_close(mask, torch.full_like(mask, 0.5))
        torch.testing.assert_close(out, module.post(1.5 * trunk))


def test_sharable_scales_are_the_features_when_their_masks_are_zero():
    torch.manual_seed(0)
    later = later_stages()
    module = SharableAttention(8, [8, 12, 16], depth=2).eval()
    x = torch.randn(2, 8, 21, 18)
    with torch.no_grad():
        for head in module.heads:
            _set_mask_logit(head, -1e4)
        out, masks = module(x, later)
        plain = later[1](later[0](module.post(module.trunk(module.pre(x)))))
        assert plain.abs().mean() > 0.01
        assert all(torch.count_nonzero(m) == 0 for m in masks)
        torch.testing.assert_close(out, plain)
        # only scale 1's mask at 1/2: its features x 3/2, the last stage sees those
        _set_mask_logit(module.heads[1], 0.0)
        out, _ = module(x, later)
        expected = later[1](1.5 * later[0](module.post(module.trunk(module.pre(x)))))
        torch.testing.assert_close(out, expected)


def test_every_scale_mask_comes_from_the_one_shared_structure():
    torch.manual_seed(0)
    later = later_stages()
    module = SharableAttention(8, [8, 12, 16], depth=3)
    structures = [m for m in module.modules() if isinstance(m, BottomUpTopDown)]
    assert len(structures) == 1 and structures[0] is module.shared
    x = torch.randn(2, 8, 32, 28)
    for scale in range(3):
        module.zero_grad(set_to_none=True)
        for stage in later:
            stage.zero_grad(set_to_none=True)
        _, masks = module(x, later)
        masks[scale].sum().backward()
        # every level's map starts at the structure's first pooling level: its units get a
        # gradient from every scale (a coarse scale's level skips the finer up-path units)
        first = [p.grad for p in module.shared.down[0].parameters()]
        assert all(g is not None for g in first), f"scale {scale}: first level without grad"
        total = sum(p.grad.abs().sum() for p in module.shared.parameters() if p.grad is not None)
        assert total > 0, f"scale {scale}: no gradient reaches the shared structure"
        # each scale's mask has its own two 1x1 convolutions: the other heads get nothing
        for other, head in enumerate(module.heads):
            got = [p.grad for p in head.parameters()]
            if other == scale:
                assert sum(g.abs().sum() for g in got) > 0
            else:
                assert all(g is None for g in got)


def test_features_too_small_for_the_poolings_name_the_minimum():
    module = ResidualAttention(4, depth=3)
    with pytest.raises(MaskInputTooSmall, match=r"max-pools 3 times .* at least 8x8, got 7x9"):
        module(torch.randn(1, 4, 7, 9))
    module(torch.randn(2, 4, 8, 9))  # the minimum itself works


# -- ran56 / ran92 --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "size", "side", "channels"),
    [
        ("ran56", {"base_width": 4}, (32, 32), (4, 4), 128),
        ("ran56", {"base_width": 4}, (33, 47), (5, 6), 128),
        pytest.param("ran56", {"base_width": 4}, (64, 64), (8, 8), 128, marks=pytest.mark.slow),
        ("ran92", {"base_width": 8}, (65, 65), (3, 3), 256),
        pytest.param("ran92", {"base_width": 8}, (64, 64), (2, 2), 256, marks=pytest.mark.slow),
        pytest.param("ran92", {"base_width": 8}, (224, 224), (7, 7), 256, marks=pytest.mark.slow),
    ],
)
def test_ran_backbones_split_and_shapes(name, kwargs, size, side, channels):
    torch.manual_seed(0)
    backbone = build_backbone(name, num_classes=5, **kwargs).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        a = backbone.features(x)
        logits = backbone(x)
        torch.testing.assert_close(logits, backbone.head(a))
    assert a.shape == (2, channels, *side) and logits.shape == (2, 5)
    assert backbone.feature_channels == channels


def test_ran_module_counts_are_wang_et_al_s():
    counts = {
        name: sum(
            isinstance(m, ResidualAttention)
            for m in build_backbone(name, 3, base_width=4).modules()
        )
        for name in ("ran56", "ran92")
    }
    assert counts == {"ran56": 3, "ran92": 6}


@pytest.mark.parametrize(("name", "minimum"), [("ran56", 8), ("ran92", 32)])
def test_ran_input_too_small_names_the_minimum(name, minimum):
    backbone = build_backbone(name, num_classes=3, base_width=4).eval()
    with pytest.raises(ValueError, match=rf"at least {minimum}x{minimum} px"):
        backbone(torch.randn(1, 3, minimum - 1, 64))
    with torch.no_grad():
        backbone(torch.randn(1, 3, minimum, minimum))


def test_ran_unknown_stem_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown RAN stem 'tiny'. Valid: cifar, imagenet"):
        build_backbone("ran56", num_classes=3, stem="tiny")

"""Receptive-field geometry: hand-computed fields of small stacks, and the support of a unit's
input gradient (all-positive weights, max-pools swapped for average pools of the same window)
as an independent reference on torchvision's ResNet-18 and GoogLeNet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainbench.backbones.base import Backbone
from explainbench.explainers.receptive_field import Geometry, layer_geometry, stride_periods


def backbone(*layers: nn.Module, channels: int = 4) -> Backbone:
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, 2))
    return Backbone(nn.Sequential(*layers), head, channels, 2, 2)


def test_hand_computed_stack_conv_conv_pool_conv():
    """conv3 p1 → conv3 p1 → maxpool2 → conv3 p1, from (r, j, a) = (1, 1, 0):
    conv3 p1: r = 1 + 2·1 = 3,  j = 1, a = 0 − 1·1 = −1
    conv3 p1: r = 3 + 2·1 = 5,  j = 1, a = −1 − 1 = −2
    maxpool2: r = 5 + 1·1 = 6,  j = 2, a = −2 − 0 = −2
    conv3 p1: r = 6 + 2·2 = 10, j = 2, a = −2 − 1·2 = −4
    Unit (3, 1) of the last layer: rows −4 + 6 … +9 = 2..11, columns −4 + 2 = −2..7 → 0..7."""
    model = backbone(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        nn.BatchNorm2d(4), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
    )  # fmt: skip
    geo = layer_geometry(model)
    assert geo["extractor.0"] == Geometry((3, 3), (1, 1), (-1, -1))
    assert geo["extractor.1"] == geo["extractor.0"]  # element-wise
    assert geo["extractor.2"] == geo["extractor.3"] == Geometry((5, 5), (1, 1), (-2, -2))
    assert geo["extractor.4"] == Geometry((6, 6), (2, 2), (-2, -2))
    assert geo["extractor.5"] == geo["extractor"] == Geometry((10, 10), (2, 2), (-4, -4))
    assert geo["extractor.5"].box(3, 1, (16, 16)) == (2, 0, 12, 8)
    assert geo["extractor.5"].box(7, 7, (16, 16)) == (10, 10, 16, 16)  # 10..19 clipped
    # the head: a global pool, then every unit sees the whole image
    assert geo["classifier.2"].whole_image and geo["classifier.2"].box(0, 0, (16, 12)) == (
        0, 0, 16, 12,
    )  # fmt: skip
    assert stride_periods(model) == [2]


def test_hand_computed_non_square_strided_dilated_stack():
    """rows / columns differ at every layer:
    conv (3,5) s(2,1) p(0,2):  rows r 3, j 2, a 0;          cols r 5, j 1, a −2
    maxpool 3 s2 p1:           rows r 3+2·2 = 7, j 4, a −2;  cols r 5+2 = 7, j 2, a −3
    conv 3 d2 p2 (k_eff 5):    rows r 7+4·4 = 23, j 4, a −2−2·4 = −10;
                               cols r 7+4·2 = 15, j 2, a −3−2·2 = −7
    Unit (3, 1) in a 40×30 image: rows −10+12 = 2 … 24, cols −7+2 = −5 … 9 → (2, 0, 25, 10)."""
    model = backbone(
        nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(0, 2)), nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(4, 4, 3, dilation=2, padding=2),
    )  # fmt: skip
    geo = layer_geometry(model)
    assert geo["extractor.0"] == Geometry((3, 5), (2, 1), (0, -2))
    assert geo["extractor.1"] == Geometry((7, 7), (4, 2), (-2, -3))
    assert geo["extractor.2"] == Geometry((23, 15), (4, 2), (-10, -7))
    assert geo["extractor.2"].box(3, 1, (40, 30)) == (2, 0, 25, 10)
    assert stride_periods(model) == [2, 4]


def test_unsupported_modules_are_named():
    model = backbone(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match=r"unsupported module 'extractor.1' \(Upsample\)"):
        layer_geometry(model)
    with pytest.raises(ValueError, match="no backbone.extractor"):
        layer_geometry(nn.Linear(2, 2))


def positive_twin(model: nn.Module) -> nn.Module:
    """All-positive weights, identity batch norms, max-pools as average pools of the same
    window: a unit's input gradient is then positive exactly on its receptive field."""
    for module in list(model.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(
                    child.kernel_size, child.stride, child.padding, child.ceil_mode
                ))  # fmt: skip
            elif isinstance(child, nn.Conv2d):
                with torch.no_grad():
                    child.weight.fill_(0.1)
    return model.eval()


def gradient_box(model: nn.Module, layer: nn.Module, i: int, j: int, size: int):
    out = {}
    handle = layer.register_forward_hook(lambda m, a, o: out.__setitem__("a", o))
    x = torch.ones(1, 3, size, size, requires_grad=True)
    model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(out["a"][0, :, i, j].sum(), x)
    rows = grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
    cols = grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


def test_resnet18_blocks_match_the_gradient_support():
    from torchvision.models import resnet18

    net = positive_twin(resnet18(weights=None))
    extractor = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
    model = Backbone(extractor, nn.Sequential(nn.AdaptiveAvgPool2d(1)), 128, 8, 1)
    geo = layer_geometry(model)
    # layer2's block 0: conv1 s2 then conv2; the shortcut is a 1×1 s2 conv
    for name, layer, (i, j) in [
        ("extractor.4", extractor[4], (3, 5)),
        ("extractor.5.0.conv1", extractor[5][0].conv1, (2, 4)),
        ("extractor.5", extractor[5], (4, 6)),
        ("extractor.5", extractor[5], (0, 7)),  # clipped at the top
    ]:
        assert geo[name].box(i, j, (96, 96)) == gradient_box(model, layer, i, j, 96), name
    assert geo["extractor.5"].size == (99, 99) and geo["extractor.5"].jump == (8, 8)


def test_googlenet_inception_blocks_match_the_gradient_support():
    from torchvision.models import googlenet

    net = positive_twin(googlenet(weights=None, aux_logits=False, init_weights=False))
    extractor = nn.Sequential(net.conv1, net.maxpool1, net.conv2, net.conv3, net.maxpool2,
                              net.inception3a, net.inception3b)  # fmt: skip
    model = Backbone(extractor, nn.Sequential(nn.AdaptiveAvgPool2d(1)), 480, 8, 1)
    geo = layer_geometry(model)
    for layer_index, (i, j) in [(5, (6, 5)), (6, (7, 3))]:
        layer = extractor[layer_index]
        got = geo[f"extractor.{layer_index}"].box(i, j, (128, 128))
        assert got == gradient_box(model, layer, i, j, 128), layer_index

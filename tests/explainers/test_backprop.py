"""Guided backpropagation, deconvnet and the stride-1 resampling fix.

References used here, independent of the implementation: gradients derived by hand for a
one-hidden-layer net, the classic backward-hook implementation of both rules, coverage counts
of a strided all-ones convolution computed by hand, and autograd through a stride-1 convolution
for the resampled backward.
"""

from __future__ import annotations

import copy

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from explainbench.backbones.base import Backbone
from explainbench.explainers.backprop import (
    Deconvnet,
    GuidedBackprop,
    backprop_rules,
    filter_backprop,
    stride_fix_avg_pool2d,
    stride_fix_conv2d,
    stride_fix_max_pool2d,
)
from explainbench.utils.paths import CONF_DIR

CONF = CONF_DIR / "explainers"
RULES = {"guided": GuidedBackprop, "deconvnet": Deconvnet}


def images(batch: int = 2, size: int | tuple[int, int] = 32, seed: int = 0) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def toy(seed: int = 0, num_classes: int = 5) -> Backbone:
    """A small seeded CNN with a strided conv, max-pooling and ReLUs, split as a Backbone."""
    gen = torch.Generator().manual_seed(seed)
    extractor = nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, num_classes))
    model = Backbone(extractor, classifier, 8, 4, num_classes, name="toy")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model.eval()


def resnet18(num_classes: int = 10) -> Backbone:
    from torchvision.models import resnet18 as tv_resnet18

    torch.manual_seed(0)
    net = tv_resnet18(weights=None, num_classes=num_classes)
    extractor = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    classifier = nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)
    return Backbone(extractor, classifier, 512, 32, num_classes, name="resnet18").eval()


# -- hand-derived gradients ------------------------------------------------------------------


class FunctionalReLU(nn.Module):
    """A ReLU that is not an nn.ReLU module (like torchvision's GoogLeNet BasicConv2d)."""

    def __init__(self, call) -> None:
        super().__init__()
        self.call = call

    def forward(self, x):
        return self.call(x)


ACTIVATIONS = {
    "module": nn.ReLU,
    "module_inplace": lambda: nn.ReLU(inplace=True),
    "F.relu": lambda: FunctionalReLU(F.relu),
    "F.relu_inplace": lambda: FunctionalReLU(lambda x: F.relu(x, inplace=True)),
    "torch.relu": lambda: FunctionalReLU(lambda x: torch.relu(x)),
}


def one_hidden_layer(activation: nn.Module) -> Backbone:
    """y_0 = v · ReLU(W x) on a 1×1 image; y_1 = 0.

    With x = (1, 0, 0) the pre-activations are W[:, 0] = (2, -1, 3, -2) and v = (1, 1, -1, -1):
    * plain gradient  Wᵀ (v ⊙ 1[Wx>0])      = W[0] − W[2]   = (−1, 1, −1)
    * guided          Wᵀ (ReLU(v) ⊙ 1[Wx>0]) = W[0]          = (2, 1, 0)
    * deconvnet       Wᵀ ReLU(v)            = W[0] + W[1]   = (1, 3, 1)
    """
    conv = nn.Conv2d(3, 4, 1, bias=False)
    fc = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(
            torch.tensor([[2.0, 1, 0], [-1, 2, 1], [3, 0, 1], [-2, 1, 3]])[..., None, None]
        )
        fc.weight.copy_(torch.tensor([[1.0, 1, -1, -1], [0, 0, 0, 0]]))
    return Backbone(nn.Sequential(conv, activation), nn.Sequential(nn.Flatten(1), fc), 4, 1, 2)


HAND = {"plain": [-1.0, 1, -1], "guided": [2.0, 1, 0], "deconvnet": [1.0, 3, 1]}
ONE_PIXEL = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("rule", list(RULES))
def test_rules_by_hand_for_modules_inplace_and_functional_relus(rule, activation):
    model = one_hidden_layer(ACTIVATIONS[activation]())
    ex = RULES[rule]()(model, ONE_PIXEL, target=0)
    torch.testing.assert_close(ex.extras["gradient"].flatten(), torch.tensor(HAND[rule]))
    assert ex.forward_passes == 1.0 and ex.backward_passes == 1.0
    if activation.startswith("module"):  # modules are patched themselves, not via F.relu
        ex = RULES[rule](functional=False)(model, ONE_PIXEL, target=0)
        torch.testing.assert_close(ex.extras["gradient"].flatten(), torch.tensor(HAND[rule]))


@pytest.mark.parametrize("rule", list(RULES))
def test_functional_false_and_tensor_method_relu_keep_the_plain_gradient(rule):
    """The documented limitation: what is not patched back-propagates the ordinary gradient."""
    not_patched = one_hidden_layer(FunctionalReLU(F.relu))
    ex = RULES[rule](functional=False)(not_patched, ONE_PIXEL, target=0)
    torch.testing.assert_close(ex.extras["gradient"].flatten(), torch.tensor(HAND["plain"]))
    method = one_hidden_layer(FunctionalReLU(lambda x: x.relu()))
    ex = RULES[rule]()(method, ONE_PIXEL, target=0)
    torch.testing.assert_close(ex.extras["gradient"].flatten(), torch.tensor(HAND["plain"]))


def test_reused_inplace_relu_module_gets_the_rule_at_every_call():
    """One inplace nn.ReLU instance applied twice (as in torchvision's BasicBlock):
    y = Σ ReLU(ReLU(x)), x = (1, −1, 2). Deconvnet at both calls passes R = 1 everywhere:
    (1, 1, 1); the rule at only one of the calls would give the plain (1, 0, 1)."""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.relu(x))

    head = nn.Sequential(nn.Flatten(1), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        head[1].weight.fill_(1.0)
    model = Backbone(Twice(), head, 3, 1, 1)
    x = torch.tensor([1.0, -1.0, 2.0]).view(1, 3, 1, 1)
    grad = Deconvnet()(model, x, 0).extras["gradient"].flatten()
    torch.testing.assert_close(grad, torch.ones(3))
    grad = GuidedBackprop()(model, x, 0).extras["gradient"].flatten()
    torch.testing.assert_close(grad, torch.tensor([1.0, 0, 1]))
    assert "forward" not in vars(model.extractor.relu)


def test_filter_backprop_by_hand():
    """one_hidden_layer with x = (1, 0, 0): h = ReLU(Wx) = (2, 0, 3, 0), y_0 = v·h = −1.
    * ReLU filter 2: its activation 3 goes back (others zeroed): 3·W[2] = (9, 0, 3), both rules;
      filter 1 is silent: 0.
    * fc unit 0 (in the head): −1 goes back, −1·v = (−1, −1, 1, 1) reaches the ReLU;
      guided keeps unit 2 (positive signal, active): W[2] = (3, 0, 1); deconvnet keeps units 2
      and 3: W[2] + W[3] = (1, 1, 4)."""
    model = one_hidden_layer(nn.ReLU())
    relu, fc = model.extractor[1], model.classifier[1]
    for rule in RULES:
        got = filter_backprop(model, ONE_PIXEL, relu, 2, rule).flatten()
        torch.testing.assert_close(got, torch.tensor([9.0, 0, 3]))
        assert filter_backprop(model, ONE_PIXEL, relu, 1, rule).abs().sum() == 0
    torch.testing.assert_close(
        filter_backprop(model, ONE_PIXEL, fc, 0, "guided").flatten(), torch.tensor([3.0, 0, 1])
    )
    torch.testing.assert_close(
        filter_backprop(model, ONE_PIXEL, fc, 0, "deconvnet").flatten(), torch.tensor([1.0, 1, 4])
    )
    assert patched_leftovers(model) == [] and not relu._forward_hooks


# -- independent reference: the classic backward-hook implementation -------------------------


def hooked_reference(model: nn.Module, x: torch.Tensor, target: torch.Tensor, rule: str):
    """Input gradient with ReLU rules applied by full backward hooks (needs non-inplace ReLUs)."""
    model = copy.deepcopy(model)

    def guided(module, grad_input, grad_output):
        return (grad_input[0].clamp_min(0),)  # grad_input = 1[x>0]·grad_output already

    def deconv(module, grad_input, grad_output):
        return (grad_output[0].clamp_min(0),)

    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
            module.register_full_backward_hook(guided if rule == "guided" else deconv)
    leaf = x.clone().requires_grad_(True)
    logits = model(leaf)
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), leaf)
    return grad


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("net", ["toy", "resnet18"])
def test_matches_backward_hook_reference(rule, net):
    model = toy() if net == "toy" else resnet18()
    x = images(batch=2, size=32, seed=1)
    target = torch.tensor([1, 3])
    ex = RULES[rule]()(model, x, target)
    expected = hooked_reference(model, x, target, rule)
    torch.testing.assert_close(ex.extras["gradient"], expected, atol=1e-6, rtol=1e-4)
    expected_map = expected.abs().amax(dim=1, keepdim=True)
    lo = expected_map.amin(dim=(2, 3), keepdim=True)
    hi = expected_map.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(ex.saliency, (expected_map - lo) / (hi - lo), atol=1e-5, rtol=0)


def test_guided_and_deconvnet_differ_from_each_other_and_from_the_gradient():
    model, x, target = resnet18(), images(batch=1, size=32, seed=3), torch.tensor([2])
    guided = GuidedBackprop()(model, x, target).extras["gradient"]
    deconv = Deconvnet()(model, x, target).extras["gradient"]
    leaf = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(leaf)[0, 2], leaf)
    for a, b in ((guided, deconv), (guided, plain), (deconv, plain)):
        assert not torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("reduction", ["max_abs", "sum_abs", "l2"])
def test_channel_reductions(reduction):
    model, x = toy(), images(batch=2, size=24, seed=4)
    ex = GuidedBackprop(reduction=reduction)(model, x, 0)
    g = ex.extras["gradient"]
    raw = {
        "max_abs": g.abs().amax(1, keepdim=True),
        "sum_abs": g.abs().sum(1, keepdim=True),
        "l2": g.norm(dim=1, keepdim=True),
    }[reduction]
    lo, hi = raw.amin(dim=(2, 3), keepdim=True), raw.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(ex.saliency, (raw - lo) / (hi - lo), atol=1e-6, rtol=0)


# -- the stride-1 resampling fix ---------------------------------------------------------------


def coverage_model(stride_size: int = 8) -> tuple[Backbone, nn.Conv2d]:
    """All-ones 3×3 conv (stride 2, padding 1) then a head whose gradient is 1 at every output:
    the input gradient counts how often each pixel is covered."""
    conv = nn.Conv2d(3, 1, 3, stride=2, padding=1, bias=False)
    out = stride_size // 2
    fc = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        fc.weight.fill_(out * out)  # undo the average pooling: dy/dA = 1 everywhere
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), fc)
    return Backbone(conv, head, 1, 2, 1), conv


def test_stride_fix_by_hand_on_a_single_strided_conv():
    model, _ = coverage_model()
    x = images(batch=1, size=8)
    plain = Deconvnet()(model, x, 0).extras["gradient"][0, 0]
    fixed = Deconvnet(stride_fix=True)(model, x, 0).extras["gradient"][0, 0]
    # Strided backward: pixel i is covered by outputs o with 2o−1 <= i <= 2o+1 (o in 0..3).
    strided = torch.tensor([1.0, 2, 1, 2, 1, 2, 1, 1])
    # Fixed: the 4×4 signal of ones, nearest-resized to 8 + 2 − 3 + 1 = 8, back through a
    # stride-1 3×3 all-ones kernel with padding 1: 3 taps inside, 2 at the border.
    stride_one = torch.tensor([2.0, 3, 3, 3, 3, 3, 3, 2])
    torch.testing.assert_close(plain, torch.outer(strided, strided))
    torch.testing.assert_close(fixed, torch.outer(stride_one, stride_one))


def phase_spread(grad: torch.Tensor, stride: int, border: int) -> float:
    """Relative spread of the mean over each of the stride×stride phases of the interior: 0 for
    a map with no stride-periodic pattern."""
    interior = grad[..., border:-border, border:-border]
    phases = torch.stack(
        [interior[..., a::stride, b::stride].mean() for a in range(stride) for b in range(stride)]
    )
    return ((phases.max() - phases.min()) / interior.abs().mean()).item()


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (4, 2, 1), (5, 3, 2), (1, 2, 0)])
def test_stride_fix_removes_the_periodic_pattern_of_a_constant_signal(kernel, stride, padding):
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 4, kernel, stride=stride, padding=padding)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(conv.weight.shape, generator=gen) + 0.1)
    x = torch.randn(1, 3, 24, 24, generator=gen, requires_grad=True)

    def input_grad(fix: bool) -> torch.Tensor:
        y = stride_fix_conv2d(conv, x) if fix else conv(x)
        (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
        return g

    plain, fixed = input_grad(False), input_grad(True)
    assert plain.shape == fixed.shape == x.shape
    border = kernel + stride
    # Strided backward: each phase of the lattice sees other kernel taps, so it is periodic.
    assert phase_spread(plain, stride, border) > 0.1
    interior = fixed[..., border:-border, border:-border]
    # Every interior pixel sees the whole kernel once: the fixed map is constant per channel.
    expected = conv.weight.sum(dim=(0, 2, 3)).view(1, 3, 1, 1).expand_as(interior)
    torch.testing.assert_close(interior, expected)
    assert phase_spread(fixed, stride, border) < 1e-5


@pytest.mark.parametrize(
    "size,kernel,stride,padding,dilation,groups",
    [(7, 3, 2, 1, 1, 1), (9, 5, 3, 2, 1, 1), (10, 1, 2, 0, 1, 1), (11, 3, 2, 2, 2, 1),
     (8, 3, 2, 1, 1, 2), ((9, 12), (3, 5), (2, 3), (1, 0), 1, 1)],
)  # fmt: skip
def test_stride_fix_is_stride_one_backward_of_the_resized_signal(
    size, kernel, stride, padding, dilation, groups
):
    """Reference: autograd through the same conv at stride 1, fed the nearest-resized signal."""
    gen = torch.Generator().manual_seed(1)
    h, w = (size, size) if isinstance(size, int) else size
    conv = nn.Conv2d(4, 6, kernel, stride, padding, dilation, groups)
    x = torch.randn(2, 4, h, w, generator=gen, requires_grad=True)
    y = stride_fix_conv2d(conv, x)
    torch.testing.assert_close(y, conv(x))  # forward unchanged
    upstream = torch.randn(y.shape, generator=gen)
    (fixed,) = torch.autograd.grad(y, x, upstream)
    assert fixed.shape == x.shape

    leaf = x.detach().clone().requires_grad_(True)
    stride_one = F.conv2d(leaf, conv.weight, None, 1, conv.padding, conv.dilation, groups)
    resized = F.interpolate(upstream, size=stride_one.shape[-2:], mode="nearest")
    (expected,) = torch.autograd.grad(stride_one, leaf, resized)
    torch.testing.assert_close(fixed, expected, atol=1e-5, rtol=1e-5)
    # Weights and bias keep their ordinary gradients.
    got_w, got_b = torch.autograd.grad(stride_fix_conv2d(conv, x), conv.parameters(), upstream)
    exp_w, exp_b = torch.autograd.grad(conv(x), conv.parameters(), upstream)
    torch.testing.assert_close(got_w, exp_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_b, exp_b)


@pytest.mark.parametrize("rule", list(RULES))
def test_stride_fix_on_resnet18_weakens_the_stride_periodic_pattern(rule):
    model, x = resnet18(), images(batch=1, size=32, seed=5)
    fixed = RULES[rule](stride_fix=True)(model, x, 1)
    plain = RULES[rule](stride_fix=False)(model, x, 1)
    assert fixed.saliency.shape == (1, 1, 32, 32)
    assert not torch.allclose(fixed.extras["gradient"], plain.extras["gradient"])
    # With the stride-2 stem conv's backward resampled, the input gradient has no 2-periodic
    # pattern left: compare the phase spread of both maps.
    spread = phase_spread(fixed.extras["gradient"].abs(), 2, 4)
    assert spread < phase_spread(plain.extras["gradient"].abs(), 2, 4)


# 5×5 input without ties in any 2×2 window, and an upstream signal with four distinct values.
POOL_INPUT = torch.tensor(
    [[1.0, 9, 2, 0, 3],
     [4, 0, 8, 7, 1],
     [6, 5, 0, 2, 9],
     [0, 3, 7, 1, 4],
     [2, 8, 1, 6, 0]]
).view(1, 1, 5, 5)  # fmt: skip
POOL_UPSTREAM = torch.tensor([[1.0, 2], [3, 4]]).view(1, 1, 2, 2)


def pool_input_grad(pool: nn.Module, fix: bool) -> torch.Tensor:
    x = POOL_INPUT.clone().requires_grad_(True)
    fixed_pool = stride_fix_max_pool2d if isinstance(pool, nn.MaxPool2d) else stride_fix_avg_pool2d
    y = fixed_pool(pool, x) if fix else pool(x)
    torch.testing.assert_close(y, pool(POOL_INPUT))  # the forward is unchanged
    (grad,) = torch.autograd.grad(y, x, POOL_UPSTREAM)
    return grad[0, 0]


def test_stride_fix_by_hand_on_a_single_strided_max_pool():
    """MaxPool2d(2) (stride 2) on 5×5 → 2×2; the stride-1 size is 5 + 0 − 2 + 1 = 4.

    Strided switches: window rows/cols {0,1}×{0,1} → 9 at (0,1) gets 1; {0,1}×{2,3} → 8 at
    (1,2) gets 2; {2,3}×{0,1} → 6 at (2,0) gets 3; {2,3}×{2,3} → 7 at (3,2) gets 4.

    Fixed: the upstream nearest-resized to 4×4, R[a,b] = g[a//2, b//2] = rows (1 1 2 2),
    (1 1 2 2), (3 3 4 4), (3 3 4 4); the winner of each stride-1 window (a, b) (rows a..a+1,
    cols b..b+1) and what it collects:
      a=0: 9@(0,1), 9@(0,1), 8@(1,2), 7@(1,3)      a=1: 6@(2,0), 8@(1,2), 8@(1,2), 9@(2,4)
      a=2: 6@(2,0), 7@(3,2), 7@(3,2), 9@(2,4)      a=3: 8@(4,1), 8@(4,1), 7@(3,2), 6@(4,3)
    (0,1): R00+R01 = 2; (1,2): R02+R11+R12 = 5; (1,3): R03 = 2; (2,0): R10+R20 = 4;
    (2,4): R13+R23 = 6; (3,2): R21+R22+R32 = 11; (4,1): R30+R31 = 6; (4,3): R33 = 4
    (total 40 = the resized signal's sum).
    """
    pool = nn.MaxPool2d(2)
    strided = torch.tensor(
        [[0.0, 1, 0, 0, 0],
         [0, 0, 2, 0, 0],
         [3, 0, 0, 0, 0],
         [0, 0, 4, 0, 0],
         [0, 0, 0, 0, 0]]
    )  # fmt: skip
    fixed = torch.tensor(
        [[0.0, 2, 0, 0, 0],
         [0, 0, 5, 2, 0],
         [4, 0, 0, 0, 6],
         [0, 0, 11, 0, 0],
         [0, 6, 0, 4, 0]]
    )  # fmt: skip
    torch.testing.assert_close(pool_input_grad(pool, fix=False), strided)
    torch.testing.assert_close(pool_input_grad(pool, fix=True), fixed)


def test_stride_fix_by_hand_on_a_single_strided_avg_pool():
    """AvgPool2d(2) (stride 2) on 5×5: strided, each pixel of window (a, b) gets g[a,b] / 4 and
    the last row/column nothing. Fixed: the same 4×4 R as for the max-pool, back through the
    stride-1 2×2 average: pixel (i, j) gets ¼ Σ R[a,b] over a ∈ {i−1, i}, b ∈ {j−1, j} inside
    0..3, e.g. (0,0): R00/4 = 1/4; (2,2): (R11+R12+R21+R22)/4 = (1+2+3+4)/4 = 10/4;
    (4,4): R33/4 = 4/4 (total 160/4 = 40)."""
    pool = nn.AvgPool2d(2)
    quarter = torch.tensor([[1.0, 1, 2, 2, 0], [1, 1, 2, 2, 0], [3, 3, 4, 4, 0],
                            [3, 3, 4, 4, 0], [0, 0, 0, 0, 0]]) / 4  # fmt: skip
    window_sums = torch.tensor(
        [[1.0, 2, 3, 4, 2],
         [2, 4, 6, 8, 4],
         [4, 8, 10, 12, 6],
         [6, 12, 14, 16, 8],
         [3, 6, 7, 8, 4]]
    )  # fmt: skip
    torch.testing.assert_close(pool_input_grad(pool, fix=False), quarter)
    torch.testing.assert_close(pool_input_grad(pool, fix=True), window_sums / 4)


@pytest.mark.parametrize(
    "pool",
    [nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d((3, 2), (2, 3), (1, 0)),
     nn.MaxPool2d(3, 2, 1, dilation=2), nn.AvgPool2d(3, 2, 1),
     nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.AvgPool2d(2, ceil_mode=True),
     nn.AvgPool2d(3, 3, 1, divisor_override=2)],
    ids=repr,
)  # fmt: skip
def test_stride_fix_pools_are_stride_one_backward_of_the_resized_signal(pool):
    """Reference: autograd through the same pooling at stride 1 fed the nearest-resized signal
    (max-pool: torch's own max_pool2d backward, not the switches scatter of the fix)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 11, 13, generator=gen, requires_grad=True)
    fix = stride_fix_max_pool2d if isinstance(pool, nn.MaxPool2d) else stride_fix_avg_pool2d
    y = fix(pool, x)
    torch.testing.assert_close(y, pool(x))
    upstream = torch.randn(y.shape, generator=gen)
    (fixed,) = torch.autograd.grad(y, x, upstream)
    stride_one = copy.deepcopy(pool)
    stride_one.stride, stride_one.ceil_mode = 1, False
    leaf = x.detach().clone().requires_grad_(True)
    out = stride_one(leaf)
    resized = F.interpolate(upstream, size=out.shape[-2:], mode="nearest")
    (expected,) = torch.autograd.grad(out, leaf, resized)
    torch.testing.assert_close(fixed, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule", list(RULES))
def test_stride_fix_changes_small_cnn_maps_and_weakens_the_pool_grid(rule):
    """small_cnn has no strided convolution: its max-pools are the strided operations, so the
    fix must change its maps (before the pools were covered, it changed nothing)."""
    from explainbench.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone("small_cnn", num_classes=4, widths=(8, 8, 8)).eval()
    x = images(batch=1, size=32, seed=8)
    relus, pools = [2, 5, 9, 12, 16, 19], [6, 13]  # (conv, bn, relu) × 2 per stage, pools
    with backprop_rules(model, rule, stride_fix=True):
        patched = sorted(int(name.split(".")[1]) for name in patched_leftovers(model))
    assert patched == sorted(relus + pools)
    signal = {}  # what reaches the first pool's input (the ReLU output before it)

    def keep_grad(module, inputs, output):
        output.register_hook(lambda g: signal.__setitem__("pool_input", g))

    handle = model.extractor[5].register_forward_hook(keep_grad)
    try:
        fixed = RULES[rule](stride_fix=True)(model, x, 1).extras["gradient"]
        fixed_pool = signal["pool_input"]
        plain = RULES[rule](stride_fix=False)(model, x, 1).extras["gradient"]
        plain_pool = signal["pool_input"]
    finally:
        handle.remove()
    assert not torch.allclose(fixed, plain)
    # Strided unpooling feeds one switch per 2×2 window: at most a quarter of the pixels (the
    # grid); the stride-1 switches of overlapping windows reach many more.
    assert (plain_pool != 0).float().mean() <= 0.25
    assert (fixed_pool != 0).float().mean() > 0.4


def test_stride_fix_rejects_non_zero_padding_modes_and_restores_the_model():
    model = toy()
    model.extractor[0].padding_mode = "reflect"
    relu = model.extractor[1]
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        GuidedBackprop(stride_fix=True)(model, images(batch=1, size=16))
    assert "forward" not in vars(relu) and F.relu is ORIGINALS[0]


# -- contract and side effects -----------------------------------------------------------------


def patched_leftovers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if "forward" in vars(m)]


ORIGINALS = (F.relu, F.relu_, torch.relu, torch.relu_)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("stride_fix", [False, True])
def test_contract_and_no_side_effects(rule, stride_fix):
    model = resnet18()
    model.extractor[4].train()  # a mixed train/eval state must survive untouched
    modes = [m.training for m in model.modules()]
    x = images(batch=3, size=(32, 40), seed=2)
    ex = RULES[rule](stride_fix=stride_fix)(model, x)
    assert ex.saliency.shape == (3, 1, 32, 40) and ex.saliency.dtype == x.dtype
    assert ex.saliency.min() >= 0 and ex.saliency.max() <= 1
    torch.testing.assert_close(ex.saliency.amax(dim=(1, 2, 3)), torch.ones(3))
    assert ex.forward_passes == 1.0 and ex.backward_passes == 1.0
    assert [m.training for m in model.modules()] == modes
    assert patched_leftovers(model) == []
    assert (F.relu, F.relu_, torch.relu, torch.relu_) == ORIGINALS
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():  # same batch, same modes: the same batch-norm statistics
        assert torch.equal(ex.target, model(x).argmax(1))


@pytest.mark.parametrize("rule", list(RULES))
def test_targets_batches_and_errors(rule, plain_model):
    model, explainer = toy(), RULES[rule]()
    x = images(batch=3, size=24, seed=6)
    top1 = model(x).argmax(1)
    assert torch.equal(explainer(model, x).target, top1)
    by_int = explainer(model, x, target=4)
    by_tensor = explainer(model, x, target=torch.tensor([4, 4, 4]))
    assert torch.equal(by_int.target, torch.tensor([4, 4, 4]))
    torch.testing.assert_close(by_int.saliency, by_tensor.saliency)
    target = torch.tensor([1, 0, 4])
    batched = explainer(model, x, target).saliency
    single = torch.cat(
        [explainer(model, x[i : i + 1], target[i : i + 1]).saliency for i in range(3)]
    )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    for bad in (5, -1, torch.tensor([0, 7, 1])):
        with pytest.raises(ValueError, match="outside the model's 5 classes"):
            explainer(model, x, bad)
        assert patched_leftovers(model) == [] and F.relu is ORIGINALS[0]
    with pytest.raises(TypeError, match=r"features\(\)"):
        explainer(plain_model, x)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("outer", ["inference_mode", "no_grad"])
def test_works_under_lightning_style_no_grad(rule, outer):
    model, x = toy(), images(batch=2, size=24, seed=7)
    expected = RULES[rule]()(model, x, 2).saliency
    context = torch.inference_mode() if outer == "inference_mode" else torch.no_grad()
    with context:
        x_inner = x.clone()  # created inside: an inference tensor in inference mode
        got = RULES[rule]()(model, x_inner, 2).saliency
    torch.testing.assert_close(got, expected)


def test_frozen_parameters_are_fine():
    model = toy().requires_grad_(False)
    ex = GuidedBackprop(stride_fix=True)(model, images(batch=1, size=16), 0)
    assert ex.extras["gradient"].abs().sum() > 0


@pytest.mark.parametrize(
    "name,cls", [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvnet)]
)
def test_config_files_instantiate(name, cls):
    explainer = hydra.utils.instantiate(OmegaConf.load(CONF / f"{name}.yaml")[name])
    assert type(explainer) is cls and explainer.stride_fix is False
    override = OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml")[name], {"stride_fix": True})
    assert hydra.utils.instantiate(override).stride_fix is True


def test_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        GuidedBackprop(reduction="mean")
    with pytest.raises(ValueError, match="rule"), backprop_rules(toy(), "lrp"):
        pass

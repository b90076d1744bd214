"""Modified-backpropagation saliency: guided backpropagation and deconvnet, with the optional
stride-1 resampling fix for strided convolutions and pooling.

* Deconvnet — Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
  ECCV 2014 (arXiv:1311.2901): the signal going back through a ReLU is rectified itself,
  ignoring the forward input: ``R_in = ReLU(R_out)``.
* Guided backpropagation — Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for
  Simplicity: The All Convolutional Net", ICLR Workshops 2015 (arXiv:1412.6806): pass the
  gradient only where the forward input *and* the gradient are positive:
  ``R_in = 1[x > 0] · ReLU(R_out)``.
* Stride fix — Oramas, Wang & Tuytelaars, "Visual Explanation by Interpretation: Improving
  Visual Feedback Capabilities of Deep Neural Networks", ICLR 2019 (arXiv:1712.06302): the
  backward pass of a strided convolution (a transposed convolution with stride S) scatters
  the signal onto an S-periodic lattice, leaving grid/checkerboard artifacts. Instead, the
  incoming signal (size ``⌊(A + 2O − M) / S⌋ + 1``) is nearest-resized to
  ``A + 2O − M + 1`` — the output size the layer would have with stride 1 — and sent back
  through a transposed convolution with stride 1 and padding O, which gives exactly ``A``
  (A: layer input size, O: padding, M: kernel size; with dilation d, ``M`` is the effective
  ``d(M − 1) + 1``).
  The paper applies this to every "operation with stride > 1"; pooling is one too (on a
  ``small_cnn``, which has no strided convolution, the max-pools are the only strided
  operations). A strided **max-pool**'s backward unpools the signal through its switches (the
  argmax of each window), so only the winners of an S-periodic set of windows receive it.
  With the fix, the incoming signal is nearest-resized to ``A + 2O − M + 1`` and unpooled
  through the switches of the *same pooling run at stride 1 on the same input* (a pixel that
  wins several overlapping windows collects the signal of each, as the stride-1 pooling's
  gradient does). A strided **average-pool** is a fixed linear filter: its resized signal goes
  back through the stride-1 average pooling's transposed op (same padding, divisors,
  ``count_include_pad`` and ``divisor_override``). The paper only states the fix for a
  convolution; the pooling versions follow the same "stride 1 on the resized signal" recipe,
  our choice. Adaptive pools (the global pool of a head) have no fixed kernel and stride and
  keep their ordinary backward; so do functional ``F.max_pool2d`` / ``F.avg_pool2d`` calls.

Everything else (convolutions, pooling switches, linear layers, batch norm) back-propagates
its ordinary gradient, which is what both papers' "deconvolution" and "unpooling" are.

The rules are applied by :func:`backprop_rules`, a context manager that patches the model
only while it is active and restores it in ``finally``:

* every ``nn.ReLU`` module gets an instance-level ``forward`` that calls the rule's autograd
  function. Patching the *instance* (not the parent's attribute) covers a module used several
  times (torchvision's ``BasicBlock.relu``) or registered under several names, and keeps the
  module tree, state dict and any user hooks untouched. The rule ReLU is always out of place,
  so ``inplace=True`` modules are handled: their callers use the returned tensor (as every
  torchvision model does); code that relies on the in-place side effect alone would not see it.
* functional calls — ``torch.nn.functional.relu`` / ``relu_`` and ``torch.relu`` /
  ``torch.relu_`` (torchvision's GoogLeNet/Inception ``BasicConv2d``, DenseNet) — are patched
  in their modules for the duration of the context. Not covered: the tensor methods
  ``x.relu()`` / ``x.relu_()``, ``clamp``-based ReLUs, a ``relu`` imported by name before the
  context (``from torch.nn.functional import relu``), and scripted/compiled models; those
  back-propagate the plain ReLU gradient. Because the functional patch is process-wide, do not
  run other models on other threads while the context is open.
* with ``stride_fix``, every ``nn.Conv2d``, ``nn.MaxPool2d`` and ``nn.AvgPool2d`` with a
  stride other than 1 (a pool's default stride is its kernel size) gets an instance-level
  ``forward`` whose forward is the same operation and whose input gradient is the resampled
  one (a convolution's weight and bias gradients are the ordinary ones). Convolutions: only
  ``padding_mode="zeros"`` is supported (ValueError otherwise); groups and dilation are
  handled. Pools: padding, dilation and ``ceil_mode`` are handled;
  ``MaxPool2d(return_indices=True)`` is refused (its callers unpool with the strided indices).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    Explanation,
    check_explainable,
    normalize_per_image,
    resolve_target,
    to_model_device,
)

RULES = ("guided", "deconvnet")
REDUCTIONS = ("max_abs", "sum_abs", "l2")


class _GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward ``1[x > 0] · ReLU(grad)`` (Springenberg et al.)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clamp_min(0)
        ctx.save_for_backward(out)  # out > 0 exactly where x > 0
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        return grad.clamp_min(0) * (out > 0)


class _DeconvReLU(torch.autograd.Function):
    """ReLU forward; backward ``ReLU(grad)``, ignoring the forward input (Zeiler & Fergus)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.clamp_min(0)


_RULE_FUNCTIONS = {"guided": _GuidedReLU, "deconvnet": _DeconvReLU}


def stride_one_size(size: int, padding: int, kernel: int, dilation: int = 1) -> int:
    """``A + 2O − M + 1``: the output size of the layer had its stride been 1."""
    return size + 2 * padding - dilation * (kernel - 1)


class _StrideFixConv2d(torch.autograd.Function):
    """``F.conv2d`` forward; input gradient resampled to stride 1 (Oramas et al., ICLR 2019)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.conf = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            size = [
                stride_one_size(x.shape[2 + i], padding[i], weight.shape[2 + i], dilation[i])
                for i in range(2)
            ]
            resized = F.interpolate(grad_out, size=size, mode="nearest")
            # A stride-1 transposed convolution of the resized signal: size A + 2O − M + 1 → A.
            grad_x = F.conv_transpose2d(resized, weight, None, 1, padding, 0, groups, dilation)
        if ctx.needs_input_grad[1]:  # parameters keep their ordinary gradients
            grad_w = torch.nn.grad.conv2d_weight(
                x, weight.shape, grad_out, stride, padding, dilation, groups
            )
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


def stride_fix_conv2d(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` whose backward uses the stride-1 resampling for the input gradient."""
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"stride_fix supports Conv2d with padding_mode='zeros' only, got {conv.padding_mode!r}"
        )
    padding = (0, 0) if conv.padding == "valid" else tuple(conv.padding)
    return _StrideFixConv2d.apply(
        x, conv.weight, conv.bias, tuple(conv.stride), padding, tuple(conv.dilation), conv.groups
    )


def _pool_pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _StrideFixMaxPool2d(torch.autograd.Function):
    """``F.max_pool2d`` forward; the backward unpools the signal, nearest-resized to the
    stride-1 output size, through the switches of the same pooling run at stride 1."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode):
        ctx.save_for_backward(x)
        ctx.conf = (kernel, padding, dilation)
        return F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        kernel, padding, dilation = ctx.conf
        # The switches of the stride-1 pooling: for each of its A + 2O − M + 1 outputs the
        # flat index of the input pixel that won (ceil_mode cannot matter at stride 1).
        _, switches = F.max_pool2d(x, kernel, 1, padding, dilation, return_indices=True)
        resized = F.interpolate(grad_out, size=switches.shape[-2:], mode="nearest")
        # Unpooling with overlapping windows: a pixel that wins several windows collects the
        # signal of each (F.max_unpool2d would keep only one of them).
        grad_x = torch.zeros_like(x).flatten(2)
        grad_x.scatter_add_(2, switches.flatten(2), resized.flatten(2))
        return grad_x.view_as(x), None, None, None, None, None


class _StrideFixAvgPool2d(torch.autograd.Function):
    """``F.avg_pool2d`` forward; the backward is the stride-1 average pooling's transposed op
    applied to the signal nearest-resized to the stride-1 output size."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
        ctx.save_for_backward(x)
        ctx.conf = (kernel, padding, count_include_pad, divisor)
        return F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        kernel, padding, count_include_pad, divisor = ctx.conf
        # Average pooling is linear: its transposed op is the vector-Jacobian product of the
        # same pooling at stride 1 (same divisors at the borders, count_include_pad and all).
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            stride_one = F.avg_pool2d(leaf, kernel, 1, padding, False, count_include_pad, divisor)
            resized = F.interpolate(grad_out, size=stride_one.shape[-2:], mode="nearest")
            (grad_x,) = torch.autograd.grad(stride_one, leaf, resized)
        return grad_x, None, None, None, None, None, None


def stride_fix_max_pool2d(pool: nn.MaxPool2d, x: Tensor) -> Tensor:
    """``pool(x)`` whose backward unpools through stride-1 switches (see the module docstring)."""
    if pool.return_indices:
        raise ValueError("stride_fix does not support MaxPool2d(return_indices=True)")
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return _StrideFixMaxPool2d.apply(
        x, _pool_pair(pool.kernel_size), _pool_pair(stride), _pool_pair(pool.padding),
        _pool_pair(pool.dilation), pool.ceil_mode,
    )  # fmt: skip


def stride_fix_avg_pool2d(pool: nn.AvgPool2d, x: Tensor) -> Tensor:
    """``pool(x)`` whose backward is the stride-1 transposed pooling of the resized signal."""
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return _StrideFixAvgPool2d.apply(
        x, _pool_pair(pool.kernel_size), _pool_pair(stride), _pool_pair(pool.padding),
        pool.ceil_mode, pool.count_include_pad, pool.divisor_override,
    )  # fmt: skip


def _is_strided(module: nn.Module) -> bool:
    """A Conv2d / MaxPool2d / AvgPool2d whose stride is not 1 (a pool's default stride is its
    kernel size)."""
    if isinstance(module, nn.Conv2d):
        return tuple(module.stride) != (1, 1)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        return _pool_pair(stride) != (1, 1)
    return False


def _stride_fix_forward(module: nn.Module) -> Callable:
    """The instance-level ``forward`` that applies the stride fix to ``module``."""
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise ValueError(
                "stride_fix supports Conv2d with padding_mode='zeros' only, got "
                f"{module.padding_mode!r} in {type(module).__name__}"
            )
        return lambda x: stride_fix_conv2d(module, x)
    if isinstance(module, nn.MaxPool2d):
        return lambda x: stride_fix_max_pool2d(module, x)
    return lambda x: stride_fix_avg_pool2d(module, x)


def _override_forward(module: nn.Module, forward: Callable, saved: list) -> None:
    """Set an instance-level ``forward``; remember what to put back (an existing one or none)."""
    saved.append((module, module.__dict__.get("forward")))
    module.forward = forward


@contextmanager
def backprop_rules(
    model: nn.Module, rule: str = "guided", stride_fix: bool = False, functional: bool = True
) -> Iterator[nn.Module]:
    """Within the context, ``model``'s ReLUs back-propagate by ``rule`` (``"guided"`` or
    ``"deconvnet"``) and, with ``stride_fix``, its strided convolutions and max/average pools
    use the stride-1 resampling. ``functional`` also patches ``F.relu``/``torch.relu`` (see the module
    docstring). Everything is restored on exit, also after an exception.

    Usable for any objective, e.g. a single filter's activation (the relevant-features
    method): build the graph and call ``torch.autograd.grad`` inside the context.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    fn = _RULE_FUNCTIONS[rule]

    def rule_relu(input: Tensor, inplace: bool = False) -> Tensor:
        return fn.apply(input)

    def rule_relu_(input: Tensor) -> Tensor:
        return fn.apply(input)

    saved_forwards: list = []
    saved_functions: list = []
    try:
        for module in model.modules():  # deduplicated: a reused module is patched once
            if isinstance(module, nn.ReLU):
                _override_forward(module, rule_relu, saved_forwards)
            elif stride_fix and _is_strided(module):
                _override_forward(module, _stride_fix_forward(module), saved_forwards)
        if functional:
            for owner, name, patch in (
                (F, "relu", rule_relu),
                (F, "relu_", rule_relu_),
                (torch, "relu", rule_relu_),
                (torch, "relu_", rule_relu_),
            ):
                saved_functions.append((owner, name, getattr(owner, name)))
                setattr(owner, name, patch)
        yield model
    finally:
        for owner, name, original in reversed(saved_functions):
            setattr(owner, name, original)
        for module, original in reversed(saved_forwards):
            if original is None:
                del module.forward
            else:
                module.forward = original


def filter_backprop(
    model: nn.Module,
    x: Tensor,
    layer: nn.Module,
    channel: Tensor | int,
    rule: str = "guided",
    stride_fix: bool = False,
    functional: bool = True,
) -> Tensor:
    """The input signal ``[B,C,H,W]`` of one filter of ``layer`` (a module of ``model``) per
    image, back-propagated by ``rule`` (with the stride fix if asked).

    As in Zeiler & Fergus, the filter's own activation map (every other channel zeroed) is
    what goes back; for a fully connected layer the unit's activation. ``channel``: one
    index for all images or ``[B]``. ``model.head(model.features(x))`` is run (whole model),
    so ``layer`` may sit in the head.
    """
    check_explainable(model)
    x = to_model_device(model, x)
    channel = torch.as_tensor(channel, device=x.device).long().expand(x.shape[0])
    captured = {}

    def keep(module, inputs, output):
        captured["a"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            leaf = x.detach().clone().requires_grad_(True)
            with backprop_rules(model, rule, stride_fix, functional):
                model.head(model.features(leaf.clone()))
                if "a" not in captured:
                    raise ValueError(
                        "filter_backprop: the layer is not used by the model's forward"
                    )
                a = captured["a"]
                one_hot = F.one_hot(channel, a.shape[1]).to(a.dtype)
                one_hot = one_hot.view(*one_hot.shape, *([1] * (a.dim() - 2)))
                (grad,) = torch.autograd.grad(a, leaf, one_hot * a.detach())
    finally:
        handle.remove()
    return grad


def reduce_channels(grad: Tensor, reduction: str) -> Tensor:
    """``[B,C,H,W]`` input gradients → ``[B,1,H,W]`` non-negative maps."""
    if reduction == "max_abs":
        return grad.abs().amax(dim=1, keepdim=True)
    if reduction == "sum_abs":
        return grad.abs().sum(dim=1, keepdim=True)
    return grad.square().sum(dim=1, keepdim=True).sqrt()


class _ModifiedBackprop:
    rule: str = ""

    def __init__(
        self, stride_fix: bool = False, reduction: str = "max_abs", functional: bool = True
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.stride_fix = stride_fix
        self.reduction = reduction
        self.functional = functional

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        check_explainable(model)
        x = to_model_device(model, x)
        # Lightning validates under no_grad/inference mode: leave both, and give autograd an
        # ordinary copy of the input (inference tensors cannot be recorded).
        with torch.inference_mode(False), torch.enable_grad():
            leaf = x.detach().clone().requires_grad_(True)
            with backprop_rules(model, self.rule, self.stride_fix, self.functional):
                # The model gets a copy: an in-place first op must not write into the leaf.
                logits = model.head(model.features(leaf.clone()))
                target = resolve_target(logits.detach(), target)
                # Summing the per-image target logits keeps each image's gradient its own.
                score = logits.gather(1, target[:, None]).sum()
                (grad,) = torch.autograd.grad(score, leaf)
        with torch.no_grad():
            saliency = normalize_per_image(reduce_channels(grad, self.reduction))
        return Explanation(saliency, target, forward_passes=1.0, backward_passes=1.0,
                           extras={"gradient": grad})  # fmt: skip


class GuidedBackprop(_ModifiedBackprop):
    """Guided backpropagation (Springenberg et al., ICLR-W 2015) of the target logit.

    Args:
        stride_fix: use the stride-1 resampling of Oramas et al. (ICLR 2019) in the backward
            pass of strided convolutions and pools (removes grid artifacts). Default off.
        reduction: channels → one map: ``"max_abs"`` (default, ``max_c |g_c|``),
            ``"sum_abs"`` (``Σ_c |g_c|``) or ``"l2"`` (``‖g‖₂`` over channels).
        functional: also apply the rule to functional ReLUs (``F.relu``, ``torch.relu``).

    Needs only the logits ``model.head(model.features(x))``; ``check_explainable`` is called
    so every explainer rejects a model without the split in the same way. One forward and one
    backward (through the whole model) per image; ``extras["gradient"]`` is the modified
    input gradient ``[B,C,H,W]``. The model's train/eval mode is not changed.
    """

    rule = "guided"


class Deconvnet(_ModifiedBackprop):
    """Deconvnet (Zeiler & Fergus, ECCV 2014) projection of the target logit to the input.

    Same arguments, cost and extras as :class:`GuidedBackprop`; only the ReLU rule differs.
    """

    rule = "deconvnet"

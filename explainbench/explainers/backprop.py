"""Modified-backpropagation saliency: guided backpropagation and deconvnet, with the optional
stride-1 resampling fix for strided convolutions.

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
* with ``stride_fix``, every ``nn.Conv2d`` with a stride other than 1 gets an instance-level
  ``forward`` whose forward is the same convolution and whose input gradient is the resampled
  one (weight and bias gradients are the ordinary ones). Only ``padding_mode="zeros"`` is
  supported (ValueError otherwise); groups and dilation are handled.
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


def _override_forward(module: nn.Module, forward: Callable, saved: list) -> None:
    """Set an instance-level ``forward``; remember what to put back (an existing one or none)."""
    saved.append((module, module.__dict__.get("forward")))
    module.forward = forward


@contextmanager
def backprop_rules(
    model: nn.Module, rule: str = "guided", stride_fix: bool = False, functional: bool = True
) -> Iterator[nn.Module]:
    """Within the context, ``model``'s ReLUs back-propagate by ``rule`` (``"guided"`` or
    ``"deconvnet"``) and, with ``stride_fix``, its strided convolutions use the stride-1
    resampling. ``functional`` also patches ``F.relu``/``torch.relu`` (see the module
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
            elif stride_fix and isinstance(module, nn.Conv2d) and tuple(module.stride) != (1, 1):
                if module.padding_mode != "zeros":
                    raise ValueError(
                        "stride_fix supports Conv2d with padding_mode='zeros' only, got "
                        f"{module.padding_mode!r} in {type(module).__name__}"
                    )
                _override_forward(
                    module, lambda x, conv=module: stride_fix_conv2d(conv, x), saved_forwards
                )
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
            pass of strided convolutions (removes grid artifacts). Default off.
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

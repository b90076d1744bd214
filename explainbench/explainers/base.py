"""The Explainer contract shared by post-hoc explainers and learned methods.

An explainer is a callable ``explainer(model, x, target=None) -> Explanation``.
``model`` is anything with ``features(x) -> A [B,K,P,Q]`` and ``head(A) -> logits``
(a :class:`~explainbench.backbones.Backbone` or an
:class:`~explainbench.methods.base.ExplainableMethod`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Explanation:
    """Saliency maps for a batch plus the cost of computing them.

    Attributes:
        saliency: ``[B,1,H,W]`` float in ``[0, 1]`` at input resolution.
        target: ``[B]`` long, the explained class of each image.
        forward_passes: forward passes through the model per image.
        backward_passes: backward passes through the model per image.
        extras: optional method-specific outputs (e.g. attribute rankings).
    """

    saliency: Tensor
    target: Tensor
    forward_passes: float = 0.0
    backward_passes: float = 0.0
    extras: dict = field(default_factory=dict)


def check_explainable(model: nn.Module) -> None:
    """Fail clearly when ``model`` lacks the ``features``/``head`` split explainers rely on."""
    missing = [name for name in ("features", "head") if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(
            f"{type(model).__name__} has no {' / '.join(f'{m}()' for m in missing)}: explainers need a "
            "model split into features(x) -> A [B,K,P,Q] and head(A) -> logits. Build it with "
            "explainbench.backbones.build_backbone(...) or wrap it in an ExplainableMethod."
        )


def resolve_target(logits: Tensor, target: Tensor | int | None) -> Tensor:
    """Return a ``[B]`` long target: the top-1 class when ``target`` is None.

    Raises ``ValueError`` when a given class index is outside ``[0, num_classes)``.
    """
    num_classes = logits.shape[1]
    if target is None:
        return logits.argmax(dim=1)
    target = torch.as_tensor(target, device=logits.device, dtype=torch.long)
    if target.ndim == 0:
        target = target.expand(logits.shape[0])
    if target.shape != (logits.shape[0],):
        raise ValueError(
            f"target must be an int or a [B]={logits.shape[0]} tensor, got shape {tuple(target.shape)}"
        )
    bad = (target < 0) | (target >= num_classes)
    if bad.any():
        raise ValueError(
            f"target class {target[bad][0].item()} is outside the model's {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )
    return target


def normalize_per_image(maps: Tensor, eps: float = 1e-8) -> Tensor:
    """Min-max normalise each ``[B,1,H,W]`` map to ``[0,1]``; a constant map becomes all zeros.

    At least float32: under autocast (``trainer.precision=bf16-mixed``) the model gives bf16/fp16
    activations, whose 8-bit (bf16) mantissa would quantise the map to 256 levels and whose fp16
    range overflows on large sums; maps and metrics downstream expect float32."""
    maps = maps.to(torch.promote_types(maps.dtype, torch.float32))
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > eps, (flat - lo) / span.clamp_min(eps), torch.zeros_like(flat))
    return out.view_as(maps)


def upsample_to(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize ``[B,1,P,Q]`` maps to ``size`` and min-max normalise each to ``[0,1]``
    (in at least float32, see :func:`normalize_per_image`)."""
    maps = maps.to(torch.promote_types(maps.dtype, torch.float32))
    if maps.shape[-2:] != tuple(size):
        maps = nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return normalize_per_image(maps)


def masked_input_buffer(x: Tensor, rows: int, channels_last: bool) -> Tensor:
    """The reused ``[rows, C, H, W]`` input buffer of the masking explainers (Score-CAM, RISE).

    Zeros, not empty: a compiled forward always reads all ``rows``, including those a short
    last chunk leaves unwritten. Channels-last makes oneDNN's and tensor cores' convolutions
    faster; the model itself is not touched.
    """
    layout = torch.channels_last if channels_last else torch.contiguous_format
    buffer = torch.zeros((rows, *x.shape[1:]), dtype=x.dtype, device=x.device)
    return buffer.contiguous(memory_format=layout)


def to_model_device(model: nn.Module, x: Tensor) -> Tensor:
    """Move ``x`` to the device of ``model``'s first parameter (where explainers run)."""
    param = next(model.parameters(), None)
    return x if param is None or param.device == x.device else x.to(param.device)


def outside_inference_mode(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Ordinary-tensor copies of inference-mode results, so callers may edit them in place.

    Nothing is copied under an outer ``inference_mode``: there the caller's own tensors are
    inference tensors too.
    """
    if torch.is_inference_mode_enabled():
        return tensors
    return tuple(t.clone() if t.is_inference() else t for t in tensors)


def features_and_target(
    model: nn.Module, x: Tensor, target: Tensor | int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """The start of every forward-only explainer: check the model, move ``x`` to its device,
    compute the explanation layer ``A`` and resolve ``target`` (top-1 when None) from the same
    pass. Returns ``(x, A, target)``, computed in inference mode."""
    check_explainable(model)
    x = to_model_device(model, x)
    with torch.inference_mode():
        feats = model.features(x)
        target = resolve_target(model.head(feats), target)
    return x, feats, target

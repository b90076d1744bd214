"""The ``method`` explainer: a trained method's own explanation, behind the Explainer contract.

Learned explainers — L-CAM (Gkartzonika et al.), EAT, region grouping, attention networks —
compute their explanation themselves (``method.explain(x, target) -> Explanation``). Wrapping
that call in an Explainer lets callbacks and ``evaluate.py`` score them with exactly the code
that scores Grad-CAM or RISE.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import Explanation, resolve_target, to_model_device


class MethodExplainer:
    """Calls ``model.explain(x, target, **explain_kwargs)`` and checks what comes back.

    Target semantics are the same as every other explainer's: ``None`` means the model's
    top-1 class and is passed through as ``None`` (the method picks the top-1 class in its own
    forward pass, so no extra pass is spent here); an int or ``[B]`` tensor is turned into a
    ``[B]`` long tensor on the model's device and, when the model has a ``num_classes``
    attribute, rejected if out of range — before the method runs.

    The returned :class:`Explanation` must have a ``[B,1,H,W]`` saliency in ``[0, 1]`` at the
    input size and a ``[B]`` target (equal to the given one, when one was given); a method that
    breaks the contract raises ``ValueError`` here rather than skewing a metric later. Pass
    counts are the method's own.

    Args:
        explain_kwargs: extra keyword arguments for every ``explain`` call (method-specific).
    """

    def __init__(self, explain_kwargs: dict[str, Any] | None = None) -> None:
        self.explain_kwargs = dict(explain_kwargs or {})

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        explain = getattr(model, "explain", None)
        if not callable(explain):
            raise TypeError(
                f"{type(model).__name__} has no explain(x, target) method: the 'method' explainer "
                "evaluates a trained method's own explanation (e.g. method=lcam_img). Use a "
                "post-hoc explainer (gradcam, rise, ...) for this model instead."
            )
        x = to_model_device(model, x)
        batch = x.shape[0]
        if target is not None:
            target = self._check_target(model, target, batch, x.device)
        explanation = explain(x, target, **self.explain_kwargs)
        self._check_explanation(model, explanation, x, target)
        return explanation

    @staticmethod
    def _check_target(model: nn.Module, target: Tensor | int, batch: int, device) -> Tensor:
        num_classes = getattr(model, "num_classes", None)
        if isinstance(num_classes, int):
            return resolve_target(torch.empty(batch, num_classes, device=device), target)
        # Without a class count only the shape can be checked; the method checks the range.
        target = torch.as_tensor(target, dtype=torch.long, device=device)
        target = target.expand(batch) if target.ndim == 0 else target
        if target.shape != (batch,):
            raise ValueError(
                f"target must be an int or a [B]={batch} tensor, got shape {tuple(target.shape)}"
            )
        return target

    @staticmethod
    def _check_explanation(
        model: nn.Module, explanation: Any, x: Tensor, target: Tensor | None
    ) -> None:
        name = type(model).__name__
        if not isinstance(explanation, Explanation):
            raise ValueError(
                f"{name}.explain returned {type(explanation).__name__}, expected an Explanation"
            )
        expected = (x.shape[0], 1, *x.shape[-2:])
        saliency = explanation.saliency
        if tuple(saliency.shape) != expected:
            raise ValueError(
                f"{name}.explain returned a saliency of shape {tuple(saliency.shape)}, expected "
                f"{expected} ([B,1,H,W] at the input size)"
            )
        if saliency.numel() and (saliency.min() < 0 or saliency.max() > 1):
            raise ValueError(
                f"{name}.explain returned saliency values in [{saliency.min().item():.4g}, "
                f"{saliency.max().item():.4g}], expected [0, 1]"
            )
        got = explanation.target
        if not torch.is_tensor(got) or tuple(got.shape) != (x.shape[0],):
            shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
            raise ValueError(f"{name}.explain returned a target of shape {shape}, expected [B]")
        if target is not None and not torch.equal(got.to(target.device).long(), target):
            raise ValueError(f"{name}.explain explained classes {got.tolist()}, not the "
                             f"requested {target.tolist()}")  # fmt: skip

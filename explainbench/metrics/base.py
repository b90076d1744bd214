"""The Metric contract: one ``update_batch`` entry point, scalar ``compute()`` dicts, DDP-safe state.

Every explanation metric is a :class:`torchmetrics.Metric` whose state is made of tensor sums and
counts reduced with ``dist_reduce_fx="sum"``, so a DDP run (or :meth:`merge_state`) gives exactly
the single-process result. The evaluator (:mod:`explainbench.evaluation.evaluator`) drives every
metric the same way::

    # once, before the first batch: the data module's annotations decide
    if missing := metric.missing_annotations(datamodule.annotations):
        warn(f"Skipping metric '{name}': the data has no {missing} annotation.")
    ...
    metric.update_batch(model, batch, explanation)  # every batch, every metric kept
    ...
    for key, value in metric.compute().items():  # e.g. {"ad@15": ..., "ic@15": ...}
        log(f"{stage}/{key}/{explainer}", value)

``compute()`` without any evaluated sample raises :class:`NoSamplesError` (a ``RuntimeError``)
rather than returning NaN or a made-up 0 that would look like a real score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from explainbench.explainers.base import Explanation
from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:  # the data package is not imported at run time: metrics are pure torch
    from explainbench.data.base import Batch


class NoSamplesError(RuntimeError):
    """``compute()`` was called on a metric that has evaluated no sample (none seen, or all skipped)."""


class ExplanationMetric(Metric):
    """Base class of the explanation metrics.

    Class attributes:
        name: short registry/log name of the metric (``"far"``, ``"ad_ic"``, ...).
        required_keys: annotations that must all be present (batch keys such as ``"mask"``).
        required_any: annotations of which at least one must be present (e.g. ``("bbox", "mask")``).

    Args:
        mean: per-channel mean used to normalise the images (to un-normalise them).
        std: per-channel std used to normalise the images.
        name: the name warnings and errors use, when a config file gives a metric class a second
            setting under its own name (``pointing_game_bbox``); the logged keys stay the class's.
        kwargs: forwarded to :class:`torchmetrics.Metric` (``sync_on_compute``, ...).
    """

    name: str = "explanation_metric"
    required_keys: tuple[str, ...] = ()
    required_any: tuple[str, ...] = ()
    # Scores are sums over samples: a batch update never needs the global state.
    full_state_update = False
    is_differentiable = False
    higher_is_better: bool | None = None
    # True: the metric re-runs the explainer (e.g. on a randomised model); the evaluator gives
    # each such metric instance its explainer with ``bind_explainer(explainer)``.
    needs_explainer: bool = False

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        name: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if name is not None:
            self.name = name
        # Hydra passes ListConfig; plain float tuples keep the metric picklable and hashable.
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    # -- the uniform entry point -------------------------------------------------------------
    def missing_annotations(self, annotations: Iterable[str]) -> list[str]:
        """Annotations this metric needs that ``annotations`` (the data's, or a batch's keys)
        lacks; an empty list: the metric can run.

        Every absent key of ``required_keys`` is listed by name; when none of ``required_any`` is
        present, one entry ``"a or b"`` names the alternatives.
        """
        keys = set(annotations)
        missing = [k for k in self.required_keys if k not in keys]
        if self.required_any and not keys.intersection(self.required_any):
            missing.append(" or ".join(self.required_any))
        return missing

    def update_batch(self, model: nn.Module, batch: Batch, explanation: Explanation) -> None:
        """Pull what the metric needs out of ``batch``/``explanation`` and call :meth:`update`."""
        raise NotImplementedError

    # -- helpers shared by the subclasses ----------------------------------------------------
    def _require(self, batch: Batch) -> None:
        missing = self.missing_annotations(batch.keys())
        if missing:
            raise KeyError(
                f"{type(self).__name__} ({self.name!r}) needs batch key(s) {missing}; the batch has "
                f"{sorted(batch.keys())}. Check metric.missing_annotations(data annotations) first."
            )

    def _empty(self, what: str = "samples") -> NoSamplesError:
        return NoSamplesError(
            f"{type(self).__name__} ({self.name!r}) has no evaluated {what}: update() was never "
            "called, or every sample was skipped for a missing/empty annotation. Nothing to compute."
        )

    def _add(self, state: str, value: Tensor | float) -> None:
        # Out-of-place on purpose: states reset inside Lightning's inference-mode loops are
        # inference tensors, and in-place `+=` on them outside inference mode raises.
        current = getattr(self, state)
        setattr(
            self, state, current + torch.as_tensor(value, dtype=current.dtype).to(current.device)
        )


def saliency_at(saliency: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """``[B,1,h,w]`` saliency as float32 at ``size`` (bilinear when the sizes differ)."""
    saliency = saliency.detach().float()
    if saliency.ndim == 3:
        saliency = saliency.unsqueeze(1)
    if saliency.shape[-2:] != tuple(size):
        saliency = F.interpolate(saliency, size=tuple(size), mode="bilinear", align_corners=False)
    return saliency


def binary_mask(mask: Tensor) -> Tensor:
    """``[B,1,H,W]`` boolean ground truth: any value above 0.5 is foreground."""
    mask = mask.detach()
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    return mask.float() > 0.5

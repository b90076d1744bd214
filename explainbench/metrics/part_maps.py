"""Where the part-map metrics (``landmarks``, ``part_iou``) get a method's part maps ``Q``:
:class:`PartMapMetric`, their base."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric


def part_maps_of(model: nn.Module, image: Tensor, explanation: Explanation) -> Tensor | None:
    """``Q [B,K,h,w]``: the explanation's ``extras["parts"]`` (region grouping's ``method``
    explainer, no extra pass), else ``model.part_maps(image)``, else None (no part maps)."""
    parts = (explanation.extras or {}).get("parts")
    if parts is None and callable(getattr(model, "part_maps", None)):
        with torch.no_grad():
            parts = model.part_maps(image)
    return parts


def warn_no_part_maps(metric: str, model: nn.Module) -> None:
    """The one warning of a part-map metric run on a model without part maps (then skipped)."""
    warnings.warn(
        f"Metric '{metric}' needs part maps (a method with part_maps(x), e.g. method=region_group); "
        f"{type(model).__name__} has none: skipped.",
        stacklevel=3,
    )


class PartMapMetric(ExplanationMetric):
    """A metric of a method's part maps: :meth:`part_maps` finds them, or warns once and gives
    None on a model without any (the metric then skips the batch)."""

    _warned_no_parts = False

    def part_maps(self, model: nn.Module, batch: dict, explanation: Explanation) -> Tensor | None:
        parts = part_maps_of(model, batch["image"], explanation)
        if parts is None and not self._warned_no_parts:
            self._warned_no_parts = True
            warn_no_part_maps(self.name, model)
        return parts

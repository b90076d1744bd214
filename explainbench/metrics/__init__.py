"""Explanation metrics: torchmetrics classes with sum/count state (DDP-safe), one registry.

``build_metric("far", mask_key="part_mask")`` builds one by name; ``METRICS`` lists them. Every
metric takes ``update_batch(model, batch, explanation)`` and returns a dict of scalars from
``compute()`` (``NoSamplesError`` when it has evaluated nothing).
"""

from __future__ import annotations

from explainbench.metrics.ad_ic import AverageDropIncrease, keep_top_fraction
from explainbench.metrics.base import ExplanationMetric, NoSamplesError
from explainbench.metrics.deletion_insertion import DeletionInsertion
from explainbench.metrics.far import ForegroundAttentionRate
from explainbench.metrics.iou import MaskIoU
from explainbench.metrics.pass_count import PassCount
from explainbench.metrics.pointing_game import PointingGame

METRICS: dict[str, type[ExplanationMetric]] = {
    cls.name: cls
    for cls in (
        AverageDropIncrease,
        DeletionInsertion,
        ForegroundAttentionRate,
        MaskIoU,
        PointingGame,
        PassCount,
    )
}


def build_metric(name: str, **kwargs) -> ExplanationMetric:
    """Build the metric registered as ``name`` (see ``METRICS``) with constructor ``kwargs``."""
    try:
        cls = METRICS[name]
    except KeyError:
        raise KeyError(
            f"unknown metric {name!r}; valid names: {', '.join(sorted(METRICS))}"
        ) from None
    return cls(**kwargs)


__all__ = [
    "METRICS",
    "AverageDropIncrease",
    "DeletionInsertion",
    "ExplanationMetric",
    "ForegroundAttentionRate",
    "MaskIoU",
    "NoSamplesError",
    "PassCount",
    "PointingGame",
    "build_metric",
    "keep_top_fraction",
]

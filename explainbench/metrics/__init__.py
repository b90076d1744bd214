"""Explanation metrics: torchmetrics classes with sum/count state (DDP-safe).

Each is one module here and one named entry in ``conf/metrics/<name>.yaml`` (its ``_target_``
is the class in its module); the composed ``metrics`` group is what gets built, so there is
no registry to keep in step. Every metric takes ``update_batch(model, batch, explanation)``
and returns a dict of scalars from ``compute()`` (``NoSamplesError`` when it has evaluated
nothing). The classes below are re-exported for use from Python.
"""

from __future__ import annotations

from explainbench.metrics.ad_ic import AverageDropIncrease, keep_top_fraction
from explainbench.metrics.base import ExplanationMetric, NoSamplesError
from explainbench.metrics.deletion_insertion import DeletionInsertion
from explainbench.metrics.far import ForegroundAttentionRate
from explainbench.metrics.iou import MaskIoU
from explainbench.metrics.landmarks import LandmarkLocalization
from explainbench.metrics.part_iou import PartIoU
from explainbench.metrics.pass_count import PassCount
from explainbench.metrics.pointing_game import PointingGame
from explainbench.metrics.randomisation import ModelRandomisation

__all__ = [
    "AverageDropIncrease",
    "DeletionInsertion",
    "ExplanationMetric",
    "ForegroundAttentionRate",
    "LandmarkLocalization",
    "MaskIoU",
    "ModelRandomisation",
    "NoSamplesError",
    "PartIoU",
    "PassCount",
    "PointingGame",
    "keep_top_fraction",
]

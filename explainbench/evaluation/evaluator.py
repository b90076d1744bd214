"""Running explainers × metrics over batches: shared by the ExplanationMetrics callback and
evaluate.py, so a number in a training log and in an evaluation table mean the same thing.
Pure torch (no Lightning): the callbacks call it from their hooks."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..explainers.base import Explanation
from ..metrics.base import NoSamplesError


def copy_for_autograd(batch: Mapping[str, Any]) -> dict[str, Any]:
    """Batches produced inside Lightning's inference mode cannot enter autograd; clones made
    outside inference mode can."""
    return {k: v.clone() if isinstance(v, Tensor) else v for k, v in batch.items()}


def unsupported_metrics(
    metrics: Mapping[str, Any], annotations: Iterable[str]
) -> dict[str, list[str]]:
    """Metric name → the annotations it needs that the data lacks, for the metrics that
    cannot run on this data; warns once per such metric, naming the annotation."""
    annotations = frozenset(annotations)
    unsupported = {}
    for name, metric in metrics.items():
        if missing := metric.missing_annotations(annotations):
            unsupported[name] = missing
            warnings.warn(
                f"Skipping metric '{name}': the data has no {', '.join(missing)} annotation.",
                stacklevel=3,
            )
    return unsupported


class ExplanationEvaluator:
    """Feeds every (explainer, metric) pair batch by batch and times each explainer.

    Args:
        explainers: name → explainer callable.
        metrics: name → metric *prototype*; each explainer gets its own deep copy.
        mean, std: the data's normalisation (metrics un-normalise images with it).
        annotations: the annotations every batch of the data carries (the data module's
            ``annotations``). A metric that needs one the data lacks is left out here, once,
            with one warning naming it, so every batch then feeds every metric kept.
    """

    def __init__(
        self,
        explainers: Mapping[str, Any],
        metrics: Mapping[str, Any],
        mean: Sequence[float],
        std: Sequence[float],
        annotations: Iterable[str],
    ) -> None:
        self.explainers = dict(explainers)
        self.skipped = unsupported_metrics(metrics, annotations)
        self.metrics: dict[str, dict[str, Any]] = {}
        for name in self.explainers:
            self.metrics[name] = {}
            for metric_name, prototype in metrics.items():
                if metric_name in self.skipped:
                    continue
                metric = copy.deepcopy(prototype)
                metric.mean, metric.std = tuple(mean), tuple(std)
                if getattr(metric, "needs_explainer", False):  # e.g. the randomisation check
                    metric.bind_explainer(self.explainers[name])
                self.metrics[name][metric_name] = metric
        self.seconds = dict.fromkeys(self.explainers, 0.0)
        self.images = 0

    def to(self, device: torch.device) -> ExplanationEvaluator:
        for per_explainer in self.metrics.values():
            for metric in per_explainer.values():
                metric.to(device)
        return self

    def reset(self) -> None:
        for per_explainer in self.metrics.values():
            for metric in per_explainer.values():
                metric.reset()
        self.seconds = dict.fromkeys(self.explainers, 0.0)
        self.images = 0

    def update(
        self, model: nn.Module, batch: Mapping[str, Any], target: Tensor | None = None
    ) -> dict[str, Explanation]:
        """Explain ``batch['image']`` with every explainer and update its metrics.

        Returns the explanations (for galleries).
        """
        with torch.inference_mode(False):
            batch = copy_for_autograd(batch)
            x = batch["image"]
            explanations = {}
            for name, explainer in self.explainers.items():
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)
                start = time.perf_counter()
                explanation = explainer(model, x, target)
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)
                self.seconds[name] += time.perf_counter() - start
                explanations[name] = explanation
                for metric in self.metrics[name].values():
                    metric.update_batch(model, batch, explanation)
        self.images += x.shape[0]
        return explanations

    def compute(self) -> dict[str, dict[str, float]]:
        """``{explainer: {metric_key: value, 'ms_per_image': ...}}`` (DDP-synchronised metrics)."""
        results: dict[str, dict[str, float]] = {}
        for name, per_explainer in self.metrics.items():
            row: dict[str, float] = {}
            for metric_name, metric in per_explainer.items():
                try:
                    values = metric.compute()
                except NoSamplesError as err:  # e.g. every mask of the evaluated images was empty
                    warnings.warn(f"No value for '{metric_name}' of '{name}': {err}", stacklevel=2)
                    continue
                for key, value in values.items():
                    row[key] = float(value)
            row["ms_per_image"] = 1000.0 * self.seconds[name] / max(self.images, 1)
            results[name] = row
        return results

    def compute_curves(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        """``{explainer: {curve: {"x": [...], "y": [...]}}}`` of every metric with a
        ``compute_curve()`` (IoU: threshold → mean IoU, keyed by the metric's name;
        deletion_insertion: fraction of pixels → mean probability, one curve per mode, keyed
        ``deletion`` / ``insertion`` like its scores). DDP-synchronised like :meth:`compute`:
        call it on every rank."""
        curves: dict[str, dict[str, dict[str, list[float]]]] = {}
        for name, per_explainer in self.metrics.items():
            row: dict[str, dict[str, list[float]]] = {}
            for metric_name, metric in per_explainer.items():
                if not hasattr(metric, "compute_curve"):
                    continue
                try:
                    curve = metric.compute_curve()
                except NoSamplesError:  # compute() has warned already
                    continue
                pairs = curve if isinstance(curve, dict) else {metric_name: curve}
                for key, (x, y) in pairs.items():
                    row[key] = {"x": x.cpu().tolist(), "y": y.cpu().tolist()}
            curves[name] = row
        return curves

"""The cost model of an explanation benchmark: ``python evaluate.py ... estimate=true``.

time = images × Σ_explainers (forward passes per image × seconds per forward
                             + backward passes per image × seconds per backward) / devices

- Passes per image: what the explainer's own :class:`~explainbench.explainers.base.Explanation`
  reports (``forward_passes`` / ``backward_passes``) for one image of the test split (Score-CAM
  K+1 — fewer when channels with an empty activation are skipped —, Grad-CAM 1+1, ...).
  RISE's count is N+1 whatever the image (its config's ``n_masks`` plus the forward finding
  the target), so it is read from the explainer (``n_masks``) rather than run N times.
- Seconds per pass: one forward (no autograd) and one forward + backward of the model on a
  batch of the test split, on the device the run would use, per image; the backward is their
  difference. An explainer feeds the model its own chunk size (Score-CAM's ``batch_size``),
  which on a GPU is usually faster per image than the data batch: the estimate is then an
  upper bound.
- Devices: a linear split (every image is independent, the evaluation loop shards them; what
  is ignored: process start-up, the final reduction, data loading, the metrics' own forward
  passes and the gallery, which :class:`~explainbench.evaluation.task.EvaluationTask`'s
  ``timing`` line measures for a real run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

DEVICE_COUNTS = (1, 8, 64)


@dataclass(frozen=True)
class PassTimes:
    """Seconds of one forward and of one backward pass, per image."""

    forward: float
    backward: float


@dataclass(frozen=True)
class Passes:
    """Forward and backward passes per image of one explainer."""

    forward: float
    backward: float

    def seconds(self, times: PassTimes) -> float:
        return self.forward * times.forward + self.backward * times.backward


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_passes(
    model: nn.Module, x: Tensor, repeats: int = 3, clock: Callable[[], float] = time.perf_counter
) -> PassTimes:
    """Per-image seconds of a forward and a backward of ``model`` on the batch ``x`` (the best
    of ``repeats`` after one untimed warm-up of each)."""
    device, n = x.device, x.shape[0]

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        with torch.enable_grad():
            source = x.detach().requires_grad_(True)  # as the gradient explainers do
            logits = model(source)
            logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()

    def best(step: Callable[[], None]) -> float:
        step()
        times = []
        for _ in range(repeats):
            _sync(device)
            start = clock()
            step()
            _sync(device)
            times.append(clock() - start)
        return min(times) / n

    fw = best(forward)
    fwbw = best(forward_backward)
    model.zero_grad(set_to_none=True)
    return PassTimes(forward=fw, backward=max(fwbw - fw, 0.0))


def passes_per_image(explainer: Any, model: nn.Module, x: Tensor) -> Passes:
    """The explainer's passes per image: from its config for RISE (``n_masks`` + 1, without
    running thousands of forwards), else as its Explanation reports them on ``x`` (one image
    is enough: the counts are per image)."""
    n_masks = getattr(explainer, "n_masks", None)
    if n_masks is not None:
        return Passes(forward=float(n_masks) + 1.0, backward=0.0)  # +1: the target's forward
    with torch.inference_mode(False):
        explanation = explainer(model, x.clone(), None)
    return Passes(float(explanation.forward_passes), float(explanation.backward_passes))


def estimate_hours(
    passes: Mapping[str, Passes],
    times: PassTimes,
    images: int,
    devices: Sequence[int] = DEVICE_COUNTS,
) -> dict[str, dict[int, float]]:
    """Explainer name (and ``total``) → device count → hours, split linearly over devices."""
    hours = {
        name: {d: images * p.seconds(times) / d / 3600.0 for d in devices}
        for name, p in passes.items()
    }
    hours["total"] = {d: sum(h[d] for h in hours.values()) for d in devices}
    return hours


def estimate_table(
    passes: Mapping[str, Passes],
    times: PassTimes,
    images: int,
    devices: Sequence[int] = DEVICE_COUNTS,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: passes, seconds per image and hours on each device count."""
    hours = estimate_hours(passes, times, images, devices)
    header = ["explainer", "fw/img", "bw/img", "s/img", *[f"h on {d}" for d in devices]]
    rows = [
        [name, f"{p.forward:g}", f"{p.backward:g}", f"{p.seconds(times):.4g}"]
        + [f"{hours[name][d]:.3g}" for d in devices]
        for name, p in passes.items()
    ]
    total = sum(p.seconds(times) for p in passes.values())
    rows.append(["total", "", "", f"{total:.4g}", *[f"{hours['total'][d]:.3g}" for d in devices]])
    return header, rows

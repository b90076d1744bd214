"""Deletion and insertion AUC (Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018).

Pixels are visited in order of decreasing saliency (stable: ties in raster order). At step
i = 0..n the k_i = round(i·N/n) most salient of the N pixels are

* deletion: replaced by the deletion baseline in the original image (default black), and
* insertion: copied from the original image into the insertion baseline (default: the blurred
  image, RISE's substrate),

and the softmax probability of the explained class is recorded, giving n+1 points per curve.
The score is the trapezoid area under probability-vs-fraction, with the fraction of pixels changed
x_i = k_i / N on a [0, 1] axis:

    AUC = Σ_i (x_{i+1} − x_i) · (p_i + p_{i+1}) / 2.

Deletion: lower is better; insertion: higher is better. The per-image AUCs are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric, saliency_at
from explainbench.metrics.perturbation import (
    BaselineSpec,
    baseline_pixels,
    check_baseline,
    class_probability,
    fraction_count,
    saliency_rank,
)
from explainbench.utils.image import denormalize, normalize

MODES = ("deletion", "insertion")


def step_counts(n_pixels: int, n_steps: int) -> list[int]:
    """Pixels changed after each of the ``n_steps + 1`` points: round(i·N/n), 0 … N."""
    return [fraction_count(i / n_steps, n_pixels) for i in range(n_steps + 1)]


def trapezoid_auc(curves: Tensor, x: Tensor) -> Tensor:
    """Trapezoid area of ``curves [B, n+1]`` over the increasing abscissae ``x [n+1]`` in [0, 1]."""
    return ((x[1:] - x[:-1]) * (curves[:, 1:] + curves[:, :-1]) / 2).sum(dim=1)


class DeletionInsertion(ExplanationMetric):
    """Mean deletion and insertion AUC (probabilities in [0, 1], fraction axis in [0, 1]).

    Args:
        n_steps: number of steps n; each curve has n+1 points (default 20).
        modes: which curves to compute, a subset of ``("deletion", "insertion")``.
        deletion_baseline: what deleted pixels become; ``"black"`` (default, pixel value 0),
            ``"white"``, ``"mean"`` (dataset mean colour — RISE zeroes the *normalised* tensor,
            which is this), ``"blur"`` or an RGB triple in [0, 1].
        insertion_baseline: the canvas pixels are inserted into; default ``"blur"`` (Gaussian,
            ``blur_kernel``=11, ``blur_sigma``=5 px as in RISE; replicate-padded edges).
        steps_per_forward: how many steps go through the model in one forward pass (the forward
            batch is ``steps_per_forward · B`` images); trade memory for speed.
        mean, std: the normalisation of the batch images.

    The original image (deletion step 0 = insertion step n) is evaluated once for both curves, and
    the all-baseline image too when both baselines are the same. ``n_steps`` larger than the pixel
    count just repeats points (zero-width trapezoids), which leaves the area unchanged.

    ``compute()`` → ``{"deletion": ..., "insertion": ...}`` (the computed modes);
    :meth:`compute_curves` gives the mean curves; ``NoSamplesError`` before any update.
    """

    name = "deletion_insertion"

    def __init__(
        self,
        n_steps: int = 20,
        modes: Sequence[str] = MODES,
        deletion_baseline: BaselineSpec = "black",
        insertion_baseline: BaselineSpec = "blur",
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
        steps_per_forward: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if int(n_steps) < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.modes = tuple(modes)
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {self.modes}")
        if int(steps_per_forward) < 1:
            raise ValueError(f"steps_per_forward must be >= 1, got {steps_per_forward}")
        self.n_steps = int(n_steps)
        self.baselines = {
            "deletion": check_baseline(deletion_baseline),
            "insertion": check_baseline(insertion_baseline),
        }
        self.blur_kernel = int(blur_kernel)
        self.blur_sigma = float(blur_sigma)
        self.steps_per_forward = int(steps_per_forward)
        for mode in self.modes:
            self.add_state(f"{mode}_auc_sum", torch.tensor(0.0), dist_reduce_fx="sum")
            self.add_state(f"{mode}_curve_sum", torch.zeros(self.n_steps + 1), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    # -- curves -------------------------------------------------------------------------------
    def curves(
        self, model: nn.Module, image: Tensor, saliency: Tensor, target: Tensor
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Per-image probability curves ``{mode: [B, n+1]}`` and their abscissae ``x [n+1]``."""
        pixels = denormalize(image.float(), self.mean, self.std)
        b, _, h, w = pixels.shape
        rank = saliency_rank(saliency_at(saliency, (h, w)).to(pixels.device)).view(b, 1, h, w)
        counts = step_counts(h * w, self.n_steps)
        base = {
            mode: baseline_pixels(
                self.baselines[mode], pixels, self.mean, self.blur_kernel, self.blur_sigma
            )
            for mode in self.modes
        }
        n = self.n_steps
        curves = {mode: pixels.new_zeros(b, n + 1) for mode in self.modes}
        original = class_probability(model, self._model_input(pixels, image.dtype), target)
        if "deletion" in self.modes:
            curves["deletion"][:, 0] = original
        if "insertion" in self.modes:
            curves["insertion"][:, n] = original

        # Every (mode, step) still to evaluate; the all-baseline image is shared when possible.
        jobs = [("deletion", i) for i in range(1, n + 1) if "deletion" in self.modes]
        shared = len(self.modes) == 2 and self.baselines["deletion"] == self.baselines["insertion"]
        jobs += [("insertion", i) for i in range(int(shared), n) if "insertion" in self.modes]

        for start in range(0, len(jobs), self.steps_per_forward):
            chunk = jobs[start : start + self.steps_per_forward]
            images = []
            for mode, i in chunk:
                changed = (rank < counts[i]).to(pixels.dtype)  # the k_i most salient pixels
                if mode == "deletion":
                    images.append(pixels * (1 - changed) + base[mode] * changed)
                else:
                    images.append(base[mode] * (1 - changed) + pixels * changed)
            batch = self._model_input(torch.cat(images), image.dtype)
            probs = class_probability(model, batch, target.repeat(len(chunk))).view(len(chunk), b)
            for (mode, i), p in zip(chunk, probs, strict=True):
                curves[mode][:, i] = p
        if shared:
            curves["insertion"][:, 0] = curves["deletion"][:, n]
        x = torch.tensor(counts, dtype=torch.float32, device=pixels.device) / (h * w)
        return curves, x

    def _model_input(self, pixels: Tensor, dtype: torch.dtype) -> Tensor:
        # the model gets the batch's dtype back (a half-precision model takes half inputs)
        return normalize(pixels, self.mean, self.std).to(dtype)

    def update(self, curves: dict[str, Tensor], x: Tensor) -> None:
        """Accumulate per-image curves ``{mode: [B, n+1]}`` sampled at fractions ``x [n+1]``."""
        x = x.detach().float()
        batch_size = 0
        for mode in self.modes:
            c = curves[mode].detach().float()
            if c.shape[1] != self.n_steps + 1:
                raise ValueError(f"{mode} curves need {self.n_steps + 1} points, got {c.shape[1]}")
            batch_size = c.shape[0]
            self._add(f"{mode}_auc_sum", trapezoid_auc(c, x.to(c.device)).sum())
            self._add(f"{mode}_curve_sum", c.sum(0))
        self._add("count", float(batch_size))

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        curves, x = self.curves(model, batch["image"], explanation.saliency, explanation.target)
        self.update(curves, x)

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty()
        return {mode: getattr(self, f"{mode}_auc_sum") / self.count for mode in self.modes}

    def compute_curves(self) -> dict[str, Tensor]:
        """Mean probability curves ``{mode: [n+1]}`` over all images seen (at step i of n).

        Synchronised across processes like :meth:`compute` (call it on every rank under DDP).
        """
        with self.sync_context():  # no-op outside DDP; restores the local state on exit
            count = self.count.clone()
            sums = {mode: getattr(self, f"{mode}_curve_sum").clone() for mode in self.modes}
        if count == 0:
            raise self._empty()
        return {mode: total / count for mode, total in sums.items()}

    def compute_curve(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{mode: (fraction of pixels changed [n+1], mean probability [n+1])}``; the fraction
        is i/n (the pixel count itself is round(i·N/n), off by under one pixel). Synchronised
        like :meth:`compute_curves` (call it on every rank under DDP)."""
        curves = self.compute_curves()
        x = torch.linspace(0, 1, self.n_steps + 1)
        return {mode: (x, y) for mode, y in curves.items()}

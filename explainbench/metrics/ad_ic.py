"""Average Drop (AD) and Increase in Confidence (IC) at several kept fractions ν.

Chattopadhyay et al., "Grad-CAM++", WACV 2018, with the top-ν% protocol of Gkartzonika et al.,
"Learning Visual Explanations for DCNN-Based Image Classifiers Using an Attention Mechanism"
(L-CAM), ECCV-W 2022. For every image i with explained class c:

    Y_i = p(c | x_i),   O_i = p(c | x_i ⊙ m_i + b ⊙ (1 − m_i)),
    AD = 100 · mean_i max(0, Y_i − O_i) / Y_i,     IC = 100 · mean_i 1[O_i > Y_i],

where m_i keeps the top-ν% pixels of the saliency map (exactly round(ν·H·W), ties by raster order)
with their continuous saliency values (``binary=True``: value 1) and is 0 elsewhere, and b is the
baseline image (default black, so the masked image is simply x ⊙ m). Everything is blended in
``[0, 1]`` pixel space and re-normalised before the forward pass.
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


def keep_top_fraction(saliency: Tensor, fraction: float, binary: bool = False) -> Tensor:
    """Mask keeping exactly ``round(fraction·H·W)`` most salient pixels of each ``[B,1,H,W]`` map.

    Kept pixels keep their saliency value (``binary=True``: 1), the rest are 0. Ties are broken by
    raster order (see :func:`~explainbench.metrics.perturbation.saliency_rank`), which is where this
    differs from a bare ``kthvalue`` threshold that keeps every pixel tied with the k-th value.
    """
    b, _, h, w = saliency.shape
    keep = (saliency_rank(saliency) < fraction_count(fraction, h * w)).view(b, 1, h, w)
    return keep.to(saliency.dtype) if binary else saliency * keep


def _percent(nu: float) -> str:
    return f"{nu * 100:g}"


class AverageDropIncrease(ExplanationMetric):
    """AD and IC (in %) at kept fractions ``fractions`` (default ν ∈ {100, 50, 15}%).

    Args:
        fractions: kept fractions ν in (0, 1]; keys ``ad@{100ν}``/``ic@{100ν}`` (``ad@15``, ...).
        binary: kept pixels get mask value 1 instead of their saliency.
        baseline: what removed pixels become: ``"black"`` (default), ``"white"``, ``"mean"`` (the
            dataset mean colour, what masking a *normalised* tensor amounts to), ``"blur"``, or
            an RGB triple in ``[0, 1]``. The L-CAM reference code multiplies images its loader
            did not normalise, so its removed pixels are black in ``[0, 1]`` space: the default. Blend: x·m + b·(1−m).
        mean, std: the normalisation of the batch images.

    Edge cases:
        * Y = 0 (the model gives the class zero probability): the drop term is defined as 0 — the
          confidence cannot drop below zero — instead of 0/0 = NaN.
        * IC is strict: O == Y is not an increase. Y is computed on the un-normalised →
          re-normalised image, the exact path the masked images take, so an unchanged image
          (ν = 100%, ``binary=True``) gives O == Y bit for bit rather than a 1-ulp "increase".
        * constant saliency: the first round(ν·H·W) pixels in raster order are kept.

    ``compute()`` → ``{"ad@100", "ic@100", "ad@50", "ic@50", "ad@15", "ic@15"}``;
    :class:`~explainbench.metrics.base.NoSamplesError` before any update.
    """

    name = "ad_ic"

    def __init__(
        self,
        fractions: Sequence[float] = (1.0, 0.5, 0.15),
        binary: bool = False,
        baseline: BaselineSpec = "black",
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.fractions = tuple(float(f) for f in fractions)
        if not self.fractions or not all(0.0 < f <= 1.0 for f in self.fractions):
            raise ValueError(f"fractions must be non-empty values in (0, 1], got {self.fractions}")
        self.binary = bool(binary)
        self.baseline = check_baseline(baseline)
        self.blur_kernel = int(blur_kernel)
        self.blur_sigma = float(blur_sigma)
        n = len(self.fractions)
        self.add_state("drop_sum", torch.zeros(n), dist_reduce_fx="sum")
        self.add_state("increase_sum", torch.zeros(n), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def probabilities(
        self, model: nn.Module, image: Tensor, saliency: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``Y [B]`` on the original image and ``O [B, len(fractions)]`` on the masked images."""
        pixels = denormalize(image.float(), self.mean, self.std)
        saliency = saliency_at(saliency, pixels.shape[-2:]).to(pixels.device)
        base = baseline_pixels(self.baseline, pixels, self.mean, self.blur_kernel, self.blur_sigma)
        # the model gets the batch's dtype back (a half-precision model takes half inputs)
        original = class_probability(model, self._model_input(pixels, image.dtype), target)
        masked = []
        for fraction in self.fractions:  # one batched forward per ν
            m = keep_top_fraction(saliency, fraction, self.binary)
            x = pixels * m + base * (1 - m)
            masked.append(class_probability(model, self._model_input(x, image.dtype), target))
        return original, torch.stack(masked, dim=1)

    def _model_input(self, pixels: Tensor, dtype: torch.dtype) -> Tensor:
        return normalize(pixels, self.mean, self.std).to(dtype)

    def update(self, original: Tensor, masked: Tensor) -> None:
        """Accumulate from probabilities ``original`` ``[B]`` (Y) and ``masked`` ``[B, n_ν]`` (O)."""
        y = original.detach().float().view(-1, 1)
        o = masked.detach().float().view(y.shape[0], len(self.fractions))
        drop = torch.where(
            y > 0, (y - o).clamp_min(0) / y.clamp_min(torch.finfo(y.dtype).tiny), 0.0
        )
        self._add("drop_sum", drop.sum(0))
        self._add("increase_sum", (o > y).float().sum(0))
        self._add("count", float(y.shape[0]))

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        y, o = self.probabilities(model, batch["image"], explanation.saliency, explanation.target)
        self.update(y, o)

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty()
        ad = 100.0 * self.drop_sum / self.count
        ic = 100.0 * self.increase_sum / self.count
        out: dict[str, Tensor] = {}
        for i, fraction in enumerate(self.fractions):
            out[f"ad@{_percent(fraction)}"] = ad[i]
            out[f"ic@{_percent(fraction)}"] = ic[i]
        return out

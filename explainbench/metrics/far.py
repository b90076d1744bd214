"""Foreground Attention Rate (FAR) — Xu et al., "Where is the Model Looking At? Concentrate and
Explain the Network Attention" (EAT, arXiv:2009.13862).

For a saliency map AT at image size and a binary foreground mask M:

    PI(AT, M) = Σ(AT ⊙ M) / Σ M                    (mean attention inside M)
    FAR       = PI(AT, M) / PI(AT, 1 − M)          (inside vs outside)

FAR > 1 means the map attends to the foreground more than to the background; a uniform map gives
exactly 1. The dataset score is the mean of the per-image FAR.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric, binary_mask, saliency_at


class ForegroundAttentionRate(ExplanationMetric):
    """Mean per-image FAR against ``batch[mask_key]``.

    Args:
        mask_key: the ground-truth key, ``"mask"`` (object, default) or ``"part_mask"``.
        max_far: cap on a single image's FAR, so one map with (almost) no attention outside the
            mask cannot dominate the dataset mean (default 100).

    Edge cases (per image):
        * empty mask (Σ M = 0) or full mask (Σ (1 − M) = 0): FAR is undefined; the image is
          skipped and counted in :attr:`skipped`.
        * no attention outside, some inside (PI_out = 0 < PI_in): FAR = ``max_far``.
        * no attention at all (all-zero map; explainers turn a constant map into zeros): FAR = 1,
          the same as a uniform map — neither prefers the foreground.
        * ratios above ``max_far`` are clipped to it.

    The saliency map is resized (bilinear) to the mask size; the mask is binarised at 0.5.
    ``compute()`` → ``{"far": ...}``; ``NoSamplesError`` when no image was evaluated.
    """

    name = "far"
    required_keys: tuple[str, ...] = ("mask",)
    higher_is_better = True

    def __init__(self, mask_key: str = "mask", max_far: float = 100.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if max_far <= 1:
            raise ValueError(f"max_far must be > 1, got {max_far}")
        self.mask_key = mask_key
        self.required_keys = (mask_key,)
        self.max_far = float(max_far)
        self.add_state("far_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("skipped_count", torch.tensor(0.0), dist_reduce_fx="sum")

    @staticmethod
    def per_image(saliency: Tensor, mask: Tensor, max_far: float = 100.0) -> tuple[Tensor, Tensor]:
        """Per-image FAR ``[B]`` and a ``[B]`` bool of the images where it is defined."""
        m = binary_mask(mask)
        at = saliency_at(saliency, m.shape[-2:]).to(m.device)
        m = m.float().flatten(1)
        at = at.flatten(1)
        n_in, n_out = m.sum(1), (1 - m).sum(1)
        valid = (n_in > 0) & (n_out > 0)
        pi_in = (at * m).sum(1) / n_in.clamp_min(1)
        pi_out = (at * (1 - m)).sum(1) / n_out.clamp_min(1)
        ratio = pi_in / pi_out.clamp_min(torch.finfo(pi_out.dtype).tiny)
        far = torch.where(pi_out > 0, ratio.clamp_max(max_far), max_far)
        far = torch.where((pi_in == 0) & (pi_out == 0), 1.0, far)
        return torch.where(valid, far, 0.0), valid

    def update(self, saliency: Tensor, mask: Tensor) -> None:
        """Accumulate from ``saliency [B,1,h,w]`` in [0,1] and ``mask [B,1,H,W]``."""
        far, valid = self.per_image(saliency, mask, self.max_far)
        self._add("far_sum", far.sum())
        self._add("count", valid.sum().float())
        self._add("skipped_count", (~valid).sum().float())

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        self.update(explanation.saliency, batch[self.mask_key])

    @property
    def skipped(self) -> int:
        """Images skipped because their mask was empty or covered the whole image (this process)."""
        return int(self.skipped_count.item())

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty("images (all masks empty or full?)")
        return {"far": self.far_sum / self.count}

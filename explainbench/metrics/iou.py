"""IoU of thresholded saliency maps with the ground-truth region, over a range of thresholds.

Oramas et al., "Visual Explanation by Interpretation: Improving Visual Feedback Capabilities of
Deep Neural Networks", ICLR 2019 (the an8Flower evaluation). For each threshold t:

    S_t = {saliency ≥ t},   IoU_t = |S_t ∩ M| / |S_t ∪ M|,

averaged over images into an IoU curve; the score is the area under that curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric, binary_mask, saliency_at

DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, …, 0.95


class MaskIoU(ExplanationMetric):
    """Mean IoU curve and its area, against ``batch[mask_key]``.

    Args:
        mask_key: ground-truth key; default ``"part_mask"``, an8flower's discriminative part (the
            region that decides the class). Use ``"mask"`` for the whole object.
        thresholds: increasing thresholds in [0, 1] (default 0.05, 0.10, …, 0.95).
        report_at: thresholds also reported on their own as ``iou@{t:g}`` (must be in
            ``thresholds``; default ``(0.5,)`` → ``iou@0.5``).
        auc: ``"trapezoid"`` (default): trapezoid area over t divided by the threshold span
            (t_max − t_min), i.e. the mean height of the piecewise-linear curve; ``"mean"``: the
            plain mean over thresholds.
        prefix: of the logged keys (``{prefix}_auc``, ``{prefix}@0.5``), so two IoU metrics
            against different masks (``part_mask`` and ``mask``) can run side by side.

    Edge cases:
        * empty mask: IoU is undefined for a region that is not there; the image is skipped and
          counted in :attr:`skipped`. (With a non-empty mask the union is never empty.)
        * constant maps: a map ≥ t everywhere selects the whole image (IoU = |M| / N), one below t
          selects nothing (IoU = 0).
        * a single threshold: ``iou_auc`` is that threshold's IoU.

    The saliency map is resized (bilinear) to the mask size; the mask is binarised at 0.5.
    ``compute()`` → ``{"iou_auc", "iou@0.5"}``; :meth:`compute_curve` → ``(thresholds, curve)``.
    """

    name = "iou"
    required_keys: tuple[str, ...] = ("part_mask",)
    higher_is_better = True

    def __init__(
        self,
        mask_key: str = "part_mask",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        report_at: Sequence[float] = (0.5,),
        auc: str = "trapezoid",
        prefix: str = "iou",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        self.mask_key = mask_key
        self.required_keys = (mask_key,)
        self.thresholds = tuple(float(t) for t in thresholds)
        if not self.thresholds or list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"thresholds must be non-empty and increasing, got {self.thresholds}")
        self.report_at = tuple(float(t) for t in report_at)
        for t in self.report_at:
            if not any(abs(t - u) < 1e-9 for u in self.thresholds):
                raise ValueError(f"report_at threshold {t} is not in thresholds {self.thresholds}")
        if auc not in ("trapezoid", "mean"):
            raise ValueError(f"auc must be 'trapezoid' or 'mean', got {auc!r}")
        self.auc = auc
        self.add_state("iou_sum", torch.zeros(len(self.thresholds)), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("skipped_count", torch.tensor(0.0), dist_reduce_fx="sum")

    def per_image(self, saliency: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """IoU ``[B, T]`` per image and threshold, and a ``[B]`` bool of non-empty masks."""
        m = binary_mask(mask)
        sal = saliency_at(saliency, m.shape[-2:]).to(m.device).flatten(1)  # [B, N]
        m = m.flatten(1)
        inter, union = [], []
        for t in self.thresholds:  # a loop, not a [B, T, N] tensor: T maps of 224² add up
            selected = sal >= t
            inter.append((selected & m).sum(1))
            union.append((selected | m).sum(1))
        inter = torch.stack(inter, dim=1).float()
        union = torch.stack(union, dim=1).float()
        valid = m.any(1)
        iou = torch.where(valid.unsqueeze(1), inter / union.clamp_min(1), 0.0)
        return iou, valid

    def update(self, saliency: Tensor, mask: Tensor) -> None:
        """Accumulate from ``saliency [B,1,h,w]`` in [0,1] and ``mask [B,1,H,W]``."""
        iou, valid = self.per_image(saliency, mask)
        self._add("iou_sum", iou.sum(0))
        self._add("count", valid.sum().float())
        self._add("skipped_count", (~valid).sum().float())

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        self.update(explanation.saliency, batch[self.mask_key])

    @property
    def skipped(self) -> int:
        """Images skipped because their mask was empty (this process)."""
        return int(self.skipped_count.item())

    def _area(self, curve: Tensor) -> Tensor:
        """Area of ``curve [..., T]`` over the thresholds (the last dim), as ``compute()``'s."""
        if self.auc == "mean" or len(self.thresholds) == 1:
            return curve.mean(-1)
        t = torch.tensor(self.thresholds, dtype=curve.dtype, device=curve.device)
        area = ((t[1:] - t[:-1]) * (curve[..., 1:] + curve[..., :-1]) / 2).sum(-1)
        return area / (t[-1] - t[0])

    def per_image_auc(self, saliency: Tensor, mask: Tensor) -> Tensor:
        """``[B]`` IoU AUC of each image (NaN where its mask is empty): the score ``compute()``
        averages, one image at a time (evaluate.py's gallery records)."""
        iou, valid = self.per_image(saliency, mask)
        return torch.where(valid, self._area(iou), float("nan"))

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty("images (all masks empty?)")
        curve = self.iou_sum / self.count
        out = {f"{self.prefix}_auc": self._area(curve)}
        for r in self.report_at:
            i = min(range(len(self.thresholds)), key=lambda j: abs(self.thresholds[j] - r))
            out[f"{self.prefix}@{r:g}"] = curve[i]
        return out

    def compute_curve(self) -> tuple[Tensor, Tensor]:
        """``(thresholds [T], mean IoU [T])``, synchronised across processes like ``compute``."""
        with self.sync_context():  # no-op outside DDP; restores the local state on exit
            count = self.count.clone()
            total = self.iou_sum.clone()
        if count == 0:
            raise self._empty("images (all masks empty?)")
        return torch.tensor(self.thresholds, device=total.device), total / count

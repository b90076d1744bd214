"""IoU of a method's part maps with the annotated parts (part segmentation without part labels).

A method that discovers parts (region grouping's ``Q``) names them ``0..K-1`` in no particular
order, so its parts are first matched to the annotated ones, the protocol of unsupervised part
segmentation evaluations:

1. each pixel goes to its most likely part, ``argmax_k Q^k`` with ``Q`` upsampled (bilinearly)
   to the size of ``part_ids`` (as :meth:`RegionGroup.part_segmentation` draws it);
2. over the *whole evaluated set* (one matching, not one per image: a part must mean the same
   thing in every image), the ``K × R`` matrix of pixel counts gives the IoU of every predicted
   part with every annotated region;
3. the Hungarian assignment (``scipy.optimize.linear_sum_assignment``) pairs parts and regions
   one-to-one with the largest total IoU;
4. ``part_iou`` is the mean IoU of the annotated parts ``1..P`` with their matched part.
   With fewer parts than regions (``K < R``) the regions left unmatched score 0; with more,
   the surplus parts stay unmatched and their pixels only count against the regions they cover.

The background (id 0) is, with ``background="match"`` (default), one of the regions to match: a
method must spend one of its parts on it (region grouping on an8flower: K = 5 for background,
stem, leaves, petals, centre); its matched IoU is logged as ``part_iou_bg`` and left out of
``part_iou``. With ``background="ignore"`` its pixels are left out altogether and only the
object's parts are matched and scored. Regions that never occur in the evaluated images are
not scored.

The state is one ``[max_parts, max_regions]`` matrix of pixel counts (a sum: DDP-safe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.part_maps import PartMapMetric

BACKGROUND = ("match", "ignore")


def hard_parts(parts: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """``[B,H,W]`` long: each pixel's most likely part of ``parts [B,K,h,w]`` upsampled to ``size``."""
    parts = parts.detach().float()
    if parts.shape[-2:] != tuple(size):
        parts = F.interpolate(parts, size=tuple(size), mode="bilinear", align_corners=False)
    return parts.argmax(dim=1)


def match_parts(intersection: Tensor, regions: list[int]) -> tuple[Tensor, dict[int, int]]:
    """IoU of each scored region with its Hungarian-matched part.

    ``intersection [K,R]``: pixels of part ``k`` in region ``r`` over the evaluated pixels;
    ``regions``: the region ids to match (the others still count in the parts' areas).
    Returns the ``[len(regions)]`` IoUs (0 for a region left without a part) and the matching
    ``{region: part}``.
    """
    inter = intersection.double()
    part_area = inter.sum(1, keepdim=True)  # every evaluated pixel of the part
    region_area = inter.sum(0, keepdim=True)
    iou = inter / (part_area + region_area - inter).clamp_min(1)
    iou = iou[:, regions]
    rows, cols = linear_sum_assignment(iou.numpy(), maximize=True)
    scores = torch.zeros(len(regions), dtype=torch.float64)
    matching = {}
    for k, j in zip(rows.tolist(), cols.tolist(), strict=True):
        scores[j] = iou[k, j]
        matching[regions[j]] = k
    return scores, matching


class PartIoU(PartMapMetric):
    """Mean IoU of Hungarian-matched part maps with the annotated parts (see the module docstring).

    Args:
        background: ``"match"`` (the background is a region to match, reported as
            ``part_iou_bg``) or ``"ignore"`` (background pixels are left out).
        max_parts, max_regions: size of the count matrix (the largest ``K`` and the largest
            ``part_ids`` value + 1 it accepts).

    ``compute()`` → ``{"part_iou": mean over the annotated parts}`` (+ ``"part_iou_bg"`` with
    ``background="match"``); afterwards :attr:`per_region` holds each region's IoU (index =
    region id, NaN: not scored) and :attr:`matching` the ``{region: part}`` pairs.
    """

    name = "part_iou"
    required_keys: tuple[str, ...] = ("part_ids",)
    higher_is_better = True

    def __init__(
        self,
        background: str = "match",
        max_parts: int = 64,
        max_regions: int = 64,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if background not in BACKGROUND:
            raise ValueError(f"background must be one of {BACKGROUND}, got {background!r}")
        self.background = background
        self.max_parts, self.max_regions = int(max_parts), int(max_regions)
        self.add_state(
            "intersection",
            torch.zeros(self.max_parts, self.max_regions, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state("num_parts", torch.tensor(0), dist_reduce_fx="max")
        self.per_region: Tensor | None = None
        self.matching: dict[int, int] = {}

    def update(self, parts: Tensor, part_ids: Tensor) -> None:
        """Count one batch: part maps ``[B,K,h,w]`` against ``part_ids [B,H,W]`` (or ``[B,1,H,W]``)."""
        ids = part_ids.detach().long()
        if ids.ndim == 4:
            ids = ids.squeeze(1)
        k = parts.shape[1]
        if k > self.max_parts:
            raise ValueError(f"{k} part maps, more than max_parts={self.max_parts}")
        if ids.numel() and int(ids.max()) >= self.max_regions:
            raise ValueError(
                f"part id {int(ids.max())} is not below max_regions={self.max_regions}"
            )
        pred = hard_parts(parts, ids.shape[-2:]).to(ids.device)
        keep = ids > 0 if self.background == "ignore" else ids >= 0  # negative ids: unlabelled
        cells = pred[keep] * self.max_regions + ids[keep]
        counts = torch.bincount(cells, minlength=self.max_parts * self.max_regions)
        counts = counts.view(self.max_parts, self.max_regions).to(self.intersection)
        self._add("intersection", counts)
        self.num_parts = torch.maximum(
            self.num_parts, torch.tensor(k, device=self.num_parts.device)
        )

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        parts = self.part_maps(model, batch, explanation)
        if parts is None:
            return
        self.update(parts, batch["part_ids"])

    def compute(self) -> dict[str, Tensor]:
        k = int(self.num_parts)
        inter = self.intersection.detach().cpu()[:k]
        present = torch.nonzero(inter.sum(0) > 0).flatten().tolist()
        if not any(r > 0 for r in present):
            raise self._empty("pixels of an annotated part")
        scores, self.matching = match_parts(inter, present)
        self.per_region = torch.full((self.max_regions,), float("nan"), dtype=torch.float64)
        self.per_region[present] = scores
        parts = torch.tensor([r > 0 for r in present])
        out = {"part_iou": scores[parts].mean().float()}
        if self.background == "match" and 0 in present:
            out["part_iou_bg"] = scores[present.index(0)].float()
        return out

"""Pointing game — Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016.

A hit is counted when the saliency maximum falls on the annotated region, up to a tolerance:
there is an annotated pixel q with ‖p − q‖₂ ≤ r for the maximum's pixel p (pixel-index distance).
The score is hits / (hits + misses).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric, binary_mask, saliency_at

TIES = ("first", "any", "all")


def box_mask(bbox: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Boxes ``[B,4]`` xyxy in pixel coordinates → ``[B,1,H,W]`` bool masks and a ``[B]`` validity.

    Pixel (i, j) is inside when its centre (j + 0.5, i + 0.5) lies in [x1, x2] × [y1, y2]
    (continuous coordinates, as torchvision's ``BoundingBoxes``). A box is invalid — "no box" —
    when a coordinate is NaN/inf, when it is empty (x2 ≤ x1 or y2 ≤ y1, which covers the all −1
    convention), or when it contains no pixel centre of the image.
    """
    h, w = size
    bbox = bbox.detach().float().view(-1, 4)
    valid = torch.isfinite(bbox).all(1) & (bbox[:, 2] > bbox[:, 0]) & (bbox[:, 3] > bbox[:, 1])
    ys = torch.arange(h, dtype=bbox.dtype, device=bbox.device).view(1, h, 1) + 0.5
    xs = torch.arange(w, dtype=bbox.dtype, device=bbox.device).view(1, 1, w) + 0.5
    x1, y1, x2, y2 = (bbox[:, i].view(-1, 1, 1) for i in range(4))
    inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2) & valid.view(-1, 1, 1)
    valid = inside.flatten(1).any(1)
    return inside.unsqueeze(1), valid


def dilate(mask: Tensor, radius: float) -> Tensor:
    """Pixels within Euclidean distance ``radius`` of a ``[B,1,H,W]`` bool mask (a disk dilation)."""
    r = math.floor(radius)
    if r < 1:
        return mask
    offsets = torch.arange(-r, r + 1, device=mask.device, dtype=torch.float32)
    disk = (offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) <= radius**2 + 1e-6
    hits = F.conv2d(mask.float(), disk.float().view(1, 1, 2 * r + 1, 2 * r + 1), padding=r)
    return hits > 0.5


class PointingGame(ExplanationMetric):
    """Pointing-game accuracy in [0, 1].

    Args:
        annotation: ``"auto"`` (default: the mask where it is non-empty, else the box), ``"mask"``
            or ``"bbox"``.
        mask_key: the mask key, ``"mask"`` (object, default) or ``"part_mask"``.
        tolerance: radius in pixels at ``reference_size`` (15 px at 224, as in the paper); the
            radius used is r = tolerance · H / reference_size for an image of height H. 0: the
            maximum itself must lie inside the region.
        reference_size: image height the tolerance is specified at (default 224).
        ties: several pixels sharing the maximum: ``"first"`` (default) takes the first in raster
            order, like ``argmax`` in the TorchRay/EBP code; ``"any"`` counts a hit if any of them
            hits, ``"all"`` only if all of them do.

    Edge cases:
        * no annotation for an image (empty mask and/or invalid box: NaN, empty such as all −1, or
          off-image): the image is skipped and counted in :attr:`skipped`.
        * constant saliency: every pixel is a maximum, resolved by ``ties`` (``"first"``: the
          top-left pixel).

    ``compute()`` → ``{"pointing_game": hits / evaluated}``; ``NoSamplesError`` if none evaluated.
    """

    name = "pointing_game"
    required_any: tuple[str, ...] = ("bbox", "mask")
    higher_is_better = True

    def __init__(
        self,
        annotation: str = "auto",
        mask_key: str = "mask",
        tolerance: float = 15.0,
        reference_size: int = 224,
        ties: str = "first",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if annotation not in ("auto", "mask", "bbox"):
            raise ValueError(f"annotation must be 'auto', 'mask' or 'bbox', got {annotation!r}")
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
        if tolerance < 0 or reference_size <= 0:
            raise ValueError("tolerance must be >= 0 and reference_size > 0")
        self.annotation = annotation
        self.mask_key = mask_key
        self.tolerance = float(tolerance)
        self.reference_size = int(reference_size)
        self.ties = ties
        self.required_keys = {"mask": (mask_key,), "bbox": ("bbox",)}.get(annotation, ())
        self.required_any = ("bbox", mask_key) if annotation == "auto" else ()
        self.add_state("hits", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("skipped_count", torch.tensor(0.0), dist_reduce_fx="sum")

    def radius(self, height: int) -> float:
        """Tolerance radius in pixels for images of ``height`` pixels."""
        return self.tolerance * height / self.reference_size

    def region(
        self, size: tuple[int, int], mask: Tensor | None = None, bbox: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The annotated region ``[B,1,H,W]`` bool and a ``[B]`` bool of images that have one."""
        if mask is None and bbox is None:
            raise ValueError("PointingGame needs a mask or a bbox")
        if mask is not None and self.annotation != "bbox":
            region = binary_mask(mask)
            if region.shape[-2:] != tuple(size):
                region = F.interpolate(region.float(), size=tuple(size), mode="nearest") > 0.5
            valid = region.flatten(1).any(1)
            if bbox is not None and self.annotation == "auto":
                boxes, box_valid = box_mask(bbox.to(region.device), size)
                use_box = ~valid & box_valid  # fall back to the box where the mask is empty
                region = torch.where(use_box.view(-1, 1, 1, 1), boxes, region)
                valid = valid | box_valid
            return region, valid
        if bbox is None:
            raise ValueError(f"annotation={self.annotation!r} needs a bbox")
        return box_mask(bbox, size)

    def per_image(
        self, saliency: Tensor, mask: Tensor | None = None, bbox: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Per-image hit ``[B]`` bool and a ``[B]`` bool of images with an annotation."""
        size = tuple(mask.shape[-2:]) if mask is not None else tuple(saliency.shape[-2:])
        sal = saliency_at(saliency, size)
        region, valid = self.region(size, mask=mask, bbox=bbox)
        sal = sal.to(region.device)
        accept = dilate(region, self.radius(size[0])).flatten(1)  # [B, N]
        flat = sal.flatten(1)
        if self.ties == "first":
            hit = accept.gather(1, flat.argmax(1, keepdim=True))[:, 0]
        else:
            is_max = flat == flat.max(1, keepdim=True).values
            if self.ties == "any":
                hit = (is_max & accept).any(1)
            else:
                hit = (~is_max | accept).all(1)
        return hit & valid, valid

    def update(
        self, saliency: Tensor, mask: Tensor | None = None, bbox: Tensor | None = None
    ) -> None:
        """Accumulate from ``saliency [B,1,h,w]`` and a ``mask [B,1,H,W]`` and/or ``bbox [B,4]``.

        The map is evaluated at the mask's size; with boxes only, at its own size, which must be
        the input size the boxes' pixel coordinates refer to.
        """
        hit, valid = self.per_image(saliency, mask=mask, bbox=bbox)
        self._add("hits", hit.sum().float())
        self._add("count", valid.sum().float())
        self._add("skipped_count", (~valid).sum().float())

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        mask = batch.get(self.mask_key) if self.annotation != "bbox" else None
        bbox = batch.get("bbox") if self.annotation != "mask" else None
        if bbox is not None and mask is None:
            # Boxes are in input-pixel coordinates: evaluate at the input size.
            size = (
                batch["image"].shape[-2:] if "image" in batch else explanation.saliency.shape[-2:]
            )
            sal = saliency_at(explanation.saliency, size)
            self.update(sal, bbox=bbox)
        else:
            self.update(explanation.saliency, mask=mask, bbox=bbox)

    @property
    def skipped(self) -> int:
        """Images skipped for lack of an annotation (this process)."""
        return int(self.skipped_count.item())

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty("images (no usable mask or box?)")
        return {"pointing_game": self.hits / self.count}

"""What evaluate.py keeps of each gallery image beyond the figure: ``gallery.pt`` (the maps,
masks, predictions and per-image IoU, plain types for ``torch.load(weights_only=True)``) and
``curves.json`` (every metric curve), for reports and notebooks that redraw or re-score them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..metrics.iou import MaskIoU
from .gallery import GalleryRecords, class_name

# the ground-truth masks a gallery record keeps, when the data has them
MASK_KEYS = ("part_mask", "mask")


def label_name(label: Tensor, pred: int, class_names: Sequence[str] | None) -> str:
    """A label as words: its class name; for multi-label data (``label`` a row of 0/1), whether
    the predicted class's label is present (``smiling=1``)."""
    if label.ndim > 0:
        return f"{class_name(pred, class_names)}={int(label[pred])}"
    return class_name(int(label), class_names)


def per_image_iou(
    explainer_maps: Mapping[str, Tensor],
    batch: Mapping[str, Tensor],
    metrics: Mapping[str, Mapping[str, Any]],
) -> dict[str, Tensor]:
    """Explainer → ``[N]`` IoU AUC of its gallery maps, by that explainer's first IoU metric
    (its mask, thresholds and area: the number the results table averages); explainers
    without an IoU metric, or whose metric's mask the batch lacks, are left out."""
    out = {}
    for name, saliency in explainer_maps.items():
        iou = next((m for m in metrics.get(name, {}).values() if isinstance(m, MaskIoU)), None)
        if iou is not None and iou.mask_key in batch:
            out[name] = iou.per_image_auc(saliency, batch[iou.mask_key].cpu()).cpu()
    return out


def gallery_record(
    records: GalleryRecords,
    batch: Mapping[str, Tensor],
    metrics: Mapping[str, Mapping[str, Any]],
    class_names: Sequence[str] | None,
) -> dict[str, Any]:
    """The content of ``gallery.pt`` (see evaluate.py's module docstring for the keys)."""
    masks = {}
    for key in MASK_KEYS:
        if key in batch:
            m = batch[key].detach().float().cpu()
            masks[key] = m.unsqueeze(1) if m.ndim == 3 else m
    return {
        "index": batch["index"].detach().long().cpu(),
        "image": records.pixels.float(),
        "label": records.label.long(),
        "pred": records.pred.long(),
        "class_names": [str(c) for c in class_names] if class_names else None,
        "captions": list(records.captions),
        "texts": list(records.texts),
        "maps": {title: m.float() for title, m in records.maps.items()},
        "explainer_maps": {name: m.float() for name, m in records.explainer_maps.items()},
        "masks": masks,
        "iou": per_image_iou(records.explainer_maps, batch, metrics),
    }


def write_curves(path: Path, curves: dict) -> None:
    """``curves.json``: ``{explainer: {curve: {"x": [...], "y": [...]}}}``."""
    path.write_text(json.dumps(curves, indent=1) + "\n")

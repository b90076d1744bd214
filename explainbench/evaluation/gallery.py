"""The heatmap gallery: the same few images with one overlay per explainer, as a figure.

Drawn by the HeatmapGallery callback during training and by evaluate.py (``gallery.png``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..utils.image import denormalize
from ..viz import gallery_figure
from .evaluator import copy_for_autograd


def class_name(index: int, class_names: Sequence[str] | None) -> str:
    """Class ``index`` by its name, or its number when the data names none."""
    return str(class_names[index]) if class_names else str(index)


def render_gallery(
    model: torch.nn.Module,
    batch: Mapping[str, Tensor],
    explainers: Mapping[str, Any],
    mean,
    std,
    class_names: list[str] | None = None,
):
    """Explain ``batch`` with each explainer and lay the overlays out in one figure (rows =
    images, columns = the image and the :func:`gallery_records` maps)."""
    records = gallery_records(model, batch, explainers, mean, std, class_names)
    return gallery_figure(records.pixels, records.maps, records.captions)


@dataclass
class GalleryRecords:
    """One explaining pass over the gallery images: what the figure shows and what evaluate.py
    saves per image (``gallery.pt``, the W&B explanations table).

    Attributes:
        pixels: ``[N,3,H,W]`` in ``[0, 1]``.
        maps: column title → ``[N,1,H,W]`` in ``[0, 1]``, exactly the gallery's columns.
        captions: one per image (label, prediction and any text, wrapped).
        label: the batch's labels (``[N]``; ``[N,K]`` for multi-label data).
        pred: ``[N]`` the model's top class.
        texts: one string per image: the method's ``gallery_extras`` text followed by any
            explainer's ``gallery_text`` (``""`` when none).
        explainer_maps: explainer name → its own ``saliency`` ``[N,1,h,w]`` (what the metrics
            score; a ``gallery_maps`` explainer shows other columns).
    """

    pixels: Tensor
    maps: dict[str, Tensor]
    captions: list[str]
    label: Tensor
    pred: Tensor
    texts: list[str]
    explainer_maps: dict[str, Tensor]


def gallery_records(
    model: torch.nn.Module,
    batch: Mapping[str, Tensor],
    explainers: Mapping[str, Any],
    mean,
    std,
    class_names: list[str] | None = None,
) -> GalleryRecords:
    """Explain ``batch`` once with each explainer and collect the gallery's content.

    An explainer gives one column, its saliency; when its Explanation's extras hold
    ``gallery_maps`` (column title → ``[B,1,H,W]`` in ``[0, 1]``) it gives those columns instead
    (layer_heatmaps: its low / middle / high maps; relevant_features: its map and each
    filter's); a title an earlier column has is prefixed with the explainer's name, and
    ``extras["gallery_text"]`` (one string per image) is added to the captions. A method adds its own content through ``ExplainableMethod.gallery_extras(x) -> (texts, maps)``
    (EAT: its sentence under each caption and its attribute maps as extra columns); the base
    class returns none. A plain backbone has no such hook and gets the explainers' columns only.
    """
    texts: list[str] = []
    with torch.inference_mode(False):
        batch = copy_for_autograd(batch)
        x = batch["image"]
        maps: dict[str, Tensor] = {}
        explainer_maps: dict[str, Tensor] = {}
        explainer_texts = []
        for name, explainer in explainers.items():
            explanation = explainer(model, x)
            explainer_maps[name] = explanation.saliency.detach().cpu()
            own = (explanation.extras or {}).get("gallery_maps") or {name: explanation.saliency}
            for title, m in own.items():
                maps[title if title not in maps else f"{name}/{title}"] = m.detach().cpu()
            # caption text (relevant_features: each filter's layer:filter name, the paper's Fig. 1)
            if "gallery_text" in (explanation.extras or {}):
                explainer_texts.append(explanation.extras["gallery_text"])
        extras = getattr(model, "gallery_extras", None)
        if extras is not None:
            texts, own_maps = extras(x)
            maps.update({name: m.detach().cpu() for name, m in own_maps.items()})
        with torch.no_grad():
            pred = model(x).argmax(1).cpu()
    label = batch["label"].cpu()

    if label.ndim > 1:  # multi-label (CelebA's 40 attributes): is the explained top label present?
        captions = [
            f"p={class_name(int(p), class_names)}\ny={int(t[p])}"
            for t, p in zip(label, pred, strict=True)
        ]
    else:
        captions = [
            f"y={class_name(int(t), class_names)}\np={class_name(int(p), class_names)}"
            for t, p in zip(label, pred, strict=True)
        ]
    for extra in explainer_texts:
        texts = [f"{t} {e}".strip() for t, e in zip(texts or [""] * len(extra), extra, strict=True)]
    if texts:  # wrapped narrow enough to sit beside one image row
        captions = [c + "\n" + textwrap.fill(t, 28) for c, t in zip(captions, texts, strict=True)]
    return GalleryRecords(
        pixels=denormalize(x.detach().cpu(), mean, std),
        maps=maps,
        captions=captions,
        label=label,
        pred=pred,
        texts=list(texts) or [""] * x.shape[0],
        explainer_maps=explainer_maps,
    )

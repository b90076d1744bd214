"""The demo report's figures: a bar chart per metric family, the IoU curves, one gallery of every
method on the same images with the ground-truth part outlined, EAT's sentences and region
grouping's part maps.

Read from the evaluate stages' run dirs: ``gallery.pt`` (the gallery images, each explainer's
maps, the masks and the method's per-image text; written by evaluate.py) and ``curves.json``
(each metric's curve, e.g. IoU against the threshold).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .evaluation.gallery import class_name
from .viz import gallery_figure, save_figure

# Metric families, one bar chart each: (title, key pattern). A key belongs to the first family
# whose pattern it matches; keys of no family (per-step randomisation values) get no chart.
FAMILIES: list[tuple[str, str]] = [
    ("Average drop / increase in confidence (L-CAM)", r"^(ad|ic)@"),
    ("Deletion / insertion (RISE)", r"^(deletion|insertion)$"),
    (
        "Localisation (IoU: the part; pointing game: the object)",
        r"^(iou_auc|iou@0\.5|pointing_game)$",
    ),
    ("Foreground attention rate (EAT)", r"^far$"),
    ("Model-randomisation sanity check", r"^rand_(spearman|ssim|indep_spearman)$"),
    ("Parts (region grouping)", r"^(landmark_error|part_iou|part_iou_bg)$"),
    ("EAT sentences", r"^sentence_"),
    ("Cost", r"^(ms_per_image|fw|bw)$"),
]


def family_of(key: str) -> str | None:
    return next((title for title, pattern in FAMILIES if re.search(pattern, key)), None)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def bar_charts(table, out_dir: Path) -> list[tuple[str, Path]]:
    """One grouped bar chart per family with a value: x = the family's keys, one bar per method
    that has it. Returns ``(title, path)`` in :data:`FAMILIES` order."""
    charts = []
    for title, _ in FAMILIES:
        keys = [k for k in table.columns if family_of(k) == title]
        rows = [r for r in table.rows if any(k in table.values[r] for k in keys)]
        if not keys or not rows:
            continue
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(keys) * max(1, len(rows)) / 3), 3.2))
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            heights = [table.values[row].get(k, np.nan) for k in keys]
            ax.bar(np.arange(len(keys)) + (i - (len(rows) - 1) / 2) * width, heights, width,
                   label=row)  # fmt: skip
        ax.set_xticks(np.arange(len(keys)), keys)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, ncol=2, frameon=False)
        fig.tight_layout()
        charts.append((title, save_figure(fig, out_dir / f"{slug(title)}.png")))
    return charts


def read_curves(stage_dir: Path, rows: dict[str, str], metric: str) -> dict[str, tuple]:
    """Row label → ``(x, y)`` of ``metric``'s curve in the stage's ``curves.json``."""
    path = stage_dir / "curves.json"
    if not path.is_file():
        return {}
    curves = json.loads(path.read_text())
    return {
        label: (curves[name][metric]["x"], curves[name][metric]["y"])
        for name, label in rows.items()
        if metric in curves.get(name, {})
    }


def curve_plot(curves: dict[str, tuple], path: Path, xlabel: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def read_gallery(stage_dir: Path) -> dict | None:
    path = stage_dir / "gallery.pt"
    return torch.load(path, weights_only=True) if path.is_file() else None


def combined_panels(galleries: list[tuple[dict, dict[str, str]]], mask_key: str = "part_mask"):
    """One gallery of every method: ``(pixels, maps, captions, outline)`` for
    :func:`~explainbench.viz.gallery_figure` from the stages' galleries (each with its rows,
    explainer → method label). Rows are the images every stage shows (the same test indices:
    every evaluation uses the same fixed subset), in the first stage's order; columns the methods
    in stage order; captions the true class; the outline the first stage's ``mask_key`` mask."""
    galleries = [(g, rows) for g, rows in galleries if g is not None]
    if not galleries:
        return None
    first = galleries[0][0]
    shared = set(first["index"].tolist())
    for g, _ in galleries[1:]:
        shared &= set(g["index"].tolist())
    order = [i for i in first["index"].tolist() if i in shared]
    if not order:
        return None

    def take(g: dict, tensor: torch.Tensor) -> torch.Tensor:
        position = {i: p for p, i in enumerate(g["index"].tolist())}
        return tensor[[position[i] for i in order]]

    maps = {}
    for g, rows in galleries:
        for explainer, label in rows.items():
            if explainer in g["explainer_maps"]:
                maps[label] = take(g, g["explainer_maps"][explainer])
    names = first.get("class_names")
    labels = take(first, first["label"]).tolist()
    captions = [f"#{i}\n{class_name(y, names)}" for i, y in zip(order, labels, strict=True)]
    masks = first.get("masks", {})
    outline = take(first, masks[mask_key]) if mask_key in masks else None
    return take(first, first["image"]), maps, captions, outline


def combined_gallery(galleries, path: Path) -> Path | None:
    panels = combined_panels(galleries)
    if panels is None:
        return None
    pixels, maps, captions, outline = panels
    return save_figure(gallery_figure(pixels, maps, captions, outline=outline), path)


def sentences(gallery: dict | None) -> list[str]:
    """``#index (class → prediction): text`` for each image of a gallery with method texts."""
    if gallery is None:
        return []
    names = gallery.get("class_names")
    return [
        f"#{i} ({class_name(y, names)} → {class_name(p, names)}): {text}"
        for i, y, p, text in zip(
            gallery["index"].tolist(),
            gallery["label"].tolist(),
            gallery["pred"].tolist(),
            gallery["texts"],
            strict=True,
        )  # fmt: skip
        if text
    ]


def method_maps(gallery: dict | None, path: Path, prefix: str = "parts") -> Path | None:
    """The gallery's method columns whose title starts with ``prefix`` (region grouping's part
    map, EAT's attribute maps), beside the images."""
    if gallery is None:
        return None
    maps = {k: v for k, v in gallery["maps"].items() if k.startswith(prefix)}
    if not maps:
        return None
    captions = [f"#{i}" for i in gallery["index"].tolist()]
    return save_figure(gallery_figure(gallery["image"], maps, captions), path)

"""Heatmap overlays and galleries (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # galleries are written from training jobs without a display
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def overlay(pixels: Tensor, saliency: Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a ``[3,H,W]`` image in ``[0,1]`` with a ``[1,H,W]`` (or ``[H,W]``) map in ``[0,1]``.

    Returns an ``H×W×3`` float array in ``[0,1]``.
    """
    image = pixels.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    heat = colormaps[cmap](saliency.detach().float().squeeze().clamp(0, 1).cpu().numpy())[..., :3]
    return (1 - alpha) * image + alpha * heat


def gallery_figure(
    pixels: Tensor,
    maps: Mapping[str, Tensor],
    captions: Sequence[str] | None = None,
    alpha: float = 0.5,
    outline: Tensor | None = None,
) -> plt.Figure:
    """Rows = images, columns = the image then one overlay per explainer in ``maps``.

    Args:
        pixels: ``[N,3,H,W]`` images in ``[0,1]``.
        maps: explainer name → ``[N,1,H,W]`` saliency in ``[0,1]``.
        captions: one line per image (e.g. "label: red, pred: red").
        outline: ``[N,1,H,W]`` ground-truth masks drawn as a white contour on every panel (the
            region a map should cover, e.g. an8flower's discriminative part).
    """
    pixels = pixels.expand(-1, 3, -1, -1)  # grey images (MNIST, data.channels=1) shown as RGB
    n, cols = pixels.shape[0], 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.8 * cols, 1.8 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(pixels[i].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
        if captions:
            axes[i, 0].set_ylabel(captions[i], fontsize=7)
        for j, (name, saliency) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(overlay(pixels[i], saliency[i], alpha))
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=8)
        if outline is not None and outline[i].max() > 0:
            mask = outline[i].detach().float().squeeze().cpu().numpy()
            for ax in axes[i]:
                ax.contour(mask, levels=[0.5], colors="white", linewidths=0.8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def figure_to_array(fig: plt.Figure) -> np.ndarray:
    """RGB ``H×W×3`` uint8 rendering of ``fig`` (for loggers that take arrays)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

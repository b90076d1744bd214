"""Overlays, galleries and plots."""

from .overlay import figure_to_array, gallery_figure, overlay, save_figure

__all__ = ["figure_to_array", "gallery_figure", "overlay", "save_figure"]

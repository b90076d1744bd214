"""The benchmark engine: explainers × metrics over batches, and the heatmap gallery.

Pure torch, no Lightning: evaluate.py drives it directly, the callbacks in
:mod:`explainbench.callbacks` drive it from Lightning's hooks.
"""

from .evaluator import ExplanationEvaluator, copy_for_autograd
from .gallery import gallery_panels, render_gallery

__all__ = ["ExplanationEvaluator", "copy_for_autograd", "gallery_panels", "render_gallery"]

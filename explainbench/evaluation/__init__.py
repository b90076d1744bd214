"""The benchmark engine: explainers × metrics over batches, and the heatmap gallery.

The evaluator is pure torch: evaluate.py drives it through the thin LightningModule of
:mod:`.task` (a Lightning test loop, so DDP strategies shard it), the callbacks in
:mod:`explainbench.callbacks` from Lightning's hooks.
"""

from .evaluator import ExplanationEvaluator, copy_for_autograd
from .gallery import gallery_records, render_gallery

__all__ = ["ExplanationEvaluator", "copy_for_autograd", "gallery_records", "render_gallery"]

"""Lightning callbacks: progress, explanation metrics and heatmap galleries. The benchmark
engine they call is :mod:`explainbench.evaluation`."""

from .explanation_metrics import ExplanationMetrics
from .heatmap_gallery import HeatmapGallery
from .progress import auto_progress_bar

__all__ = ["ExplanationMetrics", "HeatmapGallery", "auto_progress_bar"]

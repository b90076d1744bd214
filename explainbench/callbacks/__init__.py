"""Lightning callbacks: progress, explanation metrics and heatmap galleries."""

from .evaluator import ExplanationEvaluator
from .explanation_metrics import ExplanationMetrics
from .heatmap_gallery import HeatmapGallery, render_gallery
from .progress import auto_progress_bar

__all__ = ["ExplanationEvaluator", "ExplanationMetrics", "HeatmapGallery", "auto_progress_bar", "render_gallery"]

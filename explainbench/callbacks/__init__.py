"""Lightning callbacks: progress, explanation metrics and heatmap galleries."""

from .progress import auto_progress_bar

__all__ = ["auto_progress_bar"]

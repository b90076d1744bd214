"""Datasets as ``ExplainDataModule`` subclasses, all yielding the Batch contract dict.

* :class:`An8FlowerDataModule` — the built-in generated ground-truth dataset (no disk);
* :class:`An8FlowerFolderDataModule` — an8Flower in its original folder layout.
"""

from .an8flower import An8Flower, An8FlowerDataModule, render_sample
from .an8flower_folder import An8FlowerFolderDataModule, export_an8flower
from .base import ExplainDataModule

__all__ = [
    "An8Flower",
    "An8FlowerDataModule",
    "An8FlowerFolderDataModule",
    "ExplainDataModule",
    "export_an8flower",
    "render_sample",
]

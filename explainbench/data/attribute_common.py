"""What the attribute datasets of the EAT paper share (CUB-200-2011, SUN Attribute, folders).

Xu et al., "Where is the Model Looking At? Concentrate and Explain the Network Attention"
(EAT) trains on images with a class label and a class-level attribute vector. The three
data modules built on this file (:mod:`.cub`, :mod:`.sun_attribute`,
:mod:`.attribute_folder`) only parse their own on-disk layouts; everything after that lives
here, in :mod:`.folder` (image lists, checks, splits) and :mod:`.transforms`:

* :func:`attribute_targets` — ``attribute_mode`` ``"binary"`` (value >= ``attribute_threshold``
  → 1, else 0) or ``"soft"`` (the value in [0, 1] as it is);
* :class:`AttributeDataModule` — the attribute settings and ``split_seed``, on top of the
  preprocessing of :class:`~explainbench.data.image_files.ImageFilesDataModule`;
* :class:`AttributeImageDataset` — ``Batch`` samples (``docs/design.md``): those of
  :class:`~explainbench.data.annotated_images.AnnotatedImageDataset` (unreadable images skipped
  and counted, annotations moved with the image) plus ``attributes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .annotated_images import AnnotatedImageDataset
from .base import Batch
from .folder import Unreadable
from .image_files import ImageFilesDataModule
from .transforms import JointTransform

ATTRIBUTE_MODES = ("binary", "soft")


# -- checks shared by the constructors ---------------------------------------------------------
def check_attribute_mode(mode: str, threshold: float) -> str:
    if mode not in ATTRIBUTE_MODES:
        raise ValueError(
            f"unknown data.attribute_mode {mode!r}; choose 'binary' (value >= "
            "data.attribute_threshold becomes 1) or 'soft' (keep the value in [0, 1])"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"data.attribute_threshold must be in [0, 1], got {threshold}")
    return mode


# -- attributes ----------------------------------------------------------------------------------
def attribute_targets(values: np.ndarray | Tensor, mode: str, threshold: float) -> Tensor:
    """Float attribute targets from values in [0, 1]: thresholded (``binary``) or as they are."""
    values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    if mode == "binary":
        return (values >= threshold).float()
    return values.clamp(0.0, 1.0)


class AttributeDataModule(ImageFilesDataModule):
    """The settings every attribute data module shares, checked once here; subclasses parse
    their own layout and take their own split settings.

    Args:
        attribute_mode: ``"binary"`` (value >= ``attribute_threshold`` → 1) or ``"soft"``.
        attribute_threshold: in [0, 1] (0.5).
        split_seed: which images go to which split.
        **kwargs: preprocessing (``image_size``, ``resize_size``, ``augment``), see
            :class:`~explainbench.data.image_files.ImageFilesDataModule`, and loader settings.
    """

    def __init__(
        self,
        attribute_mode: str = "binary",
        attribute_threshold: float = 0.5,
        split_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.attribute_mode = check_attribute_mode(attribute_mode, attribute_threshold)
        self.attribute_threshold = float(attribute_threshold)
        self.split_seed = split_seed


# -- the dataset ----------------------------------------------------------------------------------
class AttributeImageDataset(AnnotatedImageDataset):
    """Batch-contract samples of an attribute dataset: those of
    :class:`~explainbench.data.annotated_images.AnnotatedImageDataset` plus ``attributes``.

    Args:
        samples: ``(image path, label)`` per sample.
        transform: the :class:`JointTransform` of this split.
        attribute_table: ``[K, A]`` float attribute vectors in [0, 1] (already thresholded).
        attribute_rows: ``[N]`` row of ``attribute_table`` for each sample (the label for
            class attributes, the image's row for per-image attributes), so splits share one
            table instead of copying a vector per image.
        boxes, landmarks, masks: see
            :class:`~explainbench.data.annotated_images.AnnotatedImageDataset`.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        transform: JointTransform,
        attribute_table: Tensor,
        attribute_rows: Sequence[int] | Tensor,
        boxes: Tensor | None = None,
        landmarks: Tensor | None = None,
        masks: Sequence[Path] | None = None,
    ) -> None:
        super().__init__(samples, transform, boxes=boxes, landmarks=landmarks, masks=masks)
        self.attribute_table = attribute_table.float()
        self.attribute_rows = torch.as_tensor(attribute_rows, dtype=torch.long)
        self.check_lengths(attribute_rows=self.attribute_rows)

    def __getitem__(self, index: int) -> Batch | Unreadable:
        out = super().__getitem__(index)
        if not isinstance(out, Unreadable):
            out["attributes"] = self.attribute_table[self.attribute_rows[index]].clone()
        return out

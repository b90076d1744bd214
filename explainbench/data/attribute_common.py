"""What the attribute datasets of the EAT paper share (CUB-200-2011, SUN Attribute, folders).

Xu et al., "Where is the Model Looking At? Concentrate and Explain the Network Attention"
(EAT) trains on images with a class label and a class-level attribute vector. The three
data modules built on this file (:mod:`.cub`, :mod:`.sun_attribute`,
:mod:`.attribute_folder`) only parse their own on-disk layouts; everything after that lives
here, in :mod:`.folder` (image lists, checks, splits) and :mod:`.transforms`:

* :func:`attribute_targets` — ``attribute_mode`` ``"binary"`` (value >= ``attribute_threshold``
  → 1, else 0) or ``"soft"`` (the value in [0, 1] as it is);
* :class:`AttributeDataModule` — the preprocessing and attribute settings, and the
  :class:`~explainbench.data.transforms.JointTransform` of each split;
* :class:`AttributeImageDataset` — ``Batch`` samples (``docs/design.md``); it extends
  :class:`~explainbench.data.folder.ImageListDataset`, so unreadable images are skipped and
  counted in the same way (collate with
  :func:`~explainbench.data.folder.collate_skipping_none`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import v2

from .base import Batch, ExplainDataModule
from .folder import ImageListDataset, Unreadable, collate_skipping_none
from .transforms import JointTransform, read_mask

log = logging.getLogger(__name__)

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


def check_sizes(image_size: int, resize_size: int | None) -> None:
    if image_size < 1:
        raise ValueError(f"data.image_size must be >= 1, got {image_size}")
    # a crop larger than the resized image would need padding, which would move no annotation
    if resize_size is not None and resize_size < image_size:
        raise ValueError(
            f"data.resize_size ({resize_size}) must be >= data.image_size ({image_size}), "
            "or null to resize straight to image_size x image_size"
        )


# -- attributes ----------------------------------------------------------------------------------
def attribute_targets(values: np.ndarray | Tensor, mode: str, threshold: float) -> Tensor:
    """Float attribute targets from values in [0, 1]: thresholded (``binary``) or as they are."""
    values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    if mode == "binary":
        return (values >= threshold).float()
    return values.clamp(0.0, 1.0)


class AttributeDataModule(ExplainDataModule):
    """The settings every attribute data module shares, checked once here; subclasses parse
    their own layout and take their own split settings.

    Args:
        image_size: side of the square crop the model sees (224).
        resize_size: shorter side before the crop (256); ``None`` resizes straight to
            ``image_size`` square (no crop, the whole object stays in view).
        attribute_mode: ``"binary"`` (value >= ``attribute_threshold`` → 1) or ``"soft"``.
        attribute_threshold: in [0, 1] (0.5).
        split_seed: which images go to which split.
        augment: random crop + horizontal flip for training (False: eval preprocessing).
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.
    """

    collate_fn = staticmethod(collate_skipping_none)

    def __init__(
        self,
        image_size: int = 224,
        resize_size: int | None = 256,
        attribute_mode: str = "binary",
        attribute_threshold: float = 0.5,
        split_seed: int = 0,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.attribute_mode = check_attribute_mode(attribute_mode, attribute_threshold)
        self.attribute_threshold = float(attribute_threshold)
        check_sizes(image_size, resize_size)
        self.image_size, self.resize_size = image_size, resize_size
        self.split_seed, self.augment = split_seed, augment

    def joint_transform(self, split: str, landmark_names: Sequence[str] = ()) -> JointTransform:
        """The preprocessing of ``split``: augmented for training when ``augment`` is on."""
        return JointTransform(
            split == "train" and self.augment,
            self.image_size,
            self.resize_size,
            self.mean,
            self.std,
            landmark_names,
        )


# -- the dataset ----------------------------------------------------------------------------------
class AttributeImageDataset(ImageListDataset):
    """Batch-contract samples of an attribute dataset.

    Args:
        samples: ``(image path, label)`` per sample.
        transform: the :class:`JointTransform` of this split.
        attribute_table: ``[K, A]`` float attribute vectors in [0, 1] (already thresholded).
        attribute_rows: ``[N]`` row of ``attribute_table`` for each sample (the label for
            class attributes, the image's row for per-image attributes), so splits share one
            table instead of copying a vector per image.
        boxes: ``[N, 4]`` xyxy pixel boxes in the original image, or None.
        landmarks: ``[N, L, 3]`` ``(x, y, visible)`` in the original image, or None.
        masks: a mask file per sample (see :func:`read_mask`), or None.

    An unreadable image or mask is logged, counted in ``skipped`` and returned as
    :class:`~explainbench.data.folder.Unreadable`.
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
        # the parent decodes the file and skips unreadable ones; ToImage keeps uint8 pixels so
        # the geometry below runs on them together with the annotations
        super().__init__(samples, v2.ToImage())
        self.joint = transform
        self.attribute_table = attribute_table.float()
        self.attribute_rows = torch.as_tensor(attribute_rows, dtype=torch.long)
        self.boxes = boxes
        self.landmarks = landmarks
        self.masks = list(masks) if masks is not None else None
        for name, values in (
            ("attribute_rows", self.attribute_rows),
            ("boxes", boxes),
            ("landmarks", landmarks),
            ("masks", self.masks),
        ):
            if values is not None and len(values) != len(self.samples):
                raise ValueError(f"{name} has {len(values)} entries for {len(self.samples)} images")

    def __getitem__(self, index: int) -> Batch | Unreadable:
        sample = super().__getitem__(index)
        if isinstance(sample, Unreadable):
            return sample
        mask = None
        if self.masks is not None:
            try:
                mask = read_mask(self.masks[index])
            except (OSError, UnidentifiedImageError) as err:
                self.skipped += 1
                log.warning(
                    "Skipping sample with unreadable mask %s (%s); %d skipped so far.",
                    self.masks[index],
                    err,
                    self.skipped,
                )
                return Unreadable(str(self.masks[index]))
            if mask.shape[-2:] != sample["image"].shape[-2:]:
                raise ValueError(
                    f"mask '{self.masks[index]}' is {tuple(mask.shape[-2:])} (H, W) but its "
                    f"image '{self.samples[index][0]}' is {tuple(sample['image'].shape[-2:])}"
                )
        out = self.joint(
            sample["image"],
            bbox=self.boxes[index] if self.boxes is not None else None,
            landmarks=self.landmarks[index] if self.landmarks is not None else None,
            mask=mask,
        )
        out["label"] = sample["label"].long()
        out["attributes"] = self.attribute_table[self.attribute_rows[index]].clone()
        out["index"] = sample["index"].long()
        return out

"""``AnnotatedImageDataset``: image files with a label and, when the data has them, a box,
landmarks and a mask, as ``Batch`` samples (``docs/design.md``).

It extends :class:`~explainbench.data.folder.ImageListDataset`, so an unreadable image is
skipped and counted in the same way (collate with
:func:`~explainbench.data.folder.collate_skipping_none`); the annotations go through the split's
:class:`~explainbench.data.transforms.JointTransform` with the image. CelebA and iNaturalist use
it as it is; :class:`~explainbench.data.attribute_common.AttributeImageDataset` adds attributes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import v2

from .base import Batch
from .folder import ImageListDataset, Unreadable
from .transforms import JointTransform, read_mask


class AnnotatedImageDataset(ImageListDataset):
    """Samples ``image``, ``label``, ``index`` and, when given, ``bbox`` / ``landmarks`` /
    ``mask``.

    Args:
        samples: ``(image path, label)`` per sample: a list, or any sequence that builds the pair
            on access (iNaturalist keeps 579k of them in numpy arrays, not Python tuples).
        transform: the :class:`~explainbench.data.transforms.JointTransform` of the split.
        targets: ``[N, ...]`` labels replacing the samples' own (CelebA's float ``[N, 40]``
            multi-label targets); ``None``: the sample's label as a long class index.
        boxes: ``[N, 4]`` xyxy pixels in the original image; a row of NaN means "no box" and
            stays NaN (iNaturalist images without a box; the pointing game skips them).
        landmarks: ``[N, L, 3]`` ``(x, y, visible)`` in the original image.
        masks: a mask file per sample (see :func:`~explainbench.data.transforms.read_mask`),
            of the image's size.

    An unreadable image or mask is logged, counted in ``skipped`` and returned as
    :class:`~explainbench.data.folder.Unreadable`.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path | str, int]],
        transform: JointTransform,
        targets: Tensor | None = None,
        boxes: Tensor | None = None,
        landmarks: Tensor | None = None,
        masks: Sequence[Path] | None = None,
    ) -> None:
        # the parent decodes the file and skips unreadable ones; ToImage keeps uint8 pixels so
        # the geometry of the joint transform runs on them together with the annotations
        super().__init__(samples, v2.ToImage())
        self.joint = transform
        self.targets, self.boxes, self.landmarks = targets, boxes, landmarks
        self.masks = list(masks) if masks is not None else None
        self.check_lengths(targets=targets, boxes=boxes, landmarks=landmarks, masks=self.masks)

    def check_lengths(self, **columns: Sequence | Tensor | None) -> None:
        """Every given per-sample column has one entry per image."""
        for name, values in columns.items():
            if values is not None and len(values) != len(self.samples):
                raise ValueError(f"{name} has {len(values)} entries for {len(self.samples)} images")

    def _mask(self, index: int, image: Tensor) -> Tensor | Unreadable:
        path = self.masks[index]
        try:
            mask = read_mask(path)
        except (OSError, UnidentifiedImageError) as err:
            return self.skip(path, err, "mask")
        if mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"mask '{path}' is {tuple(mask.shape[-2:])} (H, W) but its image "
                f"'{self.samples[index][0]}' is {tuple(image.shape[-2:])}"
            )
        return mask

    def __getitem__(self, index: int) -> Batch | Unreadable:
        sample = super().__getitem__(index)
        if isinstance(sample, Unreadable):
            return sample
        mask = self._mask(index, sample["image"]) if self.masks is not None else None
        if isinstance(mask, Unreadable):
            return mask
        box = self.boxes[index] if self.boxes is not None else None
        has_box = box is not None and bool(torch.isfinite(box).all())
        out = self.joint(
            sample["image"],
            bbox=box if has_box else None,
            landmarks=self.landmarks[index] if self.landmarks is not None else None,
            mask=mask,
        )
        if box is not None and not has_box:
            out["bbox"] = torch.full((4,), math.nan)
        out["label"] = (
            self.targets[index].clone() if self.targets is not None else sample["label"].long()
        )
        out["index"] = sample["index"].long()
        return out

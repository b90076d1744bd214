"""``AnnotatedImageDataset``: image files with a label and optional box / landmarks, as
Batch-contract samples (CelebA, iNaturalist).

Kept apart from :class:`~explainbench.data.attribute_common.AttributeImageDataset` because these
datasets have no attribute table, may have a target that is not a class index (CelebA's 40
attributes) and may miss a box on some images (iNaturalist: NaN, which the pointing game skips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms import v2

from .attribute_common import JointTransform
from .imagenet import ImageListDataset, Unreadable


class AnnotatedImageDataset(ImageListDataset):
    """Samples ``image``, ``label``, ``index`` and, when given, ``bbox`` / ``landmarks``.

    Args:
        samples: ``(image path, label)`` per sample: a list, or any sequence that builds the pair
            on access (iNaturalist keeps 579k of them in numpy arrays, not Python tuples).
        transform: the :class:`~explainbench.data.attribute_common.JointTransform` of the split.
        targets: ``[N, ...]`` labels replacing the samples' own (e.g. CelebA's float ``[N, 40]``);
            ``None``: the sample's label as a long class index.
        boxes: ``[N, 4]`` xyxy pixels in the original image; a row of NaN means "no box" and
            stays NaN.
        landmarks: ``[N, L, 3]`` ``(x, y, visible)`` in the original image.

    Unreadable (or missing) image files are skipped and counted as in :class:`ImageListDataset`.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path | str, int]],
        transform: JointTransform,
        targets: Tensor | None = None,
        boxes: Tensor | None = None,
        landmarks: Tensor | None = None,
    ) -> None:
        super().__init__([], v2.ToImage())  # the parent decodes the file, then we transform
        self.samples = samples if not isinstance(samples, list | tuple) else list(samples)
        self.joint, self.targets, self.boxes, self.landmarks = transform, targets, boxes, landmarks
        for name, values in (("targets", targets), ("boxes", boxes), ("landmarks", landmarks)):
            if values is not None and len(values) != len(self.samples):
                raise ValueError(f"{name} has {len(values)} entries for {len(self.samples)} images")

    def __getitem__(self, index: int) -> dict | Unreadable:
        sample = super().__getitem__(index)
        if isinstance(sample, Unreadable):
            return sample
        box = self.boxes[index] if self.boxes is not None else None
        has_box = box is not None and bool(torch.isfinite(box).all())
        out = self.joint(
            sample["image"],
            bbox=box if has_box else None,
            landmarks=self.landmarks[index] if self.landmarks is not None else None,
        )
        if box is not None and not has_box:
            out["bbox"] = torch.full((4,), math.nan)
        label = self.targets[index].clone() if self.targets is not None else sample["label"].long()
        out["label"] = label
        out["index"] = sample["index"].long()
        return out

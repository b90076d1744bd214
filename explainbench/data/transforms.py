"""Transforms that move the annotations with the image, and mask reading.

* :class:`JointTransform` — resize/crop/flip with ``torchvision.transforms.v2`` so that the
  box, the landmarks (``tv_tensors.KeyPoints``) and the mask move with the image, then
  normalise the image (the ``Batch`` contract, ``docs/design.md``);
* :func:`read_mask` — a mask image as ``[1,H,W]`` 0/1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD


def flip_permutation(names: Sequence[str]) -> list[int]:
    """Index order that swaps every ``left ...``/``right ...`` landmark pair.

    After a mirror flip the bird's left eye sits where a right eye sits in unflipped images,
    so (as in pose estimation) the labels swap to keep "left"/"right" consistent with the
    unflipped data."""
    order = list(range(len(names)))
    for i, name in enumerate(names):
        if "left" in name or "right" in name:
            partner = name.replace("left", "\0").replace("right", "left").replace("\0", "right")
            if partner in names:
                order[i] = list(names).index(partner)
    return order


class JointTransform:
    """Resize / crop / flip an image with its box, landmarks and mask; normalise the image.

    ``resize_size`` set: the shorter side goes to ``resize_size``, then a random (``train``) or
    centre ``image_size`` crop; ``resize_size=None``: a plain resize to ``image_size`` square.
    ``train`` also flips left-right with p = 0.5 (torch's global RNG, seeded per worker by
    the DataLoader). Boxes are ``tv_tensors.BoundingBoxes`` (xyxy pixel edges, clipped to the
    crop), landmarks ``tv_tensors.KeyPoints`` (torchvision's conventions: scaled by the resize,
    ``x -> W - 1 - x`` under the flip); a landmark that leaves the crop becomes invisible.
    Masks resize with nearest neighbour."""

    def __init__(
        self,
        train: bool,
        image_size: int = 224,
        resize_size: int | None = 256,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        landmark_names: Sequence[str] = (),
    ) -> None:
        if resize_size is None:
            steps: list = [v2.Resize((image_size, image_size), antialias=True)]
        else:
            crop = v2.RandomCrop(image_size) if train else v2.CenterCrop(image_size)
            steps = [v2.Resize(resize_size, antialias=True), crop]
        self.geometry = v2.Compose(steps)
        self.train = train
        self.hflip = v2.RandomHorizontalFlip(p=1.0)  # the coin is tossed here, see __call__
        self.flip_order = flip_permutation(landmark_names)
        # with a single dtype ToDtype converts the image only; boxes, points, masks keep theirs
        self.pixels = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        )

    def __call__(
        self,
        image: tv_tensors.Image,
        bbox: Tensor | None = None,
        landmarks: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        canvas = tuple(image.shape[-2:])
        data: dict[str, Tensor] = {"image": image}
        if bbox is not None:
            data["bbox"] = tv_tensors.BoundingBoxes(
                bbox.view(1, 4), format="XYXY", canvas_size=canvas
            )
        if landmarks is not None:
            data["landmarks"] = tv_tensors.KeyPoints(landmarks[:, :2], canvas_size=canvas)
        if mask is not None:
            data["mask"] = tv_tensors.Mask(mask)
        data = self.geometry(data)
        # tossing the coin here (not inside v2.RandomHorizontalFlip) tells us whether the
        # left/right landmark labels have to swap
        flipped = self.train and bool(torch.rand(()) < 0.5)
        if flipped:
            data = self.hflip(data)
        data = self.pixels(data)
        height, width = data["image"].shape[-2:]
        out = {"image": data["image"].as_subclass(Tensor)}
        if bbox is not None:
            out["bbox"] = data["bbox"].as_subclass(Tensor).reshape(4).float()
        if landmarks is not None:
            xy = data["landmarks"].as_subclass(Tensor).float()
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
            visible = (landmarks[:, 2] > 0) & inside
            points = torch.cat([xy, visible.float().unsqueeze(1)], dim=1)
            out["landmarks"] = points[self.flip_order] if flipped else points
        if mask is not None:
            out["mask"] = data["mask"].as_subclass(Tensor).float()
        return out


def read_mask(path: Path) -> Tensor:
    """``[1,H,W]`` uint8 0/1 from a mask image: grey values > 127 are foreground (CUB's
    segmentations are soft, averaged over annotators)."""
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("L")) > 127).unsqueeze(0).to(torch.uint8)

"""an8flower: the built-in, procedurally generated ground-truth dataset.

After the an8Flower dataset of Oramas, Wang & Tuytelaars, "Visual Explanation by
Interpretation: Improving Visual Feedback Capabilities of Deep Neural Networks"
(ICLR 2019). Flowers are drawn on the fly (see :mod:`.an8flower_render`), so nothing is
read from or written to disk; :mod:`.an8flower_folder` reads the original on-disk layout.

Variants:

* ``single6c`` (6 classes): the class is the colour of the flower's centre;
* ``double12c`` (12 classes): the class is ``(part, colour)``, part in {centre, leaves};
  the part that does not carry the class takes a neutral colour.

Distractor blobs in the class colours are scattered over the background, so the class is
given by the colour *of the discriminative part* only; ``part_mask`` marks that part.

Each sample is a ``Batch`` (``docs/design.md``): ``image`` float ``[3,H,W]``
normalised with ImageNet mean/std, ``label`` long, ``mask`` ``[1,H,W]`` (whole flower) and
``part_mask`` ``[1,H,W]`` float 0/1, ``part_ids`` long ``[H,W]`` (each pixel's part, an index into
:data:`PART_NAMES`: 0 background, 1 stem, 2 leaves, 3 petals, 4 centre), ``bbox`` ``[4]`` xyxy pixel edges of the flower,
``landmarks`` ``[5,3]`` (x, y, visible) in continuous pixel coordinates for
:data:`LANDMARK_NAMES`, ``attributes`` ``[15]`` 0/1 for :func:`attribute_names`, ``index``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD
from .an8flower_render import (
    LANDMARK_NAMES,
    PART_NAMES,
    VARIANTS,
    FlowerRenderer,
    attribute_names,
    check_image_size,
    check_variant,
    class_names,
    num_classes,
    render_sample,
)
from .base import Batch, ExplainDataModule, check_split

__all__ = [
    "LANDMARK_NAMES",
    "PART_NAMES",
    "VARIANTS",
    "An8Flower",
    "An8FlowerDataModule",
    "attribute_names",
    "class_names",
    "render_sample",
]

# left and right leaf swap places under a horizontal flip
_FLIP_LANDMARKS = [
    LANDMARK_NAMES.index(n) for n in ("centre", "stem_base", "leaf_right", "leaf_left", "petal_tip")
]


def check_brightness(brightness: float) -> float:
    """The illumination-jitter range: dimming by up to ``brightness``, never to black."""
    if not 0.0 <= brightness < 1.0:
        raise ValueError(f"an8flower brightness must be in [0, 1), got {brightness}")
    return float(brightness)


class An8Flower(Dataset):
    """One split of generated an8flower images.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        variant: ``"single6c"`` or ``"double12c"``.
        image_size: side in pixels, 32-224.
        length: number of images; image ``i`` is ``render_sample(seed, split, i, ...)``.
        seed: dataset seed.
        bias: probability that a train image's background tint is tied to its class
            (ignored for val/test, which stay unbiased).
        in_memory: render the whole split once at construction (uint8 images and part maps,
            about 16 KB per 64 px image) instead of rendering on every access.
        hflip: random horizontal flip (p = 0.5, torch's global RNG) that moves masks, box and
            landmarks with the image and swaps the left/right leaf landmarks.
        brightness: illumination jitter: the [0, 1] image is multiplied by a factor drawn
            uniformly from ``[1 - brightness, 1]`` (torch's global RNG); 0 = off.
        mean, std: normalisation of ``image``.
    """

    def __init__(
        self,
        split: str = "train",
        variant: str = "single6c",
        image_size: int = 64,
        length: int = 1000,
        seed: int = 0,
        bias: float = 0.0,
        in_memory: bool = True,
        hflip: bool = False,
        brightness: float = 0.0,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        if length < 0:
            raise ValueError(f"an8flower split length must be >= 0, got {length}")
        self.split = check_split(split)
        self.renderer = FlowerRenderer(seed, variant, image_size, bias)
        self.length = int(length)
        self.hflip = hflip
        self.brightness = check_brightness(brightness)
        self.num_classes = self.renderer.num_classes
        self.class_names = class_names(variant)
        self.attribute_names = attribute_names()
        self.landmark_names = list(LANDMARK_NAMES)
        self.part_names = list(PART_NAMES)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._cache = self._as_tensors(np.arange(self.length)) if in_memory else None

    def _as_tensors(self, indices: np.ndarray) -> dict[str, Tensor]:
        batch = self.renderer.render(self.split, indices)
        return {
            "image": torch.from_numpy(batch.image),
            "parts": torch.from_numpy(batch.parts),
            "part_id": torch.from_numpy(batch.part_id.astype(np.uint8)),
            "label": torch.from_numpy(batch.label),
            "bbox": torch.from_numpy(batch.bbox),
            "landmarks": torch.from_numpy(batch.landmarks),
            "attributes": torch.from_numpy(batch.attributes),
            "index": torch.from_numpy(batch.index),
        }

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Batch:
        if not -self.length <= i < self.length:
            raise IndexError(
                f"index {i} out of range for an8flower {self.split} of length {self.length}"
            )
        i = int(i) % self.length
        if self._cache is not None:
            data, row = self._cache, i
        else:
            data, row = self._as_tensors(np.array([i])), 0
        parts = data["parts"][row]
        image = data["image"][row].float() / 255.0
        if self.brightness:
            image = image * (1.0 - self.brightness * torch.rand(()))
        sample = {
            "image": (image - self._mean) / self._std,
            "label": data["label"][row],
            "mask": (parts > 0).float().unsqueeze(0),
            "part_mask": (parts == data["part_id"][row]).float().unsqueeze(0),
            "part_ids": parts.long(),
            "bbox": data["bbox"][row].clone(),
            "landmarks": data["landmarks"][row].clone(),
            "attributes": data["attributes"][row].clone(),
            "index": data["index"][row],
        }
        if self.hflip and torch.rand(()) < 0.5:
            sample = hflip_sample(sample)
        return sample


def hflip_sample(sample: dict[str, Tensor]) -> dict[str, Tensor]:
    """Mirror one an8flower sample left-right: image, masks and part ids (no part has a left and a
    right id, so they only move), ``x -> W - x`` for the box
    (pixel edges) and landmarks (continuous coordinates), left/right leaf swapped."""
    out = dict(sample)
    width = sample["image"].shape[-1]
    for key in ("image", "mask", "part_mask", "part_ids"):
        out[key] = sample[key].flip(-1)
    x1, y1, x2, y2 = sample["bbox"].unbind()
    out["bbox"] = torch.stack([width - x2, y1, width - x1, y2])
    lm = sample["landmarks"][_FLIP_LANDMARKS].clone()
    lm[:, 0] = width - lm[:, 0]
    # x = 0 maps to x = W, which is outside [0, W): recompute visibility, don't copy it
    lm[:, 2] = (lm[:, 2] > 0) & (lm[:, 0] >= 0) & (lm[:, 0] < width)
    out["landmarks"] = lm
    return out


class An8FlowerDataModule(ExplainDataModule):
    """Generated an8flower train/val/test splits (``conf/data/an8flower.yaml``).

    Args:
        variant: ``"single6c"`` (6 classes, centre colour) or ``"double12c"`` (12 classes,
            centre-or-leaves colour).
        image_size: side in pixels, 32-224 (64 by default; the default backbone's 8x8
            explanation layer at stride 8).
        bias: probability that a *train* image's background tint is tied to its class; 0
            (default) is unbiased. Val/test stay unbiased, so a model that learnt the
            shortcut loses accuracy there and its explanations point at the background.
        seed: dataset seed (independent of the training seed, so every run sees the same data).
        train_size, val_size, test_size: images per split.
        in_memory: render each split once on ``setup()`` (default) or on every access.
        hflip: random horizontal flip of training images.
        brightness: illumination jitter of training images: each is dimmed by a random factor
            in ``[1 - brightness, 1]``. On by default (0.7): the class is a hue, and explanation
            methods that multiply the image by a soft mask (L-CAM-Img, RISE, Score-CAM, the
            AD/IC protocol) dim it; a classifier that never saw a dim flower reads a dimmed
            red centre as another colour, which would make those methods and metrics measure
            brightness, not where the model looks.
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.
    """

    annotations = frozenset({"mask", "part_mask", "part_ids", "bbox", "landmarks", "attributes"})

    def __init__(
        self,
        variant: str = "single6c",
        image_size: int = 64,
        bias: float = 0.0,
        seed: int = 0,
        train_size: int = 4000,
        val_size: int = 1000,
        test_size: int = 1000,
        in_memory: bool = True,
        hflip: bool = False,
        brightness: float = 0.7,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        # fail at construction, not at setup() in the middle of a run
        self.variant = check_variant(variant)
        self.image_size = check_image_size(image_size)
        if not 0.0 <= bias <= 1.0:
            raise ValueError(f"an8flower bias must be in [0, 1], got {bias}")
        sizes = {"train": train_size, "val": val_size, "test": test_size}
        for split, size in sizes.items():
            if size < 1:
                raise ValueError(f"an8flower {split}_size must be >= 1, got {size}")
        self.sizes = sizes
        self.bias = float(bias)
        self.seed = int(seed)
        self.in_memory = in_memory
        self.hflip = hflip
        self.brightness = check_brightness(brightness)
        self.num_classes = num_classes(variant)
        self.class_names = class_names(variant)
        self.attribute_names = attribute_names()
        self.landmark_names = list(LANDMARK_NAMES)
        self.part_names = list(PART_NAMES)

    def _make_dataset(self, split: str) -> An8Flower:
        return An8Flower(
            split=split,
            variant=self.variant,
            image_size=self.image_size,
            length=self.sizes[split],
            seed=self.seed,
            bias=self.bias,
            in_memory=self.in_memory,
            hflip=self.hflip and split == "train",
            brightness=self.brightness if split == "train" else 0.0,
            mean=self.mean,
            std=self.std,
        )

"""What the attribute datasets of the EAT paper share (CUB-200-2011, SUN Attribute, folders).

Xu et al., "Where is the Model Looking At? Concentrate and Explain the Network Attention"
(EAT) trains on images with a class label and a class-level attribute vector. The three
data modules built on this file (:mod:`.cub`, :mod:`.sun_attribute`,
:mod:`.attribute_folder`) only parse their own on-disk layouts; everything after that lives
here:

* :func:`attribute_targets` — ``attribute_mode`` ``"binary"`` (value >= ``attribute_threshold``
  → 1, else 0) or ``"soft"`` (the value in [0, 1] as it is);
* :func:`stratified_split` — the deterministic train/val/test rule used wherever a dataset
  has no official split (see its docstring);
* :class:`JointTransform` — resize/crop/flip with ``torchvision.transforms.v2`` so that the box,
  the landmarks (``tv_tensors.KeyPoints``) and the mask move with the image;
* :class:`AttributeImageDataset` — Batch-contract samples (``DESIGN.md``); it extends
  :class:`~explainbench.data.imagenet.ImageListDataset`, so unreadable images are skipped and
  counted in the same way (collate with
  :func:`~explainbench.data.imagenet.collate_skipping_none`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD
from .base import SPLITS, ExplainDataModule
from .imagenet import ImageListDataset, Unreadable, collate_skipping_none

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


def check_ratios(ratios: Sequence[float], name: str = "data.split_ratios") -> list[float]:
    values = [float(r) for r in ratios]
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"{name} must be three non-negative train/val/test weights, got {values}")
    return values


def check_val_fraction(val_fraction: float) -> float:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    return float(val_fraction)


def require_dir(path: Path, what: str, layout: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} '{path}' (data.root) does not exist; {layout}")
    return path


def require_file(path: Path, what: str, layout: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: '{path}' is missing; {layout}")
    return path


def require_images(paths: Sequence[Path], what: str, layout: str) -> None:
    """Fail at once (not hours into a run) when listed files are missing."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} {what} are missing, e.g. '{missing[0]}'; {layout}"
        )


# -- attributes ----------------------------------------------------------------------------------
def attribute_targets(values: np.ndarray | Tensor, mode: str, threshold: float) -> Tensor:
    """Float attribute targets from values in [0, 1]: thresholded (``binary``) or as they are."""
    values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    if mode == "binary":
        return (values >= threshold).float()
    return values.clamp(0.0, 1.0)


# -- splits --------------------------------------------------------------------------------------
def _hash_rank(seed: int, key: str) -> bytes:
    # sha1, not Python's hash(): that one is salted per process
    return hashlib.sha1(f"{seed}:{key}".encode()).digest()


def stratified_split(
    keys: Sequence[str], labels: Sequence[int], ratios: Sequence[float], seed: int = 0
) -> list[str]:
    """The split (``"train"``/``"val"``/``"test"``) of every sample, decided per class.

    Within a class of ``n`` samples, the samples are ordered by ``sha1("<seed>:<key>")`` (key:
    the image's relative path) and cut at ``floor(n * c + 0.5)`` for the cumulative normalised
    ``ratios`` ``c``: the first part is train, the next val, the rest test. Every class with a
    sample and a positive train ratio keeps at least one training sample. The result does not
    depend on file-system or file order, and changing ``seed`` draws another split."""
    ratios = check_ratios(ratios, "split ratios")
    edges = np.cumsum(ratios) / sum(ratios)
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        members[int(label)].append(i)
    out = [""] * len(keys)
    for rows in members.values():
        rows.sort(key=lambda i: _hash_rank(seed, keys[i]))
        n = len(rows)
        train_end, val_end = (math.floor(n * e + 0.5) for e in edges[:2])
        if train_end == 0 and ratios[0] > 0:
            train_end, val_end = 1, max(val_end, 1)
        for rank, i in enumerate(rows):
            out[i] = SPLITS[0 if rank < train_end else 1 if rank < val_end else 2]
    return out


# -- transforms ----------------------------------------------------------------------------------
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


class AttributeDataModule(ExplainDataModule):
    """The settings every attribute data module shares (preprocessing, attribute targets,
    split seed), checked once here; subclasses parse their own layout."""

    collate_fn = staticmethod(collate_skipping_none)

    def __init__(
        self,
        image_size: int,
        resize_size: int | None,
        attribute_mode: str,
        attribute_threshold: float,
        split_seed: int,
        augment: bool,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.attribute_mode = check_attribute_mode(attribute_mode, attribute_threshold)
        self.attribute_threshold = float(attribute_threshold)
        check_sizes(image_size, resize_size)
        self.image_size, self.resize_size = image_size, resize_size
        self.split_seed, self.augment = split_seed, augment


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
    :class:`~explainbench.data.imagenet.Unreadable`.
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

    def __getitem__(self, index: int) -> dict | Unreadable:
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

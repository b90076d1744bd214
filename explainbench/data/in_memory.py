"""Small datasets held in memory as one uint8 tensor (CIFAR-10, MNIST): the dataset, its
augmentation and the train/val carve shared by :mod:`.cifar10` and :mod:`.mnist`.

Speed is the point: a 2-core machine has to feed ``small_cnn`` faster than it trains. Every
image of a split stays a row of one uint8 ``[N,C,H,W]`` tensor (CIFAR-10's 60,000 images: 184
MB); train and val are row lists into the same tensor, so carving val copies nothing. The
DataLoader asks for a whole batch at once (:meth:`InMemoryImages.__getitems__`, which torch's
fetcher and ``Subset`` call when present), and cropping, flipping, the float conversion and
the normalisation run once per batch as tensor operations, not once per image in Python;
``scripts/bench_data.py --cifar10/--mnist`` measures it next to ``small_cnn``'s training speed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .base import Batch, ExplainDataModule
from .folder import carve_val, check_val_fraction


class InMemoryImages(Dataset):
    """Rows of a uint8 image tensor as ``Batch`` samples (``image``, ``label``, ``index``).

    Args:
        images: uint8 ``[N,C,H,W]``, shared by the splits cut from it.
        labels: long ``[N]``.
        mean, std: per-channel normalisation of the output (one value per output channel).
        rows: the rows of this split (``None``: all), in order; sample ``i`` is row ``rows[i]``
            and its ``index`` is ``i``.
        crop_padding: random crop back to the image size after zero-padding each side by this
            many pixels (black before normalisation, as torchvision's ``RandomCrop(padding=4)``);
            0 = off. Uses torch's global RNG, which DataLoader seeds per worker.
        hflip: random horizontal flip, p = 0.5.
        channels: output channels; a 1-channel image is repeated to 3 when ``channels=3``.
        resize_to: side the images are resized to (bilinear, antialiased when shrinking) after
            the augmentation; ``None``: their own size.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        rows: Tensor | np.ndarray | None = None,
        crop_padding: int = 0,
        hflip: bool = False,
        channels: int | None = None,
        resize_to: int | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N,C,H,W], got {images.dtype} {list(images.shape)}"
            )
        self.images, self.labels = images, labels.long()
        self.rows = (
            torch.arange(len(images)) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        )
        self.channels = channels or images.shape[1]
        if self.channels not in (images.shape[1], 3) or images.shape[1] not in (1, self.channels):
            raise ValueError(
                f"cannot make {self.channels}-channel images from {images.shape[1]}-channel ones"
            )
        if len(mean) != self.channels or len(std) != self.channels:
            raise ValueError(
                f"mean/std need {self.channels} values, got {list(mean)} / {list(std)}"
            )
        # normalise the uint8 values directly: (x / 255 - mean) / std = (x - 255 mean) / (255 std)
        self._shift = torch.tensor([255.0 * m for m in mean]).view(1, -1, 1, 1)
        self._scale = torch.tensor([255.0 * s for s in std]).view(1, -1, 1, 1)
        self.crop_padding = int(crop_padding)
        self.hflip = hflip
        self.resize_to = resize_to if resize_to != images.shape[-1] else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Batch:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a split of {len(self)} images")
        return self.__getitems__([int(index) % len(self)])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Batch]:
        """The samples of a whole batch, computed together (see the module docstring); the
        collate function stacks them as it would any list of samples."""
        index = torch.as_tensor(indices, dtype=torch.long)
        rows = self.rows[index]
        images = self.augment(self.images[rows])
        if images.shape[1] != self.channels:
            images = images.expand(-1, self.channels, -1, -1)
        images = images.float()
        if self.resize_to is not None:
            images = torch.nn.functional.interpolate(
                images, size=(self.resize_to, self.resize_to), mode="bilinear",
                align_corners=False, antialias=self.resize_to < images.shape[-1],
            )  # fmt: skip
        images = (images - self._shift) / self._scale
        labels = self.labels[rows]
        return [
            {"image": image, "label": label, "index": i}
            for image, label, i in zip(images, labels, index, strict=True)
        ]

    def augment(self, images: Tensor) -> Tensor:
        """Random crop (after zero padding) and horizontal flip of uint8 ``[B,C,H,W]``, each
        image drawing its own offsets and flip."""
        batch, _, height, width = images.shape
        pad = self.crop_padding
        if pad:
            padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
            top = torch.randint(0, 2 * pad + 1, (batch, 1, 1))
            left = torch.randint(0, 2 * pad + 1, (batch, 1, 1))
            ys = top + torch.arange(height).view(1, -1, 1)  # [B,H,1]
            xs = left + torch.arange(width).view(1, 1, -1)  # [B,1,W]
            # advanced indices around the channel slice: the result is [B,H,W,C]
            images = padded[torch.arange(batch).view(-1, 1, 1), :, ys, xs].permute(0, 3, 1, 2)
        if self.hflip:
            flip = torch.rand(batch) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        return images


def train_val_rows(labels: Tensor, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the official training set that form train and val: ``val_fraction`` of each
    class, fixed by the row number and ``seed`` (:func:`~.folder.carve_val`), each list in row
    order."""
    val = carve_val(labels.numpy(), np.arange(len(labels)), val_fraction, seed)
    return np.flatnonzero(~val), np.flatnonzero(val)


class InMemoryDataModule(ExplainDataModule):
    """A data module whose official train and test sets are read whole into uint8 tensors.

    A subclass sets ``num_classes``, ``class_names``, ``mean``/``std`` and implements
    :meth:`_read` (one official set as uint8 ``[N,C,H,W]`` images and ``[N]`` labels). Each set
    is read once, on first use, and kept: train and val are both cut from the training set.

    Args:
        val_fraction: share of each class's official training images used for validation.
        split_seed: which images those are (:func:`train_val_rows`).
        crop_padding, hflip: training augmentation, see :class:`InMemoryImages`.
        channels: output channels (``channels`` of :class:`InMemoryImages`).
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.
    """

    def __init__(
        self,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        crop_padding: int = 0,
        hflip: bool = False,
        channels: int = 3,
        resize_to: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if resize_to is not None and resize_to < 1:
            raise ValueError(f"data.image_size must be a positive side in pixels, got {resize_to}")
        self.resize_to = resize_to
        self.val_fraction = check_val_fraction(val_fraction)
        self.split_seed = int(split_seed)
        if crop_padding < 0:
            raise ValueError(f"data.crop_padding must be >= 0 pixels, got {crop_padding}")
        self.crop_padding, self.hflip = int(crop_padding), bool(hflip)
        self.channels = int(channels)
        self._sets: dict[str, tuple[Tensor, Tensor]] = {}

    def _read(self, official: str) -> tuple[Tensor, Tensor]:
        """The official ``"train"`` or ``"test"`` set: uint8 ``[N,C,H,W]``, long ``[N]``."""
        raise NotImplementedError

    def official_set(self, official: str) -> tuple[Tensor, Tensor]:
        if official not in self._sets:
            self._sets[official] = self._read(official)
        return self._sets[official]

    def _make_dataset(self, split: str) -> InMemoryImages:
        images, labels = self.official_set("test" if split == "test" else "train")
        rows = None
        if split != "test":
            train, val = train_val_rows(labels, self.val_fraction, self.split_seed)
            rows = train if split == "train" else val
        augment = split == "train"
        return InMemoryImages(
            images,
            labels,
            self.mean,
            self.std,
            rows,
            crop_padding=self.crop_padding if augment else 0,
            hflip=self.hflip and augment,
            channels=self.channels,
            resize_to=self.resize_to,
        )

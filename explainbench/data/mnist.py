"""MNIST in torchvision's raw layout (nothing is downloaded).

Read from ``root`` (torchvision's ``MNIST(root)`` layout, so one data folder serves both)::

    root/MNIST/raw/train-images-idx3-ubyte   60,000 images 28x28      each file plain or as
    root/MNIST/raw/train-labels-idx1-ubyte   their labels 0..9        the distributed .gz
    root/MNIST/raw/t10k-images-idx3-ubyte    10,000 test images       (the plain one is read
    root/MNIST/raw/t10k-labels-idx1-ubyte    their labels             when both exist)

An idx file is a big-endian header — two zero bytes, the type code (0x08: unsigned byte), the
number of dimensions ``d`` — then ``d`` 32-bit sizes, then the values in row-major order: magic
number 2051 (0x00000803) and sizes ``N, 28, 28`` for images, 2049 (0x00000801) and ``N`` for
labels. The header is checked and the file's length compared with what it announces, so a
truncated download is one error naming the file and both byte counts.

Channels: every registry backbone but ``small_cnn`` takes RGB, so by default the grey channel is
repeated to three (``channels: 3``, mean/std repeated too); ``channels: 1`` keeps one channel for
a backbone built for it (``backbone=small_cnn backbone.in_channels=1``); the model build refuses
a mismatch. ``image_size`` above 28 pads the digits with background (LeNet-5 padded to 32, the
size the 32x32 attention stacks expect).

Splits: test is ``t10k``; val is ``val_fraction`` of each class's training images (10 %: 6,000
images; the lightning-hydra-template holds out 5,000), fixed by the row number and
``split_seed``; train is the rest.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .folder import require_dir
from .in_memory import InMemoryDataModule

FOLDER = Path("MNIST") / "raw"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror
LAYOUT = (
    "expected train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    f"t10k-labels-idx1-ubyte there, each plain or .gz (torchvision's MNIST/raw; the files are at {URL})"
)
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
SIDE = 28


def find_idx(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/name.gz`` when only that exists."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"MNIST file '{folder / name}' (or .gz) is missing; {LAYOUT}")


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """The uint8 array of an idx file, after checking its magic number, its number of
    dimensions and that its length is the header's plus the values it announces."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as err:  # a cut .gz fails here
        raise ValueError(f"MNIST file '{path}' cannot be read: {err}") from None
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise ValueError(f"MNIST file '{path}' is truncated: {len(data)} bytes, not even a header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"MNIST file '{path}': magic number {found} (0x{found:08x}), expected {magic} "
            f"(0x{magic:08x}: unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    if len(data) < header:
        raise ValueError(
            f"MNIST file '{path}' is truncated: {len(data)} bytes, shorter than its {header}-byte header"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "is too long"
        raise ValueError(
            f"MNIST file '{path}' {problem}: expected {expected} bytes ({header}-byte header + "
            f"{' x '.join(map(str, shape))} values), found {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


class MNISTDataModule(InMemoryDataModule):
    """MNIST from torchvision's raw idx files (module docstring: layout, channels, splits).

    Args:
        root: the folder holding ``MNIST/raw/``.
        channels: 3 (default; the grey channel repeated, for RGB backbones) or 1.
        image_size: side of the images; above 28 the digit is padded with background on every
            side (the odd pixel goes right and down).
        val_fraction, split_seed: the validation share of the training set and which images.
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.

    No augmentation: the paper gives none for MNIST and digits are not flip-invariant.
    """

    num_classes = 10
    class_names = [str(d) for d in range(10)]

    def __init__(
        self,
        root: str,
        channels: int = 3,
        image_size: int = SIDE,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        **kwargs,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(
                f"data.channels must be 1 (grey) or 3 (grey repeated, for RGB backbones), got {channels}"
            )
        if image_size < SIDE:
            raise ValueError(
                f"MNIST data.image_size must be >= {SIDE} (pads, never crops), got {image_size}"
            )
        super().__init__(val_fraction, split_seed, channels=channels, **kwargs)
        self.folder = require_dir(Path(root) / FOLDER, "MNIST folder", LAYOUT)
        self.files = {
            split: tuple(find_idx(self.folder, name) for name in names)
            for split, names in FILES.items()
        }
        self.image_size = int(image_size)
        self.mean = (MNIST_MEAN,) * channels
        self.std = (MNIST_STD,) * channels

    def _read(self, official: str) -> tuple[Tensor, Tensor]:
        image_file, label_file = self.files[official]
        images = read_idx(image_file, IMAGES_MAGIC, 3)
        labels = read_idx(label_file, LABELS_MAGIC, 1)
        if len(labels) != len(images):
            raise ValueError(
                f"MNIST files '{image_file}' and '{label_file}' hold {len(images)} images and "
                f"{len(labels)} labels; expected one label per image"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(
                f"MNIST file '{label_file}': labels must be in 0..9, found {labels.max()}"
            )
        if images.shape[1:] != (SIDE, SIDE):
            raise ValueError(
                f"MNIST file '{image_file}': expected {SIDE}x{SIDE} images, found "
                f"{images.shape[1]}x{images.shape[2]}"
            )
        pixels = torch.from_numpy(images.copy()).unsqueeze(1)  # frombuffer is read-only
        pad = self.image_size - SIDE
        if pad:
            pixels = torch.nn.functional.pad(pixels, (pad // 2, pad - pad // 2) * 2)
        return pixels, torch.from_numpy(labels.astype(np.int64))

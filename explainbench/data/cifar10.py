"""CIFAR-10 in its official python layout (nothing is downloaded).

Read from ``root`` (torchvision's ``CIFAR10(root)`` layout, so one data folder serves both)::

    root/cifar-10-batches-py/data_batch_1 .. data_batch_5   training pickles, 10,000 images each
    root/cifar-10-batches-py/test_batch                     the 10,000 test images
    root/cifar-10-batches-py/batches.meta                   b"label_names": the 10 class names

Each batch is a pickled dict with ``b"data"``, a uint8 numpy array ``[N,3072]`` whose row is
the 1024 red, then green, then blue values of a 32x32 image in row-major order, and
``b"labels"``, ``N`` ints in 0..9. The pickles are read with an unpickler that only rebuilds
numpy arrays and plain values, so a doctored file cannot run code (as checkpoints are read
weights-only).

Splits: test is ``test_batch``; val is ``val_fraction`` of each class's training images (10 %:
5,000 images, the size torchvision-based recipes and the lightning-hydra-template hold out),
fixed by the row number and ``split_seed``; train is the rest. The paper (Xie et al.) does not
say how it validated.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .folder import require_dir
from .in_memory import InMemoryDataModule

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
LAYOUT = (
    f"expected {', '.join(TRAIN_FILES)}, {TEST_FILE} and {META_FILE} there: unpack the python "
    f"version, {URL}, into data.root (it makes {FOLDER}/)"
)
# mean and standard deviation of the training pixels per channel; the often-copied std
# (0.2023, 0.1994, 0.2010) is the mean of per-image stds, smaller than the pixels' std
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
SIDE = 32

# what the unpickler may rebuild: numpy arrays and their dtypes (old and new module paths), and
# bytes as Python 3 writes them at protocol 2 (_codecs.encode, allowed by torch's weights_only too)
_NUMPY_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict:
    """A CIFAR pickle as a dict with str keys (the official files, pickled by Python 2, have
    byte-string keys; a re-pickled copy may have str keys)."""
    try:
        with path.open("rb") as file:
            data = _NumpyOnlyUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"CIFAR-10 file '{path}' is not a readable CIFAR pickle: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"CIFAR-10 file '{path}' holds a {type(data).__name__}, expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N,3,32,32], labels int64 [N])`` of one batch file; anything else is
    one error naming the file, what was expected and what it holds."""
    data = read_pickle(path)
    pixels, labels = data.get("data"), data.get("labels")
    expected = "b'data' uint8 [N,3072] and N b'labels' in 0..9"
    if not isinstance(pixels, np.ndarray) or labels is None:
        raise ValueError(f"CIFAR-10 batch '{path}': expected {expected}; found keys {sorted(data)}")
    labels = np.asarray(labels)
    if (
        pixels.dtype != np.uint8
        or pixels.ndim != 2
        or pixels.shape[1] != 3 * SIDE * SIDE
        or labels.shape != (len(pixels),)
    ):
        raise ValueError(
            f"CIFAR-10 batch '{path}': expected {expected}; found {pixels.dtype} "
            f"{list(pixels.shape)} and {labels.size} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"CIFAR-10 batch '{path}': labels must be in 0..9, found {labels.min()}..{labels.max()}"
        )
    # each row: 1024 red, 1024 green, 1024 blue values, each plane row-major
    return pixels.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 from the official python pickles (module docstring: layout, splits).

    Args:
        root: the folder holding ``cifar-10-batches-py/``.
        val_fraction, split_seed: the validation share of the training set and which images.
        augment: random 32x32 crop after 4 pixels of zero padding + horizontal flip for
            training (the usual CIFAR augmentation, used by the RAN paper).
        image_size: side of the images the model sees; the 32x32 images (after the
            augmentation) are resized to it, bilinear. Networks whose deepest stage would be 1x1
            at 32 px (Inception-v1 with attention masks) train on upsampled CIFAR.
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.

    The folder, its files and the class names are checked here; the images are read on first
    use (``setup()``), once per official set.
    """

    mean = CIFAR10_MEAN
    std = CIFAR10_STD

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        augment: bool = True,
        image_size: int = SIDE,
        **kwargs,
    ) -> None:
        super().__init__(
            val_fraction,
            split_seed,
            crop_padding=4 if augment else 0,
            hflip=augment,
            resize_to=int(image_size),
            **kwargs,
        )
        self.image_size = int(image_size)
        self.folder = require_dir(Path(root) / FOLDER, "CIFAR-10 folder", LAYOUT)
        missing = [
            name
            for name in (*TRAIN_FILES, TEST_FILE, META_FILE)
            if not (self.folder / name).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 folder '{self.folder}' lacks {', '.join(missing)}; {LAYOUT}"
            )
        meta = read_pickle(self.folder / META_FILE)
        names = meta.get("label_names")
        if not isinstance(names, list) or len(names) != 10:
            raise ValueError(
                f"CIFAR-10 file '{self.folder / META_FILE}': expected b'label_names', a list of 10 "
                f"class names; found {type(names).__name__} {names!r:.80}"
            )
        self.class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        self.num_classes = 10

    def _read(self, official: str) -> tuple[Tensor, Tensor]:
        files = TRAIN_FILES if official == "train" else (TEST_FILE,)
        batches = [read_batch(self.folder / name) for name in files]
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        return torch.from_numpy(images), torch.from_numpy(labels)

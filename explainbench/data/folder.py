"""What every dataset read from files shares: image lists, the checks that fail early on a
missing file, split rules, and the collation that skips unreadable images.

A dataset module (:mod:`.imagenet`, :mod:`.cub`, :mod:`.an8flower_folder`, ...) only parses
its own on-disk layout into ``(path, label)`` lists; everything after that lives here:

* :func:`class_folders`, :func:`folder_samples` — ``root/<class>/<image>`` listings;
* :func:`require_dir`, :func:`require_file`, :func:`require_images` — one clear error naming
  the path and the expected layout, at construction or ``setup()``, not hours into a run;
* :func:`check_ratios`, :func:`check_val_fraction`, :func:`stratified_split` (and its
  vectorised :func:`stratified_split_index`), :func:`carve_val`, :func:`split_of` — the deterministic split rules
  of datasets without an official split;
* :class:`ImageListDataset`, :class:`Unreadable`, :func:`collate_skipping_none` — an
  unreadable image is logged, counted and left out of its batch, which names it under
  ``skipped`` (the ``Batch`` contract, ``docs/design.md``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate

from .base import SPLITS, Batch

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
# batch key of the files collate_skipping_none left out
SKIPPED_KEY = "skipped"


# -- image lists ---------------------------------------------------------------------------------
def class_folders(folder: Path) -> list[str]:
    """Sub-folder names in sorted order, whatever order the file system lists them in."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def folder_samples(folder: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """``(path, label)`` for ``folder/<class>/*`` with labels in the order of ``classes``."""
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for name in class_folders(folder):
        if name not in index:
            raise ValueError(
                f"Class folder '{folder / name}' is not one of the {len(classes)} known classes."
            )
        for entry in sorted(os.scandir(folder / name), key=lambda e: e.name):
            if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                samples.append((Path(entry.path), index[name]))
    return samples


# -- checks that fail at once ----------------------------------------------------------------------
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


# -- splits --------------------------------------------------------------------------------------
def check_ratios(ratios: Sequence[float], name: str = "data.split_ratios") -> list[float]:
    values = [float(r) for r in ratios]
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"{name} must be three non-negative train/val/test weights, got {values}")
    return values


def check_val_fraction(val_fraction: float) -> float:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    return float(val_fraction)


def hash_key(seed: int, key: str) -> bytes:
    """A stable digest of ``"<seed>:<key>"``: sha1, not Python's ``hash()``, which is salted
    per process, so a split is the same in every run and every DataLoader worker."""
    return hashlib.sha1(f"{seed}:{key}".encode()).digest()


def stratified_split_index(
    keys: Sequence[str], labels: Sequence[int] | np.ndarray, ratios: Sequence[float], seed: int = 0
) -> np.ndarray:
    """The split of every sample as an index into :data:`SPLITS` (0 train, 1 val, 2 test),
    decided per class.

    Within a class of ``n`` samples, the samples are ordered by ``sha1("<seed>:<key>")`` (key:
    e.g. the image's relative path) and cut at ``floor(n * c + 0.5)`` for the cumulative
    normalised ``ratios`` ``c``: the first part is train, the next val, the rest test. Every
    class with a sample and a positive train ratio keeps at least one training sample. The
    result does not depend on file-system or file order, and changing ``seed`` draws another
    split. Vectorised past the hashing: iNaturalist's 579k images take well under a second."""
    ratios = check_ratios(ratios, "split ratios")
    edges = np.cumsum(ratios) / sum(ratios)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    # the first 8 bytes of the digest order the samples as the whole digest does (a tie
    # needs a 64-bit collision, and then the file order decides, as a stable sort would)
    digest = np.fromiter(
        (int.from_bytes(hash_key(seed, key)[:8], "big") for key in keys),
        dtype=np.uint64,
        count=len(keys),
    )
    order = np.lexsort((digest, labels))
    sorted_labels = labels[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    _, inverse, counts = np.unique(sorted_labels, return_inverse=True, return_counts=True)
    n = counts[inverse]
    train_end, val_end = (np.floor(n * e + 0.5).astype(np.int64) for e in edges[:2])
    if ratios[0] > 0:
        val_end = np.where(train_end == 0, np.maximum(val_end, 1), val_end)
        train_end = np.maximum(train_end, 1)
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.where(rank < train_end, 0, np.where(rank < val_end, 1, 2))
    return out


def stratified_split(
    keys: Sequence[str], labels: Sequence[int] | np.ndarray, ratios: Sequence[float], seed: int = 0
) -> list[str]:
    """The split name (``"train"``/``"val"``/``"test"``) of every sample; the rule is
    :func:`stratified_split_index`'s."""
    return [SPLITS[i] for i in stratified_split_index(keys, labels, ratios, seed).tolist()]


def carve_val(labels: np.ndarray, ids: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the validation samples: ``val_fraction`` of each class's training samples,
    chosen by :func:`stratified_split_index` on the sample ids (image ids, row numbers; every
    class keeps at least one training sample)."""
    keys = [str(i) for i in np.asarray(ids).tolist()]
    ratios = (1.0 - val_fraction, val_fraction, 0.0)
    return stratified_split_index(keys, labels, ratios, seed) == SPLITS.index("val")


def split_of(key: str, ratios: Sequence[float], seed: int = 0) -> str:
    """``"train"``/``"val"``/``"test"`` for one sample key, on its own: the key's digest mapped
    to [0, 1) and compared with the cumulative ratios.

    Unlike :func:`stratified_split` it looks at no other sample, so adding images never moves
    the others (the shares per class are only close to the ratios)."""
    u = int.from_bytes(hash_key(seed, key)[:8], "big") / 2.0**64
    edges = np.cumsum(ratios) / np.sum(ratios)
    return SPLITS[min(int(np.searchsorted(edges, u, side="right")), len(SPLITS) - 1)]


# -- reading images, skipping unreadable ones ------------------------------------------------------
class Unreadable(NamedTuple):
    """What a dataset returns for a sample whose file could not be read: the file, so the
    batch can name it (a plain ``None`` is accepted too, unnamed)."""

    path: str


class ImageListDataset(Dataset):
    """Images from ``(path, label)`` pairs as ``Batch`` samples; unreadable files →
    :class:`Unreadable` (logged and counted in ``skipped``)."""

    def __init__(self, samples: Sequence[tuple[Path | str, int]], transform) -> None:
        # a Sequence is kept as it is: one that builds its pairs on access (iNaturalist's 579k
        # images) would cost memory in every DataLoader worker as a list of tuples
        self.samples = samples if isinstance(samples, Sequence) else list(samples)
        self.transform = transform
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Batch | Unreadable:
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                pixels = self.transform(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            return self.skip(path, err)
        return {"image": pixels, "label": torch.tensor(label), "index": torch.tensor(index)}

    def skip(self, path: Path | str, err: Exception, what: str = "image") -> Unreadable:
        """Log and count a sample whose ``what`` file (image, mask) could not be read."""
        self.skipped += 1
        log.warning(
            "Skipping unreadable %s %s (%s); %d skipped so far in this process.",
            what,
            path,
            err,
            self.skipped,
        )
        return Unreadable(str(path))


def collate_skipping_none(batch: list[Batch | Unreadable | None]) -> Batch:
    """Default collation without the samples a dataset could not read; ``"skipped"`` lists
    their files (``"<unnamed>"`` for a ``None``).

    The list travels inside the batch because collation runs in the DataLoader worker: a
    counter kept there would never reach the main process with ``num_workers > 0``."""
    kept = [sample for sample in batch if isinstance(sample, dict)]
    skipped = [
        getattr(sample, "path", "<unnamed>") for sample in batch if not isinstance(sample, dict)
    ]
    if kept:
        out = default_collate(kept)
    else:
        out = {
            "image": torch.empty(0, 3, 1, 1),
            "label": torch.empty(0, dtype=torch.long),
            "index": torch.empty(0, dtype=torch.long),
        }
    out[SKIPPED_KEY] = skipped
    return out

"""Any image-folder dataset with a class x attribute table, e.g. the EAT paper's Aircraft-17.

For the attribute datasets of Xu et al., "Where is the Model Looking At? Concentrate and
Explain the Network Attention" (EAT) that have no official format of their own
(``conf/data/aircraft17.yaml`` reads ``${paths.data_dir}/aircraft17``), and for your own
data (``conf/data/attribute_folder.yaml``). Layout under ``data.root``::

    root/
      images/<class>/<name>.jpg        one folder per class (.jpg, .jpeg or .png); the class
                                       index is the position of the folder name in sorted order
      attributes.csv                   the class x attribute table: a header row
                                       "class,<attribute 1>,...,<attribute A>", then one row
                                       per class folder "<class>,<v1>,...,<vA>" with values 0/1
                                       or floats in [0, 1]; row order does not matter
      masks/<class>/<name stem>.png    optional foreground masks (grey > 127 = object), one per
                                       image, same size as the image; if masks/ exists every
                                       image needs one and samples carry ``mask``
      splits/train.txt                 optional fixed split: one "<class>/<file name>" per line
      splits/test.txt                  (relative to images/; blank lines and lines starting
      splits/val.txt                   with "#" are ignored); val.txt is optional

Every class folder needs exactly one row in ``attributes.csv`` and every row a class folder;
a mismatch fails naming the classes on each side.

Attributes: every sample carries its class's row as ``attributes`` ``[A]`` float: with
``attribute_mode=binary`` (default) value >= ``attribute_threshold`` (0.5) becomes 1, else
0; with ``soft`` the values are used as written. ``annotations`` is ``{"attributes"}``, plus
``"mask"`` when ``masks/`` exists.

Splits: with ``splits/train.txt`` and ``splits/test.txt`` those lists are the splits (images
listed in neither are not used; an image listed twice is an error); validation is
``splits/val.txt`` if present, else a deterministic ``val_fraction`` of each class's listed
training images. Without ``splits/``, each class's images are ordered by
``sha1("<split_seed>:<class>/<file name>")`` and cut by ``split_ratios`` (default 0.7 / 0.1 /
0.2; :func:`.folder.stratified_split`), deterministic and independent of file order.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .attribute_common import AttributeDataModule, AttributeImageDataset, attribute_targets
from .base import SPLITS
from .folder import (
    check_ratios,
    check_val_fraction,
    class_folders,
    folder_samples,
    require_dir,
    require_file,
    require_images,
    stratified_split,
)

LAYOUT = (
    "expected root/images/<class>/*.jpg|png, root/attributes.csv (header 'class,<attribute>,...', "
    "one row per class), optional root/masks/<class>/<image stem>.png and "
    "root/splits/{train,test}.txt ('<class>/<file name>' lines)"
)


def read_attribute_table(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """``(class names, attribute names, [C, A] values)`` from a class x attribute CSV."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        names = [h.strip() for h in header[1:]]
        if not header or header[0].strip().lower() != "class" or not names:
            raise ValueError(
                f"{path}:1: expected the header 'class,<attribute 1>,...,<attribute A>', "
                f"got '{','.join(header)}'"
            )
        classes, rows = [], []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) != len(header):
                raise ValueError(f"{where}: {len(row)} columns, the header has {len(header)}")
            try:
                values = [float(cell) for cell in row[1:]]
            except ValueError as err:
                raise ValueError(f"{where}: attribute values must be numbers ({err})") from err
            if not all(0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"{where}: attribute values must be 0/1 or in [0, 1]")
            if row[0].strip() in classes:
                raise ValueError(f"{where}: class '{row[0].strip()}' has a second row")
            classes.append(row[0].strip())
            rows.append(values)
    return classes, names, np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def read_split_list(path: Path, known: dict[str, int]) -> list[int]:
    """Sample indices of the "<class>/<file name>" lines of a split file."""
    chosen = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        entry = line.strip().replace("\\", "/")
        if not entry or entry.startswith("#"):
            continue
        if entry not in known:
            raise ValueError(
                f"{path}:{number}: '{entry}' is not an image under "
                f"'{path.parent.parent / 'images'}' (lines are '<class>/<file name>')"
            )
        chosen.append(known[entry])
    return chosen


class AttributeFolderDataModule(AttributeDataModule):
    """Image folders + ``attributes.csv`` (module docstring: layout, attributes, splits).

    Args:
        root: the dataset folder.
        split_ratios: train/val/test weights per class, used without ``splits/``.
        val_fraction: share of each class's ``splits/train.txt`` images used for validation
            when there is no ``splits/val.txt``.
        **kwargs: preprocessing, attribute mode, ``split_seed`` and loader settings, see
            :class:`~explainbench.data.attribute_common.AttributeDataModule`.

    The constructor lists the class folders and reads the CSV; images are listed on the first
    ``setup()``.
    """

    def __init__(
        self,
        root: str,
        split_ratios: Sequence[float] = (0.7, 0.1, 0.2),
        val_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.split_ratios = check_ratios(split_ratios)
        self.val_fraction = check_val_fraction(val_fraction)

        self.root = require_dir(Path(root), "attribute-folder dataset root", LAYOUT)
        images = require_dir(self.root / "images", "image folder", LAYOUT)
        table = require_file(self.root / "attributes.csv", "class x attribute table", LAYOUT)
        self.class_names = class_folders(images)
        if not self.class_names:
            raise FileNotFoundError(f"no class folders in '{images}'; {LAYOUT}")
        rows, self.attribute_names, values = read_attribute_table(table)
        only_csv = sorted(set(rows) - set(self.class_names))
        only_folders = sorted(set(self.class_names) - set(rows))
        if only_csv or only_folders:
            raise ValueError(
                f"{table}: its classes do not match the class folders of '{images}': "
                f"rows without a folder: {only_csv}; folders without a row: {only_folders}. "
                "Give every folder under images/ exactly one row (first column = folder name)."
            )
        self.num_classes = len(self.class_names)
        order = [rows.index(name) for name in self.class_names]
        self.class_attributes = attribute_targets(
            values[order], self.attribute_mode, self.attribute_threshold
        )
        self.masks = self.root / "masks" if (self.root / "masks").is_dir() else None
        self.annotations = frozenset({"attributes"} | ({"mask"} if self.masks else set()))
        self._splits: dict[str, list[tuple[Path, int]]] | None = None

    def _split_samples(self) -> dict[str, list[tuple[Path, int]]]:
        if self._splits is not None:
            return self._splits
        samples = folder_samples(self.root / "images", self.class_names)
        if not samples:
            raise FileNotFoundError(f"no images under '{self.root / 'images'}'; {LAYOUT}")
        keys = [f"{path.parent.name}/{path.name}" for path, _ in samples]
        labels = [label for _, label in samples]
        folder = self.root / "splits"
        files = {split: folder / f"{split}.txt" for split in SPLITS}
        if folder.is_dir() and (files["train"].is_file() or files["test"].is_file()):
            for split in ("train", "test"):
                require_file(
                    files[split], "split list (splits/ needs train.txt and test.txt)", LAYOUT
                )
            known = {key: i for i, key in enumerate(keys)}
            chosen = {s: read_split_list(f, known) for s, f in files.items() if f.is_file()}
            if "val" not in chosen:
                train = chosen["train"]
                ratios = (1.0 - self.val_fraction, self.val_fraction, 0.0)
                where = stratified_split(
                    [keys[i] for i in train], [labels[i] for i in train], ratios, self.split_seed
                )
                chosen["train"] = [i for i, w in zip(train, where, strict=True) if w == "train"]
                chosen["val"] = [i for i, w in zip(train, where, strict=True) if w == "val"]
            seen: dict[int, str] = {}
            for split, indices in chosen.items():
                for i in indices:
                    if i in seen:
                        raise ValueError(
                            f"'{keys[i]}' is listed in splits/{seen[i]}.txt and "
                            f"splits/{split}.txt; give each image one split"
                        )
                    seen[i] = split
        else:
            where = stratified_split(keys, labels, self.split_ratios, self.split_seed)
            chosen = {s: [i for i, w in enumerate(where) if w == s] for s in SPLITS}
        self._splits = {s: [samples[i] for i in chosen[s]] for s in SPLITS}
        return self._splits

    def _make_dataset(self, split: str) -> AttributeImageDataset:
        samples = self._split_samples()[split]
        masks = None
        if self.masks is not None:
            masks = [self.masks / path.parent.name / f"{path.stem}.png" for path, _ in samples]
            require_images(masks, "masks", f"expected {self.masks}/<class>/<image stem>.png")
        transform = self.joint_transform(split)
        labels = torch.tensor([label for _, label in samples], dtype=torch.long)
        return AttributeImageDataset(samples, transform, self.class_attributes, labels, masks=masks)

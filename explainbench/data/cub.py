"""Caltech-UCSD Birds-200-2011 (CUB) with boxes, parts and attributes, in its official layout.

The fine-grained attribute dataset of the EAT paper (Xu et al., "Where is the Model Looking
At? Concentrate and Explain the Network Attention"). ``data.root`` is the unpacked
``CUB_200_2011/`` folder::

    CUB_200_2011/                                   <- data.root
      images.txt                "<image id> <relative path>", e.g.
                                "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
      images/<relative path>    the 11,788 images
      image_class_labels.txt    "<image id> <class id 1..200>"
      train_test_split.txt      "<image id> <1 = train | 0 = test>"
      classes.txt               "<class id> <class folder>", e.g. "1 001.Black_footed_Albatross"
      bounding_boxes.txt        "<image id> <x> <y> <width> <height>" (float pixels)
      parts/parts.txt           "<part id> <part name>" (15 parts)
      parts/part_locs.txt       "<image id> <part id> <x> <y> <visible>"
      attributes/class_attribute_labels_continuous.txt
                                200 rows (classes.txt order) x 312 columns (attributes.txt
                                order): % of workers who saw the attribute, 0..100
      attributes/image_attribute_labels.txt
                                "<image id> <attribute id> <is_present> <certainty id> <time>"
                                (read only with attribute_source=image)
      attributes/attributes.txt "<attribute id> <name>",
                                e.g. "1 has_bill_shape::curved_(up_or_down)"
    attributes.txt              the same file where the official archive puts it: one level
                                above CUB_200_2011/ (also accepted as CUB_200_2011/attributes.txt)
    segmentations/<relative path with .png>
                                optional masks (separate download), inside CUB_200_2011/ or
                                next to it; grey > 127 is the bird

Each sample: ``image``, ``label`` (class id - 1), ``bbox`` xyxy pixels, ``landmarks``
``[15, 3]`` (x, y, visible) in ``parts.txt`` order, ``attributes`` ``[312]`` float, ``index``,
and ``mask`` ``[1, H, W]`` when the segmentations folder exists. Boxes, landmarks and masks
go through the same resize/crop/flip as the image (:class:`.transforms.JointTransform`).

Attributes: by default the **class** vector, ``continuous / 100 >= attribute_threshold``
(0.5, i.e. at least half of the workers saw it; ``attribute_mode=soft`` keeps the fraction);
``attribute_source=image`` uses the image's own ``is_present`` labels instead (mean over
workers when several labelled it, then the same mode). ``attribute_names`` holds the raw
names, ``attribute_groups`` the ``(group, value)`` pairs EAT's sentences use, e.g.
``("bill shape", "curved (up or down)")``.

Splits: test is the official test split; val is a deterministic ``val_fraction`` of each
class's official training images (:func:`.folder.stratified_split` with
``split_seed``), train the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .attribute_common import AttributeDataModule, AttributeImageDataset, attribute_targets
from .folder import check_val_fraction, require_dir, require_file, require_images, stratified_split

LAYOUT = (
    "expected the official CUB_200_2011/ folder as data.root: images.txt, images/, "
    "image_class_labels.txt, train_test_split.txt, classes.txt, bounding_boxes.txt, "
    "parts/parts.txt, parts/part_locs.txt, attributes/class_attribute_labels_continuous.txt, "
    "and attributes.txt one level above it (or in attributes/)"
)
REQUIRED = (
    "images.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "classes.txt",
    "bounding_boxes.txt",
    "parts/parts.txt",
    "parts/part_locs.txt",
    "attributes/class_attribute_labels_continuous.txt",
)
ATTRIBUTE_SOURCES = ("class", "image")


# -- file readers --------------------------------------------------------------------------------
def read_pairs(path: Path, fmt: str) -> list[tuple[str, str]]:
    """ "<id> <text>" lines (the text may hold spaces)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{number}: expected '{fmt}', got '{line.strip()}'")
        rows.append((parts[0], parts[1].strip()))
    return rows


def read_numeric(path: Path, columns: int, fmt: str) -> np.ndarray:
    """The first ``columns`` numbers of every line, ``[rows, columns]`` float64.

    Extra columns are ignored: some lines of the official image_attribute_labels.txt carry
    more fields than its README says."""
    try:
        values = np.loadtxt(path, usecols=range(columns), ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: expected lines '{fmt}' ({err})") from err
    if values.shape[0] == 0:
        raise ValueError(f"{path} is empty; expected lines '{fmt}'")
    return values


def read_names(path: Path, what: str) -> list[str]:
    """ "<id> <name>" lines, in id order (ids must be 1..n)."""
    rows = read_pairs(path, f"<{what} id> <{what} name>")
    ids = [int(i) for i, _ in rows]
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise ValueError(f"{path}: {what} ids must be 1..{len(ids)} without gaps or repeats")
    names = dict(zip(ids, (name for _, name in rows), strict=True))
    return [names[i] for i in range(1, len(ids) + 1)]


def id_rows(ids: dict[int, int], image_ids: np.ndarray) -> np.ndarray:
    """Row in images.txt of each image id (-1 for an unknown id), vectorised because
    image_attribute_labels.txt has 3.7 million lines."""
    lookup = np.full(max(ids, default=0) + 1, -1, dtype=np.int64)
    lookup[list(ids)] = list(ids.values())
    image_ids = image_ids.astype(np.int64)
    known = (image_ids >= 0) & (image_ids < len(lookup))
    rows = np.full(len(image_ids), -1, dtype=np.int64)
    rows[known] = lookup[image_ids[known]]
    return rows


def per_image(path: Path, columns: int, fmt: str, ids: dict[int, int]) -> np.ndarray:
    """``[N, columns - 1]`` values of a "<image id> ..." file in images.txt row order; every
    image of images.txt must appear exactly once."""
    values = read_numeric(path, columns, fmt)
    rows = id_rows(ids, values[:, 0])
    if (rows < 0).any():
        raise ValueError(f"{path}: image id {int(values[rows < 0][0, 0])} is not in images.txt")
    if len(rows) != len(ids) or len(np.unique(rows)) != len(ids):
        raise ValueError(
            f"{path} has {len(rows)} lines for {len(np.unique(rows))} distinct images; expected "
            f"one line for each of the {len(ids)} images of images.txt ('{fmt}')"
        )
    out = np.empty((len(ids), columns - 1))
    out[rows] = values[:, 1:]
    return out


def pretty_class_name(folder: str) -> str:
    """``"001.Black_footed_Albatross"`` → ``"Black footed Albatross"``."""
    return re.sub(r"^\d+\.", "", folder).replace("_", " ").strip()


def attribute_group(name: str) -> tuple[str, str]:
    """``"has_bill_shape::curved_(up_or_down)"`` → ``("bill shape", "curved (up or down)")``."""
    group, _, value = name.partition("::")
    group = group.removeprefix("has_")
    return group.replace("_", " ").strip(), value.replace("_", " ").strip()


def find_attributes_file(root: Path) -> Path:
    candidates = [
        root.parent / "attributes.txt",
        root / "attributes" / "attributes.txt",
        root / "attributes.txt",
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "CUB attribute names: attributes.txt is missing; the official archive puts it one "
        f"level above CUB_200_2011/ at '{candidates[0]}'; also accepted: '{candidates[1]}', "
        f"'{candidates[2]}'"
    )


def find_segmentations(root: Path) -> Path | None:
    for path in (root / "segmentations", root.parent / "segmentations"):
        if path.is_dir():
            return path
    return None


class CUBDataModule(AttributeDataModule):
    """CUB-200-2011 for the EAT paper (module docstring: layout, attributes, splits).

    Args:
        root: the ``CUB_200_2011/`` folder.
        attribute_source: ``"class"`` (class vector, EAT) or ``"image"`` (per-image labels);
            ``attribute_mode="binary"`` makes a fraction >= ``attribute_threshold`` of the
            workers "present".
        val_fraction: share of each class's official training images used for validation.
        **kwargs: preprocessing, attribute mode, ``split_seed`` (which training images go to
            validation) and loader settings, see
            :class:`~explainbench.data.attribute_common.AttributeDataModule`.

    Reads only the small text files here (names, the 200 x 312 class table); the per-image
    files are parsed on the first ``setup()``.
    """

    def __init__(
        self,
        root: str,
        attribute_source: str = "class",
        val_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if attribute_source not in ATTRIBUTE_SOURCES:
            raise ValueError(
                f"unknown data.attribute_source {attribute_source!r}; choose 'class' (the "
                "class attribute vector) or 'image' (attributes/image_attribute_labels.txt)"
            )
        self.attribute_source = attribute_source
        self.val_fraction = check_val_fraction(val_fraction)

        self.root = require_dir(Path(root), "CUB-200-2011 root", LAYOUT)
        for name in REQUIRED:
            require_file(self.root / name, "CUB-200-2011 file", LAYOUT)
        if attribute_source == "image":
            require_file(
                self.root / "attributes/image_attribute_labels.txt",
                "CUB-200-2011 file (data.attribute_source=image)",
                LAYOUT,
            )
        self.attributes_file = find_attributes_file(self.root)

        self.class_folders = read_names(self.root / "classes.txt", "class")
        self.class_names = [pretty_class_name(c) for c in self.class_folders]
        self.num_classes = len(self.class_names)
        self.attribute_names = read_names(self.attributes_file, "attribute")
        self.attribute_groups = [attribute_group(n) for n in self.attribute_names]
        self.landmark_names = read_names(self.root / "parts/parts.txt", "part")
        self.class_attributes = attribute_targets(
            self._continuous_class_attributes(), self.attribute_mode, self.attribute_threshold
        )
        self.segmentations = find_segmentations(self.root)
        self.annotations = frozenset(
            {"bbox", "landmarks", "attributes"} | ({"mask"} if self.segmentations else set())
        )
        self._table: dict | None = None
        self._image_attributes: Tensor | None = None

    def _continuous_class_attributes(self) -> np.ndarray:
        path = self.root / "attributes/class_attribute_labels_continuous.txt"
        try:
            values = np.loadtxt(path, ndmin=2, dtype=np.float64)
        except ValueError as err:  # ragged rows or text: numpy's message names no file
            raise ValueError(f"{path}: expected rows of numbers 0..100 ({err})") from err
        expected = (self.num_classes, len(self.attribute_names))
        if values.shape != expected:
            raise ValueError(
                f"{path} has {values.shape[0]} rows x {values.shape[1]} columns; expected "
                f"{expected[0]} x {expected[1]}: one row per class of classes.txt (same order), "
                f"one column per attribute of {self.attributes_file}"
            )
        return values / 100.0  # the file holds percentages

    # -- per-image files, parsed once ----------------------------------------------------------
    def _images(self) -> dict:
        if self._table is not None:
            return self._table
        root = self.root
        rows = read_pairs(root / "images.txt", "<image id> <relative path>")
        ids = {int(i): row for row, (i, _) in enumerate(rows)}
        if len(ids) != len(rows):
            raise ValueError(f"{root / 'images.txt'} repeats image ids")
        label = per_image(root / "image_class_labels.txt", 2, "<image id> <class id>", ids)
        label = label[:, 0].astype(np.int64) - 1
        bad = np.flatnonzero((label < 0) | (label >= self.num_classes))
        if bad.size:
            raise ValueError(
                f"{root / 'image_class_labels.txt'}: class id {label[bad[0]] + 1} "
                f"is outside 1..{self.num_classes} (classes.txt)"
            )
        train = per_image(root / "train_test_split.txt", 2, "<image id> <1|0>", ids)[:, 0] == 1
        xywh = torch.from_numpy(
            per_image(root / "bounding_boxes.txt", 5, "<image id> <x> <y> <w> <h>", ids)
        ).float()
        self._table = {
            "ids": ids,
            "paths": [path for _, path in rows],
            "label": label,
            "train": train,
            "bbox": torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1),
            "landmarks": self._part_locs(ids),
        }
        return self._table

    def _part_locs(self, ids: dict[int, int]) -> Tensor:
        """``[N, parts, 3]`` (x, y, visible); parts an image does not list stay invisible."""
        path = self.root / "parts/part_locs.txt"
        values = read_numeric(path, 5, "<image id> <part id> <x> <y> <visible>")
        image = id_rows(ids, values[:, 0])
        part = values[:, 1].astype(np.int64) - 1
        parts = len(self.landmark_names)
        bad = (image < 0) | (part < 0) | (part >= parts)
        if bad.any():
            raise ValueError(
                f"{path}: image id {int(values[bad][0, 0])} / part id "
                f"{int(values[bad][0, 1])} is not in images.txt / 1..{parts} "
                "(parts/parts.txt)"
            )
        out = np.zeros((len(ids), parts, 3), dtype=np.float32)
        out[image, part, :2] = values[:, 2:4]
        out[image, part, 2] = values[:, 4] > 0
        return torch.from_numpy(out)

    def _per_image_attributes(self) -> Tensor:
        """``[N, A]`` from image_attribute_labels.txt: mean ``is_present`` over its lines."""
        if self._image_attributes is None:
            path = self.root / "attributes/image_attribute_labels.txt"
            ids = self._images()["ids"]
            values = read_numeric(path, 3, "<image id> <attribute id> <is_present> ...")
            image = id_rows(ids, values[:, 0])
            attribute = values[:, 1].astype(np.int64) - 1
            shape = (len(ids), len(self.attribute_names))
            if (image < 0).any() or (attribute < 0).any() or (attribute >= shape[1]).any():
                raise ValueError(
                    f"{path}: image or attribute ids outside images.txt / "
                    f"1..{shape[1]} ({self.attributes_file})"
                )
            total, count = np.zeros(shape), np.zeros(shape)
            np.add.at(total, (image, attribute), values[:, 2] > 0)
            np.add.at(count, (image, attribute), 1)
            mean = np.divide(total, count, out=np.zeros(shape), where=count > 0)
            self._image_attributes = attribute_targets(
                mean, self.attribute_mode, self.attribute_threshold
            )
        return self._image_attributes

    def _make_dataset(self, split: str) -> AttributeImageDataset:
        table = self._images()
        if split == "test":
            rows = np.flatnonzero(~table["train"])
        else:
            train = np.flatnonzero(table["train"])
            ratios = (1.0 - self.val_fraction, self.val_fraction, 0.0)
            where = stratified_split(
                [table["paths"][i] for i in train], table["label"][train], ratios, self.split_seed
            )
            rows = train[np.array([w == split for w in where], dtype=bool)]
        images = [self.root / "images" / table["paths"][i] for i in rows]
        require_images(images, "CUB images", LAYOUT)
        masks = None
        if self.segmentations is not None:
            masks = [self.segmentations / Path(table["paths"][i]).with_suffix(".png") for i in rows]
            require_images(
                masks,
                "CUB segmentation masks",
                f"expected {self.segmentations}/<relative path of the image>.png",
            )
        labels = table["label"][rows]
        if self.attribute_source == "class":
            attribute_table, attribute_rows = self.class_attributes, labels
        else:
            attribute_table, attribute_rows = self._per_image_attributes(), rows
        transform = self.joint_transform(split, self.landmark_names)
        index = torch.as_tensor(rows, dtype=torch.long)
        return AttributeImageDataset(
            list(zip(images, labels.tolist(), strict=True)),
            transform,
            attribute_table,
            attribute_rows,
            boxes=table["bbox"][index],
            landmarks=table["landmarks"][index],
            masks=masks,
        )

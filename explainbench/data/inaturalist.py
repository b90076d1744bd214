"""iNaturalist 2017 (5,089 species, 579,184 training images) in its official layout.

``data.root`` holds the unpacked archives::

    train_val_images/<super category>/<category>/<image>.jpg
    train2017.json, val2017.json    COCO style: "images" [{"id", "file_name" (relative to root,
                                    "train_val_images/..."), ...}], "annotations" [{"image_id",
                                    "category_id"}] (one per image), "categories" [{"id", "name",
                                    "supercategory"}]
    train_2017_bboxes.json,         optional, COCO style: "images" [{"id", "file_name"}],
    val_2017_bboxes.json            "annotations" [{"image_id", "bbox": [x, y, w, h]}]

Classes: the categories of ``train2017.json`` sorted by id (label = position; the official ids
are 0..5088). Splits: test is ``val2017.json`` (the paper tests on it; the test set's labels are
not public); val is a fixed ``val_fraction`` of each species' training images, chosen by
``sha1("<split_seed>:<image id>")`` (:func:`.folder.stratified_split_index`, CUB's rule:
independent of the file's order; every species keeps at least one training image); train is
the rest.

Boxes: when a box file exists every sample has ``bbox`` ``[4]`` xyxy in pixels of the transformed
image (as CUB): the box around all of the image's annotated instances, so a pointing-game hit
inside any instance counts. Images without a box get NaN, which the pointing game skips.

Speed: indexing reads the two JSON files once (``json.load`` is most of it, seconds for the
579k images; ``scripts/bench_data.py --inat`` measures it) into numpy arrays, with no per-image
file-system call; images are read when a batch needs them. The first image of each split is
checked, so a wrong root fails at once; an image missing later is skipped and counted like an
unreadable one (``data/skipped_images``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .annotated_images import AnnotatedImageDataset
from .folder import carve_val, check_val_fraction, require_dir, require_file
from .image_files import ImageFilesDataModule

LAYOUT = (
    "expected the iNaturalist 2017 layout in data.root: train_val_images/<super category>/"
    "<category>/*.jpg, train2017.json and val2017.json (COCO style: images, annotations with "
    "category_id, categories), optional train_2017_bboxes.json / val_2017_bboxes.json"
)
ANNOTATION_FILES = {"train": "train2017.json", "test": "val2017.json"}
BOX_FILES = {"train": "train_2017_bboxes.json", "test": "val_2017_bboxes.json"}
IMAGE_FOLDER = "train_val_images"


def read_json(path: Path, keys: tuple[str, ...]) -> dict:
    try:
        with path.open() as handle:
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {LAYOUT}") from err
    missing = [k for k in keys if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(f"{path} has no '{missing[0]}' list; {LAYOUT}")
    return data


def column(path: Path, records: list, section: str, key: str, dtype=np.int64) -> np.ndarray:
    """``records[i][key]`` for every record, as an array; a record without it names the file."""
    try:
        return np.array([record[key] for record in records], dtype=dtype)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: every entry of '{section}' needs a numeric '{key}' ({err!r}); {LAYOUT}"
        ) from err


def index_annotations(path: Path, category_ids: np.ndarray | None = None) -> dict:
    """``{"names", "labels", "ids", "categories"}`` of a train2017.json / val2017.json.

    ``category_ids`` (sorted) are the classes; ``None`` takes them from this file. Vectorised:
    579k images in about the time ``json.load`` takes."""
    data = read_json(path, ("images", "annotations", "categories"))
    if category_ids is None:
        categories = sorted(data["categories"], key=lambda c: c["id"])
        category_ids = column(path, categories, "categories", "id")
        names = [str(c.get("name", c["id"])) for c in categories]
    else:
        names = None
    images, annotations = data["images"], data["annotations"]
    ids = column(path, images, "images", "id")
    try:
        file_names = np.array([image["file_name"] for image in images], dtype=np.bytes_)
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: every entry of 'images' needs a 'file_name' ({err!r}); {LAYOUT}"
        ) from err
    image_of = column(path, annotations, "annotations", "image_id")
    category_of = column(path, annotations, "annotations", "category_id")
    order = np.argsort(ids)
    row = order[np.clip(np.searchsorted(ids, image_of, sorter=order), 0, max(len(ids) - 1, 0))]
    unknown = ids[row] != image_of if len(ids) else np.ones(len(image_of), bool)
    if unknown.any():
        raise ValueError(
            f"{path}: annotation for image_id {image_of[unknown][0]}, which is not in 'images'"
        )
    label = np.searchsorted(category_ids, category_of)
    bad = (label >= len(category_ids)) | (
        category_ids[np.minimum(label, len(category_ids) - 1)] != category_of
    )
    if bad.any():
        raise ValueError(
            f"{path}: category_id {category_of[bad][0]} is not in the categories of train2017.json"
        )
    labels = np.full(len(ids), -1, dtype=np.int64)
    labels[row] = label
    if (labels < 0).any():
        raise ValueError(
            f"{path}: image id {ids[labels < 0][0]} has no annotation (category_id); {LAYOUT}"
        )
    return {"names": file_names, "labels": labels, "ids": ids, "categories": (category_ids, names)}


def index_boxes(path: Path, file_names: np.ndarray) -> Tensor:
    """``[N, 4]`` xyxy: the box around each image's instances, NaN without one. Joined on the file
    name, so the box file may list its own subset of images with its own ids."""
    data = read_json(path, ("images", "annotations"))
    box_ids = column(path, data["images"], "images", "id")
    row_of_name = {name: i for i, name in enumerate(file_names.tolist())}
    try:
        rows = np.array(
            [row_of_name.get(image["file_name"].encode(), -1) for image in data["images"]],
            dtype=np.int64,
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: every entry of 'images' needs a 'file_name' ({err!r}); {LAYOUT}"
        ) from err
    annotations = [a for a in data["annotations"] if a.get("bbox") is not None]
    image_of = column(path, annotations, "annotations", "image_id")
    xywh = column(path, annotations, "annotations", "bbox", dtype=np.float64).reshape(-1, 4)
    order = np.argsort(box_ids)
    where = order[
        np.clip(np.searchsorted(box_ids, image_of, sorter=order), 0, max(len(box_ids) - 1, 0))
    ]
    known = (
        (box_ids[where] == image_of) & (rows[where] >= 0)
        if len(box_ids)
        else np.zeros(len(image_of), bool)
    )
    target = rows[where[known]]
    low = np.full((len(file_names), 2), np.inf)
    high = np.full((len(file_names), 2), -np.inf)
    np.minimum.at(low, target, xywh[known, :2])
    np.maximum.at(high, target, xywh[known, :2] + xywh[known, 2:])
    boxes = np.concatenate([low, high], axis=1)
    boxes[~np.isfinite(boxes).all(1)] = np.nan
    return torch.from_numpy(boxes).float()


class LazySamples(Sequence):
    """``(path, label)`` pairs built on access from compact arrays: a list of 579k tuples would
    cost memory in every DataLoader worker (reference counts touch every page)."""

    def __init__(self, root: str, names: np.ndarray, labels: np.ndarray) -> None:
        self.root, self.names, self.labels = root, names, labels

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return os.path.join(self.root, self.names[index].decode()), int(self.labels[index])


class INaturalistDataModule(ImageFilesDataModule):
    """iNaturalist 2017 (module docstring: layout, classes, splits, boxes).

    Args:
        root: the folder holding ``train_val_images/`` and the JSON files.
        image_size: side of the square crop (224 in the region-grouping paper).
        resize_size: shorter side before the crop (320 in the paper); ``None`` resizes straight to
            ``image_size`` square.
        val_fraction: share of each species' training images used for validation.
        split_seed: which training images those are.
        augment: random crop + horizontal flip for training (False: centre crop).
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.

    Indexes train2017.json here (the classes come from it); val2017.json on first use.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        resize_size: int | None = 320,
        val_fraction: float = 0.02,
        split_seed: int = 0,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(image_size=image_size, resize_size=resize_size, augment=augment, **kwargs)
        self.val_fraction, self.split_seed = check_val_fraction(val_fraction), split_seed
        self.root = require_dir(Path(root), "iNaturalist 2017 root", LAYOUT)
        require_dir(self.root / IMAGE_FOLDER, "iNaturalist 2017 image folder", LAYOUT)
        for name in ANNOTATION_FILES.values():
            require_file(self.root / name, "iNaturalist 2017 file", LAYOUT)
        self.box_files = {
            s: self.root / n for s, n in BOX_FILES.items() if (self.root / n).is_file()
        }
        self.annotations = frozenset({"bbox"} if self.box_files else set())
        self._index: dict[str, dict] = {
            "train": index_annotations(self.root / ANNOTATION_FILES["train"])
        }
        self.category_ids, self.class_names = self._index["train"]["categories"]
        self.num_classes = len(self.class_names)
        if self.num_classes == 0:
            raise ValueError(
                f"{self.root / ANNOTATION_FILES['train']} lists no categories; {LAYOUT}"
            )

    def _indexed(self, part: str) -> dict:
        """The index of ``"train"`` (train2017.json) or ``"test"`` (val2017.json), boxes included."""
        if part not in self._index:
            self._index[part] = index_annotations(
                self.root / ANNOTATION_FILES[part], self.category_ids
            )
        index = self._index[part]
        if self.box_files and "boxes" not in index:
            index["boxes"] = (
                index_boxes(self.box_files[part], index["names"])
                if part in self.box_files
                else torch.full((len(index["names"]), 4), math.nan)
            )
        return index

    def _make_dataset(self, split: str) -> AnnotatedImageDataset:
        index = self._indexed("test" if split == "test" else "train")
        if split == "test":
            rows = np.arange(len(index["labels"]))
        else:
            if "val" not in index:  # hashed once for the train and the val split
                index["val"] = carve_val(
                    index["labels"], index["ids"], self.val_fraction, self.split_seed
                )
            rows = np.flatnonzero(index["val"] if split == "val" else ~index["val"])
        samples = LazySamples(str(self.root), index["names"][rows], index["labels"][rows])
        if len(samples) and not os.path.isfile(samples[0][0]):
            raise FileNotFoundError(
                f"iNaturalist 2017 image '{samples[0][0]}' ({split} split) is missing; {LAYOUT}"
            )
        boxes = index["boxes"][torch.from_numpy(rows)] if "boxes" in index else None
        return AnnotatedImageDataset(samples, self.joint_transform(split), boxes=boxes)

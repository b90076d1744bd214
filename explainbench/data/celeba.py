"""CelebA faces with 40 attributes, 5 landmarks and (in-the-wild images) boxes, official layout.

``data.root`` is the folder torchvision's ``CelebA`` reads (``<root>/celeba/`` of torchvision's
``root`` argument; that parent is accepted too)::

    img_align_celeba/<image>            aligned and cropped faces, 178 x 218 (data.aligned=true)
    img_celeba/<image>                  the in-the-wild images (data.aligned=false)
    list_attr_celeba.txt                line 1: image count; line 2: the 40 attribute names;
                                        then "<image> <40 values of -1 | 1>"
    list_landmarks_align_celeba.txt     line 1: count; line 2: "lefteye_x lefteye_y ... rightmouth_y";
                                        then "<image> <10 integers>" (aligned images)
    list_landmarks_celeba.txt           the same for the in-the-wild images (data.aligned=false)
    list_bbox_celeba.txt                line 1: count; line 2: "image_id x_1 y_1 width height";
                                        then "<image> <x> <y> <w> <h>" (in-the-wild images only)
    list_eval_partition.txt             "<image> <0 = train | 1 = val | 2 = test>", no header
    identity_CelebA.txt                 optional, not read (identities are no target here)

Targets: ``target_attribute=null`` (default) learns all 40 attributes at once: ``label`` is float
``[40]`` of 0/1 (-1 → 0, as torchvision does) and the data module says ``multilabel = True``, so
the method trains per-attribute BCE and reports the mean per-attribute accuracy (the papers'
"average class accuracy"). ``target_attribute=Smiling`` learns that attribute alone: ``label``
long 0/1, two classes ``["not Smiling", "Smiling"]``.

Annotations: ``landmarks`` ``[5, 3]`` (x, y, visible) in pixels of the transformed image, in the
file's order (``landmark_names``: lefteye, righteye, nose, leftmouth, rightmouth); CelebA marks
every point, so visible is 1 unless the point left the crop. ``bbox`` ``[4]`` xyxy pixels only for
the in-the-wild images: the official boxes are drawn on those, and would be wrong on the aligned
crops (torchvision issue #9008).

Splits: ``list_eval_partition.txt`` (162,770 / 19,867 / 19,962), or a **landmark split** file
(``data.landmark_split=<file>``), e.g. the unaligned-image protocol of Hung et al. (SCOPS)
used by the region-grouping paper: 45,609 training / 5,379 regressor-fitting / 283 test images.
Its format is one ``"<image> <split>"`` line per image, ``<split>`` one of ``train``, ``val``
(the images a landmark regressor is fitted on) or ``test``; ``#`` starts a comment; images not
listed are left out (list only the faces that pass the protocol's face-size filter).
Preprocessing: a plain resize to ``image_size`` square (the paper: 256, no crop), a random
horizontal flip for training (``augment``), which swaps the left/right landmarks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .annotated_images import AnnotatedImageDataset
from .base import SPLITS
from .folder import require_dir, require_file
from .image_files import ImageFilesDataModule

LAYOUT = (
    "expected torchvision's CelebA layout in data.root: img_align_celeba/ (or img_celeba/ with "
    "data.aligned=false), list_attr_celeba.txt, list_landmarks_align_celeba.txt (or "
    "list_landmarks_celeba.txt), list_bbox_celeba.txt, list_eval_partition.txt"
)
ATTRIBUTES_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
BBOX_FILE = "list_bbox_celeba.txt"
# aligned -> (image folder, landmark file)
IMAGES = {
    True: ("img_align_celeba", "list_landmarks_align_celeba.txt"),
    False: ("img_celeba", "list_landmarks_celeba.txt"),
}
PARTITION_SPLITS = {"0": "train", "1": "val", "2": "test"}
LANDMARK_SPLIT_FORMAT = "'<image> <train|val|test>' lines (val: the landmark-regressor fit images)"


# -- file readers --------------------------------------------------------------------------------
def find_root(root: Path) -> Path:
    """``root`` itself, or ``root/celeba`` when given torchvision's ``root`` (its base folder)."""
    if not (root / ATTRIBUTES_FILE).is_file() and (root / "celeba" / ATTRIBUTES_FILE).is_file():
        return root / "celeba"
    return root


def read_table(
    path: Path, width: int, header: bool, fmt: str
) -> tuple[list[str], list[str], np.ndarray]:
    """``(column names, image names, [N, width] int64 values)`` of an official CelebA list file.

    With ``header``: line 1 is the image count (checked: a cut-off download fails here), line 2
    the column names (a leading ``image_id`` is dropped)."""
    lines = path.read_text().splitlines()
    names: list[str] = []
    start = 0
    if header:
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise ValueError(
                f"{path}: expected line 1 = the number of images and line 2 = column names, then {fmt}"
            )
        count = int(lines[0])
        names = lines[1].split()
        if len(names) == width + 1:
            names = names[1:]
        if len(names) != width:
            raise ValueError(
                f"{path}:2: expected {width} column names, got {len(lines[1].split())}; then {fmt}"
            )
        start = 2
    files, values = [], []
    for number, line in enumerate(lines[start:], start=start + 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != width + 1:
            raise ValueError(f"{path}:{number}: expected {fmt}, got '{line.strip()}'")
        files.append(parts[0])
        values.append(parts[1:])
    try:
        table = np.array(values, dtype=np.int64).reshape(len(values), width)
    except ValueError as err:
        raise ValueError(f"{path}: expected {fmt} with integer values ({err})") from err
    if header and count != len(files):
        raise ValueError(
            f"{path}: line 1 says {count} images but {len(files)} are listed (cut-off file?)"
        )
    if not files:
        raise ValueError(f"{path} lists no images; expected {fmt}")
    return names, files, table


def rows_of(files: Sequence[str], order: dict[str, int], path: Path, reference: str) -> np.ndarray:
    """Row of each of ``order``'s images in a file listing ``files`` (every image must be there)."""
    if list(files) == list(order):  # the official files share one order: skip the lookups
        return np.arange(len(files))
    where = {name: i for i, name in enumerate(files)}
    missing = [name for name in order if name not in where]
    if missing:
        raise ValueError(
            f"{path} has no line for {len(missing)} images of {reference}, e.g. '{missing[0]}'"
        )
    return np.array([where[name] for name in order], dtype=np.int64)


def read_split_file(path: Path, known: dict[str, int]) -> dict[str, np.ndarray]:
    """Rows (into ``known``) of each split of a ``"<image> <train|val|test>"`` file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"CelebA landmark split file '{path}' (data.landmark_split) does not exist; expected {LANDMARK_SPLIT_FORMAT}"
        )
    rows: dict[str, list[int]] = {split: [] for split in SPLITS}
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in rows:
            raise ValueError(
                f"{path}:{number}: expected {LANDMARK_SPLIT_FORMAT}, got '{line.strip()}'"
            )
        if parts[0] not in known:
            raise ValueError(f"{path}:{number}: image '{parts[0]}' is not in {ATTRIBUTES_FILE}")
        if parts[0] in seen:
            raise ValueError(f"{path}:{number}: image '{parts[0]}' is listed twice")
        seen.add(parts[0])
        rows[parts[1]].append(known[parts[0]])
    empty = [split for split, r in rows.items() if not r]
    if empty:
        raise ValueError(
            f"{path} lists no {' / '.join(empty)} images; expected {LANDMARK_SPLIT_FORMAT}"
        )
    return {split: np.array(r, dtype=np.int64) for split, r in rows.items()}


class CelebADataModule(ImageFilesDataModule):
    """CelebA (module docstring: layout, targets, annotations, splits).

    Args:
        root: the folder holding the list files and image folders.
        target_attribute: ``None`` for the 40-attribute multi-label target, or one attribute name
            (e.g. ``"Smiling"``) for binary classification.
        aligned: ``True``: ``img_align_celeba/`` + aligned landmarks; ``False``: ``img_celeba/``,
            its landmarks and boxes.
        landmark_split: a ``"<image> <train|val|test>"`` file replacing ``list_eval_partition.txt``.
        image_size: side of the square the model sees (256, as the region-grouping paper).
        resize_size: ``None`` (default): a plain resize to ``image_size`` square, no crop (the
            paper); a size: shorter side first, then an ``image_size`` crop.
        augment: random horizontal flip (and crop, with ``resize_size``) of training images.
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.

    Reads only line 2 of the attribute file here (names); the tables are parsed on first use.
    """

    landmark_names = ["lefteye", "righteye", "nose", "leftmouth", "rightmouth"]

    def __init__(
        self,
        root: str,
        target_attribute: str | None = None,
        aligned: bool = True,
        landmark_split: str | None = None,
        image_size: int = 256,
        resize_size: int | None = None,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(image_size=image_size, resize_size=resize_size, augment=augment, **kwargs)
        self.aligned = bool(aligned)
        self.root = find_root(require_dir(Path(root), "CelebA root", LAYOUT))
        folder, landmark_file = IMAGES[self.aligned]
        self.image_dir = require_dir(self.root / folder, "CelebA image folder", LAYOUT)
        self.files = {
            "attributes": require_file(self.root / ATTRIBUTES_FILE, "CelebA file", LAYOUT),
            "landmarks": require_file(self.root / landmark_file, "CelebA file", LAYOUT),
        }
        if landmark_split is None:
            self.files["partition"] = require_file(
                self.root / PARTITION_FILE, "CelebA file", LAYOUT
            )
        if not self.aligned:
            self.files["bbox"] = require_file(
                self.root / BBOX_FILE, "CelebA file (data.aligned=false)", LAYOUT
            )
        self.landmark_split = Path(landmark_split) if landmark_split else None
        self.attribute_list = self._attribute_header()
        self.target_attribute = target_attribute
        if target_attribute is None:
            self.multilabel = True
            self.class_names = list(self.attribute_list)
        else:
            if target_attribute not in self.attribute_list:
                raise ValueError(
                    f"data.target_attribute={target_attribute!r} is not a CelebA attribute; choose one of "
                    f"{', '.join(self.attribute_list)} (or null for all 40)"
                )
            self.class_names = [f"not {target_attribute}", target_attribute]
        self.num_classes = len(self.class_names)
        self.annotations = frozenset({"landmarks"} | (set() if self.aligned else {"bbox"}))
        self._table: dict | None = None

    def _attribute_header(self) -> list[str]:
        path = self.files["attributes"]
        with path.open() as handle:
            count, names = handle.readline(), handle.readline().split()
        if not count.strip().isdigit() or len(names) != 40:
            raise ValueError(
                f"{path}: expected line 1 = the number of images, line 2 = the 40 attribute names "
                f"(got {len(names)}), then '<image> <40 values of -1|1>'"
            )
        return names

    def _tables(self) -> dict:
        """Targets, landmarks, boxes in attribute-file order and the rows of each split."""
        if self._table is not None:
            return self._table
        files = self.files
        _, images, attributes = read_table(
            files["attributes"], 40, True, "'<image> <40 values of -1|1>'"
        )
        if not np.isin(attributes, (-1, 1)).all():
            raise ValueError(f"{files['attributes']}: attribute values must be -1 or 1")
        order = {name: i for i, name in enumerate(images)}
        names, lm_images, points = read_table(
            files["landmarks"], 10, True, "'<image> <10 integers: x y of 5 landmarks>'"
        )
        points = points[rows_of(lm_images, order, files["landmarks"], ATTRIBUTES_FILE)]
        landmarks = np.ones((len(images), 5, 3), dtype=np.float32)  # visible: CelebA marks all five
        landmarks[:, :, :2] = points.reshape(-1, 5, 2)
        table = {
            "images": images,
            "attributes": (attributes > 0),
            "landmarks": torch.from_numpy(landmarks),
        }
        if "bbox" in files:
            _, box_images, xywh = read_table(
                files["bbox"], 4, True, "'<image> <x> <y> <width> <height>'"
            )
            xywh = torch.from_numpy(
                xywh[rows_of(box_images, order, files["bbox"], ATTRIBUTES_FILE)]
            ).float()
            table["bbox"] = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        if self.landmark_split is not None:
            table["splits"] = read_split_file(self.landmark_split, order)
        else:
            _, part_images, part = read_table(files["partition"], 1, False, "'<image> <0|1|2>'")
            if not np.isin(part, (0, 1, 2)).all():
                raise ValueError(
                    f"{files['partition']}: the partition must be 0 (train), 1 (val) or 2 (test)"
                )
            part = part[rows_of(part_images, order, files["partition"], ATTRIBUTES_FILE), 0]
            table["splits"] = {split: np.flatnonzero(part == k) for k, split in enumerate(SPLITS)}
        self._table = table
        return table

    def _targets(self, rows: np.ndarray) -> Tensor:
        present = torch.from_numpy(self._tables()["attributes"][rows])
        if self.target_attribute is None:
            return present.float()
        return present[:, self.attribute_list.index(self.target_attribute)].long()

    def _make_dataset(self, split: str) -> AnnotatedImageDataset:
        table = self._tables()
        rows = table["splits"][split]
        names = [table["images"][i] for i in rows]
        # one directory listing instead of 200k stat calls; fails now, not hours into a run
        present = set(os.listdir(self.image_dir))
        missing = [name for name in names if name not in present]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(names)} CelebA {split} images are missing from "
                f"'{self.image_dir}', e.g. '{missing[0]}'; {LAYOUT}"
            )
        index = torch.from_numpy(rows)
        return AnnotatedImageDataset(
            [(self.image_dir / name, 0) for name in names],
            self.joint_transform(split, self.landmark_names),
            targets=self._targets(rows),
            boxes=table["bbox"][index] if "bbox" in table else None,
            landmarks=table["landmarks"][index],
        )

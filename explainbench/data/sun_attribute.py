"""SUN Attribute (Patterson & Hays) scene images with 102 attributes, in its official layout.

The scene attribute dataset of the EAT paper (Xu et al., "Where is the Model Looking At?
Concentrate and Explain the Network Attention"). ``data.root`` holds the contents of the
official ``SUNAttributeDB.tar.gz`` (the ``.mat`` files, also accepted inside a
``SUNAttributeDB/`` sub-folder, as the archive unpacks) and ``SUNAttributeDB_Images.tar.gz``
(``images/``)::

    root/
      images.mat                       variable "images": cell array (N x 1) of relative
                                       image paths, e.g. "a/abbey/sun_aaaulhwrhqgejnyt.jpg"
      attributeLabels_continuous.mat   variable "labels_cv": N x 102 doubles in [0, 1] (the
                                       share of the 3 workers who saw the attribute), rows
                                       in images.mat order
      attributes.mat                   variable "attributes": cell array of the 102 names
      images/<relative path>           the 14,340 images

Classes: the 717 scene categories come from the image paths: the folders without the
leading one-letter folder, nested ones joined by a space ("a/abbey/x.jpg" → "abbey",
"a/apartment_building/outdoor/x.jpg" → "apartment_building outdoor"); the class index is the
position in the sorted class names.

Attributes: each class's vector is the mean of ``labels_cv`` over its images, then
``>= attribute_threshold`` (``attribute_mode=binary``, default 0.5) or kept as it is
(``soft``). Every sample carries its class's vector (``attributes`` ``[102]``); the dataset
has no boxes, parts or masks, so ``annotations`` is ``{"attributes"}``.

Split: the SUN Attribute benchmark has **no official train/val/test split**. Here each class's
images are ordered by ``sha1("<split_seed>:<relative path>")`` and cut by ``split_ratios``
(default 0.7 / 0.1 / 0.2; :func:`.folder.stratified_split`), so the split is
stratified, deterministic and independent of file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io
import torch

from .attribute_common import AttributeDataModule, AttributeImageDataset, attribute_targets
from .folder import check_ratios, require_dir, require_images, stratified_split

MAT_FILES = {
    "images.mat": "images",
    "attributeLabels_continuous.mat": "labels_cv",
    "attributes.mat": "attributes",
}
LAYOUT = (
    "expected data.root to hold images.mat (variable 'images'), attributeLabels_continuous.mat "
    "('labels_cv'), attributes.mat ('attributes') from SUNAttributeDB.tar.gz (directly or in "
    "SUNAttributeDB/), and images/<relative path> from SUNAttributeDB_Images.tar.gz"
)


def mat_strings(value) -> list[str]:
    """Flatten what ``scipy.io.loadmat`` makes of a cell array of strings (object arrays of
    1-element string arrays, N x 1 or 1 x N) into a list of ``str``, in MATLAB order."""
    if isinstance(value, str):
        return [value]
    array = np.asarray(value)
    if array.dtype.kind in "US":
        return [str(s) for s in array.ravel(order="F")]
    if array.dtype == object:
        return [s for item in array.ravel(order="F") for s in mat_strings(item)]
    raise TypeError(f"expected strings in a cell array, got an array of {array.dtype}")


def load_mat(path: Path, variable: str):
    try:
        data = scipy.io.loadmat(str(path), variable_names=[variable])
    except (OSError, ValueError) as err:
        raise ValueError(
            f"SUN Attribute file '{path}' could not be read as a .mat file: {err}"
        ) from err
    if variable not in data:
        raise ValueError(f"SUN Attribute file '{path}' has no variable '{variable}'; {LAYOUT}")
    return data[variable]


def scene_class(path: str) -> str:
    """``"a/apartment_building/outdoor/sun_x.jpg"`` → ``"apartment_building outdoor"``."""
    folders = PurePosixPath(path.replace("\\", "/")).parts[:-1]
    # the archive groups scenes under their first letter; that folder is not part of the name
    if folders and len(folders[0]) == 1:
        folders = folders[1:]
    if not folders:
        raise ValueError(f"image path '{path}' names no scene folder (expected 'a/abbey/x.jpg')")
    return " ".join(folders)


def find_mat_folder(root: Path) -> Path:
    for folder in (root, root / "SUNAttributeDB"):
        if all((folder / name).is_file() for name in MAT_FILES):
            return folder
    missing = [name for name in MAT_FILES if not (root / name).is_file()]
    raise FileNotFoundError(
        f"SUN Attribute: {', '.join(missing)} missing in '{root}' (and not all in "
        f"'{root / 'SUNAttributeDB'}'); {LAYOUT}"
    )


class SUNAttributeDataModule(AttributeDataModule):
    """SUN Attribute for the EAT paper (module docstring: layout, classes, split).

    Args:
        root: the folder with the three ``.mat`` files and ``images/``.
        split_ratios: train/val/test weights per class (0.7, 0.1, 0.2).
        **kwargs: preprocessing, attribute mode (``binary``: class mean >=
            ``attribute_threshold`` → 1), ``split_seed`` and loader settings, see
            :class:`~explainbench.data.attribute_common.AttributeDataModule`.

    The constructor reads the ``.mat`` files (about 12 MB; the class names and attribute
    table are needed before ``setup()``), never the images.
    """

    annotations = frozenset({"attributes"})

    def __init__(
        self, root: str, split_ratios: Sequence[float] = (0.7, 0.1, 0.2), **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.split_ratios = check_ratios(split_ratios)

        self.root = require_dir(Path(root), "SUN Attribute root", LAYOUT)
        folder = find_mat_folder(self.root)
        self.paths = [s.strip() for s in mat_strings(load_mat(folder / "images.mat", "images"))]
        self.attribute_names = [
            s.strip() for s in mat_strings(load_mat(folder / "attributes.mat", "attributes"))
        ]
        labels_file = folder / "attributeLabels_continuous.mat"
        values = np.asarray(load_mat(labels_file, "labels_cv"), dtype=np.float64)
        expected = (len(self.paths), len(self.attribute_names))
        if values.shape != expected:
            raise ValueError(
                f"{labels_file}: labels_cv is {values.shape[0]} x {values.shape[1]}; expected "
                f"{expected[0]} x {expected[1]}: one row per image of images.mat (same order), "
                "one column per name in attributes.mat"
            )
        if not self.paths:
            raise ValueError(f"{folder / 'images.mat'} lists no images; {LAYOUT}")
        self.image_attributes = values

        scenes = [scene_class(p) for p in self.paths]
        self.class_names = sorted(set(scenes))
        self.num_classes = len(self.class_names)
        index = {name: i for i, name in enumerate(self.class_names)}
        self.labels = np.array([index[s] for s in scenes], dtype=np.int64)
        # per-class mean of the image attributes, then the attribute mode
        totals = np.zeros((self.num_classes, values.shape[1]))
        np.add.at(totals, self.labels, values)
        counts = np.bincount(self.labels, minlength=self.num_classes)[:, None]
        self.class_attributes = attribute_targets(
            totals / counts, self.attribute_mode, self.attribute_threshold
        )

    def _make_dataset(self, split: str) -> AttributeImageDataset:
        where = stratified_split(self.paths, self.labels, self.split_ratios, self.split_seed)
        rows = [i for i, w in enumerate(where) if w == split]
        images = [self.root / "images" / self.paths[i] for i in rows]
        require_images(images, "SUN Attribute images", LAYOUT)
        labels = self.labels[rows]
        transform = self.joint_transform(split)
        return AttributeImageDataset(
            list(zip(images, labels.tolist(), strict=True)),
            transform,
            self.class_attributes,
            torch.as_tensor(labels),
        )

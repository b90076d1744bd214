"""an8Flower read from its original on-disk folder layout.

The dataset of Oramas, Wang & Tuytelaars, "Visual Explanation by Interpretation: Improving
Visual Feedback Capabilities of Deep Neural Networks" (ICLR 2019), as distributed::

    <root>/an8Flower_single_6c/<class>/<name>.png          images, one folder per class
    <root>/an8Flower_single_6c/<class>_MASK/<name>.png     the discriminative part (white)
    <root>/an8Flower_double_12c/...                        the same for double-12c

A mask has the same file name as its image; it becomes ``part_mask``. Class folders are
the sub-folders without the ``_MASK`` suffix, in sorted order unless ``classes`` gives the
order. Images may also be ``.jpg``/``.jpeg`` (masks are looked up by stem, any of those
extensions).

Split (there is no official one): each image goes to train/val/test by a hash of
``"<split_seed>:<class>/<file name>"`` against the cumulative ``split_ratios``
(:func:`.folder.split_of`), so the split is deterministic, independent of file-system order,
and adding images never moves the others. :func:`export_an8flower` writes generated flowers
in this layout (``scripts/export_an8flower.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD
from .an8flower_render import FlowerRenderer, check_variant, class_names, num_classes
from .base import Batch, ExplainDataModule
from .folder import IMAGE_EXTENSIONS, check_ratios, split_of
from .transforms import read_mask

FOLDERS = {"single6c": "an8Flower_single_6c", "double12c": "an8Flower_double_12c"}
MASK_SUFFIX = "_MASK"


def expected_layout(root: str | Path, variant: str) -> str:
    folder = Path(root) / FOLDERS[variant]
    return (
        f"expected layout: {folder}/<class>/<name>.png with masks in "
        f"{folder}/<class>{MASK_SUFFIX}/<name>.png ({num_classes(variant)} class folders); "
        "set data.root, or write generated data there with "
        f"`python scripts/export_an8flower.py --out {root} --variant {variant}`"
    )


def scan_folder(
    root: str | Path, variant: str, classes: Sequence[str] | None = None
) -> tuple[list[str], list[tuple[Path, Path, int]]]:
    """Class folder names (label order) and ``(image, mask, label)`` for every image.

    Raises ``FileNotFoundError`` naming the path and the expected layout when the variant
    folder, a class folder or a mask is missing."""
    folder = Path(root) / FOLDERS[check_variant(variant)]
    if not folder.is_dir():
        raise FileNotFoundError(
            f"an8Flower folder not found: {folder}; {expected_layout(root, variant)}"
        )
    found = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.endswith(MASK_SUFFIX)
    )
    names = list(classes) if classes is not None else found
    missing = [c for c in names if c not in found]
    if missing or len(names) != num_classes(variant):
        raise FileNotFoundError(
            f"{folder} has class folders {found}, needs {num_classes(variant)}"
            + (f" (missing {missing})" if missing else "")
            + f"; {expected_layout(root, variant)}"
        )
    samples = []
    for label, name in enumerate(names):
        mask_dir = folder / f"{name}{MASK_SUFFIX}"
        masks = (
            {p.stem: p for p in mask_dir.glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS}
            if mask_dir.is_dir()
            else {}
        )
        for image in sorted(
            p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
        ):
            if image.stem not in masks:
                raise FileNotFoundError(
                    f"no mask for {image}: looked for {mask_dir / image.name}; "
                    + expected_layout(root, variant)
                )
            samples.append((image, masks[image.stem], label))
    if not samples:
        raise FileNotFoundError(f"no images under {folder}; {expected_layout(root, variant)}")
    return names, samples


class An8FlowerFolder(Dataset):
    """Samples ``(image, part_mask)`` from a list of ``(image path, mask path, label)``.

    ``image_size`` resizes both (bilinear with antialiasing for the image, nearest for the
    mask, via ``torchvision.transforms.v2`` and ``tv_tensors``), ``hflip`` flips both."""

    def __init__(
        self,
        samples: Sequence[tuple[Path, Path, int]],
        image_size: int | None = 64,
        hflip: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.samples = list(samples)
        steps: list = []
        if image_size is not None:
            steps.append(v2.Resize((image_size, image_size), antialias=True))
        if hflip:
            steps.append(v2.RandomHorizontalFlip(0.5))
        # ToDtype with a single dtype converts images only; masks stay integer until below
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Batch:
        image_path, mask_path, label = self.samples[i]
        with Image.open(image_path) as im:
            image = tv_tensors.Image(torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1))
        # any bright pixel is part; masks may be saved as RGB or grey
        mask = tv_tensors.Mask(read_mask(mask_path))
        image, mask = self.transform(image, mask)
        return {
            "image": image.as_subclass(Tensor),
            "label": torch.tensor(label, dtype=torch.long),
            "part_mask": mask.as_subclass(Tensor).float(),
            "index": torch.tensor(i, dtype=torch.long),
        }


class An8FlowerFolderDataModule(ExplainDataModule):
    """an8Flower from ``<root>/an8Flower_single_6c`` or ``_double_12c`` (module docstring has
    the layout and the split rule). ``conf/data/an8flower_folder.yaml``.

    Args:
        root: the folder holding ``an8Flower_single_6c`` / ``an8Flower_double_12c``.
        variant: ``"single6c"`` or ``"double12c"``.
        image_size: resize images and masks to this square size (``None``: keep the files'
            size, which must then be equal across images for batching).
        split_ratios: train/val/test proportions.
        split_seed: changes which images go to which split.
        classes: class folder names in label order (default: sorted folder names).
        hflip: random horizontal flip of training images.
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.

    ``num_classes`` is known from the variant; the folder is scanned on first use of
    ``class_names`` or on ``setup()``, which is where a missing folder is reported.
    """

    annotations = frozenset({"part_mask"})

    def __init__(
        self,
        root: str | None,
        variant: str = "single6c",
        image_size: int | None = 64,
        split_ratios: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
        classes: Sequence[str] | None = None,
        hflip: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.variant = check_variant(variant)
        if root is None or str(root) == "":
            raise ValueError(f"data.root is not set; {expected_layout('<root>', variant)}")
        self.root = Path(root)
        self.image_size = image_size
        self.split_ratios = check_ratios(split_ratios)
        self.split_seed = split_seed
        self.classes = list(classes) if classes is not None else None
        self.hflip = hflip
        self.num_classes = num_classes(variant)
        self._scan: tuple[list[str], list[tuple[Path, Path, int]]] | None = None

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        return self._scanned()[0]

    def _scanned(self) -> tuple[list[str], list[tuple[Path, Path, int]]]:
        if self._scan is None:
            self._scan = scan_folder(self.root, self.variant, self.classes)
        return self._scan

    def _make_dataset(self, split: str) -> An8FlowerFolder:
        names, samples = self._scanned()
        chosen = [
            s
            for s in samples
            if split_of(f"{names[s[2]]}/{s[0].name}", self.split_ratios, self.split_seed) == split
        ]
        return An8FlowerFolder(
            chosen, self.image_size, self.hflip and split == "train", self.mean, self.std
        )


def folder_class_name(name: str) -> str:
    """File-system-safe class folder name: ``"centre: red"`` → ``"centre_red"``."""
    return name.replace(": ", "_").replace(" ", "_")


def export_an8flower(
    out: str | Path,
    variant: str = "single6c",
    image_size: int = 64,
    count: int = 600,
    seed: int = 0,
    split: str = "train",
    chunk: int = 500,
) -> Path:
    """Write ``count`` generated images (indices ``0..count-1`` of ``split``) in the original
    layout under ``out``, with ``part_mask`` as the ``_MASK`` images; returns the variant
    folder. Class folders are :func:`folder_class_name` of the class names; pass
    ``classes=[folder_class_name(c) for c in class_names(variant)]`` to the DataModule to
    get the generator's label order back (sorted folder names differ)."""
    folder = Path(out) / FOLDERS[check_variant(variant)]
    names = [folder_class_name(c) for c in class_names(variant)]
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / f"{name}{MASK_SUFFIX}").mkdir(parents=True, exist_ok=True)
    renderer = FlowerRenderer(seed, variant, image_size)
    for start in range(0, count, chunk):
        batch = renderer.render(split, np.arange(start, min(start + chunk, count)))
        for image, part_mask, label, index in zip(
            batch.image, batch.part_mask, batch.label, batch.index, strict=True
        ):
            file = f"{split}_{index:06d}.png"
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / names[label] / file)
            Image.fromarray(part_mask.astype(np.uint8) * 255).save(
                folder / f"{names[label]}{MASK_SUFFIX}" / file
            )
    return folder

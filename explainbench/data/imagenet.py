"""ImageNet (ILSVRC-2012) in its official on-disk layouts.

Read from ``root``::

    root/train/<wnid>/*.JPEG            ImageFolder layout (class index = sorted wnid)
    root/val/<wnid>/*.JPEG              the same for the validation set, or
    root/ILSVRC2012_img_val/*.JPEG      the flat validation folder, with
    <val_list>                          lines "<file name> <label>", e.g. the L-CAM paper's
                                        fixed 2000-image evaluation subset
    root/synset_words.txt or root/LOC_synset_mapping.txt   optional "<wnid> <names>" lines,
                                        in sorted wnid order (as distributed)

Preprocessing follows the L-CAM paper (Gkartzonika et al.): shorter side 256, then a random
224 crop + horizontal flip for training and the centre 224 crop for evaluation.

An unreadable image inside a long run is logged, skipped and counted (``dataset.skipped``)
instead of ending the run; missing folders, list files or listed images fail at once. The
batch lists the skipped files (``batch["skipped"]``, see
:func:`~explainbench.data.folder.collate_skipping_none`), so the
run counts them in ``metrics.json`` and stops on a split where none is readable
(:class:`~explainbench.callbacks.skipped_images.SkippedImages`).
"""

from __future__ import annotations

from pathlib import Path

from torchvision import transforms as T

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD
from .base import ExplainDataModule
from .folder import ImageListDataset, class_folders, collate_skipping_none, folder_samples

SYNSET_FILES = ("synset_words.txt", "LOC_synset_mapping.txt")
LAYOUT = (
    "expected root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG (ImageFolder layout), or "
    "root/ILSVRC2012_img_val/*.JPEG with data.val_list=<file of '<file name> <label>' lines>"
)


def read_synsets(root: Path) -> tuple[list[str], list[str]] | None:
    """``(wnids, names)`` from synset_words.txt / LOC_synset_mapping.txt, or None if absent.

    The file names the classes; it does not choose their order. The class index is the
    sorted wnid, as in ImageFolder, torchvision's pretrained weights and the official
    validation labels (both official files are sorted). A file in another order is refused,
    not sorted: labels written against that order (a ``val_list``, another model's head)
    would otherwise be silently remapped."""
    for name in SYNSET_FILES:
        path = root / name
        if path.is_file():
            wnids, names = [], []
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                wnid, _, words = line.strip().partition(" ")
                if wnids and wnid <= wnids[-1]:
                    problem = "repeats" if wnid in wnids else f"comes after '{wnids[-1]}'"
                    raise ValueError(
                        f"{path}:{number}: wnid '{wnid}' {problem}; the lines must be in sorted wnid "
                        "order without repeats, because the class index is the sorted wnid "
                        f"(ImageFolder, torchvision's weights). Sort the file (sort -o {path} {path}) "
                        "and keep one line per wnid."
                    )
                wnids.append(wnid)
                names.append(words.split(",")[0].strip() or wnid)
            return wnids, names
    return None


def list_samples(folder: Path, list_file: Path, num_classes: int) -> list[tuple[Path, int]]:
    """``(path, label)`` from a "<file name> <label>" list over a flat image folder."""
    if not list_file.is_file():
        raise FileNotFoundError(f"ImageNet list file '{list_file}' (data.val_list) does not exist.")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ImageNet flat validation folder '{folder}' does not exist: {LAYOUT}."
        )
    samples = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(
                f"{list_file}:{number}: expected '<file name> <label>', got '{line.strip()}'."
            )
        label = int(parts[1])
        if not 0 <= label < num_classes:
            raise ValueError(
                f"{list_file}:{number}: label {label} is outside 0..{num_classes - 1}."
            )
        path = folder / parts[0]
        if not path.is_file():
            raise FileNotFoundError(f"{list_file}:{number}: listed image '{path}' does not exist.")
        samples.append((path, label))
    if not samples:
        raise ValueError(f"ImageNet list file '{list_file}' lists no images.")
    return samples


def imagenet_transform(
    train: bool, image_size: int = 224, resize: int = 256, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> T.Compose:
    crop = (
        [T.RandomCrop(image_size), T.RandomHorizontalFlip()]
        if train
        else [T.CenterCrop(image_size)]
    )
    return T.Compose([T.Resize(resize), *crop, T.ToTensor(), T.Normalize(mean, std)])


class ImageNetDataModule(ExplainDataModule):
    """ILSVRC-2012 classification (see the module docstring for the layouts).

    Args:
        root: the ImageNet folder.
        val_list: a "<file name> <label>" list over ``root/ILSVRC2012_img_val`` (e.g. the L-CAM
            paper's 2000 images); when given, validation and test read it instead of ``root/val``.
        image_size, resize_size: crop size and shorter-side resize (224 / 256 in the paper).
        **kwargs: loader settings, see :class:`ExplainDataModule`.

    The test split is the validation set (ImageNet's test labels are not public).
    """

    torchvision_weights = "IMAGENET1K_V1"

    def __init__(
        self,
        root: str,
        val_list: str | None = None,
        image_size: int = 224,
        resize_size: int = 256,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"ImageNet root '{self.root}' (data.root) does not exist: {LAYOUT}."
            )
        self.val_list = Path(val_list) if val_list else None
        self.image_size, self.resize_size = image_size, resize_size
        synsets = read_synsets(self.root)
        if synsets is not None:
            self.wnids, self.class_names = synsets
        else:
            self.wnids = class_folders(self.root / "train") or class_folders(self.root / "val")
            self.class_names = list(self.wnids)
        if not self.wnids:
            raise FileNotFoundError(
                f"No ImageNet classes found under '{self.root}': {LAYOUT} (or put synset_words.txt there)."
            )
        self.num_classes = len(self.wnids)

    def _make_dataset(self, split: str) -> ImageListDataset:
        transform = imagenet_transform(
            split == "train", self.image_size, self.resize_size, self.mean, self.std
        )
        if split != "train" and self.val_list is not None:
            samples = list_samples(
                self.root / "ILSVRC2012_img_val", self.val_list, self.num_classes
            )
        else:
            folder = self.root / ("train" if split == "train" else "val")
            if not folder.is_dir():
                raise FileNotFoundError(f"ImageNet folder '{folder}' does not exist: {LAYOUT}.")
            samples = folder_samples(folder, self.wnids)
            if not samples:
                raise FileNotFoundError(f"ImageNet folder '{folder}' holds no images: {LAYOUT}.")
        return ImageListDataset(samples, transform)

    collate_fn = staticmethod(collate_skipping_none)

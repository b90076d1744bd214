"""``ExplainDataModule``: the LightningDataModule every explainbench dataset extends.

A subclass describes its data in the constructor (``num_classes``, ``class_names``,
``attribute_names``, ``annotations``, ``mean``/``std``; cheap, because ``train.py`` reads
them to build the model before any data is loaded) and implements :meth:`_make_dataset`.
The base owns everything the datasets share: dataloaders, worker settings, and the fixed
random ``subset`` of the test split that ``evaluate.py`` uses
(``data.subset=2000 data.subset_seed=0``).

Every dataset yields :class:`Batch` samples (the batch contract, ``docs/design.md``): the
keys every sample has, plus exactly the optional keys its data module lists in
``annotations``. Metrics are checked against ``annotations`` once, before the first batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ..utils.hparams import PlainHyperparameters
from ..utils.image import IMAGENET_MEAN, IMAGENET_STD
from .info import DataInfo

SPLITS = ("train", "val", "test")
# which splits each Lightning stage needs (None: all of them)
_STAGE_SPLITS = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
    None: SPLITS,
}


class BatchKeys(TypedDict):
    """The keys of every sample and batch (see :class:`Batch`)."""

    image: Tensor
    label: Tensor
    index: Tensor


class Batch(BatchKeys, total=False):
    """The dict every dataset yields: one sample, or a batch of them (shapes below per sample;
    a batch adds a leading ``B``).

    Always present (:class:`BatchKeys`):

    * ``image`` float ``[3,H,W]``, normalised with the data module's ``mean``/``std``
      (``[1,H,W]`` where the data module's ``channels`` is 1: MNIST with ``data.channels=1``);
    * ``label`` long ``[]``, the class index; on multi-label data (the data module's
      ``multilabel``, e.g. CelebA's 40 attributes) float ``[num_classes]`` of 0/1 labels;
    * ``index`` long ``[]``, the sample's index in its split (kept through ``data.subset``).

    Present exactly when the key is in the data module's ``annotations``; geometric
    augmentation moves them with the image:

    * ``mask`` float ``[1,H,W]`` 0/1, the whole object;
    * ``part_mask`` float ``[1,H,W]`` 0/1, the discriminative part (an8flower);
    * ``part_ids`` long ``[H,W]``, each pixel's part as an index into the data module's
      ``part_names`` (0: background; an8flower: stem, leaves, petals, centre);
    * ``bbox`` float ``[4]``, the object's box as ``x1, y1, x2, y2`` pixel edges;
    * ``landmarks`` float ``[L,3]``, ``(x, y, visible)`` in pixels, in the order of the data
      module's ``landmark_names``;
    * ``attributes`` float ``[A]`` in [0, 1], in the order of ``attribute_names``.

    Batches only, from datasets that skip unreadable files
    (:func:`~explainbench.data.folder.collate_skipping_none`):

    * ``skipped`` ``list[str]``, the files left out of this batch.
    """

    mask: Tensor
    part_mask: Tensor
    part_ids: Tensor
    bbox: Tensor
    landmarks: Tensor
    attributes: Tensor
    skipped: list[str]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


class ExplainDataModule(PlainHyperparameters, L.LightningDataModule):
    """Base DataModule: loaders, worker settings and the test ``subset``.

    Args:
        batch_size: samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: pin batches for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs; ``None`` means "yes whenever
            there are workers" (it is always off with ``num_workers=0``, where DataLoader
            rejects it).
        subset: evaluate on a fixed random subset of this many test samples (``None``: all).
            Larger than the test split means the whole split (with a warning).
        subset_seed: seed of that subset, so runs compare on the same images.

    Subclasses set, in ``__init__``: ``num_classes``, ``class_names``, and where they differ
    from the defaults ``attribute_names``, ``landmark_names`` and ``part_names`` (None),
    ``multilabel`` (False), ``annotations`` (empty), ``mean``/``std`` (ImageNet), ``collate_fn``
    (default collation); and implement :meth:`_make_dataset`. :meth:`info` hands these facts to
    the method.
    """

    num_classes: int
    class_names: list[str]
    attribute_names: list[str] | None = None
    landmark_names: list[str] | None = None
    # True: ``label`` is float ``[num_classes]`` of independent 0/1 labels (CelebA's 40
    # attributes), not a long class index; methods read it from data_info
    multilabel: bool = False
    # channels of ``image`` (MNIST may give 1); the backbone's input must match
    channels: int = 3
    # names of the values of ``part_ids`` (index 0: background), for data with a part map
    part_names: list[str] | None = None
    # torchvision weights tag of classifiers trained on exactly this data (ImageNet: IMAGENET1K_V1);
    # methods that explain a frozen classifier take them instead of training one
    torchvision_weights: str | None = None
    annotations: frozenset[str] = frozenset()
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    # batch collation for every loader; None is torch's default_collate. A subclass whose
    # dataset can return None (skipped unreadable files) sets e.g.
    # ``collate_fn = staticmethod(collate_skipping_none)``.
    collate_fn: Callable[[list], Any] | None = None

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool | None = None,
        subset: int | None = None,
        subset_seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        if subset is not None and subset < 1:
            raise ValueError(
                f"data.subset must be a positive number of test samples or null, got {subset}"
            )
        # Collects the subclass's constructor arguments too (Lightning walks the __init__
        # frames). logger=False: train.py logs the whole config itself, and letting Lightning
        # merge these with the model's hparams fails on any shared key. Plain containers only
        # (PlainHyperparameters): checkpoints must load with weights_only=True.
        self.save_hyperparameters(logger=False)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = bool(
            num_workers > 0 and (persistent_workers is None or persistent_workers)
        )
        self.subset = subset
        self.subset_seed = subset_seed
        self._datasets: dict[str, Dataset] = {}

    def info(self) -> DataInfo:
        """The facts a method is built from (see :class:`~explainbench.data.info.DataInfo`); read
        from the constructor's attributes, so no data is loaded."""
        return DataInfo(
            num_classes=self.num_classes,
            class_names=self.class_names,
            attribute_names=self.attribute_names,
            landmark_names=self.landmark_names,
            part_names=self.part_names,
            mean=self.mean,
            std=self.std,
            annotations=self.annotations,
            multilabel=self.multilabel,
            channels=self.channels,
        )

    # -- what subclasses implement ------------------------------------------------------------
    def _make_dataset(self, split: str) -> Dataset:
        """The full dataset of ``split`` (one of ``"train"``, ``"val"``, ``"test"``)."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------
    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, built on first use; the test split is restricted to
        ``subset``. Callbacks and ``evaluate.py`` may call this without a Trainer."""
        if check_split(split) not in self._datasets:
            dataset = self._make_dataset(split)
            if split == "test" and self.subset is not None:
                dataset = self._fixed_subset(dataset)
            self._datasets[split] = dataset
        return self._datasets[split]

    def _fixed_subset(self, dataset: Dataset) -> Dataset:
        n = len(dataset)  # type: ignore[arg-type]
        if self.subset >= n:
            rank_zero_warn(
                f"data.subset={self.subset} >= test split size {n}: using the whole split"
            )
            return dataset
        generator = torch.Generator().manual_seed(self.subset_seed)
        # sorted, so the subset is read in dataset order (cheaper for file-backed datasets)
        indices = torch.randperm(n, generator=generator)[: self.subset].sort().values
        return Subset(dataset, indices.tolist())

    def setup(self, stage: str | None = None) -> None:
        for split in _STAGE_SPLITS.get(stage, SPLITS):
            self.dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=False,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

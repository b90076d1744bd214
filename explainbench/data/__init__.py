"""Datasets as ``ExplainDataModule`` subclasses, all yielding the Batch contract dict.

* :class:`An8FlowerDataModule` — the built-in generated ground-truth dataset (no disk);
* :class:`An8FlowerFolderDataModule` — an8Flower in its original folder layout;
* :class:`ImageNetDataModule` — ILSVRC-2012 folders or a flat folder + list file;
* :class:`CUBDataModule`, :class:`SUNAttributeDataModule`, :class:`AttributeFolderDataModule`
  — the attribute datasets of the EAT paper (Aircraft-17 uses the attribute-folder layout);
* :class:`CelebADataModule`, :class:`INaturalistDataModule` — the region-grouping paper's
  faces (40 attributes, landmarks) and species (5,089 classes, boxes);
* :class:`CIFAR10DataModule`, :class:`MNISTDataModule` — the official CIFAR-10 pickles and MNIST
  idx files, held in memory (:mod:`.in_memory`).
"""

from .an8flower import An8Flower, An8FlowerDataModule, render_sample
from .an8flower_folder import An8FlowerFolderDataModule, export_an8flower
from .attribute_folder import AttributeFolderDataModule
from .base import Batch, ExplainDataModule
from .celeba import CelebADataModule
from .cifar10 import CIFAR10DataModule
from .cub import CUBDataModule
from .imagenet import ImageNetDataModule
from .inaturalist import INaturalistDataModule
from .mnist import MNISTDataModule
from .sun_attribute import SUNAttributeDataModule

__all__ = [
    "An8Flower",
    "An8FlowerDataModule",
    "An8FlowerFolderDataModule",
    "AttributeFolderDataModule",
    "Batch",
    "CIFAR10DataModule",
    "CUBDataModule",
    "CelebADataModule",
    "ExplainDataModule",
    "INaturalistDataModule",
    "ImageNetDataModule",
    "MNISTDataModule",
    "SUNAttributeDataModule",
    "export_an8flower",
    "render_sample",
]

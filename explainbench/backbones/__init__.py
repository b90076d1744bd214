"""Backbones: classifiers split into ``features`` (the explanation layer) and ``head``."""

from .base import Backbone
from .registry import BACKBONES, build_backbone, load_backbone_checkpoint

__all__ = ["BACKBONES", "Backbone", "build_backbone", "load_backbone_checkpoint"]

"""Methods: one LightningModule per paper, all subclasses of ``ExplainableMethod``."""

from .base import ExplainableMethod
from .classifier import Classifier
from .eat import EAT
from .lcam import LCAM
from .region_group import RegionGroup

__all__ = ["EAT", "LCAM", "Classifier", "ExplainableMethod", "RegionGroup"]

"""Methods: one LightningModule per paper, all subclasses of ``ExplainableMethod``."""

from .attention_net import AttentionNet
from .base import ExplainableMethod
from .classifier import Classifier
from .eat import EAT
from .lcam import LCAM
from .region_group import RegionGroup

__all__ = ["EAT", "AttentionNet", "LCAM", "Classifier", "ExplainableMethod", "RegionGroup"]

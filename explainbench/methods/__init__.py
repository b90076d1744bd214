"""Methods: one LightningModule per paper, all subclasses of ``ExplainableMethod``."""

from .base import ExplainableMethod
from .classifier import Classifier
from .lcam import LCAM

__all__ = ["LCAM", "Classifier", "ExplainableMethod"]

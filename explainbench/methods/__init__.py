"""Methods: one LightningModule per paper, all subclasses of ``ExplainableMethod``."""

from .base import ExplainableMethod
from .classifier import Classifier

__all__ = ["Classifier", "ExplainableMethod"]

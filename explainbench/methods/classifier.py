"""The plain classifier (backbone + head, cross-entropy): every paper's baseline."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from .base import ExplainableMethod


class Classifier(ExplainableMethod):
    """Cross-entropy training of the whole backbone; explained by post-hoc explainers only.

    Args:
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.
        **kwargs: see :class:`~explainbench.methods.base.ExplainableMethod`.
    """

    def __init__(self, *args, label_smoothing: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_smoothing = label_smoothing

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self(batch["image"])
        ce = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        return logits, {"ce": ce}

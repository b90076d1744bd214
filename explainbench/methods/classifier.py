"""The plain classifier (backbone + head, cross-entropy or per-label BCE): every paper's baseline."""

from __future__ import annotations

from torch import Tensor

from .base import ExplainableMethod


class Classifier(ExplainableMethod):
    """Cross-entropy training of the whole backbone (per-label BCE on multi-label data);
    explained by post-hoc explainers only.

    Args:
        label_smoothing: see :meth:`~explainbench.methods.base.ExplainableMethod.classification_loss`.
        **kwargs: see :class:`~explainbench.methods.base.ExplainableMethod`.
    """

    supports_multilabel = True

    def __init__(self, *args, label_smoothing: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_smoothing = label_smoothing

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self(batch["image"])
        loss = self.classification_loss(logits, batch["label"], self.label_smoothing)
        return logits, {"bce" if self.multilabel else "ce": loss}

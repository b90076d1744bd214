"""#FW / #BW: the cost of an explanation in forward and backward passes through the model.

The count every explainer reports in :class:`~explainbench.explainers.base.Explanation`
(``forward_passes`` / ``backward_passes`` per image), averaged over the explained images —
e.g. 1 forward for L-CAM, 1 + K for Score-CAM, N masks for RISE; 1 backward for Grad-CAM.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric


class PassCount(ExplanationMetric):
    """Mean forward (``fw``) and backward (``bw``) passes per explained image.

    ``compute()`` → ``{"fw": ..., "bw": ...}``; ``NoSamplesError`` before any update.
    """

    name = "passes"
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("forward_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("backward_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(
        self, forward_passes: Tensor | float, backward_passes: Tensor | float, num_images: int
    ) -> None:
        """Accumulate per-image pass counts (a number for the whole batch, or a ``[B]`` tensor)."""
        for state, passes in (("forward_sum", forward_passes), ("backward_sum", backward_passes)):
            passes = torch.as_tensor(passes, dtype=torch.float32).detach()
            # A scalar is the per-image count shared by the batch; a [B] tensor is per image.
            total = passes * num_images if passes.ndim == 0 else passes.sum()
            self._add(state, total)
        self._add("count", float(num_images))

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self.update(
            explanation.forward_passes, explanation.backward_passes, explanation.saliency.shape[0]
        )

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty()
        return {"fw": self.forward_sum / self.count, "bw": self.backward_sum / self.count}

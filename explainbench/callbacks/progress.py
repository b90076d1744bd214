"""Progress bar choice: rich in a terminal, tqdm when output is redirected."""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

# batches between two reads of the progress-bar metrics by the rich bar (tqdm: its refresh rate)
METRICS_EVERY = 20


class SparseMetricsRichProgressBar(RichProgressBar):
    """A RichProgressBar that reads the progress-bar metrics every ``metrics_every`` training
    batches (and at the end of the epoch) instead of after every batch.

    Reading them converts every progress-bar value to a Python number (``.item()``): on a GPU
    a host synchronisation per step, which stops the CPU from queueing the next step while the
    GPU works. The bar itself still advances every ``refresh_rate`` batches.
    """

    def __init__(self, *args: Any, metrics_every: int = METRICS_EVERY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics_every = max(int(metrics_every), 1)
        self._skip_metrics = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._skip_metrics = (batch_idx + 1) % self.metrics_every != 0
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._skip_metrics = False

    def _update_metrics(self, trainer, pl_module) -> None:
        if not self._skip_metrics:
            super()._update_metrics(trainer, pl_module)


def auto_progress_bar(refresh_rate: int = 1, metrics_every: int = METRICS_EVERY) -> ProgressBar:
    """Rich redraws the screen and turns into noise in log files; tqdm degrades to plain lines
    (and reads the metrics only when it redraws: every ``max(refresh_rate, 20)`` batches)."""
    if sys.stdout.isatty():
        return SparseMetricsRichProgressBar(refresh_rate=refresh_rate, metrics_every=metrics_every)
    return TQDMProgressBar(refresh_rate=max(refresh_rate, METRICS_EVERY))

"""Progress bar choice: rich in a terminal, tqdm when output is redirected."""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar


def auto_progress_bar(refresh_rate: int = 1) -> ProgressBar:
    """Rich redraws the screen and turns into noise in log files; tqdm degrades to plain lines."""
    if sys.stdout.isatty():
        return RichProgressBar(refresh_rate=refresh_rate)
    return TQDMProgressBar(refresh_rate=max(refresh_rate, 20))

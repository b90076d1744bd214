"""``RngState``: the random number generators' states travel with every checkpoint.

A run resumed from a checkpoint must draw the same random numbers as the run that was
interrupted, or it trains on another data order and reaches other metrics. Every draw of a
training run comes from the process-global generators:

* the train loader's shuffle: ``RandomSampler`` seeds a fresh generator from torch's global
  RNG each epoch, and every DataLoader iterator draws its workers' base seed from it;
* an8flower's brightness jitter and flips (``torch.rand`` in ``__getitem__``: the main
  process's global RNG with ``num_workers=0``, the per-worker seed derived from the base seed
  above otherwise);
* dropout and random augmentations (torch), and user code using numpy or ``random``.

So storing torch's CPU (and CUDA) state, numpy's and Python's at save time and putting them
back on load is enough. Lightning does neither (its checkpoints hold weights, optimiser,
loops and callbacks only). The states are plain tensors, lists and tuples, so the checkpoint
still loads with ``torch.load(weights_only=True)``.

Not covered: persistent DataLoader workers (``num_workers > 0`` with ``persistent_workers``)
keep their own generators from epoch to epoch, which no checkpoint can hold; resuming with them
warns, and ``data.persistent_workers=false`` makes such a resume exact again (measured on
an8flower with two workers). In DDP only rank zero writes the checkpoint: every rank gets rank
zero's states on resume.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn


def collect_rng_states() -> dict[str, Any]:
    """The states of torch (CPU and every CUDA device), numpy and Python ``random``."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # numpy's state holds an ndarray, which weights_only loading refuses: store plain ints
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached_gaussian)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`collect_rng_states`; generators missing from ``states`` are left as they are."""
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        name, keys, pos, has_gauss, cached_gaussian = states["numpy"]
        np.random.set_state(
            (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian)
        )
    if "python" in states:
        version, internal, gauss_next = states["python"]
        random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngState(Callback):
    """Save the RNG states in every checkpoint and restore them when a run resumes.

    They are restored as the checkpoint is loaded, before the first training epoch draws
    anything (Lightning runs its sanity-check validation with the RNG isolated), so the
    resumed run continues the random stream of the interrupted one exactly where the
    checkpoint was taken.
    """

    def __init__(self) -> None:
        self._restored = False

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_rng_states(state_dict)
        self._restored = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        if self._restored and getattr(loader, "persistent_workers", False):
            rank_zero_warn(
                "Resuming with persistent DataLoader workers: their random streams (augmentations) "
                "are not in the checkpoint, so this run will differ from an uninterrupted one; "
                "data.persistent_workers=false makes the resume exact."
            )

"""Hyper-parameters that a ``weights_only`` checkpoint load accepts.

Lightning stores ``save_hyperparameters()`` in every checkpoint and reads checkpoints back with
``torch.load(weights_only=True)`` (``trainer.test(ckpt_path=...)``, resume), which refuses any
class outside torch's allow-list. Hydra passes list and dict arguments as OmegaConf
``ListConfig`` / ``DictConfig`` (e.g. ``data.split_ratios: [0.7, 0.1, 0.2]``), so a run could
train but never test or resume. :class:`PlainHyperparameters` converts them to plain Python
containers where they are stored: in the base classes, whatever built the object (train.py,
evaluate.py, a notebook, a test), rather than at each ``instantiate`` call.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Sequence
from types import FrameType
from typing import Any

from lightning.pytorch.utilities.parsing import AttributeDict
from omegaconf import OmegaConf


def to_plain(value: Any) -> Any:
    """``value`` with every OmegaConf container and dataclass instance (at any depth, e.g. a
    method's ``DataInfo``) turned into dicts and lists."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_plain(item) for item in value)
    return value


class PlainHyperparameters:
    """Mixin for a LightningModule / LightningDataModule (listed before it): ``hparams`` hold
    only plain Python values, so checkpoints load with ``weights_only=True``."""

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: Sequence[str] | str | None = None,
        frame: FrameType | None = None,
        logger: bool = True,
    ) -> None:
        # Lightning reads the constructor arguments from the caller's frame: pass that frame
        # on, or it would find this method's locals instead
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        super().save_hyperparameters(*args, ignore=ignore, frame=frame, logger=logger)  # type: ignore[misc]
        self._hparams = AttributeDict(to_plain(dict(self.hparams)))  # type: ignore[attr-defined]
        self._hparams_initial = copy.deepcopy(self._hparams)

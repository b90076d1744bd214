"""What a training run tests and what it hands back to a sweeper."""

from __future__ import annotations

import logging

import lightning as L
from omegaconf import DictConfig

log = logging.getLogger("explainbench")


def checkpoint_to_test(cfg: DictConfig, trainer: L.Trainer) -> str | None:
    """The best checkpoint of this fit; without training, the given ``ckpt_path``
    (``train=false ckpt_path=<ckpt>`` tests that checkpoint). None tests the weights in memory."""
    if not cfg.get("train"):
        if not cfg.get("ckpt_path"):
            log.warning("train=false without ckpt_path: testing the untrained weights.")
        return cfg.get("ckpt_path") or None
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not best:
        log.warning("No best checkpoint was kept: testing the last weights.")
    return best or None


def optimized_metric_value(name: str | None, metrics: dict[str, float]) -> float | None:
    """The value returned to a sweeper. A metric of a stage that did not run at all (no ``val/*``
    after ``train=false`` or ``trainer.max_epochs=0``) is skipped with a note, not an error:
    nothing was trained to optimise. A missing metric of a stage that ran is a typo: an error."""
    if not name:
        return None
    if name in metrics:
        return metrics[name]
    stage = name.split("/", 1)[0] + "/"
    if not any(key.startswith(stage) for key in metrics):
        log.warning(
            "No %s* metric was logged (nothing trained or validated): optimized_metric '%s' "
            "is not checked.",
            stage,
            name,
        )
        return None
    raise ValueError(
        f"optimized_metric '{name}' was not logged; available: {', '.join(metrics) or 'none'}."
    )

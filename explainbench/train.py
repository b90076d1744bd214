"""Training entry point: ``python train.py [overrides]`` (see conf/train.yaml).

seed → instantiate data, backbone, method, callbacks, loggers, trainer → fit → test on the
best checkpoint → ``<run_dir>/metrics.json`` + ``run_dir: <path>`` + a table of final metrics.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .methods.build import build_method
from .methods.frozen_classifier import ensure_frozen_classifier
from .utils.checkpoint_fit import check_checkpoint_fits
from .utils.devices import check_devices
from .utils.extras import require_extras
from .utils.instantiate import instantiate_named
from .utils.outcome import checkpoint_to_test, optimized_metric_value
from .utils.paths import CONF_DIR
from .utils.precision import check_precision
from .utils.run import (
    is_rank_zero,
    log_resolved_config,
    print_metrics_table,
    task_wrapper,
    to_floats,
    write_metrics,
)
from .utils.validate import validate_config
from .utils.writable_paths import check_output_paths

log = logging.getLogger("explainbench")


def check_multirun_strategy(cfg: DictConfig) -> None:
    """``strategy=ddp`` re-launches the script per device; inside a sweep every child would
    re-run the whole sweep. Fail before anything starts."""
    try:
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        launcher = str(hydra_cfg.launcher.get("_target_", ""))
    except ValueError:  # not under Hydra (e.g. called from a notebook)
        multirun, launcher = False, ""
    if launcher.endswith("SlurmLauncher"):
        # each job is its own SLURM job whose tasks are the DDP processes: nothing re-launches
        return
    strategy = cfg.trainer.get("strategy")
    strategy = str(
        strategy.get("_target_", "") if isinstance(strategy, DictConfig) else strategy or ""
    ).lower()
    if multirun and "ddp" in strategy and "spawn" not in strategy:
        raise ValueError(
            "A multirun (-m) cannot use strategy=ddp: each DDP child would re-run the whole sweep. "
            "Use trainer=ddp_spawn for local sweeps, or a cluster launcher "
            "(hydra/launcher=submitit_slurm) for multi-node sweeps."
        )


def run(cfg: DictConfig) -> dict[str, float]:
    """Train and test as configured; return the flat dict of final ``val/*`` and ``test/*`` scalars."""
    validate_config(cfg)
    check_output_paths(cfg)
    check_multirun_strategy(cfg)
    check_devices(cfg.trainer)
    check_precision(cfg.trainer)
    ensure_frozen_classifier(
        cfg
    )  # before seeding: a classifier trained here leaves the RNG as a cached one
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    model = build_method(cfg, datamodule)
    if cfg.get("ckpt_path"):
        check_checkpoint_fits(model, cfg.ckpt_path, trust=bool(cfg.get("trust_checkpoint")))
    # Lightning reads checkpoints itself (resume, test): weights-only too, unless trusted
    weights_only = not cfg.get("trust_checkpoint")
    callbacks = instantiate_named(cfg.get("callbacks"))
    loggers = instantiate_named(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )

    log_resolved_config(trainer.loggers, cfg)

    metrics: dict[str, Any] = {}
    if cfg.get("train"):
        trainer.fit(
            model=model,
            datamodule=datamodule,
            ckpt_path=cfg.get("ckpt_path"),
            weights_only=weights_only,
        )
        metrics.update(trainer.callback_metrics)
    if cfg.get("test"):
        trainer.test(
            model=model,
            datamodule=datamodule,
            ckpt_path=checkpoint_to_test(cfg, trainer),
            weights_only=weights_only,
        )
        metrics.update(trainer.callback_metrics)

    final = to_floats(metrics)
    if is_rank_zero() and trainer.is_global_zero:
        run_dir = cfg.paths.output_dir
        write_metrics(run_dir, final)
        print_metrics_table(final)
        print(f"run_dir: {run_dir}", flush=True)
    return final


@require_extras
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train.yaml")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    return optimized_metric_value(cfg.get("optimized_metric"), run(cfg))


if __name__ == "__main__":
    main()

"""What every entry point does around the actual work: results on disk, a table, clean exits."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from .instantiate import unwrap_instantiation_error
from .sweep import record_job_failure
from .wandb import finish_wandb

log = logging.getLogger("explainbench")

# 128 + SIGTERM: how a shell reports a process ended by SIGTERM
SIGTERM_EXIT_CODE = 143


def to_floats(
    metrics: Mapping[str, Any], prefixes: tuple[str, ...] = ("val/", "test/", "data/")
) -> dict[str, float]:
    """Scalar tensors/numbers whose key starts with one of ``prefixes`` → plain floats."""
    out = {}
    for key, value in metrics.items():
        if not key.startswith(prefixes):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))


def write_metrics(run_dir: str | Path, metrics: Mapping[str, float]) -> Path:
    path = Path(run_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    path.write_text(json.dumps(clean, indent=2) + "\n")
    return path


def print_metrics_table(metrics: Mapping[str, float], title: str = "Final metrics") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


def log_resolved_config(loggers, cfg: DictConfig) -> None:
    """Give every logger the resolved config as plain containers. The hydra node (present when
    composed by tests/notebooks) holds run-time-only interpolations, so it is left out."""
    resolved = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in cfg.items()
        if k != "hydra"
    }
    for logger in loggers:
        logger.log_hyperparams(resolved)


def is_rank_zero() -> bool:
    """Rank zero of a DDP launch (``strategy=ddp`` re-runs the script in every process)."""
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Always close W&B (with the exit code) and turn failures into one clear line.

    The full traceback is printed only with ``HYDRA_FULL_ERROR=1``: configuration mistakes
    (missing data root, bad checkpoint, ...) read better as a single message. In a sweep a
    failed job returns ``nan`` instead of exiting (see :mod:`explainbench.utils.sweep`); a
    SIGTERM exits with 143.
    """

    @wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            result = task(cfg)
        except SIGTERMException:
            # Lightning's "stop now" after a SIGTERM is a SystemExit with code 0; a pre-empted run
            # must not look finished. SigtermCheckpoint has saved it and printed how to resume.
            finish_wandb(exit_code=SIGTERM_EXIT_CODE)
            print("Error: interrupted by SIGTERM", file=sys.stderr)
            sys.exit(SIGTERM_EXIT_CODE)
        except Exception as err:
            finish_wandb(exit_code=1)
            shown = unwrap_instantiation_error(err)
            message = f"Error: {type(shown).__name__}: {shown}"
            error_file = record_job_failure(err, message)  # None outside a sweep (-m)
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            log.error("%s: %s", type(shown).__name__, shown)
            if error_file is not None:
                # sys.exit would end the whole sweep: the other jobs run, FailedJobsSummary exits 1
                print(f"{message}\n(traceback in {error_file}; the sweep goes on)", file=sys.stderr)
                return float("nan")
            print(f"{message}\n(set HYDRA_FULL_ERROR=1 for the traceback)", file=sys.stderr)
            sys.exit(1)
        finish_wandb(exit_code=0)
        return result

    return wrapped

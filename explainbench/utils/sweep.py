"""Sweeps (``-m``) that survive a failing job.

A job that fails writes ``error.txt`` (the one-line error, its overrides, the traceback) to its
job dir and hands the sweeper ``nan`` instead of ending the process, so the other jobs still
run (``task_wrapper``; Optuna-style sweepers record a ``nan`` as a failed trial). When the
sweep ends, :class:`FailedJobsSummary` (a Hydra callback, ``conf/hydra/default.yaml``) lists
the failed jobs and exits with 1.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

ERROR_FILE = "error.txt"


def multirun_job_dir() -> Path | None:
    """The output dir of the current sweep job; None outside a multirun."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.runtime.output_dir)


def record_job_failure(err: BaseException, message: str) -> Path | None:
    """Write ``message``, the job's overrides and ``err``'s traceback to the job dir's
    ``error.txt``; return its path, or None outside a multirun (nothing written)."""
    job_dir = multirun_job_dir()
    if job_dir is None:
        return None
    overrides = " ".join(HydraConfig.get().overrides.task)
    details = "".join(traceback.format_exception(err))
    path = job_dir / ERROR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{message}\noverrides: {overrides}\n\n{details}")
    return path


def read_job_error(path: Path) -> tuple[str, str]:
    """``(message on one line, overrides)`` of an ``error.txt`` written by
    :func:`record_job_failure` (overrides ``"?"`` when the file lacks the line)."""
    # the message may span lines: it ends at the overrides line record_job_failure writes
    head = Path(path).read_text().split("\noverrides: ", 1)
    message = " ".join(head[0].split())
    overrides = head[1].split("\n", 1)[0] if len(head) > 1 else "?"
    return message, overrides


class FailedJobsSummary(Callback):
    """Ends a sweep in which some job failed with a list of those jobs and exit code 1."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a job dir reused by a re-run sweep (fixed hydra.sweep.dir) must not count as failed
        (Path(config.hydra.runtime.output_dir) / ERROR_FILE).unlink(missing_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failed = sorted(Path(config.hydra.sweep.dir).rglob(ERROR_FILE))
        if not failed:
            return
        lines = [f"{len(failed)} sweep job(s) failed:"]
        for path in failed:
            message, overrides = read_job_error(path)
            lines.append(
                f"  {path.parent}: {message} (overrides: {overrides}); traceback in {path}"
            )
        print("\n".join(lines), file=sys.stderr, flush=True)
        sys.exit(1)

"""``SigtermCheckpoint``: a run stopped by SIGTERM (a scheduler's pre-emption) can be resumed.

Lightning turns SIGTERM into ``SIGTERMException`` at the end of the current batch. This
callback then saves the interrupted state to ``<dirpath>/interrupted.ckpt`` and prints the run
dir and the command that resumes it; ``task_wrapper`` exits with 143 (128 + SIGTERM, the shell
convention), so the scheduler sees a run that did not finish.

``interrupted.ckpt`` is a mid-epoch state and is kept apart from ``last.ckpt``, which always
holds the latest *end of epoch* (see :mod:`explainbench.callbacks.checkpoint`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

INTERRUPTED_CHECKPOINT = "interrupted.ckpt"


def resume_command(ckpt_path: str | Path) -> str:
    """``python <script> <this run's overrides> ckpt_path=<ckpt_path>``, ready to paste.

    The overrides are the ones Hydra recorded for this run (for a sweep job: that job's own);
    a previous ``ckpt_path`` is replaced, and a sweep job resumes as a single run.
    """
    script, overrides = "train.py", []
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        overrides = [
            o for o in hydra_cfg.overrides.task if o.lstrip("+~").split("=", 1)[0] != "ckpt_path"
        ]
        if hydra_cfg.mode == RunMode.MULTIRUN:
            overrides.append("hydra.mode=RUN")
        script = sys.argv[0] or script
    args = [*overrides, f"ckpt_path={Path(ckpt_path).resolve()}"]
    return " ".join(["python", shlex.quote(script), *map(shlex.quote, args)])


class SigtermCheckpoint(Callback):
    """Save ``<dirpath>/interrupted.ckpt`` when training stops on SIGTERM, and print
    ``run_dir: <run_dir>`` and the resume command.

    Args:
        dirpath: where to write the checkpoint (the run's checkpoint folder).
        run_dir: the run's output folder, printed for the user and for tools that parse it.
    """

    def __init__(self, dirpath: str, run_dir: str) -> None:
        self.dirpath = Path(dirpath)
        self.run_dir = run_dir

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.state.fn != TrainerFn.FITTING:  # testing after training: nothing to resume
            if trainer.is_global_zero:
                print(f"Interrupted by SIGTERM while testing.\nrun_dir: {self.run_dir}", flush=True)
            return
        path = self.dirpath / INTERRUPTED_CHECKPOINT
        trainer.save_checkpoint(path)  # every rank takes part; rank zero writes
        if trainer.is_global_zero:
            print(
                f"Interrupted by SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}: "
                f"saved {path}\nrun_dir: {self.run_dir}\nresume with: {resume_command(path)}",
                flush=True,
            )

"""Output folders that cannot be written are one clear line, before anything is built.

Hydra creates the run directory (``hydra.run.dir``, under ``paths.log_dir``) *before* the task
function runs, and a folder it cannot create ends in a traceback from Hydra's own code. So the
check runs twice: as a Hydra callback (conf/hydra/default.yaml) at ``on_run_start`` /
``on_multirun_start``, which come before Hydra makes any folder, and again in
:func:`check_output_paths` at the start of train/evaluate for runs composed without the CLI
(tests, notebooks) and for a ``paths.output_dir`` overridden to a folder of its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .run import task_wrapper


class UnwritablePathError(OSError):
    """An output folder that cannot be created or written; the message names the config key."""


def ensure_writable(key: str, path: str | Path) -> None:
    """Create ``path`` (as the run would) and write a scratch file in it, or raise
    :class:`UnwritablePathError` naming ``key``. Trying beats ``os.access``: root passes every
    permission check, yet cannot create folders under ``/proc`` or on a read-only mount."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise UnwritablePathError(
            f"{key}={path} is not a writable folder ({reason}). Choose another: {key}=<folder you can write>."
        ) from None


def _resolved(cfg: DictConfig, key: str) -> str | None:
    """The value of ``key``, or None when it is absent or cannot be resolved yet (``paths.output_dir``
    is ``${hydra:runtime.output_dir}`` until Hydra picks the run dir, which is checked as
    ``hydra.run.dir`` instead)."""
    try:
        value = OmegaConf.select(cfg, key)
    except Exception:  # noqa: BLE001
        return None
    return None if value is None else str(value)


def check_output_paths(
    cfg: DictConfig, keys: tuple[str, ...] = ("paths.log_dir", "paths.output_dir")
) -> None:
    """:func:`ensure_writable` for each of ``keys`` that has a value, in order (the parent
    folder first, so the key the user set is the one named)."""
    for key in keys:
        path = _resolved(cfg, key)
        if path:
            ensure_writable(key, path)


class CheckOutputPaths(Callback):
    """Hydra callback: the output folders are writable before Hydra creates the run dir.
    A failure is reported like any task error (one ``Error:`` line, non-zero exit)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, run_dir_key: str) -> None:
        keys = ["paths.log_dir", run_dir_key]
        paths = config.get("paths")
        # an overridden output_dir is checked here; the default one is the run dir, not chosen yet
        if (
            isinstance(paths, DictConfig)
            and "output_dir" in paths
            and not OmegaConf.is_interpolation(paths, "output_dir")
        ):
            keys.append("paths.output_dir")
        task_wrapper(lambda cfg: check_output_paths(cfg, tuple(keys)))(config)

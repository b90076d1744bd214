"""Running train.py / evaluate.py from tests: in-process (fast) or as a subprocess (CLI checks)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from explainbench.utils.paths import CONF_DIR as CONF

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (in-process: a subprocess would spend most of
    its time importing torch and Lightning)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Tiny an8flower splits: a few batches, seconds per run on 2 cores.
TINY_DATA = ["data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=16"]


def compose_cfg(
    overrides: list[str], tmp_path: Path, config_name: str = "train.yaml"
) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path)
    return cfg


def cli_env(env: dict | None = None) -> dict[str, str]:
    """The environment of a CLI run in a test: offline and quiet W&B, unbuffered output, one
    OpenMP thread, Hydra's short errors (what a user sees); ``env`` on top."""
    full_env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    full_env.pop("HYDRA_FULL_ERROR", None)
    return full_env


def tiny_checkpoint(tmp_path_factory, *extra: str) -> Path:
    """``last.ckpt`` of a one-epoch classifier on 32 tiny an8flower images (in this process)."""
    from explainbench.train import run

    out = tmp_path_factory.mktemp("trained")
    args = ["trainer.max_epochs=1", "callbacks.model_summary=null", "test=false",
            "data.train_size=32", "data.val_size=16", "data.test_size=16", "data.batch_size=16"]  # fmt: skip
    run(compose_cfg([*args, *extra], out))
    return out / "checkpoints" / "last.ckpt"


def run_cli(
    script: str, args: list[str], tmp_path: Path, timeout: int = 300, env: dict | None = None
):
    """``python <script> args`` in the repo root with runs under ``tmp_path``; returns the process."""
    full_env = cli_env(env)
    cmd = [sys.executable, str(ROOT / script), *args, f"paths.log_dir={tmp_path}"]
    return subprocess.run(
        cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def run_dirs(stdout: str) -> list[Path]:
    return [Path(p) for p in re.findall(r"^run_dir: (.+)$", stdout, flags=re.M)]


def run_unwrapped(cfg: DictConfig):
    """``explainbench.train.run(cfg)``, raising the error a user sees rather than Hydra's
    wrapper around errors raised inside ``_target_`` calls."""
    from explainbench.train import run
    from explainbench.utils.instantiate import unwrap_instantiation_error

    try:
        return run(cfg)
    except Exception as err:
        raise unwrap_instantiation_error(err) from None

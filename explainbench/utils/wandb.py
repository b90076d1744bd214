"""Weights & Biases without surprises: offline unless a key is configured, never a prompt."""

from __future__ import annotations

import netrc
import os
import sys

from lightning.pytorch.loggers import WandbLogger


def wandb_has_api_key() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``wandb login`` stored a key in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """``WANDB_MODE`` when set, else ``online`` with an API key and ``offline`` without."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    return "online" if wandb_has_api_key() else "offline"


def wandb_logger(**kwargs) -> WandbLogger:
    """A ``WandbLogger`` whose mode follows :func:`wandb_mode`; extra kwargs go to ``wandb.init``."""
    mode = wandb_mode()
    # wandb reads the env var too; setting it keeps any code that calls wandb.init directly offline
    os.environ["WANDB_MODE"] = mode
    os.makedirs(kwargs.get("save_dir") or ".", exist_ok=True)
    return WandbLogger(mode=mode, **kwargs)


def finish_wandb(exit_code: int = 0) -> None:
    """Close the active W&B run, if any, so the next multirun job starts its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)

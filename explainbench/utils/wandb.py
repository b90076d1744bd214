"""Weights & Biases without surprises: offline unless a key is configured, never a prompt,
and never minutes of retries when the W&B server cannot be reached."""

from __future__ import annotations

import logging
import netrc
import os
import sys

from lightning.pytorch.loggers import WandbLogger

from .network import url_unreachable

log = logging.getLogger("explainbench")

# Seconds the W&B server gets to answer before an online run falls back to offline. wandb's own
# client retries for about 100 s and then fails the run (CommError) when the network is down.
SERVER_PROBE_TIMEOUT_S = 5.0


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


def wandb_base_url() -> str:
    """The server wandb will talk to: ``WANDB_BASE_URL``, else wandb's settings (files, default)."""
    url = os.environ.get("WANDB_BASE_URL")
    if url:
        return url
    import wandb

    return str(wandb.setup().settings.base_url)


def wandb_logger(**kwargs) -> WandbLogger:
    """A ``WandbLogger`` whose mode follows :func:`wandb_mode`; extra kwargs go to ``wandb.init``.

    An online run whose server does not answer within :data:`SERVER_PROBE_TIMEOUT_S` logs
    offline instead, with a warning (``wandb sync`` uploads it later): the training run is
    worth more than its live dashboard.
    """
    mode = wandb_mode()
    if mode == "online":
        url = wandb_base_url()
        reason = url_unreachable(url, SERVER_PROBE_TIMEOUT_S)
        if reason is not None:
            log.warning(
                "W&B server %s is unreachable (%s): logging offline instead; upload later with "
                "`wandb sync %s/wandb/offline-run-*`. Set WANDB_MODE=offline to skip this check.",
                url,
                reason,
                kwargs.get("save_dir") or ".",
            )
            mode = "offline"
    # wandb reads the env var too; setting it keeps any code that calls wandb.init directly offline
    os.environ["WANDB_MODE"] = mode
    os.makedirs(kwargs.get("save_dir") or ".", exist_ok=True)
    return WandbLogger(mode=mode, **kwargs)


def finish_wandb(exit_code: int = 0) -> None:
    """Close the active W&B run, if any, so the next multirun job starts its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)

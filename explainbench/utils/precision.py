"""``trainer.precision`` against the device it will run on: one clear line before the trainer
is built, rather than a slow or failing run.

Lightning accepts ``16-mixed`` on CPU (float16 autocast), but few CPUs compute float16
natively (AMX-FP16): it runs slower than float32, so we refuse it (our choice) and name
``bf16-mixed``. bfloat16 on a CUDA GPU older than Ampere is emulated or unsupported:
``torch.cuda.is_bf16_supported()`` decides.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

# Lightning 2.x precision names (the plugin-free ones)
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")


def run_device(trainer_cfg: DictConfig) -> str:
    """``cuda`` or ``cpu``: the accelerator Lightning will pick (``auto`` → CUDA when present)."""
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu" if accelerator in ("auto", "cpu") else accelerator


def check_precision(trainer_cfg: DictConfig) -> None:
    precision = str(trainer_cfg.get("precision", "32-true"))
    if precision in ("32", "16", "64", "bf16"):  # Lightning's short forms
        precision = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}[
            precision
        ]
    if precision not in PRECISIONS:
        raise ValueError(
            f"trainer.precision={precision} is not a precision: choose one of {', '.join(PRECISIONS)}"
        )
    device = run_device(trainer_cfg)
    if device == "cpu" and precision.startswith("16"):
        raise ValueError(
            f"trainer.precision={precision} needs a CUDA GPU (CPUs rarely compute float16 "
            "natively: slower than float32). On CPU use trainer.precision=bf16-mixed or 32-true."
        )
    if device == "cuda" and precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name() if torch.cuda.is_available() else "this GPU"
        raise ValueError(
            f"trainer.precision={precision}: {name} does not support bfloat16 (needs compute "
            "capability 8.0+, Ampere or newer). Use trainer.precision=16-mixed or 32-true."
        )

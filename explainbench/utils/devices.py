"""Checks of ``trainer.devices`` / ``trainer.num_nodes`` before a Trainer starts, shared by
train.py and evaluate.py: one line naming what this machine has, instead of Lightning's
multi-line ``MisconfigurationException`` (too many GPUs) or a hang (``num_nodes > 1`` with no
cluster environment: the processes wait for nodes that never join)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

# Environment variables by which a cluster launcher tells Lightning the node layout: SLURM
# (srun, hydra-submitit-launcher), torchelastic (torchrun), LSF, or Lightning's manual set-up.
CLUSTER_ENV = {
    "SLURM": ("SLURM_NTASKS",),
    "torchelastic (torchrun)": ("TORCHELASTIC_RUN_ID",),
    "LSF": ("LSB_JOBID",),
    "manual (Lightning)": ("MASTER_ADDR", "NODE_RANK", "WORLD_SIZE"),
}


def _requested(devices: Any) -> int | None:
    """How many devices ``trainer.devices`` asks for (None: all / auto)."""
    if isinstance(devices, str):
        devices = devices.strip()
        if devices in ("auto", "-1"):
            return None
        if "," in devices:  # "0,1": device ids
            return len([d for d in devices.split(",") if d.strip()])
        devices = int(devices)
    if isinstance(devices, int):
        return None if devices == -1 else devices
    return len(list(devices))  # a list of ids


def check_devices(trainer: Mapping[str, Any]) -> None:
    """Raise one-line ``ValueError``s for more GPUs than exist, a GPU accelerator without a
    GPU, and ``num_nodes > 1`` outside a cluster environment. CPU "devices" are processes, so
    any number is allowed there (``trainer=ddp_sim``)."""
    accelerator = str(trainer.get("accelerator") or "auto")
    gpus = torch.cuda.device_count()
    wants_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if wants_gpu:
        if gpus == 0:
            raise ValueError(
                f"trainer.accelerator={accelerator} but this machine has no GPU "
                "(CUDA devices: 0): use trainer=cpu or trainer.accelerator=cpu."
            )
        n = _requested(trainer.get("devices", 1))
        if n is not None and n > gpus:
            names = ", ".join(f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(gpus))
            raise ValueError(
                f"trainer.devices={trainer.get('devices')} asks for {n} GPUs but this machine "
                f"has {gpus}: {names}; use trainer.devices<={gpus} or -1 (all)."
            )
    num_nodes = int(trainer.get("num_nodes") or 1)
    if num_nodes > 1 and not any(
        all(os.environ.get(v) for v in names) for names in CLUSTER_ENV.values()
    ):
        found = "; ".join(f"{k}: {'+'.join(v)}" for k, v in CLUSTER_ENV.items())
        raise ValueError(
            f"trainer.num_nodes={num_nodes} needs a launcher that starts one process per device "
            f"on every node and sets the cluster environment ({found}), and none is set: run it "
            "under SLURM (hydra/launcher=submitit_slurm or srun) or torchrun --nnodes, or use "
            "trainer.num_nodes=1."
        )

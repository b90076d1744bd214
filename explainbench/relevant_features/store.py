"""The fitted relevant features on disk: ``relevant_features.pt`` next to the checkpoint.

A ``torch.save``'d dict of plain types and tensors, loadable with ``weights_only=True``:

* ``W``: float ``[F, C]``, the μ-Lasso weights (column j: class j);
* ``index``: F ``[layer_name, filter]`` pairs, the rows of ``W``; ``layer_name`` is the
  conv / FC module's qualified name (``model.get_submodule(layer_name)``);
* ``layers``: the selected layer names; ``read_at``: per layer, the module whose output the
  response (and the heatmap's back-projection) is read from (see ``responses.py``);
  ``kinds``: per layer ``"conv"`` or ``"fc"``;
* ``selection``: the ``--layers`` value; ``mu``; ``num_classes``; ``checkpoint``: the path fitted
  on; ``fingerprint``: :func:`model_fingerprint` of the weights fitted on, so a W is refused
  for another model; ``images``: the number of training images; ``objective``,
  ``nonzeros``: per class, from the solver.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

FEATURES_FILE = "relevant_features.pt"


def fit_command(ckpt: str | os.PathLike) -> str:
    return f"python scripts/fit_relevant_features.py --ckpt {ckpt}"


def default_path(ckpt: str | os.PathLike) -> Path:
    """``relevant_features.pt`` in the checkpoint's folder."""
    return Path(ckpt).parent / FEATURES_FILE


def model_fingerprint(model: nn.Module, samples: int = 8) -> str:
    """A hash of the state dict's names, shapes and ``samples`` evenly spaced values per tensor.

    Exact values, no sums: the same weights give the same hash on any device; two trainings of
    one architecture differ in nearly every value, so a few per tensor tell them apart.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        picks = torch.linspace(0, max(flat.numel() - 1, 0), min(samples, flat.numel())).long()
        values = flat[picks.to(flat.device)].double().cpu() if flat.numel() else flat.cpu()
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:16]


def save_features(path: str | os.PathLike, **fields: Any) -> Path:
    path = Path(path)
    torch.save(fields, path)
    return path


def load_features(path: str | os.PathLike, ckpt_hint: str | os.PathLike | None = None) -> dict:
    """Read a relevant-features file (weights only); a missing one names the fitting command."""
    path = Path(path)
    if not path.is_file():
        ckpt = ckpt_hint if ckpt_hint is not None else "<run>/checkpoints/last.ckpt"
        raise FileNotFoundError(
            f"No relevant features at {path}: fit them first with `{fit_command(ckpt)}`."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def check_features_match(features: dict, model: nn.Module, path: str | os.PathLike) -> None:
    """Refuse a W fitted for another class count or other weights, naming both sides."""
    ckpt = getattr(model, "checkpoint_path", None) or "this model"
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        num_classes = getattr(getattr(model, "data_info", None), "num_classes", None)
    if num_classes is not None and int(features["num_classes"]) != int(num_classes):
        raise ValueError(
            f"{path} was fitted for {features['num_classes']} classes ({features['checkpoint']}) but "
            f"{ckpt} has {num_classes}: refit with `{fit_command(ckpt)}`."
        )
    if features["fingerprint"] != model_fingerprint(model):
        raise ValueError(
            f"{path} was fitted on another checkpoint ({features['checkpoint']}, weights "
            f"{features['fingerprint']}) than the one explained ({ckpt}, weights "
            f"{model_fingerprint(model)}): refit with `{fit_command(ckpt)}`."
        )

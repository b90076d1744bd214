"""One obvious way to build a backbone by name: :func:`build_backbone`.

Pretrained torchvision weights follow torchvision's convention: read from the torch hub cache,
downloaded there (with torchvision's progress bar) when absent; offline that fails within
seconds naming the file, the folder and the URL. A checkpoint written by explainbench (or a
plain state dict) can be loaded on top with ``checkpoint=<path>``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torchvision import models

from ..utils.checkpoint import load_checkpoint
from ..utils.network import url_unreachable
from . import torchvision_nets as tvn
from .base import Backbone
from .ran import RAN_MODULES, ran
from .small_cnn import small_cnn

# name -> (torchvision constructor, weights enum name, constructor kwargs, splitter)
_TORCHVISION: dict[str, tuple[Callable, str, dict, Callable]] = {
    "resnet18": (models.resnet18, "ResNet18_Weights", {}, partial(tvn.resnet, "resnet18")),
    "resnet50": (models.resnet50, "ResNet50_Weights", {}, partial(tvn.resnet, "resnet50")),
    "vgg16": (models.vgg16, "VGG16_Weights", {}, tvn.vgg16),
    "vgg16_7x7": (models.vgg16, "VGG16_Weights", {}, partial(tvn.vgg16, after_pool=True)),
    "alexnet": (models.alexnet, "AlexNet_Weights", {}, tvn.alexnet),
    "googlenet": (
        models.googlenet, "GoogLeNet_Weights", {"aux_logits": False, "init_weights": True}, tvn.googlenet
    ),
}  # fmt: skip

BACKBONES: tuple[str, ...] = ("small_cnn", *_TORCHVISION, *RAN_MODULES)

# Seconds the weights server gets to answer before an absent weights file is an error.
WEIGHTS_PROBE_TIMEOUT_S = 5.0

log = logging.getLogger("explainbench")


def build_backbone(
    name: str,
    num_classes: int,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_checkpoint: bool = False,
    **kwargs,
) -> Backbone:
    """Build backbone ``name`` with a ``num_classes``-way head.

    Args:
        name: one of :data:`BACKBONES`.
        num_classes: size of the classifier output; the torchvision head is replaced when it
            differs from 1000.
        weights: torchvision weights tag (e.g. ``"IMAGENET1K_V1"`` or ``"DEFAULT"``), loaded from
            ``$TORCH_HOME/hub/checkpoints``, downloaded there when absent.
        checkpoint: a Lightning checkpoint written by explainbench (its ``backbone.*`` weights are
            used) or a plain backbone state dict; loaded after ``weights``.
        trust_checkpoint: unpickle ``checkpoint`` fully, types outside the safe allow-list
            included (see :mod:`explainbench.utils.checkpoint`); only for files you trust.
        **kwargs: extra builder arguments (e.g. ``widths`` for ``small_cnn``, ``stem`` for
            ``ran56``/``ran92``).
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone '{name}'. Available: {', '.join(BACKBONES)}.")
    if name == "small_cnn":
        if weights:
            raise ValueError(
                "small_cnn has no pretrained torchvision weights: use backbone.checkpoint=<path>."
            )
        backbone = small_cnn(num_classes, **kwargs)
    elif name in RAN_MODULES:
        if weights:
            raise ValueError(
                f"{name} has no pretrained torchvision weights: use backbone.checkpoint=<path>."
            )
        backbone = ran(name, num_classes, **kwargs)
    else:
        ctor, enum_name, ctor_kwargs, split = _TORCHVISION[name]
        net = ctor(weights=None, **ctor_kwargs)
        if weights:
            state = _load_cached_weights(name, enum_name, weights)
            if name == "googlenet":  # aux heads are dropped; torchvision does the same
                state = {k: v for k, v in state.items() if not k.startswith("aux")}
                kwargs.setdefault("transform_input", True)
            net.load_state_dict(state)
        backbone = split(net, num_classes, **kwargs)
    if checkpoint is not None:
        load_backbone_checkpoint(backbone, checkpoint, trust=trust_checkpoint)
    # Where the weights came from; methods that explain a frozen classifier require one.
    backbone.source = (
        f"checkpoint:{checkpoint}"
        if checkpoint
        else (f"torchvision:{weights}" if weights else None)
    )
    return backbone


def _load_cached_weights(name: str, enum_name: str, tag: str) -> dict[str, torch.Tensor]:
    try:
        weights = models.get_weight(f"{enum_name}.{tag}")
    except (KeyError, ValueError, AttributeError) as err:
        valid = ", ".join(w.name for w in getattr(models, enum_name)) + ", DEFAULT"
        raise ValueError(f"Unknown weights '{tag}' for {name}. Valid: {valid}.") from err
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / os.path.basename(weights.url)
    if path.is_file():
        return load_checkpoint(path, what=f"Pretrained weights file for {name}")
    # torch.hub's download has no timeout: without a network it can hang. Probe first.
    reason = url_unreachable(weights.url, timeout=WEIGHTS_PROBE_TIMEOUT_S)
    if reason is not None:
        raise FileNotFoundError(
            f"Pretrained weights for {name} ({enum_name}.{weights.name}) are not in the torch hub cache "
            f"and cannot be downloaded ({reason}): fetch {weights.url} and put the file '{path.name}' "
            f"in '{folder}' (or set TORCH_HOME to a folder whose hub/checkpoints/ has it), or pass "
            "backbone.checkpoint=<path> instead."
        )
    log.info("Downloading %s to %s", weights.url, folder)
    return torch.hub.load_state_dict_from_url(
        weights.url,
        model_dir=str(folder),
        map_location="cpu",
        progress=True,
        check_hash=True,
        weights_only=True,
    )


def load_backbone_checkpoint(
    backbone: Backbone, path: str | os.PathLike, trust: bool = False
) -> None:
    """Load ``path`` into ``backbone``; any missing file, unreadable or unsafe file or key
    mismatch is one error that names the file and the keys. ``trust``: see
    :func:`~explainbench.utils.checkpoint.load_checkpoint`."""
    path = Path(path)
    blob = load_checkpoint(path, trust=trust, what="Backbone checkpoint (backbone.checkpoint)")
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ValueError(
            f"Backbone checkpoint '{path}' holds no state dict (got {type(blob).__name__})."
        )
    if any(k.startswith("backbone.") for k in state):  # a Lightning checkpoint of a method
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        details = []
        if missing:
            details.append(f"missing keys: {few(missing)}")
        if unexpected:
            details.append(f"unexpected keys: {few(unexpected)}")
        if wrong_shape:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong_shape]
            details.append(f"shape mismatch (checkpoint vs model): {few(shapes)}")
        raise ValueError(
            f"Backbone checkpoint '{path}' does not fit backbone '{backbone.name}' with "
            f"{backbone.num_classes} classes: "
            + "; ".join(details)
            + ". Check backbone=... and the data's number of classes match the run that wrote it."
        )
    backbone.load_state_dict(state)

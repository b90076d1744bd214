"""Does a checkpoint given as ``ckpt_path=`` fit the model this run builds?

Lightning loads ``ckpt_path`` strictly: a checkpoint of another backbone or method fails with a
wall of missing and unexpected state-dict keys. :func:`check_checkpoint_fits` compares the
parameter names and shapes first and names both architectures, read from the configs that
every method stores with its checkpoints (``build_config``, see
:mod:`explainbench.methods.build`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..methods.build import stored_build_config
from .checkpoint import load_checkpoint

# backbone settings that say where weights come from, not what shape they have
_NOT_ARCHITECTURE = ("weights", "checkpoint")


def _backbone_settings(config: dict[str, Any] | None) -> dict[str, Any]:
    backbone = dict((config or {}).get("backbone") or {})
    return {
        k: v for k, v in backbone.items() if not k.startswith("_") and k not in _NOT_ARCHITECTURE
    }


def describe_architecture(
    config: dict[str, Any] | None, other: dict[str, Any] | None = None
) -> str:
    """``backbone=small_cnn, method=Classifier, 6 classes`` from a method's ``build_config``
    (``{'backbone': ..., 'method': ..., 'data_info': {'num_classes': ...}}``), plus the backbone
    settings whose value differs in ``other`` (``widths=[16, 32]``)."""
    if not config:
        return "an unknown architecture (no build_config)"
    settings, others = _backbone_settings(config), _backbone_settings(other)
    name = (
        settings.pop("name", None)
        or str(config["backbone"].get("_target_", "?")).rsplit(".", 1)[-1]
    )
    settings.pop("num_classes", None)
    method = str((config.get("method") or {}).get("_target_", "?")).rsplit(".", 1)[-1]
    text = f"backbone={name}"
    if other and others.get("name") == name:
        text += "".join(f" {k}={v}" for k, v in settings.items() if others.get(k) != v)
    text += f", method={method}"
    num_classes = (config.get("data_info") or {}).get("num_classes")
    if num_classes is not None:
        text += f", {num_classes} classes"
    return text


def state_dict_mismatch(model: nn.Module, state_dict: dict[str, Any]) -> list[str]:
    """Parameter/buffer names missing from, unexpected in, or of another shape in ``state_dict``."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(getattr(v, "shape", ())) for k, v in state_dict.items()}
    missing = [f"missing {k}" for k in own if k not in given]
    unexpected = [f"unexpected {k}" for k in given if k not in own]
    shapes = [f"{k} {given[k]} vs {own[k]}" for k in own if k in given and given[k] != own[k]]
    return missing + unexpected + shapes


def check_checkpoint_fits(model: nn.Module, path: str | Path, trust: bool = False) -> None:
    """Raise ``ValueError`` naming the checkpoint's and this run's architectures when the
    weights in ``path`` cannot be loaded into ``model``. The file is read weights-only unless
    ``trust`` (see :func:`~explainbench.utils.checkpoint.load_checkpoint`)."""
    # mapped, not read: only names and shapes are compared, and Lightning reads the file next
    blob = load_checkpoint(path, trust=trust, what="ckpt_path", mmap=True)
    if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict):
        raise ValueError(f"ckpt_path={path} is not a Lightning checkpoint (it has no state_dict).")
    problems = state_dict_mismatch(model, blob["state_dict"])
    if not problems:
        return
    stored = stored_build_config(blob)
    ours = getattr(model, "build_config", None)
    raise ValueError(
        f"ckpt_path={path} holds {describe_architecture(stored, ours)}, but this run builds "
        f"{describe_architecture(ours, stored)} ({len(problems)} weights differ, e.g. {problems[0]}). "
        "Pass the backbone=/method= of the run that wrote the checkpoint."
    )

"""Building run components from the composed config (shared by train and evaluate)."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf


def instantiate_named(group: DictConfig | None) -> list[Any]:
    """Instantiate a dict of named entries (callbacks, loggers); ``null`` entries are skipped,
    which is how a user turns one off (``callbacks.model_summary=null``)."""
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"Expected a dict of named entries, got {type(group).__name__}.")
    built = []
    for name, entry in group.items():
        if entry is None:
            continue
        if not (isinstance(entry, DictConfig) and "_target_" in entry):
            raise ValueError(f"Entry '{name}' has no _target_: every callback/logger is built with _target_.")
        built.append(hydra.utils.instantiate(entry))
    return built


def build_backbone_for_data(backbone_cfg: DictConfig, num_classes: int, data_name: str = "the data"):
    """Instantiate the backbone with the data's class count; a conflicting explicit
    ``backbone.num_classes`` is an error rather than a silently wrong head."""
    requested = backbone_cfg.get("num_classes")
    if requested is not None and int(requested) != int(num_classes):
        raise ValueError(
            f"backbone.num_classes={requested} does not match the {num_classes} classes of {data_name}. "
            "Leave backbone.num_classes unset (it follows the data) or choose matching data."
        )
    return hydra.utils.instantiate(backbone_cfg, num_classes=num_classes)


def build_method(cfg: DictConfig, num_classes: int, data_name: str):
    """Backbone + method from ``cfg.backbone`` / ``cfg.method``; remembers the resolved configs
    so checkpoints can be rebuilt by evaluate.py without the training command line."""
    backbone = build_backbone_for_data(cfg.backbone, num_classes, data_name)
    method = hydra.utils.instantiate(cfg.method, backbone=backbone)
    method.run_config = {
        key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "backbone", "method")
    }
    method.run_config["num_classes"] = int(num_classes)
    return method


def unwrap_instantiation_error(err: BaseException) -> BaseException:
    """Hydra wraps errors raised inside ``_target_`` calls; the user needs the original message."""
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def load_method_checkpoint(path: str, map_location: str = "cpu"):
    """Rebuild a trained method from an explainbench checkpoint alone (its stored configs + weights).

    Pretrained-weight and checkpoint paths of the backbone are not re-read: the state dict
    already holds every weight.
    """
    import os

    import torch

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist (ckpt_path).")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"Cannot read checkpoint '{path}': {err}") from err
    stored = blob.get("explainbench_config") if isinstance(blob, dict) else None
    if not stored:
        raise ValueError(
            f"Checkpoint '{path}' was not written by explainbench's train.py (no explainbench_config): "
            "use a checkpoints/*.ckpt file of a train.py run."
        )
    backbone_cfg = OmegaConf.create(stored["backbone"])
    backbone_cfg.weights = None
    backbone_cfg.checkpoint = None
    backbone = hydra.utils.instantiate(backbone_cfg, num_classes=stored["num_classes"])
    backbone.source = f"checkpoint:{path}"
    method = hydra.utils.instantiate(OmegaConf.create(stored["method"]), backbone=backbone)
    method.load_state_dict(blob["state_dict"])
    method.run_config = stored
    return method.eval(), stored

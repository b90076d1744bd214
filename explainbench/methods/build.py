"""Building a method: from the composed config and its data module (train.py,
:func:`build_method`) or from a checkpoint alone (evaluate.py, scripts, :func:`load_method`).

Both take one route: the backbone is built for the data's class count, then the method config
is called with the backbone, the data's facts (:class:`~explainbench.data.info.DataInfo`) and
``build_config``, the resolved ``data``/``backbone``/``method`` configs it was built from. The
method stores ``build_config`` with its ``data_info`` in every checkpoint (key
:data:`BUILD_CONFIG_KEY`); :func:`load_method` reads them back, so no data is needed to rebuild it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ..backbones.speed import apply_speed_options, split_speed_options, without_speed_options
from ..data.base import ExplainDataModule
from ..data.info import DataInfo
from ..utils.checkpoint import load_checkpoint
from .base import BUILD_CONFIG_KEY, ExplainableMethod

# The key of checkpoints written before DataInfo existed: configs with ``num_classes`` at the
# top and a ``data_info`` holding only the names the method's constructor took. Still read
# (see stored_build_config) because users have runs written that way.
OLD_BUILD_CONFIG_KEY = "explainbench_config"

CONFIG_KEYS = ("data", "backbone", "method")

__all__ = [
    "BUILD_CONFIG_KEY",
    "build_backbone_for_data",
    "build_method",
    "load_method",
    "stored_datamodule",
]


def build_backbone_for_data(
    backbone_cfg: DictConfig,
    num_classes: int,
    data_name: str = "the data",
    trust_checkpoint: bool = False,
):
    """Instantiate the backbone with the data's class count; a conflicting explicit
    ``backbone.num_classes`` is an error rather than a silently wrong head. ``trust_checkpoint``
    (the top-level config key) lets ``backbone.checkpoint`` unpickle types outside the safe list."""
    requested = backbone_cfg.get("num_classes")
    if requested is not None and int(requested) != int(num_classes):
        raise ValueError(
            f"backbone.num_classes={requested} does not match the {num_classes} classes of "
            f"{data_name}. Leave backbone.num_classes unset (it follows the data) or choose "
            "matching data."
        )
    builder_cfg, speed = split_speed_options(backbone_cfg)
    backbone = hydra.utils.instantiate(
        builder_cfg, num_classes=num_classes, trust_checkpoint=trust_checkpoint
    )
    return apply_speed_options(backbone, **speed)


def check_input_channels(backbone: Any, info: DataInfo, data_name: str = "the data") -> None:
    """The data's image channels are the backbone's input channels, or one clear error (not a
    convolution's shape error at the first batch)."""
    wanted = getattr(backbone, "in_channels", 3)
    if info.channels != wanted:
        raise ValueError(
            f"{data_name} gives {info.channels}-channel images (data.channels={info.channels}) but "
            f"backbone '{getattr(backbone, 'name', type(backbone).__name__)}' takes {wanted}-channel "
            f"input: use data.channels={wanted}, or a backbone built for {info.channels}-channel input "
            f"(backbone=small_cnn backbone.in_channels={info.channels})."
        )


def instantiate_method(
    method_cfg: DictConfig,
    backbone: Any,
    data_info: DataInfo,
    build_config: Mapping[str, Any],
) -> ExplainableMethod:
    """The method of ``method_cfg`` on ``backbone``, given the data's facts and what it was built
    from. Built as a partial and then called: Hydra would turn a dataclass or dict argument into
    a config and build the ``_target_`` entries nested in ``build_config``."""
    factory = hydra.utils.instantiate(method_cfg, _partial_=True)
    return factory(backbone=backbone, data_info=data_info, build_config=build_config)


def build_method(cfg: DictConfig, datamodule: ExplainDataModule) -> ExplainableMethod:
    """Backbone and method from ``cfg.backbone`` / ``cfg.method`` for ``datamodule``'s data (its
    :meth:`~explainbench.data.base.ExplainDataModule.info`, read without loading any data)."""
    info = datamodule.info()
    backbone = build_backbone_for_data(
        cfg.backbone,
        info.num_classes,
        type(datamodule).__name__,
        bool(cfg.get("trust_checkpoint")),
    )
    check_input_channels(backbone, info, type(datamodule).__name__)
    build_config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in CONFIG_KEYS}
    return instantiate_method(cfg.method, backbone, info, build_config)


def stored_build_config(checkpoint: Any) -> dict[str, Any] | None:
    """The ``build_config`` a checkpoint holds (``data``, ``backbone``, ``method``, ``data_info``),
    or ``None`` for a checkpoint explainbench's train.py did not write."""
    if not isinstance(checkpoint, dict):
        return None
    if checkpoint.get(BUILD_CONFIG_KEY):
        return checkpoint[BUILD_CONFIG_KEY]
    old = checkpoint.get(OLD_BUILD_CONFIG_KEY)
    if not old:
        return None
    # Old layout: the facts it lacks (mean/std, landmark names, annotations) take DataInfo's
    # defaults; L-CAM's own mean/std come back with its state dict (they are buffers).
    data_info = {"num_classes": old["num_classes"], **(old.get("data_info") or {})}
    return {**{key: old[key] for key in CONFIG_KEYS}, "data_info": data_info}


def load_method(
    path: str | os.PathLike, trust: bool = False, map_location: Any = "cpu"
) -> ExplainableMethod:
    """Rebuild a trained method from an explainbench checkpoint alone (its ``build_config`` and
    weights), in eval mode; ``method.build_config`` holds what it was built from.

    Pretrained-weight and checkpoint paths of the backbone are not re-read: the state dict
    already holds every weight. The file is read safely (weights only) unless ``trust``, see
    :func:`~explainbench.utils.checkpoint.load_checkpoint`.
    """
    blob = load_checkpoint(
        path, trust=trust, what="Checkpoint (ckpt_path)", map_location=map_location
    )
    build_config = stored_build_config(blob)
    if not build_config:
        raise ValueError(
            f"Checkpoint '{path}' was not written by explainbench's train.py (no "
            f"{BUILD_CONFIG_KEY}): use a checkpoints/*.ckpt file of a train.py run."
        )
    info = DataInfo.from_dict(build_config["data_info"])
    # the training speed options stay off: explainers choose their own (backbones/speed.py)
    backbone_cfg = OmegaConf.create(without_speed_options(build_config["backbone"]))
    backbone_cfg.weights = None
    backbone_cfg.checkpoint = None
    backbone = hydra.utils.instantiate(backbone_cfg, num_classes=info.num_classes)
    backbone.source = f"checkpoint:{path}"
    method = instantiate_method(
        OmegaConf.create(build_config["method"]), backbone, info, build_config
    )
    method.load_state_dict(blob["state_dict"])
    # where it came from, for files fitted next to the checkpoint (relevant_features.pt)
    method.checkpoint_path = str(path)
    return method.eval()


def stored_datamodule(method: ExplainableMethod, **changes: Any) -> ExplainDataModule:
    """The data module ``method`` was trained on, rebuilt from its ``build_config``, with the
    ``data.*`` settings in ``changes`` replaced (``None`` leaves a setting as stored), e.g.
    ``stored_datamodule(model, batch_size=100, test_size=None)`` in the analysis scripts."""
    data_cfg = OmegaConf.create(method.build_config["data"])
    for key, value in changes.items():
        if value is not None:
            data_cfg[key] = value
    return hydra.utils.instantiate(data_cfg)

"""Building run components from the composed config (shared by train and evaluate)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf


def instantiate_named(group: Mapping | None) -> list[Any]:
    """The objects of :func:`instantiate_named_dict`, in config order (callbacks, loggers)."""
    return list(instantiate_named_dict(group).values())


def instantiate_named_dict(group: Mapping | None) -> dict[str, Any]:
    """Build a dict of named entries, ``name -> object`` in config order: a composed config
    group (callbacks, loggers, explainers, metrics), each entry built from its ``_target_``.

    ``null`` entries are skipped, which is how a user turns one off (``metrics.iou=null``).
    An entry that is already an object is kept: Hydra builds nested ``_target_`` configs before
    the object that takes them (a callback given ``${explainers}`` receives explainers).
    """
    if not group:
        return {}
    if not isinstance(group, Mapping):
        raise TypeError(f"Expected a dict of named entries, got {type(group).__name__}.")
    built = {}
    for name, entry in group.items():
        if entry is None:
            continue
        if isinstance(entry, Mapping):
            if "_target_" not in entry:
                raise ValueError(f"Entry '{name}' has no _target_: every entry of a named group is built from one.")
            entry = hydra.utils.instantiate(entry)
        built[str(name)] = entry
    return built


def build_backbone_for_data(
    backbone_cfg: DictConfig, num_classes: int, data_name: str = "the data", trust_checkpoint: bool = False
):
    """Instantiate the backbone with the data's class count; a conflicting explicit
    ``backbone.num_classes`` is an error rather than a silently wrong head. ``trust_checkpoint``
    (the top-level config key) lets ``backbone.checkpoint`` unpickle types outside the safe list."""
    requested = backbone_cfg.get("num_classes")
    if requested is not None and int(requested) != int(num_classes):
        raise ValueError(
            f"backbone.num_classes={requested} does not match the {num_classes} classes of {data_name}. "
            "Leave backbone.num_classes unset (it follows the data) or choose matching data."
        )
    return hydra.utils.instantiate(backbone_cfg, num_classes=num_classes, trust_checkpoint=trust_checkpoint)


# Facts about the data a method may take as constructor arguments (EAT: the attribute and
# class names; multilabel: several 0/1 labels per image, e.g. CelebA's 40 attributes). Passed
# only to methods whose constructor names them, and stored with the checkpoint, so evaluate.py
# rebuilds the method without the data.
DATA_INFO_KEYS = ("attribute_names", "class_names", "multilabel")


def method_data_info(method_cfg: DictConfig, data_info: dict[str, Any], data_name: str) -> dict[str, Any]:
    """The entries of ``data_info`` that the method's constructor accepts.

    A constructor argument without a default that the data cannot give (``None``) is an error
    naming the data, e.g. ``method=eat`` on a dataset without attributes.
    """
    target = method_cfg.get("_target_")
    if not target:
        return {}
    params = inspect.signature(hydra.utils.get_class(target)).parameters
    given = {}
    if data_info.get("multilabel"):
        if "multilabel" not in params:
            raise ValueError(
                f"{target.rsplit('.', 1)[-1]} learns one class per image, but {data_name} gives "
                "several 0/1 labels per image (multi-label). Use method=classifier, or train on "
                "one label (CelebA: data.target_attribute=Smiling)."
            )
        given["multilabel"] = True
    for key in DATA_INFO_KEYS:
        if key == "multilabel":
            continue
        if key not in params:
            continue
        value = data_info.get(key)
        if value is None and params[key].default is inspect.Parameter.empty:
            raise ValueError(
                f"{target.rsplit('.', 1)[-1]} needs the data's {key.replace('_', ' ')}, but {data_name} "
                f"has none. Choose a dataset that has them (attributes: data=an8flower, cub, "
                "sun_attribute, aircraft17 or attribute_folder)."
            )
        if value is not None:
            given[key] = [str(v) for v in value]
    return given


def build_method(cfg: DictConfig, num_classes: int, data_name: str, data_info: dict[str, Any] | None = None):
    """Backbone + method from ``cfg.backbone`` / ``cfg.method``; remembers the resolved configs
    (and the data facts the method took, see :data:`DATA_INFO_KEYS`) so checkpoints can be
    rebuilt by evaluate.py without the training command line or the data."""
    extra = method_data_info(cfg.method, data_info or {}, data_name)
    backbone = build_backbone_for_data(cfg.backbone, num_classes, data_name, bool(cfg.get("trust_checkpoint")))
    method = hydra.utils.instantiate(cfg.method, backbone=backbone, **extra)
    method.run_config = {
        key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "backbone", "method")
    }
    method.run_config["num_classes"] = int(num_classes)
    method.run_config["data_info"] = extra
    return method


def unwrap_instantiation_error(err: BaseException) -> BaseException:
    """Hydra wraps errors raised inside ``_target_`` calls; the user needs the original message."""
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def load_method_checkpoint(path: str, map_location: str = "cpu", trust: bool = False):
    """Rebuild a trained method from an explainbench checkpoint alone (its stored configs + weights).

    Pretrained-weight and checkpoint paths of the backbone are not re-read: the state dict
    already holds every weight. The file is read safely (weights only) unless ``trust``, see
    :func:`~explainbench.utils.checkpoint.load_checkpoint`.
    """
    from .checkpoint import load_checkpoint

    blob = load_checkpoint(path, trust=trust, what="Checkpoint (ckpt_path)", map_location=map_location)
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
    method = hydra.utils.instantiate(OmegaConf.create(stored["method"]), backbone=backbone,
                                     **stored.get("data_info", {}))
    method.load_state_dict(blob["state_dict"])
    method.run_config = stored
    return method.eval(), stored

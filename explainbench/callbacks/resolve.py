"""Turning ``explainers`` / ``metrics`` settings (names or configs) into objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..explainers import EXPLAINERS
from ..utils.paths import CONF_DIR


def conf_dir() -> Path:
    return CONF_DIR


def _group_entry(group: str, name: str, known: Sequence[str]) -> DictConfig:
    """The config of ``conf/<group>/<name>.yaml``: either a flat ``_target_`` config or, like
    ``conf/metrics/``, one named entry ``<name>: {_target_: ...}``."""
    path = conf_dir() / group / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"Unknown {group} '{name}' (no {path}). Available: {', '.join(known)}.")
    cfg = OmegaConf.load(path)
    if "_target_" not in cfg and name in cfg:
        cfg = cfg[name]
    return cfg


def _instantiate_entries(spec: Any, group: str, known: Sequence[str], overrides: Mapping | None) -> dict[str, Any]:
    """``spec`` is a list of names (each read from ``conf/<group>/<name>.yaml``) or a dict
    ``name -> config`` as a composed config group gives it (an entry set to None is dropped:
    ``metrics.iou=null`` on the command line). ``overrides[name]`` is merged on top (e.g.
    ``{"rise": {"n_masks": 1000}}``)."""
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, (list, tuple, ListConfig)):
        spec = {str(name): _group_entry(group, str(name), known) for name in spec}
    built: dict[str, Any] = {}
    for name, entry in (spec or {}).items():
        if entry is None:
            continue
        if not isinstance(entry, (dict, DictConfig)):
            built[name] = entry  # already an object
            continue
        cfg = OmegaConf.create(entry)
        if overrides and name in overrides:
            cfg = OmegaConf.merge(cfg, overrides[name])
        built[name] = hydra.utils.instantiate(cfg)
    return built


def resolve_explainers(spec: Any, overrides: Mapping | None = None) -> dict[str, Any]:
    return _instantiate_entries(spec, "explainer", list(EXPLAINERS), overrides)


def resolve_metrics(spec: Any, overrides: Mapping | None = None) -> dict[str, Any]:
    """Metric *prototypes*; callers copy one per explainer (metrics hold state)."""
    known = sorted(p.stem for p in (conf_dir() / "metrics").glob("*.yaml") if p.stem != "default")
    if spec is None or spec == "default":  # the names in default.yaml's defaults list
        defaults = OmegaConf.load(conf_dir() / "metrics" / "default.yaml").get("defaults", [])
        spec = [name for name in defaults if name != "_self_"]
    return _instantiate_entries(spec, "metrics", known, overrides)

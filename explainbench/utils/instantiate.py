"""Building named config groups (callbacks, loggers, explainers, metrics) and unwrapping
Hydra's instantiation errors; methods are built by :mod:`explainbench.methods.build`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra


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
                raise ValueError(
                    f"Entry '{name}' has no _target_: every entry of a named group is built from one."
                )
            entry = hydra.utils.instantiate(entry)
        built[str(name)] = entry
    return built


def unwrap_instantiation_error(err: BaseException) -> BaseException:
    """Hydra wraps errors raised inside ``_target_`` calls; the user needs the original message."""
    from hydra.errors import InstantiationException

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err

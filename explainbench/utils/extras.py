"""Hydra plugins shipped as optional extras: a command line that selects one that is not
installed fails with one line naming the ``pip install`` command, before Hydra composes.

Without this check Hydra answers ``Could not find 'hydra/launcher/submitit_slurm'`` with the
list of the launchers it has, which does not say that a package is missing.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from functools import wraps

import yaml

from .paths import CONF_DIR


class Extra:
    """An optional extra of pyproject.toml: its name, the Hydra plugin module it installs and
    the words of an override that select that plugin."""

    def __init__(self, name: str, module: str, pip: str, words: tuple[str, ...]):
        self.name, self.module, self.pip, self.words = name, module, pip, words

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def message(self, override: str) -> str:
        return (
            f"Error: ModuleNotFoundError: '{override}' needs the optional extra [{self.name}] "
            f"({self.pip}), which is not installed: pip install -e '.[{self.name}]' "
            f"(or pip install {self.pip})"
        )


EXTRAS = (
    Extra("slurm", "hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", ("submitit", "slurm")),
    Extra("optuna", "hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", ("optuna",)),
)  # fmt: skip

# the config groups whose choice can select a plugin: a preset of ours names it in its file
PLUGIN_GROUPS = ("hydra/launcher", "hydra/sweeper", "hparams_search")


def selected_text(override: str) -> str | None:
    """The text that decides which plugin ``override`` selects: the option name, plus the
    defaults list of the preset when it is one of ours (hparams_search=an8flower_optuna
    selects the optuna sweeper there; comments do not count). None for another group."""
    key, sep, value = override.partition("=")
    group = key.lstrip("+~")
    if not sep or group not in PLUGIN_GROUPS:
        return None
    preset = CONF_DIR / group / f"{value}.yaml"
    defaults = (
        (yaml.safe_load(preset.read_text()) or {}).get("defaults") if preset.is_file() else []
    )
    return " ".join([value, *map(str, defaults or [])])


def missing_extra(overrides: Sequence[str]) -> str | None:
    """The one-line error for the first override that selects a plugin whose extra is absent."""
    for override in overrides:
        text = selected_text(override)
        if text is None:
            continue
        for extra in EXTRAS:
            if any(word in text for word in extra.words) and not extra.installed():
                return extra.message(override)
    return None


def require_extras(main: Callable[[], object]) -> Callable[[], object]:
    """Wrap a ``@hydra.main`` entry point: check its command line for missing plugins first."""

    @wraps(main)
    def wrapped(*args, **kwargs):
        message = missing_extra(sys.argv[1:])
        if message is not None:
            print(message, file=sys.stderr)
            sys.exit(1)
        return main(*args, **kwargs)

    return wrapped

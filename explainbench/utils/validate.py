"""One validation pass over the composed config, run first by train.py and evaluate.py.

A command-line override is parsed by its look, not by the key it sets: ``trainer.max_epochs=abc``
reaches Lightning as the string ``'abc'`` and fails deep inside it with an empty
``AssertionError``; ``method.optimizer.lr=abc`` fails inside torch with ``'<=' not supported``.
:data:`SCHEMA` names the expected type of the keys users override most, so a wrong value is
one line naming the key and the type before anything is built. A key absent from the
composed config (another dataset, another optimiser) is not checked; ``null`` is accepted
where the owner of the key reads it as "use the default".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("explainbench")


@dataclass(frozen=True)
class Expected:
    """A key's expected value: ``types`` (int accepted where float is, bool never counts as a
    number) and whether ``null`` is allowed."""

    types: tuple[type, ...]
    nullable: bool = False

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.nullable
        if isinstance(value, bool):
            return bool in self.types
        if isinstance(value, int) and float in self.types:
            return True
        return isinstance(value, self.types)

    def describe(self) -> str:
        names = {
            int: "an integer",
            float: "a number",
            bool: "true/false",
            str: "a string",
            list: "a list",
        }
        text = " or ".join(names[t] for t in self.types)
        return text + (" (or null)" if self.nullable else "")


INT = Expected((int,))
INT_OR_NULL = Expected((int,), nullable=True)
NUMBER = Expected((float,))
NUMBER_OR_NULL = Expected((float,), nullable=True)
FLAG = Expected((bool,))
TEXT_OR_NULL = Expected((str,), nullable=True)

# key (dotted, as on the command line) -> expected value
SCHEMA: dict[str, Expected] = {
    "seed": INT_OR_NULL,
    "train": FLAG,
    "gallery_per_image": FLAG,
    "estimate": FLAG,
    "test": FLAG,
    "trainer.max_epochs": INT_OR_NULL,
    "trainer.min_epochs": INT_OR_NULL,
    "trainer.max_steps": INT_OR_NULL,
    "trainer.devices": Expected((int, str, list)),
    "trainer.num_nodes": INT,
    "trainer.check_val_every_n_epoch": INT_OR_NULL,
    "trainer.log_every_n_steps": INT_OR_NULL,
    "trainer.accumulate_grad_batches": INT,
    "trainer.gradient_clip_val": NUMBER_OR_NULL,
    "trainer.limit_train_batches": NUMBER_OR_NULL,
    "trainer.limit_val_batches": NUMBER_OR_NULL,
    "trainer.limit_test_batches": NUMBER_OR_NULL,
    "trainer.num_sanity_val_steps": INT_OR_NULL,
    "trainer.fast_dev_run": Expected((bool, int)),
    "trainer.deterministic": Expected((bool, str), nullable=True),
    "trainer.benchmark": Expected((bool,), nullable=True),
    "data.batch_size": INT,
    "data.num_workers": INT,
    "data.image_size": INT,
    "data.train_size": INT_OR_NULL,
    "data.val_size": INT_OR_NULL,
    "data.test_size": INT_OR_NULL,
    "data.subset": INT_OR_NULL,
    "data.subset_seed": INT,
    "data.seed": INT,
    "data.pin_memory": FLAG,
    "data.in_memory": FLAG,
    "data.hflip": FLAG,
    "data.bias": NUMBER,
    "data.brightness": NUMBER,
    "data.val_fraction": NUMBER,
    # CIFAR-10, MNIST; small_cnn's input channels (MNIST with data.channels=1)
    "data.augment": FLAG,
    "data.channels": INT,
    "data.split_seed": INT,
    "backbone.in_channels": INT,
    # speed options (methods/build.py applies them); channels_last=yes would be the string 'yes'
    "backbone.channels_last": FLAG,
    "backbone.compile": FLAG,
    # CelebA: data.aligned=yes would be the (true) string 'yes'; data.target_attribute=1 an int
    "data.aligned": FLAG,
    "data.target_attribute": TEXT_OR_NULL,
    "data.landmark_split": TEXT_OR_NULL,
    "method.optimizer.lr": NUMBER,
    "method.optimizer.weight_decay": NUMBER,
    "method.optimizer.momentum": NUMBER,
    "method.scheduler.T_max": INT,
    "method.label_smoothing": NUMBER,
    # method=attention_net: atrous=yes would be the (true) string 'yes'
    "method.attention.atrous": FLAG,
    "method.attention.depth": INT_OR_NULL,
}


_ABSENT = object()


class ConfigTypeError(TypeError):
    """An override of the wrong type; the message names every such key and its expected type."""


def type_errors(cfg: DictConfig, schema: dict[str, Expected] = SCHEMA) -> list[str]:
    """``'<key>=<value> (<type>): expected <type>'`` for every key of ``schema`` present in ``cfg``
    whose value has the wrong type. An interpolation (``T_max: ${trainer.max_epochs}``) is skipped:
    its source is the key to name, and is checked on its own."""
    problems = []
    for key, expected in schema.items():
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if (
            isinstance(parent, DictConfig)
            and leaf in parent
            and OmegaConf.is_interpolation(parent, leaf)
        ):
            continue
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation is reported where it is used
            continue
        if value is _ABSENT:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not expected.accepts(value):
            shown = (
                json.dumps(value)
                if isinstance(value, (str, bool, int, float, list))
                else repr(value)
            )
            problems.append(
                f"{key}={shown} ({type(value).__name__}): expected {expected.describe()}"
            )
    return problems


def warn_endless_training(cfg: DictConfig) -> None:
    """``trainer.max_epochs=-1`` is Lightning's "train forever": fine with a step or time limit,
    otherwise only a kill ends the run."""
    trainer = cfg.get("trainer") or {}
    max_steps = trainer.get("max_steps")
    if (
        trainer.get("max_epochs") == -1
        and (max_steps is None or max_steps == -1)
        and not trainer.get("max_time")
    ):
        log.warning(
            "trainer.max_epochs=-1 trains forever: no trainer.max_steps or trainer.max_time is set, "
            "so only stopping the process ends this run."
        )


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigTypeError` for overrides of the wrong type; warn about endless runs."""
    problems = type_errors(cfg)
    if problems:
        raise ConfigTypeError("Wrong type in the config: " + "; ".join(problems) + ".")
    warn_endless_training(cfg)

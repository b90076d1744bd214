"""Training speed options of a backbone, ``backbone.channels_last`` and ``backbone.compile``:
keys of every conf/backbone/*.yaml that are not builder arguments; methods/build.py takes them
off the config before building and applies them to the built backbone.

- ``channels_last``: the weights in NHWC layout. cuDNN (tensor cores) and oneDNN pick their
  NHWC convolution kernels from it, and the activations follow the weights' layout.
- ``compile``: ``torch.compile`` of the feature extractor and the head, in place
  (``nn.Module.compile``): the parameters stay where they are, so checkpoints keep their plain
  ``backbone.extractor...`` keys. ``torch.compile(module)`` would wrap the module and prefix
  every key with ``_orig_mod.``, and checkpoints would no longer load into an eager model.
  features() and head() are compiled separately because methods call them, not forward().

Rebuilding from a checkpoint (evaluate.py, :func:`~explainbench.methods.build.load_method`)
ignores both: the explainers set their own (``compile`` / ``channels_last`` of Score-CAM, RISE).
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from .base import Backbone

SPEED_KEYS = ("channels_last", "compile")


def split_speed_options(backbone_cfg: DictConfig) -> tuple[DictConfig, dict[str, bool]]:
    """``(config without the speed keys, {key: value})``; absent keys count as false."""
    cfg = backbone_cfg.copy()
    options = {}
    with open_dict(cfg):
        for key in SPEED_KEYS:
            options[key] = bool(cfg.pop(key, False))
    return cfg, options


def without_speed_options(backbone_cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in backbone_cfg.items() if k not in SPEED_KEYS}


def apply_speed_options(
    backbone: Backbone, channels_last: bool = False, compile: bool = False
) -> Backbone:
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    if compile:
        backbone.extractor.compile()
        backbone.classifier.compile()
    return backbone

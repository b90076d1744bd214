"""Post-hoc explainers (pure torch) and the ``method`` wrapper for learned explanations.

Build one by name with :func:`build_explainer` (the names of ``conf/explainer/``) or with
Hydra: ``instantiate(cfg.explainer)``. Each is called as ``explainer(model, x, target)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Explanation, check_explainable, normalize_per_image, resolve_target, upsample_to

# name -> "module:Class"; imported on first use so a CLI that needs one explainer loads one.
EXPLAINERS: dict[str, str] = {
    "gradcam": "gradcam:GradCAM",
    "gradcampp": "gradcam:GradCAMPlusPlus",
    "activation": "activation:ActivationMap",
    "scorecam": "scorecam:ScoreCAM",
    "rise": "rise:RISE",
    "guided_backprop": "backprop:GuidedBackprop",
    "deconvnet": "backprop:Deconvnet",
    "method": "method:MethodExplainer",
}


def explainer_class(name: str) -> type:
    if name not in EXPLAINERS:
        raise ValueError(f"Unknown explainer '{name}'. Available: {', '.join(EXPLAINERS)}.")
    module, cls = EXPLAINERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_explainer(name: str, **kwargs: Any):
    """Instantiate explainer ``name`` with keyword settings (see its ``conf/explainer`` file)."""
    return explainer_class(name)(**kwargs)


__all__ = [
    "EXPLAINERS",
    "Explanation",
    "build_explainer",
    "check_explainable",
    "explainer_class",
    "normalize_per_image",
    "resolve_target",
    "upsample_to",
]

"""Post-hoc explainers (pure torch) and the ``method`` wrapper for learned explanations.

Each is one module here and one named entry in ``conf/explainers/<name>.yaml`` (its
``_target_`` is the class); the composed ``explainers`` group is what gets built
(``explainers=[gradcam,rise] explainers.rise.n_masks=1000``), so there is no registry to keep
in step. Each is called as ``explainer(model, x, target)`` and returns an :class:`Explanation`.
"""

from __future__ import annotations

from .base import Explanation, check_explainable, normalize_per_image, resolve_target, upsample_to

__all__ = [
    "Explanation",
    "check_explainable",
    "normalize_per_image",
    "resolve_target",
    "upsample_to",
]

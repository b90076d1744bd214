"""Explainers under mixed precision (``trainer.precision=bf16-mixed`` leaves the model to run
under autocast): every explainer of conf/explainers/ gives finite float32 maps in [0, 1] when
its forwards run under CPU bf16 autocast, as they do after a bf16 training run's test step."""

from __future__ import annotations

import torch

from tests.explainers.test_contract import build, model, name  # noqa: F401  (fixtures: every explainer, the toy model)


def test_every_explainer_under_bf16_autocast(name, model, make_images):  # noqa: F811
    x = make_images(batch=2, size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ex = build(name)(model, x)
    maps = ex.saliency
    assert maps.dtype == torch.float32, f"{name}: {maps.dtype}"
    assert torch.isfinite(maps).all(), f"{name}: non-finite map values"
    assert maps.min() >= 0 and maps.max() <= 1, f"{name}: outside [0, 1]"
    # not a degenerate (all-zero) map: bf16 rounding must not wipe out the explanation
    assert (maps.amax(dim=(1, 2, 3)) > 0).all(), name

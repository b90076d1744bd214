"""The published protocol settings, pinned: the composed default configs and the class defaults must
both say what the papers say, so a one-line config change (``binary: true``, ``mask_key: mask``,
``tv_weight: 0.1``) fails here instead of silently changing every published number."""

from __future__ import annotations

import inspect

import hydra
import pytest

from explainbench.methods.lcam import LCAM

from .helpers import compose_cfg

# L-CAM (Gkartzonika et al., Sec. 3 / 4.1): λ1 = 0.01 (TV), λ2 = 2 (area), λ3 = 1.5 (CE),
# λ4 = 0.3 (area exponent); the target is the frozen classifier's own top-1 ("model truth").
LCAM_PAPER = {
    "tv_weight": 0.01,
    "area_weight": 2.0,
    "ce_weight": 1.5,
    "area_exponent": 0.3,
    "target_source": "model",
    "ce_only": False,
}

# The explanation metrics as the papers define them (see each conf/metrics/*.yaml comment):
#   AD/IC (L-CAM, after Grad-CAM++): continuous masks (kept pixels keep their saliency) at
#     100/50/15 % of pixels, removed pixels black in [0, 1] pixel space;
#   IoU (an8Flower, Oramas et al.): against the discriminative part, thresholds 0.05..0.95;
#   FAR (EAT): against the object mask;
#   pointing game (Zhang et al.): 15 px tolerance at 224 px;
#   deletion / insertion (RISE): black deletion, insertion into an 11x11, σ = 5 blurred copy;
#     20 steps is this project's evaluation budget (RISE steps 224 pixels at a time), pinned so
#     tables stay comparable.
METRICS_PAPER = {
    "ad_ic": {"fractions": [1.0, 0.5, 0.15], "binary": False, "baseline": "black"},
    "iou": {"mask_key": "part_mask", "thresholds": [round(0.05 * i, 2) for i in range(1, 20)]},
    "far": {"mask_key": "mask"},
    "pointing_game": {"tolerance": 15.0, "reference_size": 224, "mask_key": "mask"},
    "deletion_insertion": {
        "n_steps": 20,
        "deletion_baseline": "black",
        "insertion_baseline": "blur",
        "blur_kernel": 11,
        "blur_sigma": 5.0,
    },
}


def class_defaults(target: str) -> dict:
    params = inspect.signature(hydra.utils.get_class(target)).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("variant", ["img", "fm"])
def test_lcam_paper_weights_in_config_and_class(variant, tmp_path):
    cfg = compose_cfg([f"method=lcam_{variant}"], tmp_path).method
    assert cfg.variant == variant
    defaults = class_defaults(cfg._target_)
    for key, value in LCAM_PAPER.items():
        assert cfg[key] == value, (
            f"conf/method/lcam_{variant}.yaml {key}={cfg[key]}, paper: {value}"
        )
        assert defaults[key] == value, f"LCAM({key}=...) default {defaults[key]}, paper: {value}"
    assert hydra.utils.get_class(cfg._target_) is LCAM


@pytest.mark.parametrize("metric", sorted(METRICS_PAPER))
def test_metric_protocol_settings_in_config_and_class(metric, tmp_path):
    cfg = compose_cfg([], tmp_path, config_name="evaluate.yaml").metrics
    assert metric in cfg, f"{metric} is not in the default metrics"
    entry = cfg[metric]
    defaults = class_defaults(entry._target_)
    for key, value in METRICS_PAPER[metric].items():
        assert plain(entry[key]) == pytest.approx(value), (
            f"conf/metrics/{metric}.yaml {key}={entry[key]}"
        )
        assert plain(defaults[key]) == pytest.approx(value), f"{entry._target_}({key}=...) default"

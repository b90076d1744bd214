"""The frozen classifier an L-CAM-style method explains, found or built before the method is.

A method config with ``classifier: auto`` (conf/method/lcam_img.yaml, lcam_fm.yaml) and neither
``backbone.weights`` nor ``backbone.checkpoint`` set gets one here, so that
``python train.py method=lcam_img backbone=vgg16`` works on a fresh machine:

* on ImageNet: torchvision's ``IMAGENET1K_V1`` weights (the paper's setting; any data module
  naming its ``torchvision_weights``);
* on any other data: a ``method=classifier`` run of the same backbone on the same data, looked up
  in ``<paths.log_dir>/classifier_cache/<hash of backbone + data config>/classifier.ckpt`` and,
  when absent, trained first with the project's own train pipeline (in-process) on a short
  recipe (:data:`CACHE_EPOCHS` epochs on at most :data:`CACHE_TRAIN_IMAGES` training images), so
  the first run stays short; pass ``backbone.checkpoint=<ckpt>`` to use a better classifier.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..backbones.speed import without_speed_options

log = logging.getLogger("explainbench")

# The cached classifier's recipe: short enough for a first run on 2 CPU cores (an8flower with
# small_cnn: well under a minute), long enough for a classifier clearly above chance.
CACHE_EPOCHS = 3
CACHE_TRAIN_IMAGES = 1024
CACHE_DIR_NAME = "classifier_cache"
CACHED_FILE = "classifier.ckpt"

# Data keys that change how batches are loaded, not what the classifier learns.
_LOADER_KEYS = ("num_workers", "pin_memory", "persistent_workers", "subset", "subset_seed")


def cache_key(cfg: DictConfig) -> str:
    """Hash of what determines the classifier: backbone and data configs, recipe and seed."""
    # speed options do not change what is learned: the same cache (and the same hash as before)
    backbone = without_speed_options(OmegaConf.to_container(cfg.backbone, resolve=True))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    for key in ("weights", "checkpoint", "num_classes"):
        backbone.pop(key, None)
    for key in _LOADER_KEYS:
        data.pop(key, None)
    blob = {
        "backbone": backbone,
        "data": data,
        "seed": cfg.get("seed"),
        "recipe": [CACHE_EPOCHS, CACHE_TRAIN_IMAGES],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ensure_frozen_classifier(cfg: DictConfig) -> None:
    """Set ``backbone.weights`` or ``backbone.checkpoint`` in ``cfg`` when the method asks for an
    automatic classifier (``method.classifier: auto``) and the user gave none."""
    if cfg.method.get("classifier") != "auto":
        return
    if cfg.backbone.get("weights") or cfg.backbone.get("checkpoint"):
        return
    with open_dict(cfg):
        # a class attribute: read without building the data module
        weights = getattr(hydra.utils.get_class(cfg.data._target_), "torchvision_weights", None)
        if weights and cfg.backbone.get("name") != "small_cnn":
            cfg.backbone.weights = weights
            log.info(
                "L-CAM explains torchvision's classifier of this data: backbone.weights=%s.",
                weights,
            )
            return
        cfg.backbone.checkpoint = str(cached_classifier(cfg))


def cached_classifier(cfg: DictConfig) -> Path:
    """The cached classifier checkpoint for ``cfg``'s backbone and data; trained when absent."""
    folder = Path(cfg.paths.log_dir) / CACHE_DIR_NAME / cache_key(cfg)
    path = folder / CACHED_FILE
    if path.is_file():
        log.info(
            "Using the cached classifier %s (pass backbone.checkpoint=<ckpt> for another).", path
        )
        return path
    name = cfg.backbone.get("name", "the backbone")
    data = str(cfg.data.get("_target_", "the data")).rsplit(".", 1)[-1]
    estimate = estimate_seconds(cfg)
    print(
        f"L-CAM needs a classifier trained on this data and none is given: training {name} on {data} "
        f"first (method=classifier, {CACHE_EPOCHS} epochs on at most {CACHE_TRAIN_IMAGES} images, about "
        f"{_duration(estimate)}), cached in {folder}. To use your own: backbone.checkpoint=<run>/checkpoints/last.ckpt.",
        flush=True,
    )
    best = _train_classifier(cfg, folder / "run")
    tmp = folder / f".{CACHED_FILE}.{os.getpid()}"
    shutil.copyfile(best, tmp)
    os.replace(tmp, path)  # complete or absent: an interrupted training leaves no cache entry
    return path


def classifier_train_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """``train.yaml`` composed with ``method=classifier``, the user's data, backbone, paths and
    seed, a default trainer on the user's device, and the cache recipe."""
    overrides = ["method=classifier", "logger=csv", "callbacks.model_summary=null"]
    if _hydra_initialized():
        cls_cfg = hydra.compose("train.yaml", overrides=overrides)
    else:  # called outside a Hydra app (tests, notebooks)
        from hydra import initialize_config_dir

        from ..utils.paths import CONF_DIR

        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cls_cfg = hydra.compose("train.yaml", overrides=overrides)
    with open_dict(cls_cfg):
        cls_cfg.data = cfg.data
        cls_cfg.backbone = cfg.backbone
        cls_cfg.paths = cfg.paths
        cls_cfg.paths.output_dir = str(run_dir)
        cls_cfg.seed = cfg.get("seed")
        cls_cfg.train, cls_cfg.test, cls_cfg.ckpt_path = True, False, None
        for key in ("accelerator", "devices", "precision"):
            if key in cfg.trainer:
                cls_cfg.trainer[key] = cfg.trainer[key]
        cls_cfg.trainer.max_epochs = CACHE_EPOCHS
        cls_cfg.trainer.limit_train_batches = math.ceil(
            CACHE_TRAIN_IMAGES / int(cfg.data.get("batch_size", 64))
        )
        cls_cfg.pop("hydra", None)
    return cls_cfg


def _hydra_initialized() -> bool:
    """True inside ``@hydra.main`` (compose works as is), false in tests and notebooks."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().is_initialized()


def _train_classifier(cfg: DictConfig, run_dir: Path) -> Path:
    """Train with the project's train pipeline; its table and ``run_dir:`` line go to a log file
    so the user's run prints only its own."""
    from ..train import run  # train.py calls this module: import at use

    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(run_dir / "stdout.log", "w") as out, contextlib.redirect_stdout(out):
        metrics = run(classifier_train_config(cfg, run_dir))
    kept = sorted((run_dir / "checkpoints").glob("epoch_*.ckpt")) or [
        run_dir / "checkpoints" / "last.ckpt"
    ]
    acc = metrics.get("val/acc_best", metrics.get("val/acc", float("nan")))
    print(
        f"Classifier trained in {_duration(time.monotonic() - start)} (val/acc {acc:.3f}); explaining it now.",
        flush=True,
    )
    # data modules describe themselves in the constructor, without loading anything
    warn_if_near_chance(acc, hydra.utils.instantiate(cfg.data).num_classes)
    return kept[-1]


# a classifier within this factor of chance accuracy explains nothing worth learning
NEAR_CHANCE = 1.5


def warn_if_near_chance(acc: float, num_classes: int) -> bool:
    """Warn (and return True) when the cached classifier barely beats guessing: e.g. VGG-16 has no
    BatchNorm and does not learn from scratch in the short recipe, so its L-CAM explains noise."""
    if not num_classes or not acc < NEAR_CHANCE / num_classes:
        return False
    log.warning(
        "The automatic classifier is near chance (val/acc %.3f with %d classes): its explanations "
        "mean little. Pass a trained classifier (backbone.checkpoint=<run>/checkpoints/last.ckpt) "
        "or pretrained weights (backbone.weights=IMAGENET1K_V1).",
        acc,
        num_classes,
    )
    return True


def estimate_seconds(cfg: DictConfig) -> float:
    """Rough training time of the cache recipe: a timed forward+backward of the backbone on one
    batch (at most 16) of random images of the data's size, scaled to the recipe's images
    (validation ~1/3 of the cost per image). Small batches would overstate it: per-call overhead."""
    size = int(cfg.data.get("image_size") or 224)
    backbone_cfg: dict[str, Any] = without_speed_options(
        OmegaConf.to_container(cfg.backbone, resolve=True)
    )
    backbone_cfg.update(weights=None, checkpoint=None, num_classes=10)
    net = hydra.utils.instantiate(backbone_cfg)
    x = torch.rand(min(16, int(cfg.data.get("batch_size") or 16)), 3, size, size)
    seconds = []
    for _ in range(2):  # the first pass pays one-off allocation costs
        start = time.perf_counter()
        net(x).sum().backward()
        seconds.append(time.perf_counter() - start)
    per_image = seconds[-1] / len(x)
    n_train = min(CACHE_TRAIN_IMAGES, int(cfg.data.get("train_size") or CACHE_TRAIN_IMAGES))
    n_val = int(cfg.data.get("val_size") or n_train // 4)
    return CACHE_EPOCHS * per_image * (n_train + n_val / 3) + 5.0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"

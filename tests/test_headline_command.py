"""The headline command ``python train.py method=lcam_img backbone=<net>`` on a fresh machine:
with no classifier given, one is trained on the data (method=classifier), cached under
``<paths.log_dir>/classifier_cache/`` and reused by the next run."""

from __future__ import annotations

import os

import pytest

from .helpers import TINY_DATA, compose_cfg, run_cli, run_dirs, run_unwrapped

HEADLINE = ["method=lcam_img", *TINY_DATA, "trainer.max_epochs=1", "callbacks.model_summary=null"]


def cached_files(log_dir):
    """The cache layout documented in conf/method/lcam_img.yaml."""
    return sorted((log_dir / "classifier_cache").glob("*/classifier.ckpt"))


def check_headline(backbone: str, tmp_path, extra: tuple[str, ...] = ()) -> None:
    args = [*HEADLINE, f"backbone={backbone}", *extra]
    proc = run_cli("train.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training" in proc.stdout and "first (method=classifier" in proc.stdout
    assert "backbone.checkpoint=" in proc.stdout  # how to pass your own
    (run_dir,) = run_dirs(proc.stdout)  # only the user's run prints run_dir:, not the cache run
    assert (run_dir / "metrics.json").is_file()
    (cached,) = cached_files(tmp_path)
    stamp = os.stat(cached).st_mtime_ns

    # second run, same backbone and data: the cache is used, nothing is retrained
    cfg = compose_cfg(args, tmp_path / "second")
    cfg.paths.log_dir = str(tmp_path)  # where the first run cached it
    run_unwrapped(cfg)
    assert cfg.backbone.checkpoint == str(cached)
    assert cached_files(tmp_path) == [cached] and os.stat(cached).st_mtime_ns == stamp
    assert len(list((cached.parent / "run" / "checkpoints").glob("epoch_*.ckpt"))) == 1


def test_headline_command_trains_caches_and_reuses_a_classifier(tmp_path):
    check_headline("small_cnn", tmp_path)


@pytest.mark.slow
def test_headline_command_with_vgg16(tmp_path):
    check_headline("vgg16", tmp_path, ("data.image_size=32",))


def test_on_imagenet_the_classifier_is_torchvisions(tmp_path):
    from explainbench.methods.frozen_classifier import ensure_frozen_classifier

    cfg = compose_cfg(["method=lcam_fm", "backbone=vgg16", "data=imagenet"], tmp_path)
    ensure_frozen_classifier(cfg)
    assert cfg.backbone.weights == "IMAGENET1K_V1" and cfg.backbone.checkpoint is None
    assert not (tmp_path / "classifier_cache").exists()


def test_a_classifier_near_chance_is_flagged(caplog):
    """VGG-16 from scratch stays at chance in the short recipe: the user is told its L-CAM
    explains noise and how to pass a real classifier."""
    from explainbench.methods.frozen_classifier import warn_if_near_chance

    with caplog.at_level("WARNING", logger="explainbench"):
        assert warn_if_near_chance(0.169, 6)  # measured: vgg16, an8flower single6c, 3 epochs
    assert "near chance" in caplog.text and "backbone.checkpoint=" in caplog.text
    assert not warn_if_near_chance(0.9, 6)
    assert not warn_if_near_chance(0.3, 6)  # 1.8x chance: learning, if slowly

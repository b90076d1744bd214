"""Region grouping end to end: the experiment files run fast_dev_run on the fixtures, the
paper's settings are pinned, a checkpoint rebuilds the model alone, a batch of 1 is one clear
error."""

from __future__ import annotations

import pytest
import torch

from explainbench.methods.build import load_method
from explainbench.utils.paths import CONF_DIR

from .data.test_cub import write_cub
from .helpers import TINY_DATA, compose_cfg, run_unwrapped

# Sections 4.1-4.3 of Huang & Li (CVPR 2020) and the authors' loss weights as CE:prior ratios
PAPER = {
    "region_group_celeba": {"lr": 5e-3, "batch": 32, "wd": 1e-4, "epochs": 30, "parts": 9,
                            "prior_weight": 0.1, "alpha": 1.0, "beta": 1e-3, "size": 256},
    "region_group_cub": {"lr": 1e-3, "batch": 32, "wd": 5e-4, "epochs": 150, "parts": 5,
                         "prior_weight": 0.5, "alpha": 1.0, "beta": 1e-3, "size": 448},
    "region_group_inat": {"lr": 1e-3, "batch": 128, "wd": 5e-4, "epochs": 75, "parts": 8,
                          "prior_weight": 0.1, "alpha": 2e-3, "beta": 1e-3, "size": 224},
}  # fmt: skip
DATA = {
    "region_group_celeba": "celeba",
    "region_group_cub": "cub",
    "region_group_inat": "inaturalist",
}


@pytest.mark.parametrize("experiment", sorted(PAPER))
def test_paper_experiments_carry_the_papers_settings(experiment, tmp_path):
    if not (CONF_DIR / "data" / f"{DATA[experiment]}.yaml").is_file():
        pytest.skip(f"data={DATA[experiment]} is not in this checkout")
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    paper = PAPER[experiment]
    method = cfg.method
    assert method._target_ == "explainbench.methods.RegionGroup" and method.attach == "layer3"
    assert (method.optimizer.lr, method.optimizer.weight_decay) == (paper["lr"], paper["wd"])
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.data.image_size) == (
        paper["batch"], paper["epochs"], paper["size"])  # fmt: skip
    assert (method.num_parts, method.prior_weight) == (paper["parts"], paper["prior_weight"])
    assert (method.prior_alpha, method.prior_beta) == (paper["alpha"], paper["beta"])
    assert "multi_label" not in method  # multi-label comes from the data (DataInfo.multilabel)


@pytest.mark.readme("python train.py experiment=an8flower_region_group")
def test_an8flower_experiment_trains_and_scores_landmarks_and_parts(readme, tmp_path):
    """A 1-epoch run with the method's explanation scored (IoU, landmarks) and the gallery drawn;
    the checkpoint alone rebuilds the same model."""
    torch.set_num_threads(1)
    cfg = compose_cfg([*readme.overrides(), "trainer.max_epochs=1", "trainer.accelerator=cpu",
                       "callbacks.model_summary=null", "callbacks=explain", "explainers=[method]",
                       "metrics=[iou]", "callbacks.explanation_metrics.max_samples=32",
                       "callbacks.heatmap_gallery.num_images=2", *TINY_DATA], tmp_path)  # fmt: skip
    metrics = run_unwrapped(cfg)
    assert {
        "test/loss/ce",
        "test/loss/prior",
        "test/iou_auc/method",
        "test/landmark_error/method",
    } <= set(metrics)
    assert 0 <= float(metrics["test/landmark_error/method"]) < 100
    assert (tmp_path / "gallery" / "test.png").is_file()
    model = load_method(tmp_path / "checkpoints" / "last.ckpt")
    assert type(model).__name__ == "RegionGroup" and model.build_config["method"]["num_parts"] == 5
    x = torch.randn(2, 3, 64, 64)
    assert model.part_maps(x).shape == (2, 5, 16, 16)


@pytest.mark.readme("python train.py experiment=region_group_cub")
def test_cub_experiment_fast_dev_run_on_the_fixture(readme, tmp_path):
    torch.set_num_threads(1)
    root = write_cub(tmp_path / "data")
    cfg = compose_cfg([
        *readme.overrides(), f"data.root={root}", "debug=fdr", "backbone.weights=null",
        "data.image_size=80", "data.resize_size=80", "data.batch_size=4", "data.num_workers=0",
        "data.pin_memory=false", "trainer.accelerator=cpu", "callbacks.model_summary=null",
    ], tmp_path / "run")  # fmt: skip
    assert cfg.method.num_parts == 5 and cfg.backbone.name == "resnet50"
    metrics = run_unwrapped(cfg)
    assert {"test/loss/ce", "test/loss/prior"} <= set(metrics)


def test_a_batch_of_one_is_one_clear_error_before_training(tmp_path):
    cfg = compose_cfg(["experiment=an8flower_region_group", "debug=fdr", "trainer.accelerator=cpu",
                       *TINY_DATA[:3], "data.batch_size=1"], tmp_path)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"prior needs at least 2 images per batch, got 1: .*data.batch_size=16"
    ):
        run_unwrapped(cfg)
    # without the prior a batch of one is fine
    cfg = compose_cfg(["experiment=an8flower_region_group", "debug=fdr", "trainer.accelerator=cpu",
                       *TINY_DATA[:3], "data.batch_size=1", "method.prior_weight=0"], tmp_path / "no_prior")  # fmt: skip
    metrics = run_unwrapped(cfg)
    assert "test/loss" in metrics and "test/loss/prior" not in metrics


@pytest.mark.parametrize(
    ("experiment", "data", "label_loss"),
    [("region_group_celeba", "celeba", "bce"), ("region_group_inat", "inaturalist", "ce")],
)
def test_paper_experiment_fast_dev_run_on_its_fixture(experiment, data, label_loss, tmp_path):
    """Acceptance 3: the CelebA (40 attributes, multi-label) and iNaturalist experiments run on
    tiny copies of their official layouts (the fixtures of tests/test_data_checkpoints.py)."""
    from .test_data_checkpoints import FIXTURES

    torch.set_num_threads(1)
    cfg = compose_cfg([
        f"experiment={experiment}", *FIXTURES[data](tmp_path / "data"), "debug=fdr",
        "backbone.weights=null", "data.image_size=64", "data.resize_size=64", "data.batch_size=4",
        "trainer.accelerator=cpu", "callbacks.model_summary=null",
    ], tmp_path / "run")  # fmt: skip
    metrics = run_unwrapped(cfg)
    assert {f"test/loss/{label_loss}", "test/loss/prior"} <= set(metrics)

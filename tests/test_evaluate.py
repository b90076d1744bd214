"""evaluate.py and the ExplanationMetrics / HeatmapGallery callbacks on a tiny trained model."""

from __future__ import annotations

import csv
import json
import warnings

import pytest
import torch

from explainbench.evaluation import ExplanationEvaluator
from explainbench.explainers.activation import ActivationMap
from explainbench.explainers.gradcam import GradCAM
from explainbench.methods.build import load_method
from explainbench.metrics import AverageDropIncrease, ForegroundAttentionRate, MaskIoU, PassCount
from explainbench.train import run

from .helpers import TINY_DATA, compose_cfg, run_cli, run_dirs


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 1-epoch classifier with the explanation callbacks on: its run dir."""
    out = tmp_path_factory.mktemp("trained")
    cfg = compose_cfg(
        [
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "callbacks.model_summary=null",
            "callbacks=explain",
            "explainers=[gradcam,activation]",
            "callbacks.explanation_metrics.max_samples=20",
            "callbacks.heatmap_gallery.num_images=3",
            *TINY_DATA,
        ],
        out,
    )
    metrics = run(cfg)
    return out, metrics


def test_callback_logs_stage_metric_explainer(trained_run):
    run_dir, metrics = trained_run
    for explainer in ("gradcam", "activation"):
        for key in (
            "ad@100",
            "ic@15",
            "deletion",
            "insertion",
            "iou_auc",
            "pointing_game",
            "far",
            "fw",
        ):
            assert f"test/{key}/{explainer}" in metrics, key
    assert metrics["test/fw/activation"] == 1.0 and metrics["test/bw/activation"] == 0.0
    assert metrics["test/bw/gradcam"] == 1.0
    assert (run_dir / "gallery" / "test.png").is_file()


def test_callback_value_equals_a_direct_evaluation(trained_run):
    """The logged AD@15 is what the evaluator computes on the same first 20 test images."""
    run_dir, metrics = trained_run
    model = load_method(str(run_dir / "checkpoints" / "last.ckpt"))
    cfg = compose_cfg(TINY_DATA, run_dir)
    import hydra

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("test")
    batch = next(iter(torch.utils.data.DataLoader(dm.dataset("test"), batch_size=20)))
    evaluator = ExplanationEvaluator(
        {"gradcam": GradCAM()}, {"ad_ic": AverageDropIncrease()}, dm.mean, dm.std, dm.annotations
    )
    evaluator.update(model, batch)
    row = evaluator.compute()["gradcam"]
    # the test ran on the best checkpoint, which with one epoch is the last one
    assert row["ad@15"] == pytest.approx(metrics["test/ad@15/gradcam"], rel=1e-4, abs=1e-4)


def test_evaluate_cli_writes_table_csv_and_gallery(trained_run, tmp_path):
    run_dir, _ = trained_run
    proc = run_cli(
        "evaluate.py",
        [
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            "explainers=[gradcam,gradcampp,activation]",
            "data.subset=12",
            "data.subset_seed=0",
            "gallery_images=2",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["explainer"] for r in rows] == ["gradcam", "gradcampp", "activation"]
    for column in (
        "ad@100",
        "ic@100",
        "ad@50",
        "ic@50",
        "ad@15",
        "ic@15",
        "deletion",
        "insertion",
        "iou_auc",
        "pointing_game",
        "far",
        "fw",
        "ms_per_image",
    ):
        assert column in rows[0], column
    assert (out / "gallery.png").is_file() and "| explainer |" in (out / "results.md").read_text()
    flat = json.loads((out / "metrics.json").read_text())
    assert float(rows[0]["ad@15"]) == pytest.approx(flat["test/ad@15/gradcam"], abs=0.006)
    # the data came from the checkpoint (an8flower, tiny sizes) with the subset on top
    assert "12 test images" in proc.stdout


def test_evaluate_table_follows_the_config_order(trained_run, tmp_path):
    """Rows in the order of `explainers`, columns in the order of `metrics` (each metric's keys
    in its own order); no column list to keep in step with the metrics."""
    run_dir, _ = trained_run
    proc = run_cli(
        "evaluate.py",
        [
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            "explainers=[activation,gradcam]",
            "explainers.activation.reduction=max",
            "metrics=[passes,far]",
            "data.subset=4",
            "gallery_images=0",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    with open(out / "results.csv") as f:
        header = next(csv.reader(f))
    assert header == ["explainer", "fw", "bw", "far", "ms_per_image"]
    assert [r["explainer"] for r in csv.DictReader(open(out / "results.csv"))] == [
        "activation",
        "gradcam",
    ]


def test_evaluate_writes_into_an_overridden_output_dir_that_does_not_exist(trained_run, tmp_path):
    run_dir, _ = trained_run
    target = tmp_path / "mine" / "eval"
    proc = run_cli(
        "evaluate.py",
        [
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            "explainers=[activation]",
            "data.subset=4",
            "gallery_images=0",
            f"paths.output_dir={target}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert run_dirs(proc.stdout) == [target]
    assert [r["explainer"] for r in csv.DictReader(open(target / "results.csv"))] == ["activation"]


def test_unknown_explainer_is_a_clear_error(trained_run, tmp_path):
    run_dir, _ = trained_run
    proc = run_cli(
        "evaluate.py",
        [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "explainers=[gradcamm]"],
        tmp_path,
    )
    assert proc.returncode != 0
    # Hydra's own one-line message for an option that is not a file of the group
    assert "Could not load 'explainers/gradcamm'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_metric_needing_a_missing_annotation_is_skipped_with_a_warning():
    from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluator = ExplanationEvaluator(
            {"activation": ActivationMap()},
            {"far": ForegroundAttentionRate(), "passes": PassCount()},
            IMAGENET_MEAN,
            IMAGENET_STD,
            annotations={"part_mask"},
        )
        model = _tiny_model()
        batch = {"image": torch.randn(2, 3, 16, 16), "label": torch.tensor([0, 1])}  # no mask
        evaluator.update(model, batch)
        evaluator.update(model, batch)
    skips = [str(w.message) for w in caught if "Skipping metric" in str(w.message)]
    assert skips == [
        "Skipping metric 'far': the data has no mask annotation."
    ]  # one, not per batch
    assert evaluator.compute()["activation"] == pytest.approx(
        {
            "fw": 1.0,
            "bw": 0.0,
            "ms_per_image": pytest.approx(evaluator.compute()["activation"]["ms_per_image"]),
        }
    )


def test_metrics_are_checked_once_against_the_data_annotations_before_any_batch():
    """The data module's annotations decide which metrics run, at construction: a batch that
    happens to carry a key the data does not declare changes nothing."""
    from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluator = ExplanationEvaluator(
            {"activation": ActivationMap()},
            {"far": ForegroundAttentionRate(), "iou": MaskIoU()},
            IMAGENET_MEAN,
            IMAGENET_STD,
            annotations={"mask"},
        )
    assert [str(w.message) for w in caught] == [
        "Skipping metric 'iou': the data has no part_mask annotation."
    ]
    assert list(evaluator.metrics["activation"]) == ["far"]
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., :8] = 1.0
    batch = {
        "image": torch.randn(2, 3, 16, 16),
        "label": torch.tensor([0, 1]),
        "mask": mask,
        "part_mask": mask.clone(),
    }
    evaluator.update(_tiny_model(), batch)
    assert set(evaluator.compute()["activation"]) == {"far", "ms_per_image"}


def _tiny_model():
    from explainbench.backbones import build_backbone

    return build_backbone("small_cnn", num_classes=2, widths=(4, 8)).eval()


@pytest.mark.slow  # an evaluate.py run (~7 s); the maps themselves: tests/explainers/test_layer_heatmaps.py
@pytest.mark.readme(
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt explainers=[activation,layer_heatmaps] "
    "gallery_images=3 gallery_per_image=true"
)
def test_evaluate_layer_heatmaps_grid_per_image(trained_run, readme, tmp_path):
    """layer_heatmaps is scored like any explainer (its saliency: small_cnn's high layer, the
    explanation layer, so the same numbers as ``activation``) and its gallery row is the image
    and the low / middle / high maps, written once per image as gallery/<index>.png."""
    from matplotlib.image import imread

    run_dir, _ = trained_run
    proc = readme.run(
        tmp_path, subs={"run": run_dir}, extra=["metrics=[iou,pointing_game]", "data.subset=6"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    rows = {r["explainer"]: r for r in csv.DictReader(open(out / "results.csv"))}
    for key in ("iou_auc", "pointing_game"):
        assert rows["layer_heatmaps"][key] == rows["activation"][key], key
    files = sorted((out / "gallery").glob("*.png"))
    assert len(files) == 3 and all(f.stem.isdigit() for f in files)
    # one row (1.8 in at 120 dpi) of 5 columns: image, activation, low, middle, high
    assert imread(files[0]).shape[:2] == (216, 5 * 216)

"""EAT end to end: the experiment files run fast_dev_run on the tiny dataset fixtures, a trained
EAT checkpoint is rebuilt from the checkpoint alone, evaluated and drawn with its sentences."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from explainbench.methods.build import load_method
from explainbench.train import run

from .data.test_attribute_folder import write_folder
from .data.test_cub import write_cub
from .data.test_sun_attribute import write_sun
from .helpers import ROOT, TINY_DATA, compose_cfg, run_cli, run_dirs, run_unwrapped

# small crops and no workers: a ResNet-50 step on CPU stays cheap; no pretrained weights here
RESNET_FDR = [
    "debug=fdr",
    "backbone.weights=null",
    "data.image_size=32",
    "data.resize_size=36",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.pin_memory=false",
    "trainer.accelerator=cpu",
    "callbacks.model_summary=null",
]


@pytest.mark.parametrize(
    ("experiment", "write", "template_word"),
    [
        pytest.param(
            "eat_cub_resnet50",
            lambda tmp: write_cub(tmp),
            "bird",
            marks=pytest.mark.readme("python train.py experiment=eat_cub_resnet50"),
        ),
        ("eat_sun_resnet50", lambda tmp: write_sun(tmp / "sun"), "scene"),
        ("eat_aircraft17_resnet50", lambda tmp: write_folder(tmp / "aircraft17"), "aircraft"),
    ],
)
def test_resnet50_experiments_fast_dev_run_on_the_fixtures(
    experiment, write, template_word, readme, tmp_path
):
    torch.set_num_threads(1)
    root = write(tmp_path / "data")
    # the README's command where it names this experiment
    command = readme.overrides() if readme.claimed else [f"experiment={experiment}"]
    assert command == [f"experiment={experiment}"]
    cfg = compose_cfg([*command, f"data.root={root}", *RESNET_FDR], tmp_path / "run")
    assert cfg.backbone.name == "resnet50" and cfg.method.template.startswith(
        f"This {template_word} has"
    )
    metrics = run(cfg)
    assert {"test/loss", "test/loss/ce", "test/loss/attr"} <= set(metrics)


def test_an8flower_eat_experiment_composes_as_documented(tmp_path):
    cfg = compose_cfg(["experiment=an8flower_eat"], tmp_path)
    assert cfg.data.variant == "double12c" and cfg.backbone.name == "small_cnn"
    assert cfg.method._target_ == "explainbench.methods.EAT" and "flower" in cfg.method.template


@pytest.mark.slow  # ~10 s; tests/methods/test_eat.py checks the message in-process
def test_eat_on_data_without_attributes_is_one_clear_cli_error(tmp_path):
    # an8flower_folder (the original an8Flower layout) has no attributes
    data = tmp_path / "an8flower"
    export = [
        sys.executable,
        str(ROOT / "scripts" / "export_an8flower.py"),
        "--out",
        str(data),
        "--count",
        "12",
    ]
    subprocess.run(export, check=True, capture_output=True, timeout=120)
    proc = run_cli(
        "train.py",
        ["method=eat", "data=an8flower_folder", f"data.root={data}", "debug=fdr"],
        tmp_path,
    )
    assert proc.returncode != 0
    assert "EAT needs the data's attribute names" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


# the README's `python train.py experiment=an8flower_eat`, then the size-shrinking overrides
EAT_RUN = "python train.py experiment=an8flower_eat"


@pytest.fixture(scope="module")
def eat_run(tmp_path_factory):
    """A 1-epoch EAT on tiny an8flower double12c with the gallery and method explainer on."""
    out = tmp_path_factory.mktemp("eat")
    cfg = compose_cfg(
        [
            *EAT_RUN.split()[2:],
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "callbacks.model_summary=null",
            "callbacks=explain",
            "explainers=[method,gradcam]",
            "metrics=[far]",
            "callbacks.explanation_metrics.max_samples=16",
            "callbacks.heatmap_gallery.num_images=2",
            *TINY_DATA,
        ],
        out,
    )
    return out, run(cfg)


@pytest.mark.readme("python train.py experiment=an8flower_eat")
def test_eat_run_logs_both_terms_far_and_draws_the_gallery(eat_run, readme):
    assert readme.overrides(EAT_RUN) == EAT_RUN.split()[2:]  # what the eat_run fixture ran
    run_dir, metrics = eat_run
    assert {"test/loss/ce", "test/loss/attr", "test/far/method", "test/far/gradcam"} <= set(metrics)
    assert (run_dir / "gallery" / "test.png").is_file()


def test_checkpoint_alone_rebuilds_eat_with_its_names(eat_run):
    run_dir, _ = eat_run
    model = load_method(str(run_dir / "checkpoints" / "last.ckpt"))
    from explainbench.data.an8flower import attribute_names, class_names

    info = model.build_config["data_info"]
    assert info["attribute_names"] == attribute_names()
    assert info["class_names"] == class_names("double12c")
    assert model.attribute_names == attribute_names() and model.num_attributes == 15
    explanation = model.explain_attributes(torch.randn(2, 3, 64, 64))
    assert all(s.startswith("This flower has ") for s in explanation.sentences)


@pytest.mark.readme(
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt explainers=[method,gradcam]"
)
def test_evaluate_scores_eat_with_method_and_gradcam(eat_run, readme, tmp_path):
    run_dir, _ = eat_run
    proc = readme.run(tmp_path, subs={"run": run_dir}, extra=["data.subset=8", "gallery_images=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    table = (out / "results.md").read_text()
    assert "| method |" in table and "| gradcam |" in table and "far" in table


def test_attribute_count_mismatch_with_the_data_is_a_clear_error(tmp_path):
    cfg = compose_cfg(
        ["method=eat", "method.num_attributes=312", "debug=fdr", *TINY_DATA], tmp_path
    )
    with pytest.raises(ValueError, match="num_attributes=312 does not match the 15 attributes"):
        run_unwrapped(cfg)


def test_far_without_segmentations_is_skipped_with_a_warning(tmp_path):
    """CUB without segmentations/ has no mask: FAR is skipped with a warning, the run goes on."""
    root = write_cub(tmp_path / "data")
    cfg = compose_cfg(
        [
            "data=cub",
            "method=eat",
            f"data.root={root}",
            *RESNET_FDR[2:],
            "debug=fdr",
            "callbacks=explain",
            "explainers=[method]",
            "metrics=[far]",
            "callbacks.heatmap_gallery=null",
        ],
        tmp_path / "run",
    )
    with pytest.warns(UserWarning, match="far"):
        metrics = run(cfg)
    assert "test/loss/attr" in metrics and not any(k.startswith("test/far") for k in metrics)

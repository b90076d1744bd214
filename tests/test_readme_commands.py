"""Every command in README.md's shell blocks is run by a test (``@pytest.mark.readme``) or listed
below with who runs it outside pytest; the README commands no other test file runs are run here,
on tiny data (the README's words first, size-shrinking overrides appended)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from explainbench.train import run

from .helpers import TINY_DATA, compose_cfg, run_dirs, run_unwrapped
from .readme import README, ROOT, claimed_in_sources, normalize, readme_commands

# README commands that no pytest test runs, and who runs them instead
OUTSIDE_PYTEST = {
    "make demo": "run by hand (its stage times are in the report); the driver end to end: "
    "tests/test_demo.py::test_demo_tiny_end_to_end (slow)",
    "make test": "CI: .ci/run runs `make lint` then `make test` on a clean checkout",
    "wandb sync outputs/train/multiruns/<timestamp>/*/wandb/offline-run-*": "needs a W&B "
    "account and the network; the offline runs it uploads are read back by "
    "tests/test_train.py::test_multirun_sweep_makes_one_job_dir_and_wandb_run_each",
}
TEST_FILES = sorted((ROOT / "tests").rglob("*.py"))


def missing_and_stale(commands: list[str], claims: dict, outside: dict) -> tuple[list, list]:
    """README commands nobody runs, and claims / table entries naming no README command."""
    known = set(claims) | {normalize(c) for c in outside}
    missing = [c for c in commands if c not in known]
    stale = sorted(known - set(commands))
    return missing, stale


def test_every_readme_command_is_run_by_a_test_or_listed():
    commands = readme_commands(README.read_text())
    claims = claimed_in_sources(TEST_FILES)
    missing, stale = missing_and_stale(commands, claims, OUTSIDE_PYTEST)
    assert not missing, (
        "README commands that no test runs: add @pytest.mark.readme(<command>) to a test that "
        f"runs it, or list it in OUTSIDE_PYTEST with who runs it: {missing}"
    )
    assert not stale, f"claims of commands that are no longer in README.md: {stale}"


def test_shell_blocks_are_parsed_into_commands():
    text = "\n".join([
        "```bash", "python train.py \\", "  data=cub   # a comment", "", "# only a comment",
        "make test", "```", "```python", "python not_a_command.py", "```",
        "```console", "$ python evaluate.py ckpt_path=<run>/x.ckpt", "output line", "```",
        "    python indented_prose.py",
    ])  # fmt: skip
    assert readme_commands(text) == [
        "python train.py data=cub",
        "make test",
        "python evaluate.py ckpt_path=<run>/x.ckpt",
    ]


def test_an_unclaimed_command_is_named_and_a_stale_claim_too():
    commands = ["python train.py", "python train.py data=cub"]
    claims = {"python train.py": ["tests/x.py:1"], "python train.py data=imagenet": ["y"]}
    assert missing_and_stale(commands, claims, {}) == (
        ["python train.py data=cub"],
        ["python train.py data=imagenet"],
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A 1-epoch classifier on tiny an8flower: the ``<run>`` of the README commands."""
    out = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_cfg(
        ["trainer.max_epochs=1", "trainer.accelerator=cpu", "callbacks.model_summary=null",
         *TINY_DATA],
        out,
    )  # fmt: skip
    run(cfg)
    return out


@pytest.mark.readme("make demo RESUME=1")
def test_make_demo_resume_passes_resume_to_the_driver(readme, tmp_path):
    proc = readme.run(tmp_path, extra=["-n"])  # -n: print the recipe, run nothing
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if "explainbench.demo" in x]
    assert line.split("-m explainbench.demo")[1].split() == ["--resume"], line


@pytest.mark.readme(
    "python scripts/export_an8flower.py --out data/an8flower",
    "python train.py data=an8flower_folder",
)
def test_export_an8flower_then_train_on_the_folder(readme, tmp_path):
    data = tmp_path / "an8flower"
    proc = readme.run(
        tmp_path,
        "python scripts/export_an8flower.py --out data/an8flower",
        extra=["--out", str(data), "--count", "12", "--size", "32"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((data / "an8Flower_single_6c").glob("*_MASK/*.png"))) > 0
    overrides = readme.overrides("python train.py data=an8flower_folder")
    cfg = compose_cfg(
        [*overrides, f"data.root={data}", "data.image_size=32", "debug=fdr",
         "trainer.accelerator=cpu", "callbacks.model_summary=null"],
        tmp_path / "run",
    )  # fmt: skip
    assert "test/acc" in run_unwrapped(cfg)


@pytest.mark.slow  # three train.py processes
@pytest.mark.readme(
    "python train.py",
    "python train.py trainer.max_epochs=3 ckpt_path=<run>/checkpoints/last.ckpt",
    "python train.py train=false ckpt_path=<run>/checkpoints/last.ckpt",
)
def test_default_run_then_resume_then_test_only(readme, tmp_path):
    tiny = [*TINY_DATA, "callbacks.model_summary=null"]
    proc = readme.run(tmp_path, "python train.py", extra=[*tiny, "trainer.max_epochs=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (first,) = run_dirs(proc.stdout)
    subs = {"run": first}
    proc = readme.run(
        tmp_path, "python train.py trainer.max_epochs=3 ckpt_path=<run>/checkpoints/last.ckpt",
        extra=tiny, subs=subs,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (resumed,) = run_dirs(proc.stdout)
    assert resumed != first
    # epochs 1 and 2 only: the resumed run starts where the first one ended
    epochs = {int(p.stem.split("_")[1]) for p in (resumed / "checkpoints").glob("epoch_*.ckpt")}
    assert epochs <= {0, 1, 2} and (resumed / "checkpoints" / "last.ckpt").is_file()
    last = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2
    proc = readme.run(
        tmp_path, "python train.py train=false ckpt_path=<run>/checkpoints/last.ckpt",
        extra=tiny, subs=subs,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tested,) = run_dirs(proc.stdout)
    assert "test/acc" in json.loads((tested / "metrics.json").read_text())
    assert not list((tested / "checkpoints").glob("epoch_*.ckpt"))  # nothing trained


@pytest.mark.readme(
    "python train.py experiment=an8flower_lcam backbone.checkpoint=<run>/checkpoints/last.ckpt"
)
def test_an8flower_lcam_on_the_default_classifier(readme, tiny_run, tmp_path):
    overrides = readme.overrides(subs={"run": tiny_run})
    cfg = compose_cfg([*overrides, *TINY_DATA, "trainer.max_epochs=1", "trainer.accelerator=cpu",
                       "callbacks.model_summary=null"], tmp_path)  # fmt: skip
    assert cfg.method._target_ == "explainbench.methods.LCAM" and cfg.method.variant == "img"
    assert "test/acc" in run_unwrapped(cfg)
    assert not (tmp_path / "classifier_cache").exists()  # the given classifier, none trained


@pytest.mark.readme("python train.py experiment=lcam_vgg16_imagenet")
def test_lcam_vgg16_imagenet_fast_dev_run_on_the_fixture(readme, tmp_path, monkeypatch):
    from explainbench.backbones.base import Backbone

    from .test_data_checkpoints import FIXTURES

    torch.set_num_threads(1)
    # L-CAM refuses a backbone without trained weights; the ImageNet ones (torchvision's) cannot
    # be downloaded here and a VGG-16 checkpoint is 0.5 GB: the random VGG-16 counts as trained
    # (the refusal itself: tests/methods/test_lcam.py::test_untrained_backbone_is_refused)
    monkeypatch.setattr(Backbone, "has_trained_weights", property(lambda self: True))
    cfg = compose_cfg([*readme.overrides(), *FIXTURES["imagenet"](tmp_path / "data"),
                       "debug=fdr", "backbone.weights=null", "method.classifier=null",
                       "data.image_size=32", "data.resize_size=32", "trainer.accelerator=cpu",
                       "callbacks.model_summary=null"], tmp_path / "run")  # fmt: skip
    assert (cfg.backbone.name, cfg.method.optimizer.lr) == ("vgg16", 1e-4)
    assert "test/loss" in run_unwrapped(cfg)


@pytest.mark.readme("python train.py experiment=attention_stages_cifar10")
def test_attention_stages_cifar10_one_job_on_the_fixture(readme, tmp_path):
    from .test_data_checkpoints import FIXTURES

    torch.set_num_threads(1)
    # in-process: one job of the sweep, with the experiment's own method settings
    cfg = compose_cfg([*readme.overrides(), *FIXTURES["cifar10"](tmp_path / "data"), "debug=fdr",
                       "trainer.accelerator=cpu", "callbacks.model_summary=null"],
                      tmp_path / "run")  # fmt: skip
    assert cfg.backbone.name == "googlenet" and cfg.method._target_.endswith("AttentionNet")
    assert "test/acc" in run_unwrapped(cfg)


@pytest.mark.slow  # a 9-job sweep through the CLI, then the report
@pytest.mark.readme(
    "python train.py experiment=an8flower_attention_stages",
    "python -m explainbench.report outputs/train/multiruns/<timestamp>",
)
def test_attention_stages_sweep_and_its_report(readme, tmp_path):
    proc = readme.run(
        tmp_path, "python train.py experiment=an8flower_attention_stages",
        extra=[*TINY_DATA, "trainer.max_epochs=1", "callbacks.model_summary=null",
               "callbacks.explanation_metrics.max_samples=8"],
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(run_dirs(proc.stdout)) == 9
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    # the README's relative outputs/ is this test's tmp_path
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "outputs").symlink_to(tmp_path)
    proc = readme.run(
        tmp_path,
        "python -m explainbench.report outputs/train/multiruns/<timestamp>",
        subs={"timestamp": sweep.name},
        cwd=work,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [
        line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert len(rows) == 1 + 9  # the header and one row per job
    assert "method.attention.kind" in rows[0] and "method.attention.stage" in rows[0]


@pytest.mark.slow  # two evaluate.py processes (~20 s)
@pytest.mark.readme(
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt",
    "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt explainers=[gradcam,guided_backprop] metrics=[randomisation]",
)
def test_evaluate_defaults_and_the_sanity_check(readme, tiny_run, tmp_path):
    import csv

    subs = {"run": tiny_run}
    proc = readme.run(
        tmp_path, "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt", subs=subs,
        extra=["data.subset=4", "explainers.rise.n_masks=16", "gallery_images=2"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["explainer"] for r in rows] == [
        "gradcam", "gradcampp", "scorecam", "rise", "activation", "guided_backprop",
    ]  # fmt: skip
    assert {"ad@100", "deletion", "iou_auc", "pointing_game", "far", "fw"} <= set(rows[0])
    proc = readme.run(
        tmp_path,
        "python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt "
        "explainers=[gradcam,guided_backprop] metrics=[randomisation]",
        subs=subs, extra=["data.subset=4", "gallery_images=0"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    rows = {r["explainer"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert set(rows) == {"gradcam", "guided_backprop"}
    assert all(-1 <= float(r["rand_spearman"]) <= 1 for r in rows.values())


@pytest.mark.readme(
    "python train.py callbacks=explain explainers=[gradcam,scorecam] metrics.iou=null"
)
def test_explanation_metrics_during_training(readme, tmp_path):
    cfg = compose_cfg([*readme.overrides(), *TINY_DATA, "trainer.max_epochs=1",
                       "trainer.accelerator=cpu", "callbacks.model_summary=null",
                       "callbacks.explanation_metrics.max_samples=4",
                       "callbacks.heatmap_gallery.num_images=2"], tmp_path)  # fmt: skip
    metrics = run_unwrapped(cfg)
    assert {"test/ad@15/gradcam", "test/ad@15/scorecam", "test/far/scorecam"} <= set(metrics)
    assert not any(key.startswith("test/iou") for key in metrics)

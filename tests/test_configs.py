"""Every config in conf/ composes, and every group option is reachable from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
# groups selected from train.yaml / evaluate.yaml; explainer and metrics are used by evaluate
GROUPS = ["data", "backbone", "method", "callbacks", "logger", "trainer", "debug", "experiment", "hparams_search"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
    # what Hydra sets when a job starts; ${hydra:runtime.output_dir} needs it to resolve
    HydraConfig.instance().set_config(cfg)
    return cfg


def all_options():
    for group in GROUPS:
        for option in options(group):
            yield f"{group}={option}"


@pytest.mark.parametrize("override", list(all_options()))
def test_every_group_option_composes(override, tmp_path):
    cfg = compose_train([override, f"paths.log_dir={tmp_path}", f"hydra.runtime.output_dir={tmp_path}"])
    # Resolving catches typos in interpolations (${trainer.max_epochs}, ${paths.*}, ...).
    container = OmegaConf.to_container(cfg, resolve=False)
    assert container["task_name"]
    for key in ("data", "backbone", "method", "trainer"):
        assert "_target_" in cfg[key], f"{override}: {key} has no _target_"
        OmegaConf.to_container(cfg[key], resolve=True)


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group} is empty"


def test_unknown_group_option_lists_the_valid_ones():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as info:
        compose_train(["backbone=resnet9000"])
    assert "resnet18" in str(info.value)


@pytest.mark.parametrize("group", ["explainer", "metrics"])
def test_every_explainer_and_metric_config_instantiates(group):
    """These groups are read by name (callbacks, evaluate.py): every file must build."""
    from explainbench.callbacks.resolve import resolve_explainers, resolve_metrics

    names = [n for n in options(group) if n != "default"]
    built = (resolve_explainers if group == "explainer" else resolve_metrics)(names)
    assert list(built) == names and all(callable(obj) or hasattr(obj, "update") for obj in built.values())


def test_evaluate_config_composes(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("evaluate.yaml", overrides=["ckpt_path=x.ckpt", "data.subset=100"], return_hydra_config=True)
    assert cfg.task_name == "evaluate" and cfg.data.subset == 100 and cfg.explainers


def test_evaluate_metrics_are_a_config_group(tmp_path):
    """`metrics=[...]` picks files of conf/metrics, `metrics.<name>=null` drops one and
    `metrics.<name>.<key>=...` changes one; what evaluate.py builds follows."""
    from explainbench.callbacks.resolve import resolve_metrics

    def metrics(overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("evaluate.yaml", overrides=["ckpt_path=x.ckpt", *overrides])
        return resolve_metrics(cfg.metrics)

    default_names = [n for n in options("metrics") if n != "default"]
    assert sorted(metrics([])) == sorted(default_names)
    assert list(metrics(["metrics=[ad_ic,passes]"])) == ["ad_ic", "passes"]
    assert "iou" not in metrics(["metrics.iou=null"]) and "far" in metrics(["metrics.iou=null"])
    assert metrics(["metrics.deletion_insertion.n_steps=50"])["deletion_insertion"].n_steps == 50

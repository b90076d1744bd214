"""Every config in conf/ composes, and every group option is reachable from the command line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from explainbench.utils.instantiate import instantiate_named_dict

from .helpers import CONF

# groups selected from train.yaml / evaluate.yaml; explainers and metrics are checked below
GROUPS = [
    "data",
    "backbone",
    "method",
    "callbacks",
    "logger",
    "trainer",
    "debug",
    "experiment",
    "hparams_search",
]


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
    cfg = compose_train(
        [override, f"paths.log_dir={tmp_path}", f"hydra.runtime.output_dir={tmp_path}"]
    )
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


@pytest.mark.parametrize("group", ["explainers", "metrics"])
def test_every_explainer_and_metric_config_instantiates(group):
    """Every file of these groups composes as one named entry and builds, in the order given."""
    names = [n for n in options(group) if n != "default"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=None, overrides=[f"+{group}=[{','.join(reversed(names))}]"])
    built = instantiate_named_dict(cfg[group])
    assert list(built) == names[::-1] and all(callable(obj) for obj in built.values())


def test_evaluate_config_composes(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "evaluate.yaml",
            overrides=["ckpt_path=x.ckpt", "data.subset=100"],
            return_hydra_config=True,
        )
    assert cfg.task_name == "evaluate" and cfg.data.subset == 100 and cfg.explainers


def compose_evaluate(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("evaluate.yaml", overrides=["ckpt_path=x.ckpt", *overrides])


@pytest.mark.parametrize("group", ["explainers", "metrics"])
def test_evaluate_explainers_and_metrics_are_config_groups(group):
    """`<group>=[...]` picks files in that order, `<group>.<name>=null` drops one and
    `<group>.<name>.<key>=...` changes one; what evaluate.py builds follows."""

    def built(overrides):
        return instantiate_named_dict(compose_evaluate(overrides)[group])

    default = [n for n in OmegaConf.load(CONF / group / "default.yaml").defaults if n != "_self_"]
    assert list(built([])) == default
    first, second = default[-1], default[0]
    assert list(built([f"{group}=[{first},{second}]"])) == [first, second]
    assert list(built([f"{group}.{first}=null"])) == default[:-1]


def test_settings_travel_through_hydra_overrides():
    """Explainers take settings the way metrics do (no side channel)."""
    cfg = compose_evaluate(
        [
            "explainers=[method,rise]",
            "explainers.rise.n_masks=1000",
            "metrics.deletion_insertion.n_steps=50",
        ]
    )
    assert list(cfg.explainers) == ["method", "rise"]
    assert instantiate_named_dict(cfg.explainers)["rise"].n_masks == 1000
    assert instantiate_named_dict(cfg.metrics)["deletion_insertion"].n_steps == 50


def test_train_composes_explainers_and_metrics_only_for_the_explanation_callbacks(tmp_path):
    """callbacks=explain selects the same top-level groups evaluate.py uses; the command line
    chooses them for both callbacks at once."""
    plain = compose_train([f"hydra.runtime.output_dir={tmp_path}"])
    assert "explainers" not in plain and "metrics" not in plain
    cfg = compose_train(
        [
            "callbacks=explain",
            "explainers=[gradcam,rise]",
            "explainers.rise.n_masks=10",
            "metrics=[far,passes]",
            f"hydra.runtime.output_dir={tmp_path}",
        ]
    )
    metrics_cb, gallery_cb = cfg.callbacks.explanation_metrics, cfg.callbacks.heatmap_gallery
    assert list(metrics_cb.explainers) == list(gallery_cb.explainers) == ["gradcam", "rise"]
    assert metrics_cb.explainers.rise.n_masks == 10 and list(metrics_cb.metrics) == [
        "far",
        "passes",
    ]
    default = compose_train(["callbacks=explain", f"hydra.runtime.output_dir={tmp_path}"])
    assert list(default.explainers) == ["gradcam"] and "ad_ic" in default.metrics

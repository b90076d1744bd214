"""Every data module trains, tests its best checkpoint and resumes from ``last.ckpt``.

Lightning reads checkpoints back with ``torch.load(weights_only=True)``: a hyper-parameter
that is not a plain Python value (an OmegaConf ``ListConfig`` from ``split_ratios: [...]``)
made every folder dataset fail at ``trainer.test(ckpt_path=best)`` and at resume. One CLI run
per ``conf/data/*.yaml`` on the tiny fixture its data tests build; a new data config without
a fixture builder below fails here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from explainbench.backbones import build_backbone
from explainbench.data.an8flower_folder import export_an8flower
from explainbench.methods import Classifier
from explainbench.methods.build import build_backbone_for_data, instantiate_method

from .data.test_attribute_folder import write_folder
from .data.test_celeba import write_celeba
from .data.test_cifar10 import write_cifar10
from .data.test_cub import write_cub
from .data.test_imagenet import write_imagenet
from .data.test_inaturalist import write_inat
from .data.test_mnist import write_mnist
from .data.test_sun_attribute import write_sun
from .helpers import CONF, TINY_DATA, compose_cfg, run_cli, run_dirs

LOADER = ["data.batch_size=4", "data.num_workers=0", "data.pin_memory=false"]
SMALL_IMAGES = ["data.image_size=16", "data.resize_size=null"]
# 4 images per class: 2 / 1 / 1, so every split has images
ATTRIBUTE_SPLIT = ["data.split_ratios=[0.5,0.25,0.25]"]


def an8flower(tmp: Path) -> list[str]:
    return [*TINY_DATA, "data.image_size=32"]


def an8flower_folder(tmp: Path) -> list[str]:
    export_an8flower(tmp / "an8flower", "single6c", image_size=32, count=36, seed=7)
    return [f"data.root={tmp / 'an8flower'}", "data.image_size=32", *LOADER]


def attribute_folder(tmp: Path) -> list[str]:
    return [f"data.root={write_folder(tmp / 'folder')}", *SMALL_IMAGES, *ATTRIBUTE_SPLIT, *LOADER]


def celeba(tmp: Path) -> list[str]:
    # all 40 attributes: the multi-label target
    return [f"data.root={write_celeba(tmp / 'celeba')}", "data.image_size=16", *LOADER]


def cifar10(tmp: Path) -> list[str]:
    # 4 training images per class: one of them for validation
    return [f"data.root={write_cifar10(tmp / 'cifar')}", "data.val_fraction=0.25", *LOADER]


def cub(tmp: Path) -> list[str]:
    # 3 official training images per class: one of them for validation
    return [f"data.root={write_cub(tmp)}", *SMALL_IMAGES, "data.val_fraction=0.34", *LOADER]


def imagenet(tmp: Path) -> list[str]:
    root = write_imagenet(tmp / "imagenet")
    return [f"data.root={root}", "data.image_size=16", "data.resize_size=16", *LOADER]


def inaturalist(tmp: Path) -> list[str]:
    # 4 training images per species: one of them for validation
    root = write_inat(tmp / "inat")
    return [f"data.root={root}", *SMALL_IMAGES, "data.val_fraction=0.25", *LOADER]


def mnist(tmp: Path) -> list[str]:
    # 4 training digits per class: one of them for validation
    return [f"data.root={write_mnist(tmp / 'mnist')}", "data.val_fraction=0.25", *LOADER]


def sun_attribute(tmp: Path) -> list[str]:
    return [f"data.root={write_sun(tmp / 'sun')}", *SMALL_IMAGES, *ATTRIBUTE_SPLIT, *LOADER]


# conf/data/<name>.yaml -> writes its tiny dataset under the given folder, returns the overrides
FIXTURES: dict[str, Callable[[Path], list[str]]] = {
    "aircraft17": attribute_folder,
    "an8flower": an8flower,
    "an8flower_folder": an8flower_folder,
    "attribute_folder": attribute_folder,
    "celeba": celeba,
    "cifar10": cifar10,
    "cub": cub,
    "imagenet": imagenet,
    "inaturalist": inaturalist,
    "mnist": mnist,
    "sun_attribute": sun_attribute,
}
DATA_CONFIGS = sorted(path.stem for path in (CONF / "data").glob("*.yaml"))
# the fast suite resumes one folder dataset; `make test-full` resumes every one
FAST_RESUME = "an8flower_folder"


def fixture_overrides(name: str, tmp: Path) -> list[str]:
    if name not in FIXTURES:
        pytest.fail(
            f"conf/data/{name}.yaml has no fixture builder: add one to FIXTURES in {Path(__file__).name} "
            "so the new data module is trained, tested and resumed from a checkpoint here"
        )
    return [f"data={name}", *FIXTURES[name](tmp)]


def weights_only_round_trip(value) -> None:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_data_hyperparameters_load_with_weights_only(name, tmp_path):
    """In-process and fast: what Lightning puts in a checkpoint for each data module."""
    cfg = compose_cfg(fixture_overrides(name, tmp_path / "data"), tmp_path)
    datamodule = instantiate(cfg.data)
    assert datamodule.hparams, "the data module saves its constructor arguments"
    weights_only_round_trip(dict(datamodule.hparams))


@pytest.mark.parametrize("method", sorted(path.stem for path in (CONF / "method").glob("*.yaml")))
def test_method_hyperparameters_load_with_weights_only(method, tmp_path):
    cfg = compose_cfg([f"method={method}", *TINY_DATA], tmp_path)
    datamodule = instantiate(cfg.data)
    backbone = build_backbone_for_data(cfg.backbone, datamodule.num_classes)
    backbone.source = "checkpoint:test"  # L-CAM explains a trained classifier
    model = instantiate_method(cfg.method, backbone, datamodule.info(), {})
    assert model.hparams["data_info"] == datamodule.info().to_dict()  # a plain dict
    weights_only_round_trip(dict(model.hparams))


class ClassifierWithLists(Classifier):
    """A method whose constructor takes list and dict arguments, as Hydra passes them."""

    def __init__(self, *args, stages=(1, 2), extra=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)


def test_base_classes_store_plain_containers(tmp_path):
    """The mechanism itself, for methods and data modules alike: OmegaConf containers given to
    a constructor are stored as lists and dicts (a new method needs nothing of its own)."""
    backbone = build_backbone(name="small_cnn", num_classes=6)
    nested = OmegaConf.create({"stages": [1, 2], "extra": {"a": [3]}})
    model = ClassifierWithLists(backbone, stages=nested.stages, extra=nested.extra)
    assert model.hparams.stages == [1, 2] and type(model.hparams.stages) is list
    assert type(model.hparams.extra) is dict and type(model.hparams.extra["a"]) is list
    assert type(model.hparams_initial.stages) is list
    weights_only_round_trip(dict(model.hparams))


def train_test_resume(name: str, tmp_path: Path, resume: bool) -> None:
    args = [
        *fixture_overrides(name, tmp_path / "data"),
        "trainer.max_epochs=1",
        "callbacks.model_summary=null",
    ]
    proc = run_cli("train.py", args, tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = run_dirs(proc.stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "test/acc" in metrics, metrics  # tested the best checkpoint: it loaded
    assert metrics["data/skipped_images"] == 0
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    if not resume:
        return
    proc = run_cli(
        "train.py", [*args, f"ckpt_path={last}", "trainer.max_epochs=2"], tmp_path / "resumed"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (resumed,) = run_dirs(proc.stdout)
    assert "test/acc" in json.loads((resumed / "metrics.json").read_text())
    # the resumed run went on to the second epoch from the first one's state
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize(
    "name",
    [n if n == FAST_RESUME else pytest.param(n, marks=pytest.mark.slow) for n in DATA_CONFIGS],
)
def test_train_test_and_resume_from_last_checkpoint(name, tmp_path):
    train_test_resume(name, tmp_path, resume=True)

"""The build spine: DataInfo through a checkpoint, old checkpoints, evaluate's data overrides."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from explainbench.data.info import DataInfo
from explainbench.evaluate import data_config
from explainbench.methods.build import (
    BUILD_CONFIG_KEY,
    OLD_BUILD_CONFIG_KEY,
    load_method,
    stored_build_config,
)
from explainbench.train import run
from explainbench.utils.checkpoint_fit import describe_architecture

from .helpers import TINY_DATA, compose_cfg


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, DataInfo]:
    """A few training steps of a classifier on tiny an8flower: (last.ckpt, the data's info)."""
    out = tmp_path_factory.mktemp("build")
    cfg = compose_cfg(
        [
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "+trainer.limit_train_batches=1",
            "+trainer.limit_val_batches=1",
            "test=false",
            "logger=csv",
            "callbacks.model_summary=null",
            *TINY_DATA,
        ],
        out,
    )
    run(cfg)
    return out / "checkpoints" / "last.ckpt", hydra.utils.instantiate(cfg.data).info()


def test_data_info_round_trips_through_a_checkpoint(tiny_run):
    """load_method rebuilds the method with the data's facts, from the checkpoint alone."""
    path, info = tiny_run
    assert info.landmark_names and info.attribute_names and "landmarks" in info.annotations
    blob = torch.load(path, weights_only=True)  # plain containers only
    assert blob[BUILD_CONFIG_KEY]["data_info"] == info.to_dict()
    assert blob["hyper_parameters"]["data_info"] == info.to_dict()
    model = load_method(path)
    assert model.data_info == info
    assert set(model.build_config) == {"data", "backbone", "method", "data_info"}
    assert not model.training


def test_checkpoint_with_the_old_key_still_loads(tiny_run, tmp_path):
    """Runs written before build_config stored ``explainbench_config`` with num_classes at the top."""
    path, info = tiny_run
    blob = torch.load(path, weights_only=True)
    new = blob.pop(BUILD_CONFIG_KEY)
    blob["hyper_parameters"].pop("data_info")
    blob[OLD_BUILD_CONFIG_KEY] = {
        "data": new["data"],
        "backbone": new["backbone"],
        "method": new["method"],
        "num_classes": info.num_classes,
        "data_info": {},
    }
    old = tmp_path / "old.ckpt"
    torch.save(blob, old)
    model = load_method(old)
    assert model.data_info.num_classes == info.num_classes and model.data_info.class_names is None
    reference = load_method(path)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x))
    # ckpt_path= mismatch messages read it too
    assert "6 classes" in describe_architecture(stored_build_config(blob))


STORED_DATA = {
    "_target_": "explainbench.data.an8flower.An8FlowerDataModule",
    "test_size": 32,
    "subset": 5,
    "batch_size": 16,
}


def evaluate_cfg(overrides: list[str], tmp_path: Path):
    return compose_cfg(["ckpt_path=x.ckpt", *overrides], tmp_path, config_name="evaluate.yaml")


def test_data_overrides_delete_add_and_change_the_checkpoints_data(tmp_path):
    """``~data.x`` deletes, ``+data.x=`` adds, ``data.x=`` changes: parsed as Hydra parses them
    (a deletion used to be silently ignored)."""
    # read from the Hydra task's overrides, as evaluate.py does
    cfg = evaluate_cfg(["~data.test_size", "+data.extra=[1,2]", "data.batch_size=4"], tmp_path)
    data = data_config(cfg, {"data": STORED_DATA})
    assert "test_size" not in data
    assert data.extra == [1, 2] and data.batch_size == 4 and data.subset == 5
    # (Hydra itself refuses ~data.subset where evaluate.yaml's data has subset: null)
    assert "subset" not in data_config(cfg, {"data": STORED_DATA}, ["~data.subset"])


def test_data_override_errors_and_other_data(tmp_path):
    cfg = evaluate_cfg([], tmp_path)
    stored = {"data": STORED_DATA}
    with pytest.raises(ValueError, match="has no 'missing'"):
        data_config(cfg, stored, ["~data.missing"])
    with pytest.raises(ValueError, match="data.subset is 5"):
        data_config(cfg, stored, ["~data.subset=7"])
    assert "subset" not in data_config(cfg, stored, ["~data.subset=5"])
    # choosing a dataset, or data_from_checkpoint=false, uses the command line's data config
    assert data_config(cfg, stored, ["data=an8flower"]) is cfg.data
    cfg.data_from_checkpoint = False
    assert data_config(cfg, stored, ["data.subset=3"]) is cfg.data
    assert OmegaConf.is_config(cfg.data)

"""The original an8Flower folder layout: export generated data, read it back, fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from explainbench.data.an8flower_folder import (
    An8FlowerFolderDataModule,
    export_an8flower,
    folder_class_name,
)
from explainbench.data.an8flower_render import FlowerRenderer, class_names
from explainbench.data.folder import split_of
from explainbench.utils.image import denormalize
from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
COUNT = 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("an8flower")
    export_an8flower(root, "single6c", image_size=32, count=COUNT, seed=7)
    return root


def read_all(dm: An8FlowerFolderDataModule) -> dict[str, list[dict]]:
    """Every sample of every split, one dict per sample."""
    out = {}
    for split in ("train", "val", "test"):
        ds = dm.dataset(split)
        out[split] = [ds[i] for i in range(len(ds))]
    return out


def test_export_writes_the_original_layout(exported):
    folder = exported / "an8Flower_single_6c"
    classes = sorted(p.name for p in folder.iterdir())
    assert classes == sorted(
        [folder_class_name(c) for c in class_names("single6c")]
        + [folder_class_name(c) + "_MASK" for c in class_names("single6c")]
    )
    images = sorted(folder.glob("centre_red/*.png"))
    masks = sorted(folder.glob("centre_red_MASK/*.png"))
    assert (
        [p.name for p in images]
        == [p.name for p in masks]
        == [f"train_{i:06d}.png" for i in range(0, COUNT, 6)]
    )


def test_labels_images_and_masks_round_trip(exported):
    order = [folder_class_name(c) for c in class_names("single6c")]
    dm = An8FlowerFolderDataModule(exported, image_size=None, classes=order, batch_size=8)
    assert dm.num_classes == 6 and dm.class_names == order and dm.annotations == {"part_mask"}
    splits = read_all(dm)
    assert sum(len(s) for s in splits.values()) == COUNT and all(splits.values())
    truth = FlowerRenderer(7, "single6c", 32).render("train", np.arange(COUNT))
    seen = set()
    for split in splits.values():
        for sample in split:
            # which generated image is this? the pixels say (PNG is lossless)
            pixels = (
                (denormalize(sample["image"][None], dm.mean, dm.std)[0] * 255)
                .round()
                .to(torch.uint8)
            )
            index = next(i for i in range(COUNT) if np.array_equal(truth.image[i], pixels.numpy()))
            seen.add(index)
            assert sample["label"] == truth.label[index]
            np.testing.assert_array_equal(sample["part_mask"][0].numpy(), truth.part_mask[index])
    assert seen == set(range(COUNT))


def test_sorted_class_folders_map_by_name(exported):
    dm = An8FlowerFolderDataModule(exported, image_size=64)
    assert dm.class_names == sorted(dm.class_names)
    sample = dm.dataset("train")[0]
    path = dm.dataset("train").samples[0][0]
    assert dm.class_names[int(sample["label"])] == path.parent.name
    # resized to image_size, the mask with nearest neighbours: still binary
    assert sample["image"].shape == (3, 64, 64) and sample["part_mask"].shape == (1, 64, 64)
    assert set(sample["part_mask"].unique().tolist()) == {0.0, 1.0}
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "label", "part_mask", "index"}


def test_split_is_deterministic_disjoint_and_follows_the_ratios(exported):
    a = read_all(An8FlowerFolderDataModule(exported, image_size=None))
    b = read_all(An8FlowerFolderDataModule(exported, image_size=None))
    for split in a:
        assert [s["label"] for s in a[split]] == [s["label"] for s in b[split]]
    keys = [f"c{i % 6}/img_{i:05d}.png" for i in range(3000)]
    fractions = {
        s: np.mean([split_of(k, (0.7, 0.15, 0.15)) == s for k in keys])
        for s in ("train", "val", "test")
    }
    assert abs(fractions["train"] - 0.7) < 0.03 and abs(fractions["val"] - 0.15) < 0.03, fractions
    assert split_of("x/y.png", (1, 0, 0)) == "train" and split_of("x/y.png", (0, 0, 1)) == "test"
    moved = np.mean(
        [split_of(k, (0.7, 0.15, 0.15), 0) != split_of(k, (0.7, 0.15, 0.15), 1) for k in keys[:500]]
    )
    assert moved > 0.2  # split_seed reshuffles


def test_missing_folder_is_one_clear_error(tmp_path):
    dm = An8FlowerFolderDataModule(tmp_path / "nowhere")
    assert dm.num_classes == 6  # known from the variant, without touching the disk
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "an8Flower_single_6c") in message
    assert "<class>_MASK" in message and "export_an8flower.py" in message
    with pytest.raises(ValueError, match="data.root is not set"):
        An8FlowerFolderDataModule(None)


def test_missing_mask_names_the_file(tmp_path):
    export_an8flower(tmp_path, "single6c", image_size=32, count=6)
    victim = tmp_path / "an8Flower_single_6c" / "centre_blue_MASK" / "train_000004.png"
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="train_000004.png"):
        An8FlowerFolderDataModule(tmp_path).class_names  # noqa: B018


def test_wrong_class_folders_are_reported(exported):
    with pytest.raises(FileNotFoundError, match="missing"):
        An8FlowerFolderDataModule(exported, classes=["centre_red", "centre_pink"]).setup()
    with pytest.raises(FileNotFoundError, match="an8Flower_double_12c.*12 class folders"):
        An8FlowerFolderDataModule(exported, variant="double12c").setup()  # no such folder
    with pytest.raises(ValueError, match="valid variants"):
        An8FlowerFolderDataModule(exported, variant="double6c")


def test_config_and_export_script(tmp_path, capsys):
    """The CLI writes the layout that conf/data/an8flower_folder.yaml reads from data_dir."""
    script = load_script("export_an8flower")
    argv = [
        "--out",
        str(tmp_path / "an8flower"),
        "--variant",
        "double12c",
        "--size",
        "32",
        "--count",
        "24",
    ]
    script.main(argv)
    assert "wrote 24 images" in capsys.readouterr().out
    cfg = OmegaConf.create(
        {
            "paths": {"data_dir": str(tmp_path)},
            "data": OmegaConf.load(
                ROOT / "explainbench" / "conf" / "data" / "an8flower_folder.yaml"
            ),
        }
    )
    assert next(iter(cfg.data)) == "_target_"
    dm = instantiate(cfg.data, variant="double12c", image_size=None)
    assert dm.root == tmp_path / "an8flower" and len(dm.class_names) == 12
    assert sum(len(dm.dataset(s)) for s in ("train", "val", "test")) == 24

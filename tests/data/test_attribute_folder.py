"""Attribute-folder data module (Aircraft-17 layout) with and without splits/ and masks/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from explainbench.data.attribute_folder import AttributeFolderDataModule

CONF = Path(__file__).resolve().parents[2] / "explainbench" / "conf" / "data"
CLASSES = ["a320", "b737", "cessna_172"]  # sorted: the label order
# rows deliberately not in label order; floats to test both attribute modes
CSV = (
    "class,has_propeller,wing_position::high,engine_count::two\n"
    "cessna_172,1,1,0.2\n"
    "a320,0,0,1\n"
    "b737,0,0.45,0.9\n"
)
TABLE = {"a320": [0, 0, 1], "b737": [0, 0.45, 0.9], "cessna_172": [1, 1, 0.2]}
PER_CLASS = 4
MASK_BOX = (6, 4, 18, 12)  # x1 y1 x2 y2 of the white area in every mask


def write_folder(root: Path, masks: bool = False, splits: bool = False) -> Path:
    for c, name in enumerate(CLASSES):
        for k in range(PER_CLASS):
            path = root / "images" / name / f"{name}_{k}.{'png' if k % 2 else 'jpg'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 24), (80 * c, 40, 200)).save(path)
            if masks:
                mask = np.zeros((24, 32), np.uint8)
                x1, y1, x2, y2 = MASK_BOX
                mask[y1:y2, x1:x2] = 255
                out = root / "masks" / name / f"{path.stem}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(out)
    (root / "attributes.csv").write_text(CSV)
    if splits:
        (root / "splits").mkdir()
        # per class: images 0, 1, 2 train, 3 test
        (root / "splits/train.txt").write_text(
            "# training images\n"
            + "".join(
                f"{n}/{n}_{k}.{'png' if k % 2 else 'jpg'}\n" for n in CLASSES for k in (0, 1, 2)
            )
        )
        (root / "splits/test.txt").write_text("".join(f"{n}/{n}_3.png\n\n" for n in CLASSES))
    return root


def module(root: Path, **kwargs) -> AttributeFolderDataModule:
    kwargs = {"image_size": 16, "resize_size": None, "batch_size": 4, **kwargs}
    return AttributeFolderDataModule(root=str(root), **kwargs)


def names(dm, split: str) -> list[str]:
    return sorted(p.name for p, _ in dm.dataset(split).samples)


def test_classes_and_attribute_table(tmp_path):
    dm = module(write_folder(tmp_path / "aircraft"))
    assert dm.class_names == CLASSES and dm.num_classes == 3
    assert dm.attribute_names == ["has_propeller", "wing_position::high", "engine_count::two"]
    assert dm.annotations == {"attributes"}
    binary = torch.tensor([[float(v >= 0.5) for v in TABLE[c]] for c in CLASSES])
    torch.testing.assert_close(dm.class_attributes, binary)
    soft = module(tmp_path / "aircraft", attribute_mode="soft").class_attributes
    torch.testing.assert_close(soft, torch.tensor([TABLE[c] for c in CLASSES]).float())


def test_hash_split_without_splits_folder(tmp_path):
    root = write_folder(tmp_path / "aircraft")
    dm = module(root, split_ratios=[0.5, 0.25, 0.25])
    sizes = {s: len(dm.dataset(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 3, "test": 3}  # 4 per class -> 2 / 1 / 1
    every = names(dm, "train") + names(dm, "val") + names(dm, "test")
    assert len(set(every)) == len(every) == 12
    assert sorted(label for _, label in dm.dataset("test").samples) == [0, 1, 2]
    again = module(root, split_ratios=[0.5, 0.25, 0.25])
    assert names(again, "val") == names(dm, "val")
    sample = dm.dataset("test")[1]
    label = dm.dataset("test").samples[1][1]
    assert sample["label"].item() == label and sample["index"].item() == 1
    torch.testing.assert_close(sample["attributes"], dm.class_attributes[label])
    assert "mask" not in sample and sample["image"].shape == (3, 16, 16)


def test_split_files_with_val_carved_from_train(tmp_path):
    root = write_folder(tmp_path / "aircraft", splits=True)
    dm = module(root, val_fraction=0.34)  # 3 listed train images per class -> 2 + 1 val
    assert names(dm, "test") == sorted(f"{n}_3.png" for n in CLASSES)
    assert len(dm.dataset("train")) == 6 and len(dm.dataset("val")) == 3
    assert not set(names(dm, "train")) & set(names(dm, "val"))
    assert all(not n.endswith("_3.png") for n in names(dm, "train") + names(dm, "val"))
    # splits/val.txt replaces the carving
    first = f"{CLASSES[0]}/{CLASSES[0]}_0.jpg"
    train_list = (root / "splits/train.txt").read_text()
    (root / "splits/train.txt").write_text(train_list.replace(f"{first}\n", ""))
    (root / "splits/val.txt").write_text(f"{first}\n")
    with_val = module(root)
    assert names(with_val, "val") == [f"{CLASSES[0]}_0.jpg"] and len(with_val.dataset("train")) == 8
    (root / "splits/train.txt").write_text(train_list)
    with pytest.raises(ValueError, match="listed in splits/train.txt and splits/val.txt"):
        module(root).dataset("train")


def test_split_file_errors(tmp_path):
    root = write_folder(tmp_path / "aircraft", splits=True)
    with open(root / "splits/test.txt", "a") as f:
        f.write("a320/missing.jpg\n")
    with pytest.raises(ValueError, match=r"test.txt:7: 'a320/missing.jpg' is not an image"):
        module(root).setup("test")
    (root / "splits/test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"splits/test.txt' is missing"):
        module(root).setup("test")


def test_masks(tmp_path):
    root = write_folder(tmp_path / "aircraft", masks=True)
    dm = module(root, image_size=16, resize_size=None, augment=False)  # 32x24 -> 16x16
    assert dm.annotations == {"attributes", "mask"}
    sample = dm.dataset("train")[0]
    expected = torch.zeros(1, 16, 16)
    # nearest neighbour: output column j reads input column 2j, output row j input row 1.5j
    expected[:, 3:8, 3:9] = 1
    torch.testing.assert_close(sample["mask"], expected)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["mask"].shape[1:] == (1, 16, 16)
    stem = dm.dataset("test").samples[0][0]
    (root / "masks" / stem.parent.name / f"{stem.stem}.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 masks are missing"):
        module(root, split_ratios=[0.5, 0.25, 0.25]).setup("test")


def test_clear_errors(tmp_path):
    root = write_folder(tmp_path / "aircraft")
    with pytest.raises(FileNotFoundError, match="nowhere.*attributes.csv"):
        module(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="attribute_mode 'maybe'"):
        module(root, attribute_mode="maybe")
    (root / "attributes.csv").write_text(CSV.replace("b737", "b747"))
    with pytest.raises(
        ValueError,
        match=r"rows without a folder: \['b747'\]; folders without "
        r"a row: \['b737'\]",
    ):
        module(root)
    (root / "attributes.csv").write_text(CSV.replace("0.45", "1.5"))
    with pytest.raises(ValueError, match=r"attributes.csv:4: attribute values must be"):
        module(root)
    (root / "attributes.csv").write_text(CSV.replace("class,", "name,"))
    with pytest.raises(ValueError, match=r"attributes.csv:1: expected the header"):
        module(root)
    (root / "attributes.csv").unlink()
    with pytest.raises(FileNotFoundError, match="attributes.csv' is missing"):
        module(root)


@pytest.mark.parametrize("name", ["aircraft17", "attribute_folder"])
def test_config_instantiates(tmp_path, name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert next(iter(raw)) == "_target_" and raw["root"] == f"${{paths.data_dir}}/{name}"
    cfg.root, cfg.image_size, cfg.resize_size = str(write_folder(tmp_path / name)), 16, 20
    cfg.num_workers, cfg.pin_memory = 0, False
    dm = instantiate(cfg)
    assert isinstance(dm, AttributeFolderDataModule) and dm.num_classes == 3
    assert dm.dataset("test")[0]["image"].shape == (3, 16, 16)  # 4 per class: 3 / 0 / 1

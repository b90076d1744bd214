"""iNaturalist 2017 data module on a tiny copy of the official layout (3 species, 18 images)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from explainbench.data.folder import Unreadable
from explainbench.data.inaturalist import INaturalistDataModule, carve_val

from ..helpers import CONF

# category id -> (name, super category); ids neither sorted nor contiguous in the file
CATEGORIES = {
    9: ("Danaus plexippus", "Insecta"),
    2: ("Quercus robur", "Plantae"),
    5: ("Bufo bufo", "Amphibia"),
}
W, H = 40, 32
TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 2


def records(part: str) -> list[tuple[int, str, int]]:
    """``(image id, file name, category id)`` of train2017.json / val2017.json."""
    per_class = TRAIN_PER_CLASS if part == "train" else VAL_PER_CLASS
    out, image_id = [], 100 if part == "train" else 500
    for category, (name, group) in CATEGORIES.items():
        for k in range(per_class):
            out.append(
                (
                    image_id,
                    f"train_val_images/{group}/{name}/{part}_{image_id:04x}{k}.jpg",
                    category,
                )
            )
            image_id += 1
    return out


def write_inat(root: Path, boxes: bool = True) -> Path:
    for part, file in (("train", "train2017.json"), ("val", "val2017.json")):
        rows = records(part)
        for _, name, _ in rows:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(root / name)
        data = {
            "info": {"year": 2017},
            "images": [{"id": i, "file_name": n, "width": W, "height": H} for i, n, _ in rows],
            "annotations": [
                {"id": k, "image_id": i, "category_id": c} for k, (i, _, c) in enumerate(rows)
            ],
            "categories": [
                {"id": c, "name": n, "supercategory": g} for c, (n, g) in CATEGORIES.items()
            ],
        }
        (root / file).write_text(json.dumps(data))
    if boxes:
        write_boxes(root)
    return root


def write_boxes(root: Path) -> None:
    """Boxes for the first two images of each part, with ids of the box files' own: image 1 has
    two instances, whose union is its box."""
    for part, file in (("train", "train_2017_bboxes.json"), ("val", "val_2017_bboxes.json")):
        first, second = records(part)[:2]
        data = {
            "images": [{"id": 7, "file_name": first[1]}, {"id": 3, "file_name": second[1]}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": first[2], "bbox": [4, 8, 10, 6]},
                {"id": 2, "image_id": 7, "category_id": first[2], "bbox": [20, 2, 12, 4]},
                {"id": 3, "image_id": 3, "category_id": second[2], "bbox": [0, 0, 40, 32]},
            ],
            "categories": [],
        }
        (root / file).write_text(json.dumps(data))


@pytest.fixture
def inat_root(tmp_path) -> Path:
    return write_inat(tmp_path / "inat")


def module(root: Path, **kwargs) -> INaturalistDataModule:
    kwargs = {
        "image_size": 16,
        "resize_size": None,
        "batch_size": 4,
        "val_fraction": 0.25,
        **kwargs,
    }
    return INaturalistDataModule(root=str(root), **kwargs)


def test_classes_are_the_categories_in_id_order_and_test_is_val2017(inat_root):
    dm = module(inat_root)
    assert dm.num_classes == 3 and dm.class_names == [
        "Quercus robur",
        "Bufo bufo",
        "Danaus plexippus",
    ]
    label_of = {c: k for k, c in enumerate(sorted(CATEGORIES))}
    test = dm.dataset("test")
    assert len(test) == 6
    for k, (path, label) in enumerate(test.samples):
        _, name, category = records("val")[k]
        assert path == str(inat_root / name) and label == label_of[category]
    sample = test[3]
    assert sample["image"].shape == (3, 16, 16) and sample["label"].item() == label_of[2]
    assert sample["index"].item() == 3


def test_val_is_a_fixed_share_of_each_species_training_images(inat_root):
    dm = module(inat_root)
    train, val = ({p for p, _ in dm.dataset(s).samples} for s in ("train", "val"))
    assert len(train) == 9 and len(val) == 3 and not train & val  # 4 per class: 3 + 1
    assert sorted(label for _, label in dm.dataset("val").samples) == [0, 1, 2]
    assert {p for p, _ in module(inat_root).dataset("val").samples} == val
    others = [
        {p for p, _ in module(inat_root, split_seed=s).dataset("val").samples} for s in range(1, 6)
    ]
    assert any(o != val for o in others)


def test_carved_validation_keeps_a_training_image_per_class_whatever_the_order():
    labels = np.array([0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    ids = np.arange(100, 100 + len(labels))
    val = carve_val(labels, ids, 0.5, seed=0)
    # class 0: 2 -> 1 val; class 1: 1 -> none; class 2: 10 -> 5
    assert [int(val[labels == c].sum()) for c in range(3)] == [1, 0, 5]
    shuffled = np.random.default_rng(0).permutation(len(labels))
    again = carve_val(labels[shuffled], ids[shuffled], 0.5, seed=0)
    assert set(ids[shuffled][again]) == set(ids[val])  # by image id, not by position


def test_boxes_cover_all_instances_and_are_nan_without_annotation(inat_root):
    dm = module(inat_root)
    assert dm.annotations == {"bbox"}
    test = dm.dataset("test")
    # union of (4, 8, 14, 14) and (20, 2, 32, 6) = (4, 2, 32, 14); resize 40x32 -> 16: x * 0.4, y * 0.5
    torch.testing.assert_close(test[0]["bbox"], torch.tensor([1.6, 1.0, 12.8, 7.0]))
    torch.testing.assert_close(test[1]["bbox"], torch.tensor([0.0, 0.0, 16.0, 16.0]))
    assert torch.isnan(test[2]["bbox"]).all()
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"image", "label", "bbox", "index", "skipped"} and batch["bbox"].shape == (
        4,
        4,
    )


def test_without_box_files_there_is_no_bbox(tmp_path):
    dm = module(write_inat(tmp_path, boxes=False))
    assert dm.annotations == frozenset() and "bbox" not in dm.dataset("test")[0]


def test_a_missing_image_later_in_a_split_is_skipped_not_fatal(inat_root):
    (inat_root / records("val")[-1][1]).unlink()
    test = module(inat_root).dataset("test")
    assert isinstance(test[5], Unreadable) and test.skipped == 1


def test_missing_or_malformed_files_name_the_file_and_the_layout(inat_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*iNaturalist 2017 layout"):
        module(tmp_path / "nowhere")
    val = inat_root / "val2017.json"
    data = json.loads(val.read_text())
    data["annotations"][0]["category_id"] = 77
    val.write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match="val2017.json: category_id 77 is not in the categories of train2017.json"
    ):
        module(inat_root).setup("test")
    del data["annotations"][0]
    val.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="val2017.json: image id 500 has no annotation"):
        module(inat_root).setup("test")
    val.write_text('{"images": [')
    with pytest.raises(
        ValueError, match="val2017.json is not valid JSON.*train_val_images/<super category>"
    ):
        module(inat_root).setup("test")
    val.write_text('{"images": []}')
    with pytest.raises(ValueError, match="val2017.json has no 'annotations' list"):
        module(inat_root).setup("test")
    (inat_root / "train2017.json").unlink()
    with pytest.raises(
        FileNotFoundError, match="train2017.json' is missing; expected the iNaturalist 2017 layout"
    ):
        module(inat_root)


def test_a_wrong_root_fails_at_setup_naming_the_first_image(tmp_path):
    root = write_inat(tmp_path)
    first = root / records("val")[0][1]
    first.unlink()
    with pytest.raises(FileNotFoundError, match=f"image '{first}' \\(test split\\) is missing"):
        module(root).setup("test")


def test_config_instantiates(inat_root):
    cfg = OmegaConf.load(CONF / "data" / "inaturalist.yaml")
    cfg.root, cfg.num_workers, cfg.pin_memory = str(inat_root), 0, False
    dm = instantiate(cfg)
    assert isinstance(dm, INaturalistDataModule) and (dm.image_size, dm.resize_size) == (224, 320)
    assert not math.isnan(dm.val_fraction)

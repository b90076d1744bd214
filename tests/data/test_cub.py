"""CUB-200-2011 data module on a tiny copy of the official layout (3 classes, 12 images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torchvision import tv_tensors

from explainbench.data.cub import CUBDataModule
from explainbench.data.transforms import JointTransform

CONF = Path(__file__).resolve().parents[2] / "explainbench" / "conf" / "data"
CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
ATTRIBUTES = [
    "has_bill_shape::curved_(up_or_down)",
    "has_wing_color::blue",
    "has_size::small_(5_-_9_in)",
    "has_shape::upright-perching_water-like",
]
PARTS = ["beak", "left eye", "right eye", "tail"]
# class x attribute percentages; 50.0 is on the default threshold (present), 49.9 just below
CONTINUOUS = np.array([[100.0, 50.0, 0.0, 49.9], [10.0, 90.0, 75.5, 50.1], [0.0, 0.0, 100.0, 20.0]])
W, H = 40, 32  # image size: not square, so x and y scale differently
BOX = (4.0, 8.0, 20.0, 12.0)  # x y w h -> xyxy (4, 8, 24, 20)
# part x y visible per part: beak, left eye, right eye, tail (invisible)
PART_LOCS = [(2.0, 6.0, 1), (30.0, 20.0, 1), (12.0, 24.0, 1), (0.0, 0.0, 0)]


def image_records():
    """(image id, relative path, class index, is_train): 4 images per class, the last is test."""
    records, image_id = [], 1
    for c, folder in enumerate(CLASSES):
        for k in range(4):
            records.append((image_id, f"{folder}/{folder[4:]}_{k:04d}_{image_id}.jpg", c, k < 3))
            image_id += 1
    # images.txt need not be sorted by class or id: shuffle the line order deterministically
    return records[5:] + records[:5]


def write_cub(top: Path, attributes_place: str = "parent", segmentations: bool = False) -> Path:
    root = top / "CUB_200_2011"
    records = image_records()
    for _, rel, _, _ in records:
        path = root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # left half red, right half blue: a flip is visible in the pixels
        pixels = np.zeros((H, W, 3), np.uint8)
        pixels[:, : W // 2] = (220, 30, 30)
        pixels[:, W // 2 :] = (30, 30, 220)
        Image.fromarray(pixels).save(path, quality=95)
        if segmentations:
            mask = np.full((H, W), 100, np.uint8)  # soft grey 100: background after > 127
            x, y, w, h = (int(v) for v in BOX)
            mask[y : y + h, x : x + w] = 200
            out = root / "segmentations" / Path(rel).with_suffix(".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(out)
    (root / "images.txt").write_text("".join(f"{i} {rel}\n" for i, rel, _, _ in records))
    (root / "image_class_labels.txt").write_text(
        "".join(f"{i} {c + 1}\n" for i, _, c, _ in records)
    )
    (root / "train_test_split.txt").write_text(
        "".join(f"{i} {int(train)}\n" for i, _, _, train in records)
    )
    (root / "classes.txt").write_text("".join(f"{k + 1} {c}\n" for k, c in enumerate(CLASSES)))
    (root / "bounding_boxes.txt").write_text(
        "".join(f"{i} {' '.join(map(str, BOX))}\n" for i, _, _, _ in records)
    )
    (root / "parts").mkdir()
    (root / "parts/parts.txt").write_text("".join(f"{k + 1} {p}\n" for k, p in enumerate(PARTS)))
    (root / "parts/part_locs.txt").write_text(
        "".join(
            f"{i} {p + 1} {x} {y} {v}\n"
            for i, _, _, _ in records
            for p, (x, y, v) in enumerate(PART_LOCS)
        )
    )
    (root / "attributes").mkdir()
    np.savetxt(root / "attributes/class_attribute_labels_continuous.txt", CONTINUOUS, fmt="%.4f")
    names = "".join(f"{k + 1} {a}\n" for k, a in enumerate(ATTRIBUTES))
    where = {"parent": top, "attributes_dir": root / "attributes", "root": root}[attributes_place]
    (where / "attributes.txt").write_text(names)
    return root


@pytest.fixture
def cub_root(tmp_path) -> Path:
    return write_cub(tmp_path)


def module(root: Path, **kwargs) -> CUBDataModule:
    kwargs = {"image_size": 16, "resize_size": None, "batch_size": 4, **kwargs}
    return CUBDataModule(root=str(root), **kwargs)


@pytest.mark.parametrize("place", ["parent", "attributes_dir", "root"])
def test_names_and_class_attributes_are_parsed(tmp_path, place):
    dm = module(write_cub(tmp_path, place))
    assert dm.num_classes == 3
    assert dm.class_names == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    assert dm.attribute_names == ATTRIBUTES
    assert dm.attribute_groups == [
        ("bill shape", "curved (up or down)"),
        ("wing color", "blue"),
        ("size", "small (5 - 9 in)"),
        ("shape", "upright-perching water-like"),
    ]
    assert dm.landmark_names == PARTS
    # binary at 50 %: >= 50.0 present, 49.9 absent
    expected = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 1, 0]], dtype=torch.float32)
    torch.testing.assert_close(dm.class_attributes, expected)
    assert dm.annotations == {"bbox", "landmarks", "attributes"}


def test_soft_attributes_are_fractions(cub_root):
    dm = module(cub_root, attribute_mode="soft")
    torch.testing.assert_close(dm.class_attributes, torch.tensor(CONTINUOUS / 100).float())


def test_samples_labels_box_and_landmarks_scale_with_the_resize(cub_root):
    dm = module(cub_root)  # plain resize 40x32 -> 16x16: x * 0.4, y * 0.5
    test = dm.dataset("test")
    by_path = {rel: (c, train) for _, rel, c, train in image_records()}
    assert len(test) == 3 and all(
        not by_path[p.relative_to(cub_root / "images").as_posix()][1] for p, _ in test.samples
    )
    sample = test[0]
    label = by_path[test.samples[0][0].relative_to(cub_root / "images").as_posix()][0]
    assert sample["label"].item() == label and sample["index"].item() == 0
    assert sample["image"].shape == (3, 16, 16)
    torch.testing.assert_close(sample["bbox"], torch.tensor([1.6, 4.0, 9.6, 10.0]))
    torch.testing.assert_close(
        sample["landmarks"],
        torch.tensor([[0.8, 3.0, 1], [12.0, 10.0, 1], [4.8, 12.0, 1], [0.0, 0.0, 0]]),
    )
    torch.testing.assert_close(sample["attributes"], dm.class_attributes[label])
    assert "mask" not in sample


def test_shorter_side_resize_then_centre_crop_moves_the_box(cub_root):
    # 40x32 -> shorter side 16 -> 20x16, centre crop 16 cuts 2 px on the left
    sample = module(cub_root, resize_size=16).dataset("test")[0]
    torch.testing.assert_close(sample["bbox"], torch.tensor([0.0, 4.0, 10.0, 10.0]))
    # left eye (30, 20) -> (15, 10) -> (13, 10); right eye (12, 24) -> (6, 12) -> (4, 12)
    torch.testing.assert_close(sample["landmarks"][2], torch.tensor([4.0, 12.0, 1.0]))
    torch.testing.assert_close(sample["landmarks"][1], torch.tensor([13.0, 10.0, 1.0]))
    # the beak (2, 6) -> (1, 3) -> (-1, 3) left the crop: invisible now
    torch.testing.assert_close(sample["landmarks"][0], torch.tensor([-1.0, 3.0, 0.0]))


def test_flip_moves_box_and_landmarks_and_swaps_left_right():
    pixels = torch.zeros(3, W, W, dtype=torch.uint8)  # square: the W x W resize is a no-op
    pixels[0, :, : W // 2] = 255  # red left half
    image = tv_tensors.Image(pixels)
    box = torch.tensor([4.0, 8.0, 24.0, 20.0])
    points = torch.tensor(PART_LOCS, dtype=torch.float32)
    transform = JointTransform(True, W, None, (0, 0, 0), (1, 1, 1), PARTS)
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        out = transform(image, bbox=box, landmarks=points)
        flipped = bool(out["image"][0, 0, -1] > 0.5)  # red moved to the right edge
        seen.add(flipped)
        if flipped:
            torch.testing.assert_close(out["bbox"], torch.tensor([W - 24.0, 8.0, W - 4.0, 20.0]))
            # x -> W - 1 - x; "left eye" takes the mirrored right eye and vice versa
            torch.testing.assert_close(out["landmarks"][0], torch.tensor([W - 1 - 2.0, 6, 1]))
            torch.testing.assert_close(out["landmarks"][1], torch.tensor([W - 1 - 12.0, 24, 1]))
            torch.testing.assert_close(out["landmarks"][2], torch.tensor([W - 1 - 30.0, 20, 1]))
        else:
            torch.testing.assert_close(out["bbox"], box)
            torch.testing.assert_close(out["landmarks"], points)
    assert seen == {True, False}


def test_segmentations_give_binarised_masks_that_move_with_the_box(tmp_path):
    root = write_cub(tmp_path, segmentations=True)
    dm = module(root, image_size=16, resize_size=20)
    assert "mask" in dm.annotations
    train = dm.dataset("train")
    torch.manual_seed(0)
    for i in range(len(train)):  # random crop + flip: mask and box must agree every time
        sample = train[i]
        mask = sample["mask"][0]
        assert sample["mask"].shape == (1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
        ys, xs = torch.nonzero(mask, as_tuple=True)
        extent = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        torch.testing.assert_close(extent, sample["bbox"], atol=1.0, rtol=0)
    batch = next(iter(dm.train_dataloader()))
    # "skipped": the files of unreadable samples left out of the batch (none here)
    assert set(batch) == {
        "image",
        "label",
        "bbox",
        "landmarks",
        "attributes",
        "mask",
        "index",
        "skipped",
    }
    assert batch["skipped"] == []
    assert batch["landmarks"].shape == (4, 4, 3) and batch["attributes"].shape == (4, 4)


def test_val_is_a_deterministic_share_of_the_official_train_split(cub_root):
    dm = module(cub_root, val_fraction=0.34)  # 3 train images per class -> 2 train + 1 val
    sets = {s: {p for p, _ in dm.dataset(s).samples} for s in ("train", "val", "test")}
    assert [len(sets[s]) for s in ("train", "val", "test")] == [6, 3, 3]
    official_train = {cub_root / "images" / rel for _, rel, _, train in image_records() if train}
    assert sets["train"] | sets["val"] == official_train and not sets["train"] & sets["val"]
    assert sorted(label for _, label in dm.dataset("val").samples) == [0, 1, 2]  # per class
    again = module(cub_root, val_fraction=0.34)
    assert {p for p, _ in again.dataset("val").samples} == sets["val"]
    others = [
        {p for p, _ in module(cub_root, val_fraction=0.34, split_seed=s).dataset("val").samples}
        for s in range(1, 6)
    ]
    assert any(o != sets["val"] for o in others)


def test_per_image_attributes(cub_root):
    records = image_records()
    lines = []
    for image_id, _, _, _ in records:
        for a in range(len(ATTRIBUTES)):
            present = int((image_id + a) % 3 == 0)
            extra = " 0" if (image_id, a) == (2, 1) else ""  # the official file has such lines
            lines.append(f"{image_id} {a + 1} {present} 3{extra} 12.5\n")
    (cub_root / "attributes/image_attribute_labels.txt").write_text("".join(lines))
    dm = module(cub_root, attribute_source="image")
    test = dm.dataset("test")
    ids = {rel: i for i, rel, _, _ in records}
    for k, (path, _) in enumerate(test.samples):
        image_id = ids[path.relative_to(cub_root / "images").as_posix()]
        expected = torch.tensor([float((image_id + a) % 3 == 0) for a in range(4)])
        torch.testing.assert_close(test[k]["attributes"], expected)


def test_clear_errors(cub_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*images.txt"):
        module(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="attribute_mode 'fuzzy'"):
        module(cub_root, attribute_mode="fuzzy")
    continuous = cub_root / "attributes/class_attribute_labels_continuous.txt"
    np.savetxt(continuous, CONTINUOUS[:2])
    with pytest.raises(ValueError, match=r"continuous.txt has 2 rows x 4 columns; expected 3 x 4"):
        module(cub_root)
    np.savetxt(continuous, CONTINUOUS)
    (tmp_path / "attributes.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        module(cub_root)
    assert str(tmp_path / "attributes.txt") in str(info.value)
    assert str(cub_root / "attributes" / "attributes.txt") in str(info.value)
    (tmp_path / "attributes.txt").write_text("1 has_bill_shape::dagger\n")
    with pytest.raises(ValueError, match="3 rows x 4 columns; expected 3 x 1"):
        module(cub_root)
    (tmp_path / "attributes.txt").write_text(
        "".join(f"{k + 1} {a}\n" for k, a in enumerate(ATTRIBUTES))
    )
    (cub_root / "bounding_boxes.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"bounding_boxes.txt' is missing; expected"):
        module(cub_root)


def test_missing_image_fails_at_setup(cub_root):
    dm = module(cub_root)
    rel = next(rel for _, rel, _, train in image_records() if not train)
    (cub_root / "images" / rel).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 CUB images are missing"):
        dm.setup("test")


def test_config_instantiates(cub_root):
    cfg = OmegaConf.load(CONF / "cub.yaml")
    assert next(iter(cfg)) == "_target_"
    cfg.root, cfg.image_size, cfg.resize_size = str(cub_root), 16, 20
    cfg.num_workers, cfg.pin_memory = 0, False
    dm = instantiate(cfg)
    assert isinstance(dm, CUBDataModule) and dm.batch_size == 64 and dm.val_fraction == 0.1
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (3, 3, 16, 16) and batch["bbox"].shape == (3, 4)

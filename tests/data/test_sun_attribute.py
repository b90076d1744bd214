"""SUN Attribute data module on .mat files written by scipy.io.savemat in the official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from explainbench.data.sun_attribute import SUNAttributeDataModule, mat_strings

CONF = Path(__file__).resolve().parents[2] / "explainbench" / "conf" / "data"
ATTRIBUTES = ["sailing/ boating", "natural light", "enclosed area"]
# (relative path, labels_cv row); classes: abbey x4, airplane_cabin x1, apartment_building
# outdoor x2 (nested folder), bakery shop x1 (letter folder "b")
IMAGES = [
    ("a/abbey/sun_aaa.jpg", [1.0, 0.33, 0.0]),
    ("a/abbey/sun_aab.jpg", [1.0, 0.0, 0.33]),
    ("a/abbey/sun_aac.jpg", [0.0, 0.66, 0.33]),
    ("a/abbey/sun_aad.jpg", [0.33, 1.0, 0.0]),
    ("a/airplane_cabin/sun_bbb.jpg", [0.0, 0.33, 1.0]),
    ("a/apartment_building/outdoor/sun_ccc.jpg", [0.0, 1.0, 0.33]),
    ("a/apartment_building/outdoor/sun_ccd.jpg", [0.33, 0.0, 0.66]),
    ("b/bakery/shop/sun_ddd.jpg", [0.0, 0.66, 0.66]),
]
CLASSES = ["abbey", "airplane_cabin", "apartment_building outdoor", "bakery shop"]
LABELS = [0, 0, 0, 0, 1, 2, 2, 3]


def cell(strings: list[str], column: bool = True) -> np.ndarray:
    """A MATLAB cell array of strings as savemat wants it: a numpy object array."""
    array = np.empty((len(strings), 1) if column else (len(strings),), dtype=object)
    for i, s in enumerate(strings):
        array[i] = s if not column else np.array(s)
    return array


def write_sun(root: Path, mat_folder: str = "", column: bool = True) -> Path:
    for rel, _ in IMAGES:
        path = root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (36, 28), (30, 160, 90)).save(path)
    mats = root / mat_folder
    mats.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(mats / "images.mat", {"images": cell([r for r, _ in IMAGES], column)})
    scipy.io.savemat(
        mats / "attributeLabels_continuous.mat", {"labels_cv": np.array([v for _, v in IMAGES])}
    )
    scipy.io.savemat(mats / "attributes.mat", {"attributes": cell(ATTRIBUTES, column)})
    return root


@pytest.fixture
def sun_root(tmp_path) -> Path:
    return write_sun(tmp_path / "sun")


def module(root: Path, **kwargs) -> SUNAttributeDataModule:
    kwargs = {"image_size": 16, "resize_size": None, "batch_size": 4, **kwargs}
    return SUNAttributeDataModule(root=str(root), **kwargs)


def test_cell_arrays_are_flattened():
    assert mat_strings(
        np.array([[np.array(["x/y.jpg"])], [np.array(["z.jpg"])]], dtype=object)
    ) == ["x/y.jpg", "z.jpg"]


@pytest.mark.parametrize("mat_folder,column", [("", True), ("SUNAttributeDB", False)])
def test_classes_and_attributes_are_parsed(tmp_path, mat_folder, column):
    dm = module(write_sun(tmp_path / "sun", mat_folder, column))
    assert dm.paths == [r for r, _ in IMAGES]
    assert dm.class_names == CLASSES and dm.num_classes == 4
    assert dm.labels.tolist() == LABELS
    assert dm.attribute_names == ATTRIBUTES
    assert dm.annotations == {"attributes"}
    # per-class means by hand; binary: mean >= 0.5 (abbey's 0.4975 and 0.165 stay 0)
    means = torch.tensor(
        [
            [(1.0 + 1.0 + 0.0 + 0.33) / 4, (0.33 + 0.0 + 0.66 + 1.0) / 4, (0.0 + 0.33 + 0.33) / 4],
            [0.0, 0.33, 1.0],
            [(0.0 + 0.33) / 2, (1.0 + 0.0) / 2, (0.33 + 0.66) / 2],
            [0.0, 0.66, 0.66],
        ]
    )
    torch.testing.assert_close(
        module(tmp_path / "sun", attribute_mode="soft").class_attributes, means
    )
    expected = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(dm.class_attributes, expected)
    strict = module(tmp_path / "sun", attribute_threshold=0.6).class_attributes
    torch.testing.assert_close(strict[3], torch.tensor([0.0, 1.0, 1.0]))
    torch.testing.assert_close(strict[2], torch.tensor([0.0, 0.0, 0.0]))


def test_split_is_stratified_deterministic_and_complete(sun_root):
    dm = module(sun_root, split_ratios=[0.5, 0.25, 0.25])
    splits = {
        s: [p.relative_to(sun_root / "images").as_posix() for p, _ in dm.dataset(s).samples]
        for s in ("train", "val", "test")
    }
    assert sorted(sum(splits.values(), [])) == sorted(r for r, _ in IMAGES)
    abbey = {s: [r for r in paths if "/abbey/" in r] for s, paths in splits.items()}
    assert [len(abbey[s]) for s in ("train", "val", "test")] == [2, 1, 1]  # 4 images: 2/1/1
    # one-image and two-image classes keep a training image
    assert "a/airplane_cabin/sun_bbb.jpg" in splits["train"]
    assert "b/bakery/shop/sun_ddd.jpg" in splits["train"]
    again = module(sun_root, split_ratios=[0.5, 0.25, 0.25])
    assert [p for p, _ in again.dataset("test").samples] == [
        p for p, _ in dm.dataset("test").samples
    ]


def test_samples_carry_the_class_attribute_vector(sun_root):
    dm = module(sun_root, split_ratios=[1, 0, 0], augment=False)
    train = dm.dataset("train")
    assert len(train) == len(IMAGES)
    for i, (path, label) in enumerate(train.samples):
        sample = train[i]
        assert (
            sample["label"].item()
            == label
            == LABELS[
                [r for r, _ in IMAGES].index(path.relative_to(sun_root / "images").as_posix())
            ]
        )
        torch.testing.assert_close(sample["attributes"], dm.class_attributes[label])
        assert sample["image"].shape == (3, 16, 16) and set(sample) == {
            "image",
            "label",
            "attributes",
            "index",
        }
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["attributes"].shape == (4, 3) and batch["label"].dtype == torch.long


def test_clear_errors(sun_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*images.mat"):
        module(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="attribute_mode 'hard'"):
        module(sun_root, attribute_mode="hard")
    scipy.io.savemat(
        sun_root / "attributeLabels_continuous.mat", {"labels_cv": np.zeros((len(IMAGES) - 1, 3))}
    )
    with pytest.raises(ValueError, match="labels_cv is 7 x 3; expected 8 x 3"):
        module(sun_root)
    scipy.io.savemat(sun_root / "attributeLabels_continuous.mat", {"labels": np.zeros((8, 3))})
    with pytest.raises(ValueError, match="no variable 'labels_cv'"):
        module(sun_root)
    (sun_root / "attributeLabels_continuous.mat").unlink()
    with pytest.raises(FileNotFoundError, match="attributeLabels_continuous.mat missing"):
        module(sun_root)


def test_missing_image_fails_at_setup(sun_root):
    dm = module(sun_root, split_ratios=[1, 0, 0])
    (sun_root / "images" / IMAGES[0][0]).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 8 SUN Attribute images are missing"):
        dm.setup("fit")


def test_config_instantiates(sun_root):
    cfg = OmegaConf.load(CONF / "sun_attribute.yaml")
    assert next(iter(cfg)) == "_target_"
    cfg.root, cfg.image_size, cfg.resize_size = str(sun_root), 16, 20
    cfg.num_workers, cfg.pin_memory = 0, False
    dm = instantiate(cfg)
    assert isinstance(dm, SUNAttributeDataModule) and dm.split_ratios == [0.7, 0.1, 0.2]
    assert dm.dataset("train")[0]["image"].shape == (3, 16, 16)

"""ExplainDataModule machinery and the an8flower DataModule / Dataset (Batch contract)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import RandomSampler, SequentialSampler

from explainbench.data import An8Flower, An8FlowerDataModule, ExplainDataModule, render_sample
from explainbench.data.an8flower import hflip_sample
from explainbench.data.an8flower_render import CENTRE, LANDMARK_NAMES, LEAVES, PART_NAMES
from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD, denormalize

CONF = Path(__file__).resolve().parents[2] / "explainbench" / "conf" / "data"
TINY = {"train_size": 40, "val_size": 20, "test_size": 30, "batch_size": 16}


def test_description_is_ready_before_setup():
    dm = An8FlowerDataModule(variant="double12c", **TINY)
    assert isinstance(dm, ExplainDataModule)
    assert dm.num_classes == 12 and len(dm.class_names) == 12
    assert dm.class_names[6] == "leaves: red"
    assert dm.attribute_names is not None and len(dm.attribute_names) == 15
    assert dm.annotations == {"mask", "part_mask", "part_ids", "bbox", "landmarks", "attributes"}
    assert dm.part_names == ["background", "stem", "leaves", "petals", "centre"]
    assert dm.info().part_names == dm.part_names
    assert dm.mean == IMAGENET_MEAN and dm.std == IMAGENET_STD
    assert dm._datasets == {}  # nothing rendered yet: construction is cheap
    # Lightning keeps the constructor arguments, the subclass's included
    assert dm.hparams["variant"] == "double12c" and dm.hparams["batch_size"] == 16


def test_batches_follow_the_contract():
    dm = An8FlowerDataModule(**TINY)
    dm.setup("fit")
    assert set(dm._datasets) == {"train", "val"}
    batch = next(iter(dm.val_dataloader()))
    b = 16
    assert batch["image"].shape == (b, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (b,) and batch["label"].dtype == torch.long
    assert batch["index"].dtype == torch.long
    for key in ("mask", "part_mask"):
        assert batch[key].shape == (b, 1, 64, 64) and set(batch[key].unique().tolist()) <= {
            0.0,
            1.0,
        }
    assert batch["bbox"].shape == (b, 4)
    assert batch["landmarks"].shape == (b, len(LANDMARK_NAMES), 3)
    assert batch["attributes"].shape == (b, 15)
    assert set(batch) == {"image", "label", "index"} | dm.annotations
    # the image is the renderer's pixels, normalised with the module's mean/std
    ref = render_sample(0, "val", 3)
    pixels = denormalize(batch["image"][3:4], dm.mean, dm.std)[0]
    torch.testing.assert_close(
        pixels, torch.from_numpy(ref.image[0]).float() / 255, atol=1e-5, rtol=0
    )
    assert batch["label"][3] == int(ref.label[0]) and batch["index"][3] == 3
    torch.testing.assert_close(batch["part_mask"][3, 0], torch.from_numpy(ref.part_mask[0]).float())
    torch.testing.assert_close(batch["bbox"][3], torch.from_numpy(ref.bbox[0]))
    # part_ids: the renderer's part of every pixel; the masks are views of it
    ids = batch["part_ids"]
    assert ids.shape == (b, 64, 64) and ids.dtype == torch.long
    assert ids.min() >= 0 and ids.max() < len(PART_NAMES)
    torch.testing.assert_close(ids[3], torch.from_numpy(ref.parts[0]).long())
    torch.testing.assert_close(batch["mask"][:, 0], (ids > 0).float())
    torch.testing.assert_close(batch["part_mask"][:, 0], (ids == CENTRE).float())  # single6c


def test_loaders_shuffle_train_only_and_keep_the_last_batch():
    dm = An8FlowerDataModule(**TINY)
    dm.setup()
    train, val, test = dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()
    assert isinstance(train.sampler, RandomSampler)
    assert isinstance(val.sampler, SequentialSampler) and isinstance(
        test.sampler, SequentialSampler
    )
    assert len(train) == math.ceil(40 / 16) and len(test) == math.ceil(30 / 16)
    assert sum(len(b["label"]) for b in test) == 30
    assert not train.persistent_workers and train.num_workers == 0


def test_persistent_workers_only_with_workers():
    assert not An8FlowerDataModule(num_workers=0, persistent_workers=True).persistent_workers
    assert An8FlowerDataModule(num_workers=2).persistent_workers
    assert not An8FlowerDataModule(num_workers=2, persistent_workers=False).persistent_workers


def test_test_subset_is_fixed_by_its_seed():
    def subset_indices(seed: int) -> list[int]:
        dm = An8FlowerDataModule(**TINY, subset=10, subset_seed=seed)
        dm.setup("test")
        return torch.cat([b["index"] for b in dm.test_dataloader()]).tolist()

    first = subset_indices(0)
    assert len(first) == 10 == len(set(first)) and all(0 <= i < 30 for i in first)
    assert first == sorted(first) == subset_indices(0)
    assert first != subset_indices(1)
    # only the test split is cut
    dm = An8FlowerDataModule(**TINY, subset=10)
    assert len(dm.dataset("val")) == 20 and len(dm.dataset("test")) == 10


def test_subset_larger_than_the_split_uses_all_of_it():
    dm = An8FlowerDataModule(**TINY, subset=1000)
    with pytest.warns(UserWarning, match="whole split"):
        assert len(dm.dataset("test")) == 30


def test_on_the_fly_equals_in_memory():
    cached = An8Flower("train", length=5, seed=2)
    lazy = An8Flower("train", length=5, seed=2, in_memory=False)
    for i in (0, 4, -1):
        a, b = cached[i], lazy[i]
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(IndexError):
        cached[5]


def test_hflip_moves_every_annotation_with_the_image():
    sample = An8Flower("val", length=8, seed=5)[7]
    flipped = hflip_sample(sample)
    torch.testing.assert_close(flipped["image"], sample["image"].flip(-1))
    torch.testing.assert_close(flipped["part_ids"], sample["part_ids"].flip(-1))
    torch.testing.assert_close(flipped["mask"][0], (flipped["part_ids"] > 0).float())
    mask = flipped["mask"][0]
    rows, cols = torch.nonzero(mask, as_tuple=True)
    expected = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    torch.testing.assert_close(flipped["bbox"], torch.tensor(expected, dtype=torch.float32))
    # the centre landmark still sits on the centre disc, which is part_mask in single6c
    x, y, _ = flipped["landmarks"][LANDMARK_NAMES.index("centre")]
    assert flipped["part_mask"][0, int(y), int(x)] == 1
    # left and right leaf swap, and each is still on the image's left/right side
    left, right = LANDMARK_NAMES.index("leaf_left"), LANDMARK_NAMES.index("leaf_right")
    torch.testing.assert_close(flipped["landmarks"][left, 0], 64 - sample["landmarks"][right, 0])
    for key, value in hflip_sample(flipped).items():
        torch.testing.assert_close(value, sample[key])


def test_train_flip_is_random_and_train_only():
    dm = An8FlowerDataModule(**TINY, hflip=True, brightness=0.0)
    train, val = dm.dataset("train"), dm.dataset("val")
    assert train.hflip and not val.hflip
    torch.manual_seed(0)
    flipped = sum(
        not torch.equal(
            train[0]["image"],
            train._cache["image"][0].float().div(255).sub(train._mean).div(train._std),
        )
        for _ in range(40)
    )
    assert 8 < flipped < 32  # p = 0.5 over 40 draws


def test_train_brightness_dims_by_one_factor_in_range_and_train_only():
    dm = An8FlowerDataModule(**TINY, brightness=0.7)
    train, test = dm.dataset("train"), dm.dataset("test")
    assert train.brightness == 0.7 and test.brightness == 0.0
    torch.manual_seed(0)
    factors = []
    for i in range(20):
        raw = train._cache["image"][i].float() / 255
        dimmed = denormalize(train[i]["image"][None], IMAGENET_MEAN, IMAGENET_STD)[0]
        bright = raw > 0.2  # away from 0, where the ratio is ill-conditioned
        ratio = dimmed[bright] / raw[bright]
        # one factor for the whole image (hue is kept), inside [1 - 0.7, 1]
        assert ratio.max() - ratio.min() < 1e-4
        factors.append(ratio.mean().item())
    assert 0.3 - 1e-4 <= min(factors) and max(factors) <= 1 + 1e-4
    assert max(factors) - min(factors) > 0.3  # drawn, not fixed
    undimmed = denormalize(test[0]["image"][None], IMAGENET_MEAN, IMAGENET_STD)[0]
    torch.testing.assert_close(undimmed, test._cache["image"][0].float() / 255, atol=1e-5, rtol=0)


def test_double12c_part_mask_follows_the_label():
    ds = An8Flower("test", variant="double12c", length=12, seed=0)
    for i in (0, 6):
        sample = ds[i]
        parts = torch.from_numpy(ds.renderer.render("test", [i]).parts[0])
        expected = CENTRE if sample["label"] < 6 else LEAVES
        torch.testing.assert_close(sample["part_mask"][0], (parts == expected).float())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "single5c"}, "valid variants: single6c, double12c"),
        ({"image_size": 256}, r"\[32, 224\]"),
        ({"bias": -0.1}, r"\[0, 1\]"),
        ({"brightness": 1.0}, r"brightness must be in \[0, 1\)"),
        ({"train_size": 0}, "train_size"),
        ({"subset": 0}, "subset"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        An8FlowerDataModule(**kwargs)


def test_config_instantiates_the_module():
    cfg = OmegaConf.load(CONF / "an8flower.yaml")
    assert next(iter(cfg)) == "_target_"
    dm = instantiate(cfg, variant="double12c", train_size=8, val_size=8, test_size=8)
    assert isinstance(dm, An8FlowerDataModule) and dm.num_classes == 12
    # every constructor argument is a config key, so every knob can be set from the CLI
    assert set(cfg) - {"_target_"} == set(dm.hparams)
    assert cfg.image_size == 64 and cfg.bias == 0.0 and cfg.num_workers == 0
    assert (cfg.train_size, cfg.val_size, cfg.test_size) == (4000, 1000, 1000)
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (8, 3, 64, 64)

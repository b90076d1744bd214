"""MNIST data module on a tiny copy of torchvision's raw layout (40 train + 20 test digits),
idx files written by hand, plain and gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from explainbench.data.info import DataInfo
from explainbench.data.mnist import MNIST_MEAN, MNIST_STD, MNISTDataModule
from explainbench.methods.build import build_method
from explainbench.viz.overlay import gallery_figure

from ..helpers import compose_cfg, run_cli, run_dirs

TRAIN_SIZE, TEST_SIZE = 40, 20


def digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images [count,28,28] (no symmetry: a transposed read shows) and labels
    0..9, each ``count / 10`` times, shuffled."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
    return images, labels


def idx_bytes(values: np.ndarray, magic: int) -> bytes:
    """The idx format by hand: big-endian magic, one big-endian int32 per dimension, values."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in values.shape)
    return header + values.tobytes()


def write_mnist(root: Path, gz: bool = False) -> Path:
    """``root/MNIST/raw`` as torchvision leaves it (``gz``: only the distributed .gz files)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in (
        ("train", digits(TRAIN_SIZE, 1)),
        ("t10k", digits(TEST_SIZE, 2)),
    ):
        for name, data in (
            (f"{prefix}-images-idx3-ubyte", idx_bytes(images, 2051)),
            (f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, 2049)),
        ):
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_decode_row_major(tmp_path, gz):
    dm = MNISTDataModule(str(write_mnist(tmp_path, gz)))
    images, labels = dm.official_set("train")
    assert images.dtype == torch.uint8 and tuple(images.shape) == (TRAIN_SIZE, 1, 28, 28)
    raw = (tmp_path / "MNIST/raw/train-images-idx3-ubyte").with_suffix(".gz" if gz else "")
    data = gzip.decompress(raw.read_bytes()) if gz else raw.read_bytes()
    n, y, x = 13, 4, 21  # pixel (row 4, column 21) of the 14th image: byte 16 + n*784 + y*28 + x
    assert images[n, 0, y, x] == data[16 + n * 784 + y * 28 + x]
    want_images, want_labels = digits(TRAIN_SIZE, 1)
    assert torch.equal(images[:, 0], torch.from_numpy(want_images))
    assert labels.tolist() == want_labels.tolist()
    assert dm.class_names == [str(d) for d in range(10)]


def test_grey_repeated_to_three_channels_or_kept_as_one(tmp_path):
    root = str(write_mnist(tmp_path))
    images, labels = digits(TEST_SIZE, 2)
    want = (torch.from_numpy(images[5]).float() / 255 - MNIST_MEAN) / MNIST_STD
    rgb = MNISTDataModule(root).dataset("test")[5]
    assert rgb["image"].shape == (3, 28, 28) and rgb["label"] == labels[5]
    for channel in range(3):
        torch.testing.assert_close(rgb["image"][channel], want)
    grey = MNISTDataModule(root, channels=1)
    torch.testing.assert_close(grey.dataset("test")[5]["image"], want.unsqueeze(0))
    assert grey.info().channels == 1 and grey.info().mean == [MNIST_MEAN]
    assert MNISTDataModule(root).info().mean == [MNIST_MEAN] * 3


def test_image_size_pads_the_digit_with_background(tmp_path):
    dm = MNISTDataModule(str(write_mnist(tmp_path)), image_size=33)
    images = dm.official_set("test")[0]
    assert tuple(images.shape) == (TEST_SIZE, 1, 33, 33)
    # 5 extra pixels: 2 before, 3 after on each axis
    assert torch.equal(images[:, 0, 2:30, 2:30], torch.from_numpy(digits(TEST_SIZE, 2)[0]))
    assert images[:, :, :2].sum() == 0 and images[:, :, 30:].sum() == 0
    assert images[..., :2].sum() == 0 and images[..., 30:].sum() == 0


def test_val_is_carved_from_train_per_class_and_fixed_by_the_seed(tmp_path):
    root = str(write_mnist(tmp_path))
    dm = MNISTDataModule(root, val_fraction=0.25)
    train, val = dm.dataset("train"), dm.dataset("val")
    assert (len(train), len(val), len(dm.dataset("test"))) == (30, 10, TEST_SIZE)
    assert sorted(train.rows.tolist() + val.rows.tolist()) == list(range(TRAIN_SIZE))
    assert sorted(dm.official_set("train")[1][val.rows].tolist()) == list(range(10))
    assert torch.equal(MNISTDataModule(root, val_fraction=0.25).dataset("val").rows, val.rows)
    other = MNISTDataModule(root, val_fraction=0.25, split_seed=3).dataset("val").rows
    assert not torch.equal(other, val.rows)


def test_missing_folder_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw.*train-images-idx3-ubyte.*\.gz"):
        MNISTDataModule(str(tmp_path))
    write_mnist(tmp_path)
    (tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte' \(or \.gz\) is missing"):
        MNISTDataModule(str(tmp_path))


def test_truncated_idx_names_the_file_and_both_byte_counts(tmp_path):
    root = write_mnist(tmp_path)
    path = root / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    expected = 16 + TRAIN_SIZE * 784
    with pytest.raises(
        ValueError,
        match=rf"train-images-idx3-ubyte' is truncated: expected {expected} bytes "
        rf"\(16-byte header \+ 40 x 28 x 28 values\), found {expected - 100}",
    ):
        MNISTDataModule(str(root)).setup("fit")


def test_wrong_magic_number_is_named(tmp_path):
    root = write_mnist(tmp_path)
    path = root / "MNIST/raw/t10k-labels-idx1-ubyte"
    # an images file where the labels belong
    path.write_bytes(idx_bytes(np.zeros((TEST_SIZE, 28, 28), np.uint8), 2051))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte': magic number 2051 .*expected 2049"
    ):
        MNISTDataModule(str(root)).setup("test")


def test_bad_channels_setting_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"data.channels must be 1 .* or 3 .*got 2"):
        MNISTDataModule(str(write_mnist(tmp_path)), channels=2)


def model_cfg(tmp_path: Path, overrides: list[str]):
    root = write_mnist(tmp_path / "data")
    return compose_cfg(["data=mnist", f"data.root={root}", *overrides], tmp_path)


@pytest.mark.parametrize("backbone", [[], ["backbone=resnet18"]])
def test_grey_data_with_an_rgb_backbone_is_refused_at_build(tmp_path, backbone):
    from hydra.utils import instantiate

    cfg = model_cfg(tmp_path, ["data.channels=1", *backbone])
    with pytest.raises(ValueError, match=r"1-channel images .* takes 3-channel input"):
        build_method(cfg, instantiate(cfg.data))


def test_grey_data_with_a_one_channel_small_cnn_runs(tmp_path):
    from hydra.utils import instantiate

    cfg = model_cfg(tmp_path, ["data.channels=1", "backbone.in_channels=1"])
    dm = instantiate(cfg.data)
    model = build_method(cfg, dm)
    assert model.data_info.channels == 1
    x = next(iter(dm.test_dataloader()))["image"]
    assert x.shape[1] == 1 and model(x).shape == (len(x), 10)
    # RGB data refused by that backbone too
    cfg.data.channels = 3
    with pytest.raises(ValueError, match=r"3-channel images .* takes 1-channel input"):
        build_method(cfg, instantiate(cfg.data))


def test_gallery_shows_grey_images():
    pixels = torch.rand(2, 1, 28, 28)
    figure = gallery_figure(pixels, {"map": torch.rand(2, 1, 28, 28)})
    shown = figure.axes[0].images[0].get_array()
    assert shown.shape == (28, 28, 3)
    np.testing.assert_allclose(shown[..., 2], pixels[0, 0].numpy())


def test_data_info_of_old_checkpoints_reads_three_channels():
    old = {"num_classes": 6, "mean": [0.5] * 3, "std": [0.2] * 3}  # written before `channels`
    assert DataInfo.from_dict(OmegaConf.create(old)).channels == 3


def test_train_and_test_from_the_cli_on_grey_gz_files(tmp_path):
    root = write_mnist(tmp_path / "data", gz=True)
    args = [
        "data=mnist",
        f"data.root={root}",
        "data.channels=1",
        "backbone.in_channels=1",
        "data.val_fraction=0.25",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "callbacks.model_summary=null",
    ]
    proc = run_cli("train.py", args, tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = run_dirs(proc.stdout)
    assert "test/acc" in (run_dir / "metrics.json").read_text()

"""CIFAR-10 data module on a tiny copy of the official python layout (40 train + 20 test images)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from explainbench.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, CIFAR10DataModule
from explainbench.data.in_memory import InMemoryImages

from ..helpers import run_cli, run_dirs

NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 8  # 5 training batches: 40 images, 4 per class
TEST_SIZE = 20


def official_rows(count: int, seed: int, first: int = 0) -> tuple[np.ndarray, list[int]]:
    """Random uint8 rows [count,3072] (every channel different, so a layout error shows) and
    labels ``first, first + 1, ...`` modulo 10 in a shuffled order."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.permutation((first + np.arange(count)) % 10)]
    return rows, labels


def dump(path: Path, data: dict) -> None:
    with path.open("wb") as file:
        pickle.dump(data, file, protocol=2)  # the official files are protocol-2, byte-string keys


def write_cifar10(root: Path) -> Path:
    """``root/cifar-10-batches-py`` as the official archive unpacks it; returns ``root``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, 6):
        rows, labels = official_rows(PER_BATCH, seed=k, first=(k - 1) * PER_BATCH)
        dump(folder / f"data_batch_{k}", {b"batch_label": b"b", b"labels": labels, b"data": rows})
    rows, labels = official_rows(TEST_SIZE, seed=0)
    dump(folder / "test_batch", {b"batch_label": b"t", b"labels": labels, b"data": rows})
    dump(folder / "batches.meta", {b"label_names": [n.encode() for n in NAMES]})
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path)


def test_rows_decode_channel_major_to_3x32x32(root):
    dm = CIFAR10DataModule(str(root), augment=False)
    images, labels = dm.official_set("train")
    assert images.dtype == torch.uint8 and tuple(images.shape) == (40, 3, 32, 32)
    rows, batch_labels = official_rows(PER_BATCH, 2, PER_BATCH)  # data_batch_2: images 8..15
    n, c, y, x = 3, 2, 5, 17  # blue plane, row 5, column 17 of data_batch_2's 4th image
    assert images[PER_BATCH + n, c, y, x] == rows[n, c * 1024 + y * 32 + x]
    assert torch.equal(images[PER_BATCH + n, 1].flatten(), torch.from_numpy(rows[n, 1024:2048]))
    assert labels[PER_BATCH : 2 * PER_BATCH].tolist() == batch_labels
    assert dm.class_names == NAMES and dm.num_classes == 10


def test_test_sample_is_the_normalised_row(root):
    dm = CIFAR10DataModule(str(root), augment=True)  # the test split is never augmented
    rows, labels = official_rows(TEST_SIZE, seed=0)
    sample = dm.dataset("test")[7]
    pixels = torch.from_numpy(rows[7]).float().view(3, 32, 32) / 255
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    torch.testing.assert_close(sample["image"], (pixels - mean) / std)
    assert sample["label"] == labels[7] and sample["index"] == 7
    assert set(sample) == {"image", "label", "index"} and dm.annotations == frozenset()


def test_image_size_resizes_the_normalised_row_bilinearly(root):
    """data.image_size=64 (attention_stages_cifar10: googlenet's masks need 64 px): a pixel of
    the upsampled image is the bilinear blend of its 2x2 source pixels (half-pixel centres)."""
    dm = CIFAR10DataModule(str(root), augment=False, image_size=64)
    rows, _ = official_rows(TEST_SIZE, seed=0)
    image = dm.dataset("test")[3]["image"]
    assert tuple(image.shape) == (3, 64, 64)
    pixels = torch.from_numpy(rows[3]).double().view(3, 32, 32)
    # output pixel (y, x) = (9, 20) sits at source (4.25, 9.75): rows 4/5 weights 3/4, 1/4,
    # columns 9/10 weights 1/4, 3/4
    c = 1
    expected = (
        0.75 * (0.25 * pixels[c, 4, 9] + 0.75 * pixels[c, 4, 10])
        + 0.25 * (0.25 * pixels[c, 5, 9] + 0.75 * pixels[c, 5, 10])
    ) / 255
    value = image[c, 9, 20].double() * CIFAR10_STD[c] + CIFAR10_MEAN[c]
    assert abs(value.item() - expected.item()) < 1e-5
    assert tuple(CIFAR10DataModule(str(root)).dataset("train")[0]["image"].shape) == (3, 32, 32)


def test_val_is_carved_from_train_per_class_and_fixed_by_the_seed(root):
    dm = CIFAR10DataModule(str(root), val_fraction=0.25)
    train, val = dm.dataset("train"), dm.dataset("val")
    assert len(train) == 30 and len(val) == 10 and len(dm.dataset("test")) == TEST_SIZE
    assert sorted(train.rows.tolist() + val.rows.tolist()) == list(range(40))
    labels = dm.official_set("train")[1]
    assert sorted(labels[val.rows].tolist()) == list(range(10))  # one of each class's four
    again = CIFAR10DataModule(str(root), val_fraction=0.25).dataset("val")
    assert torch.equal(again.rows, val.rows)
    other = CIFAR10DataModule(str(root), val_fraction=0.25, split_seed=1).dataset("val")
    assert not torch.equal(other.rows, val.rows)
    # train and val share the one tensor read from the pickles
    assert train.images.data_ptr() == val.images.data_ptr()


def test_augmentation_is_a_padded_crop_and_flip_drawn_per_image():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    data = InMemoryImages(
        images, torch.zeros(16), CIFAR10_MEAN, CIFAR10_STD, crop_padding=4, hflip=True
    )
    out = data.augment(images)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    found = set()
    for n in range(16):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(
                out[n],
                (lambda w: w.flip(-1) if flip else w)(padded[n, :, dy : dy + 32, dx : dx + 32]),
            )
        ]
        assert len(matches) == 1, (
            f"image {n} is no padded 32x32 crop (flipped or not) of its source"
        )
        found.add(matches[0])
    assert len(found) > 8, "every image draws its own crop and flip"
    assert {flip for _, _, flip in found} == {False, True}
    assert len({dy for dy, _, _ in found}) > 2 and len({dx for _, dx, _ in found}) > 2
    assert any(dy != dx for dy, dx, _ in found), "the two offsets are drawn independently"


def test_batched_and_single_fetch_agree_and_subset_keeps_the_index(root):
    dm = CIFAR10DataModule(str(root), subset=5, batch_size=4)
    test = dm.dataset("test")
    assert len(test) == 5
    batch = next(iter(dm.test_dataloader()))
    first = test[0]
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["index"][0] == first["index"] and torch.equal(batch["image"][0], first["image"])
    assert batch["label"].dtype == torch.long


def test_missing_folder_or_file_names_what_is_expected(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"cifar-10-batches-py.*data_batch_1.*cifar-10-python\.tar\.gz"
    ):
        CIFAR10DataModule(str(tmp_path))
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks data_batch_3;"):
        CIFAR10DataModule(str(tmp_path))


@pytest.mark.parametrize(
    "data, found",
    [
        (
            {b"data": np.zeros((8, 3000), np.uint8), b"labels": [0] * 8},
            r"uint8 \[8, 3000\] and 8 labels",
        ),
        (
            {b"data": np.zeros((8, 3072), np.float32), b"labels": [0] * 8},
            r"float32 \[8, 3072\] and 8 labels",
        ),
        (
            {b"data": np.zeros((8, 3072), np.uint8), b"labels": [0] * 7},
            r"uint8 \[8, 3072\] and 7 labels",
        ),
    ],
)
def test_a_batch_of_the_wrong_shape_names_the_file_and_the_expected_shape(root, data, found):
    path = root / "cifar-10-batches-py" / "data_batch_4"
    dump(path, data)
    dm = CIFAR10DataModule(str(root))
    with pytest.raises(
        ValueError,
        match=rf"data_batch_4': expected b'data' uint8 \[N,3072\] and N b'labels'.*found {found}",
    ):
        dm.setup("fit")


def test_a_pickle_that_would_run_code_is_refused(root):
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": print}, protocol=2))
    with pytest.raises(
        ValueError, match=r"test_batch' is not a readable CIFAR pickle: refusing to load \w+\.print"
    ):
        CIFAR10DataModule(str(root)).setup("test")


@pytest.mark.slow  # ~10-20 s; the fast suite trains MNIST from the CLI, the same in-memory base
def test_train_and_test_from_the_cli(tmp_path):
    root = write_cifar10(tmp_path / "data")
    args = [
        "data=cifar10",
        f"data.root={root}",
        "data.val_fraction=0.25",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "callbacks.model_summary=null",
    ]
    proc = run_cli("train.py", args, tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = run_dirs(proc.stdout)
    assert (run_dir / "metrics.json").is_file() and "test/acc" in (
        run_dir / "metrics.json"
    ).read_text()

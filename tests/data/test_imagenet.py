"""ImageNet data module on tiny copies of the official layouts, and the user's L-CAM command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from explainbench.data.folder import collate_skipping_none
from explainbench.data.imagenet import ImageNetDataModule

from ..helpers import run_cli, run_dirs

WNIDS = ["n01440764", "n01443537"]


def write_jpeg(path: Path, colour: tuple[int, int, int], size=(300, 260)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")


def write_imagenet(root: Path) -> Path:
    """Both official layouts: train/ and val/ class folders, the flat val folder + a list, names."""
    for c, wnid in enumerate(WNIDS):
        for i in range(3):
            write_jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", (200 * c, 50, 100))
            write_jpeg(root / "val" / wnid / f"ILSVRC2012_val_{c}{i}.JPEG", (200 * c, 50, 100))
    flat = root / "ILSVRC2012_img_val"
    for i, label in enumerate([1, 0, 1]):
        write_jpeg(flat / f"ILSVRC2012_val_{i:08d}.JPEG", (200 * label, 50, 100))
    (root / "val_3.txt").write_text(
        "".join(f"ILSVRC2012_val_{i:08d}.JPEG {lab}\n" for i, lab in enumerate([1, 0, 1]))
    )
    (root / "synset_words.txt").write_text(
        f"{WNIDS[0]} tench, Tinca tinca\n{WNIDS[1]} goldfish, Carassius auratus\n"
    )
    return root


@pytest.fixture
def imagenet_root(tmp_path) -> Path:
    return write_imagenet(tmp_path / "imagenet")


def test_image_folder_layout(imagenet_root):
    dm = ImageNetDataModule(root=str(imagenet_root), batch_size=4, image_size=224)
    assert dm.num_classes == 2 and dm.class_names == ["tench", "goldfish"]
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 224, 224)
    val = dm.dataset("val")
    assert [label for _, label in val.samples] == [0, 0, 0, 1, 1, 1]  # sorted wnid = class index
    # preprocessing: a uniform image stays uniform after resize/crop; normalised with ImageNet stats
    sample = val[3]
    expected = (torch.tensor([200, 50, 100]) / 255 - torch.tensor(dm.mean)) / torch.tensor(dm.std)
    torch.testing.assert_close(sample["image"].mean((1, 2)), expected, atol=0.03, rtol=0)


def test_flat_val_folder_with_list_file(imagenet_root):
    dm = ImageNetDataModule(
        root=str(imagenet_root), val_list=str(imagenet_root / "val_3.txt"), batch_size=8
    )
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["label"].tolist() == [1, 0, 1]
    assert batch["image"].shape == (3, 3, 224, 224)


def test_missing_root_list_entries_and_bad_labels_are_clear(imagenet_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*ILSVRC2012_img_val"):
        ImageNetDataModule(root=str(tmp_path / "nowhere"))
    bad_list = tmp_path / "list.txt"
    bad_list.write_text("ILSVRC2012_val_00000000.JPEG 1\nmissing.JPEG 0\n")
    dm = ImageNetDataModule(root=str(imagenet_root), val_list=str(bad_list))
    with pytest.raises(FileNotFoundError, match=r"list.txt:2: listed image .*missing.JPEG"):
        dm.setup("test")
    bad_list.write_text("ILSVRC2012_val_00000000.JPEG 7\n")
    with pytest.raises(ValueError, match="label 7 is outside 0..1"):
        ImageNetDataModule(root=str(imagenet_root), val_list=str(bad_list)).setup("test")


def test_corrupt_image_is_skipped_and_counted(imagenet_root):
    (imagenet_root / "val" / WNIDS[1] / "ILSVRC2012_val_10.JPEG").write_bytes(b"not a jpeg")
    dm = ImageNetDataModule(root=str(imagenet_root), batch_size=6)
    dm.setup("validate")
    dataset = dm.dataset("val")
    batch = collate_skipping_none([dataset[i] for i in range(len(dataset))])
    assert batch["image"].shape[0] == 5 and dataset.skipped == 1
    assert (
        next(iter(dm.val_dataloader()))["image"].shape[0] == 5
    )  # the loader uses the same collation


@pytest.mark.slow  # ~20 s; tests/test_headline_command.py covers L-CAM's ImageNet path in-process
def test_lcam_command_line_on_imagenet_fixture(imagenet_root, tmp_path):
    """`python train.py method=lcam_img backbone=vgg16 backbone.weights=IMAGENET1K_V1 data=imagenet
    data.root=...` with a random-weight VGG-16 file standing in for the cached torchvision weights."""
    from torchvision.models import vgg16

    torch_home = tmp_path / "torch_home"
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(
        vgg16(weights=None).state_dict(), torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    )
    args = [
        "method=lcam_img",
        "backbone=vgg16",
        "backbone.weights=IMAGENET1K_V1",
        "data=imagenet",
        f"data.root={imagenet_root}",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.pin_memory=false",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        "callbacks.model_summary=null",
    ]
    proc = run_cli(
        "train.py", args, tmp_path / "runs", timeout=400, env={"TORCH_HOME": str(torch_home)}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = run_dirs(proc.stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test/loss", "val/loss/tv", "val/loss/av", "val/loss/ce"} <= set(metrics)


def test_class_index_is_imagefolders_whatever_the_listing_order(tmp_path, monkeypatch):
    """No synset file: class folders created out of order and listed by the file system in
    reverse order still give torchvision ImageFolder's class index and samples."""
    from torchvision.datasets import ImageFolder

    wnids = ["n02099601", "n01440764", "n09999999", "n01443537", "n02085620"]  # not sorted
    root = tmp_path / "imagenet"
    for c, wnid in enumerate(wnids):
        for i in range(2):
            write_jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", (40 * c, 50, 100), size=(8, 8))
    listing = Path.iterdir
    # whatever order the directory comes in, it is not the sorted one
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(listing(self), reverse=True)))
    dm = ImageNetDataModule(root=str(root))
    reference = ImageFolder(str(root / "train"))
    assert dm.class_names == reference.classes == sorted(wnids)
    assert [(str(path), label) for path, label in dm.dataset("train").samples] == reference.samples


def test_synset_file_out_of_order_is_refused(imagenet_root):
    """The class index is the sorted wnid (docstring, ImageFolder, torchvision's weights); a
    names file in another order would silently remap the labels."""
    synsets = imagenet_root / "synset_words.txt"
    synsets.write_text(f"{WNIDS[1]} goldfish\n{WNIDS[0]} tench\n")
    with pytest.raises(
        ValueError, match=rf"synset_words.txt:2: wnid '{WNIDS[0]}' comes after '{WNIDS[1]}'.*sort"
    ):
        ImageNetDataModule(root=str(imagenet_root))
    synsets.write_text(f"{WNIDS[0]} tench\n{WNIDS[0]} tench again\n{WNIDS[1]} goldfish\n")
    with pytest.raises(ValueError, match=rf"synset_words.txt:2: wnid '{WNIDS[0]}' repeats"):
        ImageNetDataModule(root=str(imagenet_root))

"""CelebA data module on a tiny copy of torchvision's layout (12 faces), and the multi-label
classifier it needs (per-attribute BCE, mean per-attribute accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from explainbench.backbones import build_backbone
from explainbench.data.celeba import CelebADataModule
from explainbench.data.info import DataInfo
from explainbench.methods import EAT, Classifier
from explainbench.methods.build import load_method

from ..helpers import CONF, compose_cfg, run_unwrapped

# the 40 official attribute names, in the file's order
ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
SMILING = ATTRIBUTES.index("Smiling")
COUNT = 12
NAMES = [f"{i:06d}.jpg" for i in range(1, COUNT + 1)]
PARTITION = [0] * 6 + [1] * 3 + [2] * 3  # list_eval_partition.txt: train / val / test
W, H = 40, 48  # aligned size (not square: x and y scale differently)
WILD_W, WILD_H = 60, 50
# lefteye righteye nose leftmouth rightmouth, x y
POINTS = [(10, 20), (30, 20), (20, 30), (12, 40), (28, 40)]
WILD_POINTS = [(15, 10), (45, 10), (30, 25), (20, 40), (40, 40)]
WILD_BOX = (5, 2, 50, 44)  # x y w h


def attribute_values() -> np.ndarray:
    """``[12, 40]`` of -1/1: attribute a of image i is present when (i + a) % 3 == 0."""
    i, a = np.meshgrid(np.arange(COUNT), np.arange(40), indexing="ij")
    return np.where((i + a) % 3 == 0, 1, -1)


def listed(rows: list[str], header: str | None) -> str:
    """An official list file: count, column names, then rows (torchvision reads these)."""
    head = f"{len(rows)}\n{header}\n" if header is not None else ""
    return head + "".join(row + "\n" for row in rows)


def write_celeba(root: Path, wild: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    folders = [("img_align_celeba", W, H)] + ([("img_celeba", WILD_W, WILD_H)] if wild else [])
    for folder, w, h in folders:
        (root / folder).mkdir()
        for name in NAMES:
            Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(root / folder / name)
    values = attribute_values()
    (root / "list_attr_celeba.txt").write_text(
        listed(
            [
                f"{n} " + " ".join(f"{v:2d}" for v in row)
                for n, row in zip(NAMES, values, strict=True)
            ],
            " ".join(ATTRIBUTES),
        )
    )
    landmark_header = " ".join(f"{p}_{c}" for p in CelebADataModule.landmark_names for c in "xy")
    for file, points in (
        ("list_landmarks_align_celeba.txt", POINTS),
        ("list_landmarks_celeba.txt", WILD_POINTS),
    ):
        row = "  ".join(f"{x} {y}" for x, y in points)
        (root / file).write_text(listed([f"{n} {row}" for n in NAMES], landmark_header))
    box = " ".join(map(str, WILD_BOX))
    (root / "list_bbox_celeba.txt").write_text(
        listed([f"{n} {box}" for n in NAMES], "image_id x_1 y_1 width height")
    )
    (root / "list_eval_partition.txt").write_text(
        listed([f"{n} {p}" for n, p in zip(NAMES, PARTITION, strict=True)], None)
    )
    return root


@pytest.fixture
def celeba_root(tmp_path) -> Path:
    return write_celeba(tmp_path / "celeba")


def module(root: Path, **kwargs) -> CelebADataModule:
    return CelebADataModule(root=str(root), **{"image_size": 16, "batch_size": 4, **kwargs})


def test_forty_attributes_are_a_multilabel_target_with_scaled_landmarks(celeba_root):
    dm = module(celeba_root)
    assert dm.multilabel and dm.num_classes == 40 and dm.class_names == ATTRIBUTES
    assert dm.landmark_names == ["lefteye", "righteye", "nose", "leftmouth", "rightmouth"]
    assert dm.annotations == {"landmarks"}  # the official boxes belong to the wild images
    test = dm.dataset("test")
    assert len(test) == 3 and len(dm.dataset("train")) == 6 and len(dm.dataset("val")) == 3
    sample = test[1]
    assert sample["image"].shape == (3, 16, 16) and sample["index"].item() == 1
    # test image 2 of 3 is image 11 (row 10): -1 -> 0, 1 -> 1, float
    expected = torch.from_numpy(attribute_values()[10] > 0).float()
    assert sample["label"].dtype == torch.float32
    torch.testing.assert_close(sample["label"], expected)
    # resize 40x48 -> 16x16: x * 0.4, y / 3; all five visible
    points = torch.tensor([[x * 0.4, y / 3, 1.0] for x, y in POINTS])
    torch.testing.assert_close(sample["landmarks"], points)
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"image", "label", "landmarks", "index", "skipped"}
    assert batch["label"].shape == (3, 40) and batch["landmarks"].shape == (3, 5, 3)


def test_one_attribute_is_binary_classification(celeba_root):
    dm = module(celeba_root, target_attribute="Smiling")
    assert not dm.multilabel and dm.num_classes == 2
    assert dm.class_names == ["not Smiling", "Smiling"]
    labels = [dm.dataset("train")[i]["label"] for i in range(6)]
    assert all(label.dtype == torch.long for label in labels)
    assert [int(label) for label in labels] == [int(v > 0) for v in attribute_values()[:6, SMILING]]


def test_wild_images_have_their_own_landmarks_and_the_boxes(celeba_root):
    dm = module(celeba_root, aligned=False)
    assert dm.annotations == {"landmarks", "bbox"}
    sample = dm.dataset("val")[0]
    sx, sy = 16 / WILD_W, 16 / WILD_H
    x, y, w, h = WILD_BOX
    torch.testing.assert_close(
        sample["bbox"], torch.tensor([x * sx, y * sy, (x + w) * sx, (y + h) * sy])
    )
    torch.testing.assert_close(
        sample["landmarks"], torch.tensor([[x * sx, y * sy, 1.0] for x, y in WILD_POINTS])
    )


def test_flip_swaps_left_and_right_landmarks(celeba_root):
    train = module(celeba_root, image_size=W, augment=True).dataset("train")
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        points = train[0]["landmarks"]
        flipped = not torch.allclose(points[2, 0], torch.tensor(20.0))  # the nose (x = 20) moved
        seen.add(flipped)
        if flipped:  # x -> W - 1 - x and lefteye takes the mirrored right eye
            torch.testing.assert_close(points[0, :2], torch.tensor([W - 1 - 30.0, 20 * W / H]))
    assert seen == {True, False}


def test_landmark_split_file_replaces_the_partition(celeba_root, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text(
        "# the SCOPS protocol, shortened\n000003.jpg train\n000001.jpg train\n000012.jpg val\n000005.jpg test\n"
    )
    dm = module(celeba_root, aligned=False, landmark_split=str(split))
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [2, 1, 1]
    assert [p.name for p, _ in dm.dataset("train").samples] == ["000003.jpg", "000001.jpg"]
    assert dm.dataset("test").samples[0][0] == celeba_root / "img_celeba" / "000005.jpg"
    split.write_text("000003.jpg training\n")
    with pytest.raises(ValueError, match=r"split.txt:1: expected '<image> <train\|val\|test>'"):
        module(celeba_root, landmark_split=str(split)).setup("fit")
    split.write_text("000003.jpg train\n999999.jpg val\n000005.jpg test\n")
    with pytest.raises(
        ValueError, match=r"split.txt:2: image '999999.jpg' is not in list_attr_celeba.txt"
    ):
        module(celeba_root, landmark_split=str(split)).setup("fit")
    split.write_text("000003.jpg train\n000005.jpg test\n")
    with pytest.raises(ValueError, match="lists no val images"):
        module(celeba_root, landmark_split=str(split)).setup("fit")
    with pytest.raises(
        FileNotFoundError, match=r"nothing.txt' \(data.landmark_split\) does not exist"
    ):
        module(celeba_root, landmark_split=str(tmp_path / "nothing.txt")).setup("fit")


def test_missing_or_malformed_files_name_the_file_and_the_layout(celeba_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*torchvision's CelebA layout"):
        module(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="target_attribute='Grinning' is not a CelebA attribute"):
        module(celeba_root, target_attribute="Grinning")
    (celeba_root / "list_bbox_celeba.txt").unlink()
    module(celeba_root)  # aligned images do not read the boxes
    with pytest.raises(
        FileNotFoundError, match=r"list_bbox_celeba.txt' is missing; expected torchvision's"
    ):
        module(celeba_root, aligned=False)
    attributes = celeba_root / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    attributes.write_text("\n".join([*lines[:5], "000004.jpg 1 -1", *lines[6:]]) + "\n")
    with pytest.raises(
        ValueError, match=r"list_attr_celeba.txt:6: expected '<image> <40 values of -1\|1>'"
    ):
        module(celeba_root).setup("test")
    attributes.write_text("\n".join(lines[:-2]) + "\n")  # cut off: the count no longer matches
    with pytest.raises(ValueError, match="line 1 says 12 images but 10 are listed"):
        module(celeba_root).setup("test")
    attributes.write_text("\n".join(lines) + "\n")
    partition = celeba_root / "list_eval_partition.txt"
    partition.write_text("".join(f"{n} 0\n" for n in NAMES[:-1]))
    with pytest.raises(
        ValueError, match=r"list_eval_partition.txt has no line for 1 images .* '000012.jpg'"
    ):
        module(celeba_root).setup("test")
    partition.unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt' is missing"):
        module(celeba_root)


def test_missing_image_fails_at_setup(celeba_root):
    (celeba_root / "img_align_celeba" / NAMES[-1]).unlink()
    with pytest.raises(
        FileNotFoundError, match="1 of 3 CelebA test images are missing.*000012.jpg"
    ):
        module(celeba_root).setup("test")


def test_torchvision_root_is_accepted(celeba_root):
    assert module(celeba_root.parent).root == celeba_root


def test_classifier_learns_multilabel_targets_with_bce_and_per_label_accuracy():
    info = DataInfo(num_classes=3, multilabel=True)
    model = Classifier(build_backbone(name="small_cnn", num_classes=3), data_info=info)
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.0, -0.5]])
    label = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, label)
    torch.testing.assert_close(model.classification_loss(logits, label), expected)
    acc = model.accuracy["test_"]
    acc(logits.sigmoid(), label.long())
    # per attribute: 2/2, 2/2, 1/2 right -> mean 5/6
    torch.testing.assert_close(acc.compute(), torch.tensor(5 / 6))


def test_gallery_captions_say_whether_the_explained_attribute_is_present():
    import matplotlib.pyplot as plt

    from explainbench.evaluation.gallery import render_gallery

    info = DataInfo(num_classes=3, class_names=["Bald", "Male", "Smiling"], multilabel=True)
    model = Classifier(build_backbone(name="small_cnn", num_classes=3), data_info=info).eval()
    x = torch.randn(2, 3, 16, 16)
    top = model(x).argmax(1)
    label = torch.zeros(2, 3)
    label[0, top[0]] = 1.0  # image 0 has its top attribute, image 1 has none
    batch = {"image": x, "label": label, "index": torch.arange(2)}
    fig = render_gallery(model, batch, {}, info.mean, info.std, info.class_names)
    captions = [ax.get_ylabel() for ax in fig.axes]  # no explainers: one column, the images
    plt.close(fig)
    names = [info.class_names[int(t)] for t in top]
    assert captions == [f"p={names[0]}\ny=1", f"p={names[1]}\ny=0"]


def test_a_method_without_multilabel_support_refuses_it_from_data_info():
    info = DataInfo(num_classes=3, attribute_names=["red", "round"], multilabel=True)
    with pytest.raises(ValueError, match=r"EAT learns one class per image.*\(multi-label\)"):
        EAT(build_backbone(name="small_cnn", num_classes=3), data_info=info)
    assert Classifier(build_backbone(name="small_cnn", num_classes=3), data_info=info).multilabel


def test_eat_refuses_multilabel_data(celeba_root, tmp_path):
    cfg = compose_cfg(["data=celeba", f"data.root={celeba_root}", "method=eat"], tmp_path)
    with pytest.raises(ValueError, match=r"EAT learns one class per image.*\(multi-label\)"):
        run_unwrapped(cfg)


def test_classifier_trains_and_tests_on_all_forty_attributes(celeba_root, tmp_path):
    overrides = [
        "data=celeba",
        f"data.root={celeba_root}",
        "data.image_size=16",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.pin_memory=false",
        "trainer.max_epochs=1",
        "callbacks.model_summary=null",
        "logger=csv",
    ]
    final = run_unwrapped(compose_cfg(overrides, tmp_path))
    assert 0.0 <= final["test/acc"] <= 1.0 and final["test/loss"] > 0.0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/acc"] == final["test/acc"]
    # trained as multi-label (a float target would also pass through cross-entropy, as soft
    # class probabilities), and the checkpoint rebuilds it so without the data
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["data_info"]["multilabel"] is True
    assert checkpoint["build_config"]["data_info"]["multilabel"] is True
    model = load_method(tmp_path / "checkpoints" / "last.ckpt")
    assert model.multilabel and model.data_info.multilabel and model.num_classes == 40


def test_config_instantiates(celeba_root):
    cfg = OmegaConf.load(CONF / "data" / "celeba.yaml")
    cfg.root, cfg.num_workers, cfg.pin_memory = str(celeba_root), 0, False
    dm = instantiate(cfg)
    assert isinstance(dm, CelebADataModule) and dm.image_size == 256 and dm.multilabel

"""Every data module yields the ``Batch`` of ``explainbench/data/base.py`` (``docs/design.md``):
the three keys every batch has, exactly the optional keys its ``annotations`` lists, with the
documented dtypes and shapes, and landmarks and boxes in one format, so the landmark and
pointing metrics read any of them. One test per ``conf/data/*.yaml``, on the tiny fixture of
its data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from explainbench.data.base import Batch, BatchKeys

from ..helpers import compose_cfg
from ..test_data_checkpoints import DATA_CONFIGS, FIXTURES

ANNOTATIONS = Batch.__optional_keys__ - {"skipped"}
# the trailing dimensions of each key per sample (None: any size)
SHAPES = {
    "image": (3, None, None),
    "index": (),
    "mask": (1, None, None),
    "part_mask": (1, None, None),
    "part_ids": (None, None),
    "bbox": (4,),
    "landmarks": (None, 3),
    "attributes": (None,),
}


def test_batch_keys_are_the_documented_ones():
    assert BatchKeys.__required_keys__ == {"image", "label", "index"}
    assert Batch.__required_keys__ == {"image", "label", "index"}
    assert ANNOTATIONS == {"mask", "part_mask", "part_ids", "bbox", "landmarks", "attributes"}


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_data_module_yields_the_batch_contract(name: str, tmp_path: Path):
    overrides = FIXTURES[name](tmp_path)
    cfg = compose_cfg([f"data={name}", *overrides, "data.batch_size=2"], tmp_path)
    dm = instantiate(cfg.data)
    assert dm.annotations <= ANNOTATIONS, f"{name}: annotations outside the Batch contract"
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) - {"skipped"} == Batch.__required_keys__ | dm.annotations
    assert batch["image"].dtype == torch.float32 and batch["index"].dtype == torch.long
    if "part_ids" in batch:  # integer part indices, not a float map
        assert batch["part_ids"].dtype == torch.long
        assert batch["part_ids"].shape[-2:] == batch["image"].shape[-2:]
    for key in set(batch) - {"skipped", "label", "index", "part_ids"}:
        assert batch[key].dtype == torch.float32, f"{name}: {key} is {batch[key].dtype}"
    size = batch["image"].shape[0]
    check_label(dm, batch["label"], size)
    for key, shape in SHAPES.items():
        if key in batch:
            got = tuple(batch[key].shape)
            assert got[0] == size and len(got) == len(shape) + 1, f"{name}: {key} is {got}"
            assert all(want in (None, n) for want, n in zip(shape, got[1:], strict=True)), (
                f"{name}: {key} is {got}, expected [B, {shape}]"
            )
    if "mask" in batch or "part_mask" in batch:
        masks = [batch[k] for k in ("mask", "part_mask") if k in batch]
        assert all(m.shape[-2:] == batch["image"].shape[-2:] for m in masks)
    height, width = batch["image"].shape[-2:]
    if "landmarks" in batch:
        check_landmarks(dm, batch["landmarks"], height, width)
    else:
        assert not dm.landmark_names, f"{name}: landmark names without landmarks"
    if "bbox" in batch:
        check_boxes(batch["bbox"], height, width)


def check_label(dm, label: torch.Tensor, size: int) -> None:
    """A class index, or (multi-label data, e.g. CelebA's 40 attributes) one 0/1 per class."""
    if dm.multilabel:
        assert label.dtype == torch.float32 and tuple(label.shape) == (size, dm.num_classes)
        assert set(label.unique().tolist()) <= {0.0, 1.0}
    else:
        assert label.dtype == torch.long and tuple(label.shape) == (size,)
        assert ((label >= 0) & (label < dm.num_classes)).all()


def check_landmarks(dm, points: torch.Tensor, height: int, width: int) -> None:
    """``[B, L, 3]`` (x, y, visible) in pixels, named by ``landmark_names``; visible points lie
    inside the image."""
    assert dm.landmark_names and points.shape[1] == len(dm.landmark_names)
    assert set(points[..., 2].unique().tolist()) <= {0.0, 1.0}
    seen = points[points[..., 2] > 0]
    assert ((seen[:, 0] >= 0) & (seen[:, 0] <= width)).all()
    assert ((seen[:, 1] >= 0) & (seen[:, 1] <= height)).all()


def check_boxes(boxes: torch.Tensor, height: int, width: int) -> None:
    """``[B, 4]`` xyxy inside the image; a row of NaN is an image without a box (iNaturalist)."""
    known = boxes[torch.isfinite(boxes).all(1)]
    assert ((0 <= known[:, 0]) & (known[:, 0] < known[:, 2]) & (known[:, 2] <= width)).all()
    assert ((0 <= known[:, 1]) & (known[:, 1] < known[:, 3]) & (known[:, 3] <= height)).all()

"""Every data module's ``landmarks`` and ``bbox`` follow one format, so the landmark and pointing
metrics read any of them: landmarks ``[L, 3]`` (x, y, visible) named by ``landmark_names``,
boxes ``[4]`` xyxy inside the transformed image."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from ..helpers import compose_cfg
from ..test_data_checkpoints import DATA_CONFIGS, fixture_overrides


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_landmarks_and_boxes_follow_the_batch_contract(name, tmp_path):
    cfg = compose_cfg(fixture_overrides(name, tmp_path / "data"), tmp_path)
    dm = instantiate(cfg.data)
    sample = dm.dataset("test")[0]
    _, height, width = sample["image"].shape
    if "landmarks" in dm.annotations:
        points = sample["landmarks"]
        assert dm.landmark_names and points.shape == (len(dm.landmark_names), 3), name
        assert set(points[:, 2].tolist()) <= {0.0, 1.0}
        seen = points[points[:, 2] > 0]
        assert (
            (seen[:, 0] >= 0) & (seen[:, 0] <= width) & (seen[:, 1] >= 0) & (seen[:, 1] <= height)
        ).all()
    else:
        assert "landmarks" not in sample and not dm.landmark_names
    if "bbox" in dm.annotations:
        box = sample["bbox"]
        assert box.shape == (4,) and box.dtype == torch.float32
        if torch.isfinite(box).all():  # NaN: this image has no box (iNaturalist)
            assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
    else:
        assert "bbox" not in sample

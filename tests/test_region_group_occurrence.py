"""scripts/region_group_occurrence.py: the model's own occurrence function over a loader, one plot
panel per part, a clear refusal of checkpoints that are not region grouping."""

from __future__ import annotations

import sys
from functools import partial

import pytest
import torch
from PIL import Image

from explainbench.backbones import build_backbone
from explainbench.methods import RegionGroup
from explainbench.methods.region_group_parts import part_occurrence

from .helpers import load_script


def test_occurrences_use_the_models_own_smoothing_over_every_batch():
    script = load_script("region_group_occurrence")
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", num_classes=3, widths=(4, 8, 8))
    model = RegionGroup(backbone, num_parts=3, feature_blocks=1, attention_blocks=1,
                        smooth_radius=1, smooth_std=5.0, optimizer=partial(torch.optim.SGD, lr=0.1)).eval()  # fmt: skip
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loader = [{"image": images[:3]}, {"image": images[3:]}]
    t, accuracy = script.occurrences(model, loader)
    assert accuracy is None  # no labels
    with torch.no_grad():
        parts = model.part_maps(images)
        predicted = model(images).argmax(1)
    torch.testing.assert_close(t, part_occurrence(parts, radius=1, std=5.0))
    # not the default 5x5 kernel: the script follows the checkpoint's setting
    assert not torch.allclose(t, part_occurrence(parts))
    # accuracy over every batch: the first 3 labels right, the last 2 wrong -> 3/5
    labels = torch.cat([predicted[:3], (predicted[3:] + 1) % 3])
    loader = [
        {"image": images[:3], "label": labels[:3]},
        {"image": images[3:], "label": labels[3:]},
    ]
    assert script.occurrences(model, loader)[1] == pytest.approx(3 / 5)


def test_one_panel_per_part(tmp_path):
    script = load_script("region_group_occurrence")
    t = torch.rand(50, 3).numpy()
    out = tmp_path / "occurrence.png"
    script.plot(t, 1.0, 1e-3, "title", str(out))
    width, height = Image.open(out).size
    assert (width, height) == (
        round(2.6 * 3 * 110),
        round(2.6 * 110),
    )  # 3 panels of 2.6 in, 110 dpi


def test_a_checkpoint_that_is_not_region_grouping_is_refused(tmp_path, monkeypatch):
    script = load_script("region_group_occurrence")
    monkeypatch.setattr(script, "load_method", lambda path: torch.nn.Linear(1, 1))
    monkeypatch.setattr(sys, "argv", ["x", "--ckpt", "a.ckpt", "--out", str(tmp_path / "o.png")])
    with pytest.raises(SystemExit, match="is a Linear checkpoint, not region grouping"):
        script.main()

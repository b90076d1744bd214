"""scripts/relevant_features_average_images.py: relevant filters per class, receptive-field
crops at each image's maximum response, NaN-aware averages, end to end on a tiny checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from explainbench.backbones.base import Backbone

from .helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "relevant_features_average_images.py"


def test_relevant_filters_are_the_top_positive_weights():
    script = load_script("relevant_features_average_images")
    w = torch.tensor([[0.5, -1.0], [0.2, 0.0], [0.9, 0.3], [0.0, 0.0]])
    index = [["a", 0], ["a", 1], ["b", 4], ["b", 5]]
    assert script.relevant_filters(w, index, 2) == {0: [("b", 4), ("a", 0)], 1: [("b", 4)]}


def spot_model() -> Backbone:
    """Conv 3×3 p1 (filter 0: centre 1, neighbours 0.1 → maximum on a lone bright pixel),
    then MaxPool2d(2): the pool's field is r = 4, jump 2, start −1 (unit i: rows 2i−1 … 2i+2)."""
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = 0.1
        conv.weight[0, :, 1, 1] = 1.0
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(2, 2))
    return Backbone(nn.Sequential(conv, nn.MaxPool2d(2)), head, 2, 2, 2).eval()


def spot(y: int, x: int, value: float) -> torch.Tensor:
    image = torch.zeros(3, 8, 8)
    image[:, y, x] = value
    return image


def test_crops_at_the_maximum_and_nan_aware_average_by_hand():
    """A: spot 2 at (3, 4) → pool unit (1, 2): rows 1..4, cols 3..6, the spot at (2, 1).
    B: spot 1 at (0, 5) → unit (0, 2): rows −1..2 (first crop row outside: NaN), cols 3..6,
    the spot at (1, 2). C: spot 0.5 at (6, 1), class 1. Responses: 3 channels × centre 1 ×
    the spot: A 6, B 3, C 1.5. Class 0 keeps A then B (patches=2); their mean: row 0 only A's (0, and 0.2 at (0, 3) from A's pixel (1, 6)), (2, 1) = (2 + 0)/2 = 1,
    (1, 2) = (0 + 1)/2 = 0.5, else 0."""
    script = load_script("relevant_features_average_images")
    a = spot(3, 4, 2.0)
    a[:, 1, 6] = 0.2  # in A's first crop row, where B's crop is outside the image
    images = torch.stack([a, spot(0, 5, 1.0), spot(6, 1, 0.5)])
    batches = [{"image": images[:2], "label": torch.tensor([0, 0])},
               {"image": images[2:], "label": torch.tensor([1])}]  # fmt: skip
    filters = {0: [("extractor.1", 0)], 1: [("extractor.1", 0)]}
    kept = script.top_patches(spot_model(), batches, filters, patches=2)
    values, crops = kept[(0, "extractor.1", 0)]
    torch.testing.assert_close(values, torch.tensor([6.0, 3.0]))
    assert crops.shape == (2, 3, 4, 4)
    assert torch.isnan(crops[1, :, 0]).all() and not torch.isnan(crops[0]).any()
    expected = torch.zeros(3, 4, 4)
    expected[:, 2, 1], expected[:, 1, 2], expected[:, 0, 3] = 1.0, 0.5, 0.2
    torch.testing.assert_close(script.average_image(crops), expected)
    values, crops = kept[(1, "extractor.1", 0)]  # only class 1's image competes
    assert (
        values.tolist() == [1.5] and crops[0, 0, 1, 2] == 0.5
    )  # unit (3, 0): rows 5..8, cols −1..2
    # every image competes: A, B (class 0's images) beat C
    kept = script.top_patches(spot_model(), batches, {1: [("extractor.1", 0)]}, 2, False)
    torch.testing.assert_close(kept[(1, "extractor.1", 0)][0], torch.tensor([6.0, 3.0]))
    # a fully connected unit sees the whole image
    fc = script.top_patches(spot_model(), batches, {0: [("classifier.2", 1)]}, patches=1)
    assert fc[(0, "classifier.2", 1)][1].shape == (1, 3, 8, 8)


def test_features_for_another_class_count_are_refused(tmp_path):
    script = load_script("relevant_features_average_images")
    path = tmp_path / "features.pt"
    torch.save({"W": torch.zeros(4, 3), "index": [["a", 0]] * 4, "layers": ["a"], "mu": 10.0,
                "num_classes": 3, "checkpoint": "x.ckpt"}, path)  # fmt: skip
    with pytest.raises(SystemExit, match="fitted for 3 classes, the checkpoint has 6"):
        script.load_features(path, 6)
    torch.save({"W": torch.zeros(4, 3)}, path)
    with pytest.raises(SystemExit, match="missing"):
        script.load_features(path, 3)


@pytest.mark.slow
def test_end_to_end_on_a_tiny_checkpoint(tmp_path):
    from explainbench.methods.build import load_method
    from explainbench.train import run

    from .helpers import TINY_DATA, compose_cfg

    quiet = ["trainer.accelerator=cpu", "callbacks.model_summary=null",
             "callbacks.progress_bar=null", "trainer.max_epochs=1", *TINY_DATA]  # fmt: skip
    run(compose_cfg(quiet, tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    model = load_method(ckpt)
    layers = ["backbone.extractor.2", "backbone.extractor.9", "backbone.classifier.3"]
    sizes = [model.get_submodule(n).weight.shape[0] if n.endswith("3") else 4 for n in layers]
    index = [[n, f] for n, size in zip(layers, sizes, strict=True) for f in range(size)]
    classes = model.backbone.num_classes
    w = torch.rand(len(index), classes, generator=torch.Generator().manual_seed(0)) - 0.3
    from explainbench.relevant_features.store import model_fingerprint

    torch.save({"W": w, "index": index, "layers": layers, "mu": 10.0, "num_classes": classes,
                "checkpoint": str(ckpt), "fingerprint": model_fingerprint(model)},
               tmp_path / "features.pt")  # fmt: skip
    out = tmp_path / "average.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--ckpt", str(ckpt), "--features",
         str(tmp_path / "features.pt"), "--out", str(out), "--patches", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 0 and "| class | layer:filter |" in proc.stdout
    assert proc.stdout.count("| 5 |") >= classes  # 5 patches per filter (16 images per class)

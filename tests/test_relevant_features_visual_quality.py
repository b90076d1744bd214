"""scripts/relevant_features_visual_quality.py: the low/middle/high layers of a stage stack, the
maps with and without the stride fix, the share table, and a run on a tiny checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explainbench.backbones import build_backbone
from explainbench.data.info import DataInfo
from explainbench.explainers.receptive_field import stride_periods

from .helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "relevant_features_visual_quality.py"


def test_layers_maps_and_share_table(tmp_path):
    """small_cnn (8, 8, 8, 8): (conv, bn, relu) × 2 per stage and a pool between stages →
    stage ends 6, 13, 20, 27: low = extractor.5, mid (stage 2 of 4) = extractor.12,
    high = extractor.26; strides 2, 4, 8. Below the low layer there is no strided operation, so
    the fix cannot change its maps; above a pool it must."""
    script = load_script("relevant_features_visual_quality")
    torch.manual_seed(0)
    model = build_backbone("small_cnn", num_classes=3, widths=(8, 8, 8, 8)).eval()
    layers = script.pick_layers(model)
    assert layers == {"low": "extractor.5", "mid": "extractor.12", "high": "extractor.26"}
    assert stride_periods(model) == [2, 4, 8]
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = {level: script.layer_maps(model, x, name) for level, name in layers.items()}
    for level, by_column in maps.items():
        assert set(by_column) == set(script.COLUMNS) - {"input"}
        assert all(m.shape == (3, 1, 32, 32) for m in by_column.values())
        for rule in script.RULES:
            same = torch.allclose(by_column[rule], by_column[f"{rule} + fix"])
            assert same == (level == "low"), (level, rule)
    table = script.share_table(maps, script.logit_maps(model, x), [2, 4, 8])
    assert table[0] == "| method | stride fix | low | mid | high | logit | mean |"
    assert [row.split(" | ")[:2] for row in table[2:]] == [
        ["| deconvnet", "no"], ["| deconvnet", "yes"], ["| guided", "no"], ["| guided", "yes"]
    ]  # fmt: skip
    low_plain, low_fixed = (float(table[r].split(" | ")[2]) for r in (2, 3))
    assert low_plain == low_fixed
    out = tmp_path / "grid.png"
    script.plot(x[:2], maps, DataInfo(num_classes=3), str(out))
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_end_to_end_on_a_tiny_checkpoint(tmp_path):
    from explainbench.train import run

    from .helpers import TINY_DATA, compose_cfg

    quiet = ["trainer.accelerator=cpu", "callbacks.model_summary=null",
             "callbacks.progress_bar=null", "trainer.max_epochs=1", *TINY_DATA]  # fmt: skip
    run(compose_cfg(quiet, tmp_path / "run"))
    out = tmp_path / "quality.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--ckpt", str(tmp_path / "run" / "checkpoints" / "last.ckpt"),
         "--out", str(out), "--images", "2", "--table-images", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 0 and "stride periods [2, 4, 8]" in proc.stdout
    assert proc.stdout.count("| deconvnet |") == 2 and proc.stdout.count("| guided |") == 2
    print(proc.stdout)

"""The cost model (evaluation/cost.py) on hand-computed numbers, and ``evaluate.py estimate=true``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainbench.evaluation.cost import (
    Passes,
    PassTimes,
    estimate_hours,
    estimate_table,
    passes_per_image,
    time_passes,
)
from explainbench.explainers.base import Explanation

from .helpers import TINY_DATA, compose_cfg


def test_hours_are_images_times_passes_times_seconds_split_over_devices():
    passes = {"gradcam": Passes(1, 1), "scorecam": Passes(129, 0), "odd": Passes(3, 2)}
    times = PassTimes(forward=0.002, backward=0.005)
    hours = estimate_hours(passes, times, images=7200, devices=(1, 8, 64))
    # gradcam: 0.002 + 0.005 = 0.007 s/img x 7200 img = 50.4 s = 0.014 h
    assert hours["gradcam"][1] == pytest.approx(0.014)
    assert hours["gradcam"][8] == pytest.approx(0.014 / 8)
    # scorecam: 129 x 0.002 = 0.258 s/img x 7200 = 1857.6 s = 0.516 h
    assert hours["scorecam"][1] == pytest.approx(0.516)
    # odd: 3 x 0.002 + 2 x 0.005 = 0.016 s/img x 7200 = 115.2 s = 0.032 h
    assert hours["odd"][64] == pytest.approx(0.032 / 64)
    assert hours["total"][1] == pytest.approx(0.014 + 0.516 + 0.032)
    header, rows = estimate_table(passes, times, images=7200)
    assert header[-3:] == ["h on 1", "h on 8", "h on 64"]
    assert rows[1][:4] == ["scorecam", "129", "0", "0.258"]
    assert rows[-1][0] == "total" and rows[-1][3] == "0.281"


def test_pass_times_are_the_best_repeat_per_image_and_backward_is_the_difference():
    # clock readings in call order: forward repeats (0 -> 0.5, 1 -> 1.3), then forward+backward
    # repeats (2 -> 3.0, 4 -> 5.1): best forward 0.3 s, best forward+backward 1.0 s, batch of 2
    readings = iter([0.0, 0.5, 1.0, 1.3, 2.0, 3.0, 4.0, 5.1])
    model = nn.Linear(4, 3)
    times = time_passes(model, torch.randn(2, 4), repeats=2, clock=lambda: next(readings))
    assert times.forward == pytest.approx(0.15)
    assert times.backward == pytest.approx((1.0 - 0.3) / 2)
    assert all(p.grad is None for p in model.parameters())


class _Counting:
    def __call__(self, model, x, target=None):
        return Explanation(torch.zeros(x.shape[0], 1, 2, 2), None, 5.0, 2.0)


class _Rise(_Counting):
    n_masks = 4000

    def __call__(self, model, x, target=None):
        raise AssertionError("RISE's count comes from n_masks, without running it")


def test_passes_come_from_the_explanation_and_from_n_masks_for_rise():
    x = torch.randn(1, 4)
    assert passes_per_image(_Counting(), nn.Identity(), x) == Passes(5.0, 2.0)
    assert passes_per_image(_Rise(), nn.Identity(), x) == Passes(4001.0, 0.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from explainbench.train import run

    out = tmp_path_factory.mktemp("trained")
    cfg = compose_cfg(
        ["trainer.max_epochs=1", "trainer.accelerator=cpu", "callbacks.model_summary=null",
         "test=false", *TINY_DATA],
        out,
    )  # fmt: skip
    run(cfg)
    return out / "checkpoints" / "last.ckpt"


def test_evaluate_estimate_prints_the_table_and_evaluates_nothing(checkpoint, tmp_path, capsys):
    from explainbench.evaluate import run
    from explainbench.methods.build import load_method

    channels = load_method(checkpoint).backbone.feature_channels  # Score-CAM's K
    cfg = compose_cfg(
        [f"ckpt_path={checkpoint}", "explainers=[gradcam,scorecam,rise]",
         "explainers.rise.n_masks=300", "estimate=true", "data.test_size=20"],
        tmp_path,
        config_name="evaluate.yaml",
    )  # fmt: skip
    assert run(cfg) == {}
    out = capsys.readouterr().out
    assert "Estimate for 20 test images on cpu" in out
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
            if line.startswith("| ")}  # fmt: skip
    assert [c.strip() for c in rows["gradcam"][:2]] == ["1", "1"]
    assert float(rows["scorecam"][0]) <= channels + 1  # K+1, fewer for empty channels
    assert float(rows["scorecam"][0]) > 1
    assert [c.strip() for c in rows["rise"][:2]] == ["301", "0"]
    h1, h8 = float(rows["total"][3]), float(rows["total"][4])
    assert h8 == pytest.approx(h1 / 8, rel=0.01)
    assert not (tmp_path / "results.csv").exists()

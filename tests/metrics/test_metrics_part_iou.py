"""Part IoU: argmax parts, one Hungarian matching over the whole set, hand-computed IoUs."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from explainbench.data import An8FlowerDataModule
from explainbench.evaluation import ExplanationEvaluator
from explainbench.explainers.base import Explanation
from explainbench.explainers.method import MethodExplainer
from explainbench.metrics.base import NoSamplesError
from explainbench.metrics.part_iou import PartIoU
from explainbench.utils.paths import CONF_DIR


def one_hot(labels: list[list[int]], k: int) -> torch.Tensor:
    """``[1,k,H,W]`` part maps whose argmax is ``labels`` (the other parts share the rest)."""
    ids = torch.tensor(labels)
    return torch.nn.functional.one_hot(ids, k).permute(2, 0, 1).float()[None] * 0.8 + 0.2 / k


def ids(labels: list[list[int]]) -> torch.Tensor:
    return torch.tensor(labels)[None]


GT = [[0, 0, 1, 1],
      [0, 0, 1, 1],
      [2, 2, 2, 2],
      [2, 2, 2, 2]]  # fmt: skip
# part 2 is the background, part 0 region 1, part 1 region 2; two pixels wrong:
# (0,2) of region 1 goes to part 2, (1,0) of the background goes to part 0
PRED = [[2, 2, 2, 0],
        [0, 2, 0, 0],
        [1, 1, 1, 1],
        [1, 1, 1, 1]]  # fmt: skip


def test_relabelled_perfect_parts_score_one():
    metric = PartIoU()
    relabel = [[2 - v if v < 2 else 0 for v in row] for row in GT]  # 0->2, 1->1, 2->0
    metric.update(one_hot(relabel, 3), ids(GT))
    out = metric.compute()
    assert out["part_iou"].item() == 1.0 and out["part_iou_bg"].item() == 1.0
    assert metric.matching == {0: 2, 1: 1, 2: 0}


def test_hand_computed_ious_with_the_background_matched():
    metric = PartIoU(background="match")
    metric.update(one_hot(PRED, 3), ids(GT))
    out = metric.compute()
    # part 2: 4 px, 3 in the background (4 px)  -> IoU 3 / (4 + 4 - 3) = 0.6
    # part 0: 4 px, 3 in region 1 (4 px)         -> 3 / 5 = 0.6
    # part 1: 8 px = region 2                      -> 1
    assert metric.matching == {0: 2, 1: 0, 2: 1}
    torch.testing.assert_close(out["part_iou"], torch.tensor((0.6 + 1.0) / 2))
    torch.testing.assert_close(out["part_iou_bg"], torch.tensor(0.6))
    torch.testing.assert_close(
        metric.per_region[:3], torch.tensor([0.6, 0.6, 1.0], dtype=torch.float64)
    )
    assert metric.per_region[3:].isnan().all()


def test_ignored_background_leaves_its_pixels_out():
    metric = PartIoU(background="ignore")
    metric.update(one_hot(PRED, 3), ids(GT))
    out = metric.compute()
    # only the 12 object pixels count: part 0 has 3 (all in region 1, 4 px) -> 3/4;
    # part 2 has 1 px in region 1 (1/4) and loses the matching to part 0
    torch.testing.assert_close(out["part_iou"], torch.tensor((0.75 + 1.0) / 2))
    assert "part_iou_bg" not in out and metric.matching == {1: 0, 2: 1}


def test_matching_is_one_to_one_not_each_regions_best_part():
    # region 1: 4 px, region 2: 8 px; part 0 covers region 1 and 6 px of region 2, part 1 the rest.
    gt = [[1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]]
    pred = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]]
    metric = PartIoU(background="ignore")
    metric.update(one_hot(pred, 2), ids(gt))
    # IoU(0, r1) = 4/10, IoU(0, r2) = 6/(10 + 8 - 6) = 0.5, IoU(1, r1) = 0, IoU(1, r2) = 2/8.
    # Each region's best part would be part 0 twice (0.4, 0.5 -> 0.45); one-to-one, the best
    # total is part 0 -> r1, part 1 -> r2 (0.4 + 0.25 > 0.5 + 0).
    out = metric.compute()
    assert metric.matching == {1: 0, 2: 1}
    torch.testing.assert_close(out["part_iou"], torch.tensor((0.4 + 0.25) / 2))


def test_one_matching_over_the_whole_set_not_one_per_batch():
    # each image alone is a perfect relabelling, but the two label the parts the other way round
    gt = [[1, 1], [2, 2]]
    metric = PartIoU()
    metric.update(one_hot([[0, 0], [1, 1]], 2), ids(gt))
    metric.update(one_hot([[1, 1], [0, 0]], 2), ids(gt))
    # every (part, region) pair: 2 common px of 4 + 4 -> 2 / 6
    torch.testing.assert_close(metric.compute()["part_iou"], torch.tensor(1 / 3))


def test_maps_are_upsampled_before_the_argmax_and_missing_regions_score_zero():
    parts = one_hot([[0, 1], [0, 1]], 2)  # 2x2 maps: part 0 on the left, part 1 on the right
    gt = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])
    metric = PartIoU()
    metric.update(parts, gt[None, None])  # [B,1,H,W] is accepted too
    # part 0 = the left half = background (IoU 1); part 1 = the right half (8 px) gets region 1
    # or 2 (4 px each, IoU 0.5); two parts for three regions: the other one scores 0
    out = metric.compute()
    torch.testing.assert_close(out["part_iou"], torch.tensor((0.5 + 0.0) / 2))
    torch.testing.assert_close(out["part_iou_bg"], torch.tensor(1.0))


class _PartModel(torch.nn.Module):
    def __init__(self, parts: torch.Tensor) -> None:
        super().__init__()
        self.parts = parts

    def explain(self, x, target=None):
        saliency = torch.zeros(x.shape[0], 1, *x.shape[-2:])
        target = torch.zeros(x.shape[0], dtype=torch.long)
        return Explanation(saliency, target, 1.0, 0.0, {"parts": self.parts})


def test_evaluator_scores_the_explanations_part_maps_and_skips_data_without_part_ids():
    model = _PartModel(one_hot(PRED, 3))
    batch = {"image": torch.zeros(1, 3, 4, 4), "label": torch.zeros(1, dtype=torch.long),
             "part_ids": ids(GT)}  # fmt: skip
    with pytest.warns(UserWarning, match="Skipping metric 'part_iou': the data has no part_ids"):
        ExplanationEvaluator({"method": MethodExplainer()}, {"part_iou": PartIoU()},
                             mean=(0, 0, 0), std=(1, 1, 1), annotations={"mask"})  # fmt: skip
    evaluator = ExplanationEvaluator({"method": MethodExplainer()}, {"part_iou": PartIoU()},
                                     mean=(0, 0, 0), std=(1, 1, 1), annotations={"part_ids"})  # fmt: skip
    evaluator.update(model, batch)
    assert evaluator.compute()["method"]["part_iou"] == pytest.approx(0.8)


def test_a_model_without_part_maps_is_skipped_with_a_warning():
    metric = PartIoU()
    explanation = Explanation(torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long))
    with pytest.warns(UserWarning, match="'part_iou' needs part maps"):
        metric.update_batch(
            torch.nn.Linear(1, 1),
            {"image": torch.zeros(1, 3, 4, 4), "part_ids": ids(GT)},
            explanation,
        )
    with pytest.raises(NoSamplesError):
        metric.compute()


def test_background_only_is_no_samples_and_bad_settings_are_clear_errors():
    metric = PartIoU()
    metric.update(one_hot([[0, 1]], 2), ids([[0, 0]]))
    with pytest.raises(NoSamplesError):
        metric.compute()
    with pytest.raises(ValueError, match="background must be one of"):
        PartIoU(background="drop")
    with pytest.raises(ValueError, match="not below max_regions=2"):
        PartIoU(max_regions=2).update(one_hot([[0, 1]], 2), ids([[0, 2]]))


def test_config_builds_the_metric_and_an8flower_carries_part_ids():
    cfg = OmegaConf.load(CONF_DIR / "metrics" / "part_iou.yaml")
    metric = instantiate(cfg.part_iou)
    assert isinstance(metric, PartIoU) and metric.background == "match"
    dm = An8FlowerDataModule(train_size=2, val_size=2, test_size=2, batch_size=2)
    assert metric.missing_annotations(dm.annotations) == []

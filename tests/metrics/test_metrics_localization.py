"""FAR, mask IoU and the pointing game against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from explainbench.explainers.base import Explanation
from explainbench.metrics import ForegroundAttentionRate, MaskIoU, PointingGame
from explainbench.metrics.iou import DEFAULT_THRESHOLDS
from explainbench.metrics.pointing_game import box_mask


def _explain(sal: torch.Tensor) -> Explanation:
    return Explanation(saliency=sal, target=torch.zeros(sal.shape[0], dtype=torch.long))


# -- FAR ---------------------------------------------------------------------------------------
def _far_batch():
    left = torch.zeros(4, 4)
    left[:, :2] = 1  # M = left half, 8 pixels
    cols = torch.tensor([1.0, 0.5, 0.25, 0.0]).expand(4, 4)
    sal = torch.stack([cols, torch.full((4, 4), 0.3), torch.zeros(4, 4), left, cols, cols])
    mask = torch.stack([left, left, left, left, torch.zeros(4, 4), torch.ones(4, 4)])
    return sal.unsqueeze(1), mask.unsqueeze(1)


def test_far_hand_values_and_edge_cases():
    # 1: PI_in = (4*1 + 4*.5)/8 = .75, PI_out = (4*.25 + 0)/8 = .125 -> FAR 6
    # 2: uniform .3 -> 1.   3: all-zero map -> defined as 1.   4: no attention outside -> max_far 100
    # 5: empty mask, 6: full mask -> skipped.   mean = (6 + 1 + 1 + 100) / 4 = 27
    sal, mask = _far_batch()
    metric = ForegroundAttentionRate()
    metric.update_batch(None, {"mask": mask}, _explain(sal))
    assert metric.compute()["far"].item() == pytest.approx(27.0)
    assert metric.skipped == 2
    far, valid = ForegroundAttentionRate.per_image(sal, mask)
    assert far.tolist()[:4] == pytest.approx([6.0, 1.0, 1.0, 100.0])
    assert valid.tolist() == [True, True, True, True, False, False]

    capped = ForegroundAttentionRate(max_far=5.0)  # 6 -> 5, 100 -> 5: (5 + 1 + 1 + 5) / 4 = 3
    capped.update(sal, mask)
    assert capped.compute()["far"].item() == pytest.approx(3.0)


def test_far_divides_by_both_mask_areas():
    # M = one column of a 4x4 image (4 pixels in, 12 out): unequal areas, so FAR without the
    # division by Σ M and Σ (1 − M) would be 4/12 = 1/3 for the uniform map, not 1.
    column = torch.zeros(4, 4)
    column[:, 1] = 1
    uniform = torch.full((4, 4), 0.5)
    peaked = torch.where(column.bool(), 0.9, 0.1)  # PI_in = 0.9, PI_out = 0.1 -> FAR 9
    far, valid = ForegroundAttentionRate.per_image(
        torch.stack([uniform, peaked]).unsqueeze(1), column.expand(2, 1, 4, 4)
    )
    assert valid.all()
    assert far.tolist() == pytest.approx([1.0, 9.0])


def test_far_part_mask_key_and_resized_map():
    metric = ForegroundAttentionRate(mask_key="part_mask")
    assert metric.missing_annotations({"image", "label", "mask"}) == ["part_mask"]
    assert metric.missing_annotations({"image", "part_mask"}) == []
    # a constant 2x2 map upsampled to the 4x4 mask is uniform -> FAR 1
    _, mask = _far_batch()
    metric.update_batch(None, {"part_mask": mask[:1]}, _explain(torch.full((1, 1, 2, 2), 0.7)))
    assert metric.compute()["far"].item() == pytest.approx(1.0)
    with pytest.raises(KeyError, match="part_mask"):
        metric.update_batch(None, {"mask": mask[:1]}, _explain(torch.ones(1, 1, 4, 4)))


# -- IoU ---------------------------------------------------------------------------------------
def test_iou_curve_and_auc_by_hand():
    # saliency (raster) .12 .32 .62 .92, M = {2, 3}
    # t=.05,.10 (2 thr): S = all 4 -> 2/4 = .5        t=.15-.30 (4): S = {1,2,3} -> 2/3
    # t=.35-.60 (6): S = {2,3} -> 1                   t=.65-.90 (6): S = {3} -> 1/2
    # t=.95 (1): S = {} -> 0
    # trapezoid / span: (sum - a0/2 - a18/2) / 18 = (38/3 - 1/4) / 18 = 149/216
    sal = torch.tensor([0.12, 0.32, 0.62, 0.92]).view(1, 1, 2, 2)
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 2, 2)
    empty = torch.zeros(1, 1, 2, 2)
    metric = MaskIoU()
    assert metric.missing_annotations({"image", "mask"}) == ["part_mask"]
    batch = {"part_mask": torch.cat([mask, empty])}
    metric.update_batch(None, batch, _explain(torch.cat([sal, sal])))
    thresholds, curve = metric.compute_curve()
    expected = [0.5] * 2 + [2 / 3] * 4 + [1.0] * 6 + [0.5] * 6 + [0.0]
    assert thresholds.tolist() == pytest.approx(list(DEFAULT_THRESHOLDS))
    assert curve.tolist() == pytest.approx(expected)
    out = metric.compute()
    assert out["iou_auc"].item() == pytest.approx(149 / 216)
    assert out["iou@0.5"].item() == pytest.approx(1.0)
    assert metric.skipped == 1

    mean_rule = MaskIoU(auc="mean")
    mean_rule.update(sal, mask)
    assert mean_rule.compute()["iou_auc"].item() == pytest.approx((38 / 3) / 19)


def test_iou_constant_maps():
    # all-ones map selects every pixel at every t: IoU = |M|/N = 1/4; all-zero map selects nothing: 0
    mask = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    metric = MaskIoU(mask_key="mask", report_at=(0.05, 0.95))
    metric.update(torch.ones(1, 1, 2, 2), mask)
    out = metric.compute()
    assert out == pytest.approx({"iou_auc": 0.25, "iou@0.05": 0.25, "iou@0.95": 0.25})
    metric.update(torch.zeros(1, 1, 2, 2), mask)
    assert metric.compute()["iou_auc"].item() == pytest.approx(0.125)
    # a map exactly at a threshold is selected (saliency >= t): constant 0.5 gives 1/4 for
    # t = .05 … .50 (10 thresholds) and 0 for t = .55 … .95 -> (10/4 - 1/8 - 0) / 18 = 19/144
    half = MaskIoU(mask_key="mask")
    half.update(torch.full((1, 1, 2, 2), 0.5), mask)
    out = half.compute()
    assert out["iou@0.5"].item() == 0.25 and out["iou_auc"].item() == pytest.approx(19 / 144)
    with pytest.raises(ValueError, match="report_at"):
        MaskIoU(report_at=(0.33,))


# -- pointing game -------------------------------------------------------------------------------
def _peak(i: int, j: int, size: int = 8) -> torch.Tensor:
    s = torch.zeros(1, 1, size, size)
    s[0, 0, i, j] = 1.0
    return s


def _pg_batch():
    # M = rows 2-3, cols 2-3. Peaks: (3,3) inside; (3,5) at distance 2; (5,5) at sqrt(8) ~ 2.83;
    # the 4th image has an empty mask.
    m = torch.zeros(1, 1, 8, 8)
    m[..., 2:4, 2:4] = 1
    sal = torch.cat([_peak(3, 3), _peak(3, 5), _peak(5, 5), _peak(3, 3)])
    mask = torch.cat([m, m, m, torch.zeros_like(m)])
    return sal, mask


@pytest.mark.parametrize(
    ("tolerance", "expected"), [(0.0, 1 / 3), (1.5, 1 / 3), (2.0, 2 / 3), (2.8, 2 / 3), (3.0, 1.0)]
)
def test_pointing_game_tolerance(tolerance, expected):
    # r = tolerance * H / reference_size = tolerance (H = reference_size = 8)
    sal, mask = _pg_batch()
    metric = PointingGame(tolerance=tolerance, reference_size=8)
    metric.update_batch(None, {"mask": mask}, _explain(sal))
    assert metric.compute()["pointing_game"].item() == pytest.approx(expected)
    assert metric.skipped == 1


def test_pointing_game_radius_scales_with_image_size():
    metric = PointingGame()
    assert metric.radius(224) == 15.0 and metric.radius(112) == 7.5 and metric.radius(448) == 30.0


def test_pointing_game_bbox_matches_mask_and_skips_missing_boxes():
    # box (2,2,4,4) xyxy covers pixel centres 2.5, 3.5 -> the same 2x2 block as the mask
    sal, mask = _pg_batch()
    boxes = torch.tensor([[2.0, 2, 4, 4]] * 3 + [[-1.0, -1, -1, -1]])
    region, valid = box_mask(boxes, (8, 8))
    assert region[:3].eq(mask[:3].bool()).all() and valid.tolist() == [True, True, True, False]
    nan_box = torch.tensor([[float("nan"), 0, 4, 4]])
    assert box_mask(nan_box, (8, 8))[1].tolist() == [False]

    metric = PointingGame(tolerance=2.0, reference_size=8)
    image = torch.zeros(4, 3, 8, 8)
    assert metric.missing_annotations({"image", "label"}) == ["bbox or mask"]
    assert metric.missing_annotations({"image", "bbox"}) == []
    metric.update_batch(None, {"image": image, "bbox": boxes}, _explain(sal))
    assert metric.compute()["pointing_game"].item() == pytest.approx(2 / 3)
    assert metric.skipped == 1

    # auto: the 4th image's mask is empty, but it has a valid box -> evaluated with the box (hit)
    auto = PointingGame(tolerance=0.0)
    boxes[3] = torch.tensor([2.0, 2, 4, 4])
    auto.update_batch(None, {"image": image, "mask": mask, "bbox": boxes}, _explain(sal))
    assert auto.compute()["pointing_game"].item() == pytest.approx(2 / 4)
    assert auto.skipped == 0


@pytest.mark.parametrize(
    ("ties", "constant", "two_peaks"), [("first", 0.0, 1.0), ("any", 1.0, 1.0), ("all", 0.0, 0.0)]
)
def test_pointing_game_ties(ties, constant, two_peaks):
    # mask = bottom-right 2x2. Constant map: "first" -> (0,0), a miss; "any" hits; "all" misses.
    # Two peaks, (6,6) inside (first in raster order) and (7,0) outside.
    m = torch.zeros(1, 1, 8, 8)
    m[..., 6:, 6:] = 1
    metric = PointingGame(tolerance=0.0, ties=ties)
    metric.update(torch.full((1, 1, 8, 8), 0.5), mask=m)
    assert metric.compute()["pointing_game"].item() == constant
    metric.reset()
    two = torch.zeros(1, 1, 8, 8)
    two[..., 6, 6] = two[..., 7, 0] = 1.0
    metric.update(two, mask=m)
    assert metric.compute()["pointing_game"].item() == two_peaks

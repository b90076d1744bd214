"""Landmark localisation: part centres, the regression on held-out images, the normalisers and
every skipped case counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainbench.evaluation import ExplanationEvaluator
from explainbench.explainers.base import Explanation
from explainbench.metrics.base import NoSamplesError
from explainbench.metrics.landmarks import LandmarkLocalization, part_centres

H = W = 32  # image size
CELLS = 8  # part-map size: a cell is 4x4 pixels


def one_hot_parts(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Part maps with each part on one random cell, and their ``[n,k,2]`` centres in pixels."""
    gen = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, CELLS, (n, k, 2), generator=gen)  # (row, col)
    parts = torch.zeros(n, k, CELLS, CELLS)
    parts[torch.arange(n)[:, None], torch.arange(k)[None], cells[..., 0], cells[..., 1]] = 1.0
    centres = torch.stack(
        [(cells[..., 1] + 0.5) * W / CELLS, (cells[..., 0] + 0.5) * H / CELLS], dim=2
    )
    return parts, centres.float()


def linear_landmarks(centres: torch.Tensor, num_landmarks: int = 3, seed: int = 1) -> torch.Tensor:
    """``[n,L,3]`` visible landmarks that are an exact affine function of the centres."""
    gen = torch.Generator().manual_seed(seed)
    n = centres.shape[0]
    weights = torch.randn(centres.shape[1] * 2, num_landmarks * 2, generator=gen)
    bias = 10 * torch.randn(num_landmarks * 2, generator=gen)
    coords = (centres.flatten(1) @ weights + bias).view(n, num_landmarks, 2)
    return torch.cat([coords, torch.ones(n, num_landmarks, 1)], dim=2)


def test_part_centres_are_the_assignment_weighted_mean_pixel():
    parts = torch.zeros(1, 2, 2, 4)
    parts[0, 0, 0, 0] = 1.0  # cell (0,0): centre (4, 8) in a 16x16 image (cells 4 wide, 8 high)
    parts[0, 1, 1, 1] = 3.0  # weights 3:1 between (12, 24) and (28, 8)
    parts[0, 1, 0, 3] = 1.0
    centres = part_centres(parts, (16, 16))
    torch.testing.assert_close(
        centres[0], torch.tensor([[2.0, 4.0], [(3 * 6 + 14) / 4, (3 * 12 + 4) / 4]])
    )


def test_regression_recovers_an_exactly_linear_mapping_with_zero_error():
    parts, centres = one_hot_parts(40, 3)
    metric = LandmarkLocalization(normalizer="image", folds=5)
    metric.update(parts, linear_landmarks(centres), (H, W))
    assert metric.compute()["landmark_error"].item() < 1e-3  # float32 inputs: ~1e-5 %
    assert metric.skipped == 0 and metric.invisible == 0


def test_cross_fitting_predicts_each_image_with_a_regression_that_did_not_see_it():
    """Landmarks unrelated to the centres: the error is the held-out one, by numpy lstsq."""
    parts, centres = one_hot_parts(12, 2)
    gen = torch.Generator().manual_seed(5)
    landmarks = torch.cat([20 * torch.rand(12, 1, 2, generator=gen), torch.ones(12, 1, 1)], dim=2)
    metric = LandmarkLocalization(normalizer="image", folds=3)
    metric.update(parts, landmarks, (H, W))
    x, y = centres.flatten(1).double().numpy() / W, landmarks[:, 0, :2].double().numpy() / W
    errors = []
    for f in range(3):
        train, test = np.arange(12) % 3 != f, np.arange(12) % 3 == f
        mean, std = x[train].mean(0), x[train].std(0)
        design = np.c_[(x - mean) / std, np.ones(12)]
        solution = np.linalg.lstsq(design[train], y[train], rcond=None)[0]
        errors.append(np.linalg.norm(design[test] @ solution - y[test], axis=1))
    assert metric.compute()["landmark_error"].item() == pytest.approx(
        100 * np.concatenate(errors).mean(), rel=1e-5
    )


def test_marked_fit_split_and_interocular_normaliser():
    """Fit on the marked images, evaluate the others: a (3, 4) shift of every held-out landmark is
    an error of 5 pixels, in % of that image's inter-ocular distance."""
    parts, centres = one_hot_parts(30, 3)
    landmarks = linear_landmarks(centres)
    fit = torch.arange(30) < 20
    landmarks[~fit, :, :2] += torch.tensor([3.0, 4.0])
    metric = LandmarkLocalization(normalizer="interocular", interocular=(0, 2))
    metric.update(parts, landmarks, (H, W), fit=fit)
    eyes = (landmarks[~fit, 0, :2] - landmarks[~fit, 2, :2]).norm(dim=1)
    expected = (100 * 5 / eyes).mean()
    assert metric.compute()["landmark_error"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_bbox_normaliser_works_in_box_coordinates():
    """Landmarks linear in box coordinates; held-out ones shifted by 10% of the box width: 10%."""
    parts, centres = one_hot_parts(30, 3)
    gen = torch.Generator().manual_seed(3)
    origin = 5 * torch.rand(30, 1, 2, generator=gen)
    size = 10 + 10 * torch.rand(30, 1, 2, generator=gen)
    bbox = torch.cat([origin, origin + size], dim=2).view(30, 4)
    boxed = linear_landmarks((centres - origin) / size)
    fit = torch.arange(30) < 20
    boxed[~fit, :, 0] += 0.1
    landmarks = torch.cat([boxed[..., :2] * size + origin, boxed[..., 2:]], dim=2)
    metric = LandmarkLocalization(normalizer="bbox")
    metric.update(parts, landmarks, (H, W), bbox=bbox, fit=fit)
    assert metric.compute()["landmark_error"].item() == pytest.approx(10.0, rel=1e-4)


def test_invisible_points_and_images_and_unfittable_landmarks_are_skipped_and_counted():
    parts, centres = one_hot_parts(40, 3)
    landmarks = linear_landmarks(centres)
    landmarks[:5, :, 2] = 0  # 5 images without any visible landmark
    landmarks[5:, 1, 2] = 0  # landmark 1 never visible in the rest: nothing to fit it on
    landmarks[5, 0, :2] = float("nan")  # a NaN point counts as invisible
    metric = LandmarkLocalization(normalizer="image")
    metric.update(parts, landmarks, (H, W))
    assert metric.skipped == 5
    assert metric.invisible == 35 + 1  # landmark 1 of the 35 kept images, the NaN point
    assert metric.compute()["landmark_error"].item() < 1e-3  # landmarks 0 and 2 still exact
    assert (
        torch.isnan(metric.per_landmark[1]) and metric.unfitted == 0
    )  # never visible: nothing held out


def test_a_landmark_too_rarely_visible_to_fit_is_counted_and_named():
    parts, centres = one_hot_parts(20, 3)
    landmarks = linear_landmarks(centres)
    landmarks[1:, 2, 2] = 0  # landmark 2 visible in image 0 only: no fold can fit it
    metric = LandmarkLocalization(normalizer="image", folds=2)
    metric.update(parts, landmarks, (H, W))
    with pytest.warns(UserWarning, match=r"Landmarks \[2\] had fewer than 2 visible fit images"):
        metric.compute()
    assert metric.unfitted == 1 and metric.unfitted_landmarks == [2]


def test_no_visible_landmark_at_all_is_no_samples_not_a_number():
    parts, centres = one_hot_parts(4, 3)
    landmarks = linear_landmarks(centres)
    landmarks[..., 2] = 0
    metric = LandmarkLocalization(normalizer="image")
    metric.update(parts, landmarks, (H, W))
    with pytest.raises(NoSamplesError):
        metric.compute()


class _PartModel(torch.nn.Module):
    """A model whose part maps are fixed one-hot maps, for the evaluator path."""

    def __init__(self, parts: torch.Tensor) -> None:
        super().__init__()
        self.parts = parts
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def explain(self, x, target=None):
        saliency = torch.zeros(x.shape[0], 1, *x.shape[-2:])
        extras = {"parts": self.parts[: x.shape[0]]}
        return Explanation(saliency, torch.zeros(x.shape[0], dtype=torch.long), 1.0, 0.0, extras)


def test_evaluator_skips_the_metric_on_data_without_landmarks_naming_them():
    from explainbench.explainers.method import MethodExplainer

    parts, centres = one_hot_parts(20, 3)
    model = _PartModel(parts)
    # checked once, when the evaluator is built against the data's annotations
    with pytest.warns(
        UserWarning, match="Skipping metric 'landmarks': the data has no landmarks annotation"
    ):
        evaluator = ExplanationEvaluator({"method": MethodExplainer()}, {"landmarks": LandmarkLocalization("image")},
                                         mean=(0, 0, 0), std=(1, 1, 1), annotations=set())  # fmt: skip
    evaluator.update(
        model, {"image": torch.zeros(20, 3, H, W), "label": torch.zeros(20, dtype=torch.long)}
    )
    assert "landmark_error" not in evaluator.compute()["method"]
    # with landmarks the same evaluator path scores the explanation's part maps
    evaluator = ExplanationEvaluator({"method": MethodExplainer()}, {"landmarks": LandmarkLocalization("image")},
                                     mean=(0, 0, 0), std=(1, 1, 1), annotations={"landmarks"})  # fmt: skip
    batch = {"image": torch.zeros(20, 3, H, W), "label": torch.zeros(20, dtype=torch.long),
             "landmarks": linear_landmarks(centres)}  # fmt: skip
    evaluator.update(model, batch)
    assert evaluator.compute()["method"]["landmark_error"] < 1e-4


def test_a_model_without_part_maps_is_skipped_with_a_warning():
    metric = LandmarkLocalization(normalizer="image")
    explanation = Explanation(torch.zeros(2, 1, H, W), torch.zeros(2, dtype=torch.long))
    batch = {"image": torch.zeros(2, 3, H, W), "landmarks": torch.ones(2, 3, 3)}
    with pytest.warns(UserWarning, match="needs part maps"):
        metric.update_batch(torch.nn.Linear(1, 1), batch, explanation)
    with pytest.raises(NoSamplesError):
        metric.compute()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="normalizer must be one of"):
        LandmarkLocalization(normalizer="eyes")
    with pytest.raises(ValueError, match="folds must be >= 2"):
        LandmarkLocalization(folds=1)
    assert LandmarkLocalization("bbox").missing_annotations({"image", "landmarks"}) == ["bbox"]


def test_two_merged_halves_equal_one_instance():
    """DDP gathers the ``cat`` states rank by rank; torchmetrics' merge_state does the same between
    two local instances, so the error (and its fold assignment) must not change."""
    parts, centres = one_hot_parts(20, 2)
    gen = torch.Generator().manual_seed(3)
    landmarks = torch.cat([20 * torch.rand(20, 2, 2, generator=gen), torch.ones(20, 2, 1)], dim=2)
    single = LandmarkLocalization(normalizer="image", folds=4)
    single.update(parts, landmarks, (H, W))
    a, b = (LandmarkLocalization(normalizer="image", folds=4) for _ in range(2))
    a.update(parts[:10], landmarks[:10], (H, W))
    b.update(parts[10:], landmarks[10:], (H, W))
    a.merge_state(b)
    assert a.compute()["landmark_error"].item() == pytest.approx(
        single.compute()["landmark_error"].item(), rel=1e-6
    )

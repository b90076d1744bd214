"""Our CAM explainers against the ``grad-cam`` package (``pytorch_grad_cam``), the reference.

What is compared: the final maps at input resolution, ``[B,H,W]``, to within 1e-4. The package
min-max normalises the ReLU'd CAM at feature resolution, resizes it with ``cv2.resize``
(bilinear, half-pixel centres) and min-max normalises again; we upsample with
``F.interpolate(bilinear, align_corners=False)`` — the same interpolation — and min-max
normalise, so the two agree up to float rounding. Same model (seeded resnet18 Backbone,
random weights, eval mode), same layer (``target_layers=[backbone.extractor]``), same input
and same targets (``ClassifierOutputTarget``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from explainbench.explainers.gradcam import GradCAM, GradCAMPlusPlus  # noqa: E402
from explainbench.explainers.scorecam import ScoreCAM  # noqa: E402

TOL = 1e-4


@pytest.fixture(autouse=True)
def _quiet_tqdm(monkeypatch):
    monkeypatch.setenv(
        "TQDM_DISABLE", "1"
    )  # the package's ScoreCAM prints a progress bar per image


def reference(cam_class, model, x, target):
    targets = [ClassifierOutputTarget(int(c)) for c in target]
    with cam_class(model=model, target_layers=[model.extractor]) as cam:
        # The package's ScoreCAM reads an optional batch_size (default 16); a larger one only
        # makes this test faster, its masked-forward scores are the same.
        cam.batch_size = 256
        return cam(input_tensor=x, targets=targets)


def not_top1(model, x):
    """A target that differs from the prediction, to catch a silently ignored target."""
    with torch.no_grad():
        logits = model(x)
    return (logits.argmax(1) + 1 + torch.arange(len(x))) % logits.shape[1]


def assert_close_to_reference(ours, ref):
    ours = ours.saliency[:, 0].cpu().numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize(
    "ours, ref_name",
    [(GradCAM(), "GradCAM"), (GradCAMPlusPlus(eps=1e-6), "GradCAMPlusPlus")],
    ids=["gradcam", "gradcampp"],
)
@pytest.mark.parametrize("explicit_target", [False, True], ids=["top1", "other_class"])
def test_gradient_cams_match_reference(
    resnet18_backbone, make_images, ours, ref_name, explicit_target
):
    x = make_images(batch=3, size=96)
    model = resnet18_backbone
    target = not_top1(model, x) if explicit_target else model(x).argmax(1)
    ex = ours(model, x, target if explicit_target else None)
    assert torch.equal(ex.target, target)
    assert_close_to_reference(ex, reference(getattr(pgc, ref_name), model, x, target))


def test_gradcampp_default_is_the_paper_formula_not_the_package_eps(resnet18_backbone, make_images):
    """The package adds 1e-6 to α's denominator; resnet18's gradients are small enough for that
    to move the map."""
    x = make_images(batch=2, size=96)
    target = resnet18_backbone(x).argmax(1)
    ref = reference(pgc.GradCAMPlusPlus, resnet18_backbone, x, target)
    diff = np.abs(GradCAMPlusPlus()(resnet18_backbone, x).saliency[:, 0].numpy() - ref).max()
    assert diff > 10 * TOL


def test_scorecam_reference_setting_matches_package_on_resnet18(resnet18_backbone, make_images):
    """One 64 px image (512 masked forwards each side), a non-top-1 target; some of the 2x2 maps
    of layer4 are constant, so the skipped-channel path is part of what is compared."""
    x = make_images(batch=1, size=64, seed=3)
    model = resnet18_backbone
    target = not_top1(model, x)
    ours = ScoreCAM(weighting="logit_softmax", align_corners=True, batch_size=128)(model, x, target)
    assert ours.extras["skipped_channels"].sum() > 0
    assert_close_to_reference(ours, reference(pgc.ScoreCAM, model, x, target))


def test_scorecam_reference_setting_matches_package_on_a_batch(make_toy_backbone, make_images):
    """Batch of 3 with mixed targets through the toy CNN (8x8 maps, one dead channel)."""
    model = make_toy_backbone(dead_channels=(2,))
    x = make_images(batch=3, size=32, seed=1)
    target = torch.tensor([0, 3, 3])
    ours = ScoreCAM(weighting="logit_softmax", align_corners=True, batch_size=4)(model, x, target)
    assert_close_to_reference(ours, reference(pgc.ScoreCAM, model, x, target))


def test_scorecam_default_differs_from_the_package(make_toy_backbone, make_images):
    """Guards the comparison itself: the paper weighting is a different map."""
    model = make_toy_backbone()
    x = make_images(batch=2, size=32, seed=1)
    target = model(x).argmax(1)
    ref = reference(pgc.ScoreCAM, model, x, target)
    diff = np.abs(ScoreCAM()(model, x).saliency[:, 0].numpy() - ref).max()
    assert diff > 10 * TOL

"""The Explainer contract for the CAM family: shapes, targets, errors, no side effects."""

from __future__ import annotations

import pytest
import torch

from explainbench.explainers.activation import ActivationMap
from explainbench.explainers.gradcam import GradCAM, GradCAMPlusPlus
from explainbench.explainers.scorecam import ScoreCAM

EXPLAINERS = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "activation": ActivationMap,
    "scorecam": lambda: ScoreCAM(batch_size=5),
}
CLASS_DISCRIMINATIVE = ["gradcam", "gradcampp", "scorecam"]


@pytest.fixture(params=list(EXPLAINERS))
def name(request) -> str:
    return request.param


def test_output_shape_range_and_top1_target(name, toy_backbone, make_images):
    x = make_images(batch=3, size=(32, 40))
    ex = EXPLAINERS[name]()(toy_backbone, x)
    assert ex.saliency.shape == (3, 1, 32, 40)
    assert ex.saliency.dtype == x.dtype
    assert ex.saliency.min() >= 0 and ex.saliency.max() <= 1
    # Every map uses its full range (none of these toy maps is constant).
    assert torch.allclose(ex.saliency.amax(dim=(1, 2, 3)), torch.ones(3))
    assert torch.equal(ex.target, toy_backbone(x).argmax(1))
    assert ex.forward_passes >= 1
    assert ex.backward_passes == (1.0 if name in ("gradcam", "gradcampp") else 0.0)


def test_int_and_tensor_targets(name, toy_backbone, make_images):
    x = make_images(batch=2, size=32)
    explainer = EXPLAINERS[name]()
    by_int = explainer(toy_backbone, x, target=4)
    by_tensor = explainer(toy_backbone, x, target=torch.tensor([4, 4]))
    assert torch.equal(by_int.target, torch.tensor([4, 4]))
    torch.testing.assert_close(by_int.saliency, by_tensor.saliency)


@pytest.mark.parametrize("name", CLASS_DISCRIMINATIVE)
def test_explicit_target_changes_the_map(name, toy_backbone, make_images):
    x = make_images(batch=2, size=32)
    top1 = toy_backbone(x).argmax(1)
    other = (top1 + 1) % 5
    explainer = EXPLAINERS[name]()
    ex_top1, ex_other = explainer(toy_backbone, x), explainer(toy_backbone, x, other)
    assert torch.equal(ex_other.target, other)
    assert (ex_top1.saliency - ex_other.saliency).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_batch_equals_images_one_by_one(name, toy_backbone, make_images):
    x = make_images(batch=3, size=32, seed=2)
    target = torch.tensor([1, 0, 4])
    explainer = EXPLAINERS[name]()
    batched = explainer(toy_backbone, x, target).saliency
    single = torch.cat(
        [explainer(toy_backbone, x[i : i + 1], target[i : i + 1]).saliency for i in range(3)]
    )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_model_without_features_head_is_a_clear_type_error(name, plain_model, make_images):
    with pytest.raises(TypeError, match=r"features\(\)"):
        EXPLAINERS[name]()(plain_model, make_images(batch=1, size=16))


@pytest.mark.parametrize("bad", [5, -1, torch.tensor([0, 7])])
def test_target_out_of_range_is_a_value_error(name, toy_backbone, make_images, bad):
    with pytest.raises(ValueError, match="outside the model's 5 classes"):
        EXPLAINERS[name]()(toy_backbone, make_images(batch=2, size=32), bad)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_no_side_effects_on_the_model(name, toy_backbone, make_images, mode):
    model = toy_backbone.train(mode == "train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    EXPLAINERS[name]()(model, make_images(batch=2, size=32))
    assert all(m.training == (mode == "train") for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "context", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"]
)
def test_works_inside_lightning_style_no_grad_contexts(name, toy_backbone, make_images, context):
    """Lightning's validation/test loops run explainers under no_grad / inference_mode."""
    x = make_images(batch=2, size=32)
    expected = EXPLAINERS[name]()(toy_backbone, x).saliency
    with context():
        x_inner = x.clone()  # an inference tensor under inference_mode, like a real batch
        got = EXPLAINERS[name]()(toy_backbone, x_inner).saliency
    torch.testing.assert_close(got, expected)


def test_frozen_model_and_editable_outputs(name, toy_backbone, make_images):
    """Frozen parameters (post-hoc on a frozen classifier) are fine, and the results are
    ordinary tensors a caller may change in place."""
    toy_backbone.requires_grad_(False)
    ex = EXPLAINERS[name]()(toy_backbone, make_images(batch=2, size=32))
    ex.saliency.mul_(0.5)
    ex.target.add_(0)

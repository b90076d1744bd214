"""The Explainer contract, for every explainer in conf/explainers/: each YAML is one named entry
that builds, and the explainer honours shapes, targets, errors and has no side effects.

Parametrised over the YAML files, so a new explainer (one module + one YAML) is held to the
contract without editing this file.
"""

from __future__ import annotations

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from explainbench.explainers.activation import ActivationMap
from explainbench.explainers.gradcam import GradCAM, GradCAMPlusPlus
from explainbench.explainers.scorecam import ScoreCAM
from explainbench.utils.paths import CONF_DIR
from tests.relevant_features.fitting import fit_on_images

FILES = sorted(p for p in (CONF_DIR / "explainers").glob("*.yaml") if p.stem != "default")
NAMES = [p.stem for p in FILES]
# Settings that only make an explainer cheaper, applied where an explainer has them: RISE's
# thousands of masks give the same contract as 64.
CHEAP = {"n_masks": 64}


def build(name: str, **settings):
    entry = OmegaConf.load(CONF_DIR / "explainers" / f"{name}.yaml")[name]
    cheap = {k: v for k, v in CHEAP.items() if k in entry}
    return hydra.utils.instantiate(OmegaConf.merge(entry, cheap, settings))


@pytest.fixture(params=NAMES)
def name(request) -> str:
    return request.param


@pytest.fixture
def model(toy_backbone, make_images, tmp_path):
    """The toy backbone with a built-in explanation (its Grad-CAM), so the ``method`` explainer
    is held to the same contract as the post-hoc ones, and relevant features fitted next to
    its (pretend) checkpoint, for ``relevant_features`` (``path: auto``)."""
    toy_backbone.explain = lambda x, target=None: GradCAM()(toy_backbone, x, target)
    toy_backbone.checkpoint_path = str(tmp_path / "last.ckpt")
    fit_on_images(toy_backbone, make_images(batch=32, size=32, seed=7),
                  tmp_path / "relevant_features.pt")  # fmt: skip
    return toy_backbone


def test_every_file_is_one_named_entry_that_builds(name):
    cfg = OmegaConf.load(CONF_DIR / "explainers" / f"{name}.yaml")
    assert list(cfg) == [name], f"conf/explainers/{name}.yaml must hold one entry named '{name}'"
    assert "_target_" in cfg[name]
    assert callable(build(name))


def test_default_explainers_are_files_of_the_group():
    defaults = OmegaConf.load(CONF_DIR / "explainers" / "default.yaml").defaults
    assert set(defaults) - {"_self_"} <= set(NAMES)


def test_output_shape_range_and_top1_target(name, model, make_images):
    x = make_images(batch=3, size=(32, 40))
    ex = build(name)(model, x)
    assert ex.saliency.shape == (3, 1, 32, 40)
    assert ex.saliency.dtype == x.dtype
    assert ex.saliency.min() >= 0 and ex.saliency.max() <= 1
    # Every map uses its full range (none of these toy maps is constant).
    assert torch.allclose(ex.saliency.amax(dim=(1, 2, 3)), torch.ones(3))
    assert torch.equal(ex.target, model(x).argmax(1))
    assert torch.all(torch.as_tensor(ex.forward_passes) >= 1)
    assert torch.all(torch.as_tensor(ex.backward_passes) >= 0)


@pytest.mark.parametrize(
    "explainer,backward",
    [(GradCAM(), 1.0), (GradCAMPlusPlus(), 1.0), (ActivationMap(), 0.0), (ScoreCAM(), 0.0)],
)
def test_cam_pass_counts(explainer, backward, toy_backbone, make_images):
    ex = explainer(toy_backbone, make_images(batch=2, size=32))
    assert ex.backward_passes == backward


def test_int_and_tensor_targets(name, model, make_images):
    x = make_images(batch=2, size=32)
    explainer = build(name)
    by_int = explainer(model, x, target=4)
    by_tensor = explainer(model, x, target=torch.tensor([4, 4]))
    assert torch.equal(by_int.target, torch.tensor([4, 4]))
    torch.testing.assert_close(by_int.saliency, by_tensor.saliency)


@pytest.mark.parametrize("cls", [GradCAM, GradCAMPlusPlus, lambda: ScoreCAM(batch_size=5)])
def test_explicit_target_changes_the_map(cls, toy_backbone, make_images):
    """The class-discriminative ones: another target gives another map."""
    x = make_images(batch=2, size=32)
    top1 = toy_backbone(x).argmax(1)
    other = (top1 + 1) % 5
    explainer = cls()
    ex_top1, ex_other = explainer(toy_backbone, x), explainer(toy_backbone, x, other)
    assert torch.equal(ex_other.target, other)
    assert (ex_top1.saliency - ex_other.saliency).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_batch_equals_images_one_by_one(name, model, make_images):
    x = make_images(batch=3, size=32, seed=2)
    target = torch.tensor([1, 0, 4])
    explainer = build(name)
    batched = explainer(model, x, target).saliency
    single = torch.cat(
        [explainer(model, x[i : i + 1], target[i : i + 1]).saliency for i in range(3)]
    )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_model_without_what_it_needs_is_a_clear_type_error(name, plain_model, make_images):
    """Post-hoc explainers need features()/head(); ``method`` needs explain()."""
    with pytest.raises(TypeError, match=r"features\(\)|explain\(x, target\)"):
        build(name)(plain_model, make_images(batch=1, size=16))


@pytest.mark.parametrize("bad", [5, -1, torch.tensor([0, 7])])
def test_target_out_of_range_is_a_value_error(name, model, make_images, bad):
    with pytest.raises(ValueError, match="outside the model's 5 classes"):
        build(name)(model, make_images(batch=2, size=32), bad)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_no_side_effects_on_the_model(name, model, make_images, mode):
    model = model.train(mode == "train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    build(name)(model, make_images(batch=2, size=32))
    assert all(m.training == (mode == "train") for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    "context", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"]
)
def test_works_inside_lightning_style_no_grad_contexts(name, model, make_images, context):
    """Lightning's validation/test loops run explainers under no_grad / inference_mode."""
    x = make_images(batch=2, size=32)
    expected = build(name)(model, x).saliency
    with context():
        x_inner = x.clone()  # an inference tensor under inference_mode, like a real batch
        got = build(name)(model, x_inner).saliency
    torch.testing.assert_close(got, expected)


def test_frozen_model_and_editable_outputs(name, model, make_images):
    """Frozen parameters (post-hoc on a frozen classifier) are fine, and the results are
    ordinary tensors a caller may change in place."""
    model.requires_grad_(False)
    ex = build(name)(model, make_images(batch=2, size=32))
    ex.saliency.mul_(0.5)
    ex.target.add_(0)

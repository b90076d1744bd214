"""The ``method`` explainer: a method's own ``explain`` behind the Explainer contract."""

from __future__ import annotations

from functools import partial

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from explainbench.explainers.base import Explanation
from explainbench.explainers.method import MethodExplainer
from explainbench.utils.paths import CONF_DIR

CONF = CONF_DIR / "explainers"


class ToyMethod(nn.Module):
    """Logits = per-channel means; the explanation of class c is channel c, min-max per image.

    Records every call so tests can see what ``explain`` received."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def forward(self, x):
        return x.mean(dim=(2, 3))

    def explain(self, x, target=None, **kwargs):
        self.calls.append({"target": target, **kwargs})
        if target is None:
            target = self(x).argmax(1)
        maps = x[torch.arange(x.shape[0]), target][:, None]
        lo = maps.amin(dim=(2, 3), keepdim=True)
        hi = maps.amax(dim=(2, 3), keepdim=True)
        return Explanation((maps - lo) / (hi - lo), target, forward_passes=1.0)


def images(batch: int = 2, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_returns_the_methods_own_explanation_and_passes_none_through():
    model, x = ToyMethod(), images()
    ex = MethodExplainer()(model, x)
    assert model.calls == [{"target": None}]  # no extra forward pass spent on the top-1
    assert torch.equal(ex.target, x.mean(dim=(2, 3)).argmax(1))
    expected = x[torch.arange(2), ex.target][:, None]
    lo, hi = expected.amin(dim=(2, 3), keepdim=True), expected.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(ex.saliency, (expected - lo) / (hi - lo))
    assert ex.forward_passes == 1.0 and ex.backward_passes == 0.0


def test_int_and_tensor_targets_become_a_long_batch_tensor():
    model, x = ToyMethod(), images(batch=3)
    MethodExplainer()(model, x, 2)
    MethodExplainer()(model, x, torch.tensor([0, 1, 2]))
    first, second = (call["target"] for call in model.calls)
    assert first.dtype == torch.long and torch.equal(first, torch.tensor([2, 2, 2]))
    assert torch.equal(second, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("bad", [3, -1, torch.tensor([0, 5])])
def test_out_of_range_targets_are_rejected_before_the_method_runs(bad):
    model = ToyMethod()
    with pytest.raises(ValueError, match="outside the model's 3 classes"):
        MethodExplainer()(model, images(), bad)
    assert model.calls == []


def test_wrong_target_shape_is_rejected_without_num_classes():
    model = ToyMethod()
    model.num_classes = None  # unknown class count: only the shape can be checked here
    with pytest.raises(ValueError, match=r"\[B\]=2"):
        MethodExplainer()(model, images(), torch.tensor([0, 1, 2]))


def test_model_without_explain_is_a_clear_type_error(plain_model):
    with pytest.raises(TypeError, match=r"has no explain\(x, target\)"):
        MethodExplainer()(plain_model, images())


def test_explain_kwargs_are_forwarded():
    model = ToyMethod()
    MethodExplainer(explain_kwargs={"level": "late"})(model, images(), 1)
    assert model.calls[0]["level"] == "late"


class Broken(ToyMethod):
    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault

    def explain(self, x, target=None, **kwargs):
        ex = super().explain(x, target)
        if self.fault == "type":
            return ex.saliency
        if self.fault == "shape":
            return Explanation(ex.saliency[:, :, :4], ex.target)
        if self.fault == "range":
            return Explanation(ex.saliency * 2, ex.target)
        if self.fault == "target":
            return Explanation(ex.saliency, (ex.target + 1) % 3)
        return Explanation(ex.saliency, ex.target[:1])  # target shape


@pytest.mark.parametrize(
    "fault,message",
    [("type", "expected an Explanation"), ("shape", r"\[B,1,H,W\]"), ("range", "expected \\[0, 1\\]"),
     ("target", "not the requested"), ("target_shape", "target of shape")],
)  # fmt: skip
def test_contract_violations_of_the_method_are_value_errors(fault, message):
    with pytest.raises(ValueError, match=message):
        MethodExplainer()(Broken(fault), images(), torch.tensor([0, 1]))


def test_base_method_without_built_in_explanation_says_so():
    from explainbench.backbones import build_backbone
    from explainbench.methods.base import ExplainableMethod

    torch.manual_seed(0)
    method = ExplainableMethod(build_backbone("small_cnn", num_classes=3, widths=(4, 4, 8, 8)))
    with pytest.raises(NotImplementedError, match="post-hoc explainer"):
        MethodExplainer()(method, images(size=32))


def test_base_method_adds_nothing_to_a_gallery():
    """``gallery_extras`` is declared on the base class: no texts and no extra map columns."""
    from explainbench.backbones import build_backbone
    from explainbench.methods.base import ExplainableMethod

    method = ExplainableMethod(build_backbone("small_cnn", num_classes=3, widths=(4, 4, 8, 8)))
    assert method.gallery_extras(images(size=32)) == ([], {})


def test_wraps_l_cam():
    """End to end with a real learned explainer: same result as calling explain directly."""
    from explainbench.backbones import build_backbone
    from explainbench.methods.lcam import LCAM

    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", num_classes=4, widths=(8, 8, 16, 16))
    backbone.source = "checkpoint:test"  # stands in for loaded weights
    method = LCAM(backbone, variant="img", optimizer=partial(torch.optim.SGD, lr=0.1)).eval()
    x = images(batch=2, size=32, seed=1)
    with torch.no_grad():
        direct = method.explain(x, torch.tensor([1, 3]))
        wrapped = MethodExplainer()(method, x, torch.tensor([1, 3]))
        top1 = MethodExplainer()(method, x)
        assert torch.equal(top1.target, method(x).argmax(1))
    torch.testing.assert_close(wrapped.saliency, direct.saliency)
    assert wrapped.saliency.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="outside the model's 4 classes"):
        MethodExplainer()(method, x, 4)


def test_config_file_instantiates():
    explainer = hydra.utils.instantiate(OmegaConf.load(CONF / "method.yaml").method)
    assert type(explainer) is MethodExplainer and explainer.explain_kwargs == {}

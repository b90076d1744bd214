"""The compiled forwards behind ``compile: true`` (Score-CAM, RISE): the same logits and maps as
eager mode, weights that change between calls are seen, and a failing compiler falls back to
eager with a warning instead of stopping an evaluation."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch
from torch import nn

from explainbench.backbones.base import Backbone
from explainbench.explainers import compiled
from explainbench.explainers.compiled import CompiledLogits
from explainbench.explainers.rise import RISE
from explainbench.explainers.scorecam import ScoreCAM

pytestmark = pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("clang++")),
    reason="torch.compile (inductor) on CPU needs a C++ compiler",
)
FALLBACK = "running eagerly"


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Compiled graphs cached by earlier tests must not answer for this one."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def bn_backbone(seed: int = 0) -> Backbone:
    """A small CNN with BatchNorm (fused by the compiler) and random running statistics."""
    gen = torch.Generator().manual_seed(seed)
    extractor = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
    )  # fmt: skip
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(6, 5))
    model = Backbone(extractor, classifier, 6, 2, 5, name="toy_bn")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for bn in (extractor[1], extractor[5]):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
    return model.eval()


def eager_logits(model, x):
    with torch.inference_mode():
        return model.head(model.features(x))


def compiled_logits(compiled_fn, model, x):
    with torch.inference_mode():
        return compiled_fn(model, x)


def test_compiled_logits_equal_eager_ones(make_images, recwarn):
    model, x = bn_backbone(), make_images(batch=4, size=16)
    compiled_fn = CompiledLogits()
    got = compiled_logits(compiled_fn, model, x)
    assert not [w for w in recwarn if FALLBACK in str(w.message)], "compiling fell back to eager"
    assert compiled_fn._compiled is not None and not compiled_fn._failed
    torch.testing.assert_close(got, eager_logits(model, x), atol=1e-5, rtol=1e-5)


def test_changed_weights_are_seen(make_images):
    """An optimizer step updates weights in place: the compiled copy must not go stale."""
    model, x = bn_backbone(), make_images(batch=4, size=16)
    compiled_fn = CompiledLogits()
    before = compiled_logits(compiled_fn, model, x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # an optimizer step: same tensors, new values
        model.extractor[1].running_mean.add_(0.3)
    after = compiled_logits(compiled_fn, model, x)
    expected = eager_logits(model, x)
    assert (after - before).abs().max() > 1e-2  # the update matters, or this proves nothing
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)


def test_compile_failure_falls_back_to_eager_with_a_warning(make_images, monkeypatch):
    def broken_compile(module, **kwargs):
        def run(x):
            raise RuntimeError("no working C++ compiler")

        return run

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    model, x = bn_backbone(), make_images(batch=2, size=16)
    compiled_fn = CompiledLogits()
    with pytest.warns(RuntimeWarning, match="no working C\\+\\+ compiler.*running eagerly"):
        got = compiled_logits(compiled_fn, model, x)
    torch.testing.assert_close(got, eager_logits(model, x))
    assert compiled_fn._failed


def test_pickles_without_its_compiled_graph(make_images):
    """ddp_spawn pickles callbacks and the explainers they hold."""
    model, x = bn_backbone(), make_images(batch=2, size=16)
    compiled_fn = CompiledLogits()
    compiled_logits(compiled_fn, model, x)
    copy = pickle.loads(pickle.dumps(compiled_fn))
    assert copy._compiled is None and copy._key is None
    torch.testing.assert_close(
        compiled_logits(copy, model, x), eager_logits(model, x), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("weighting", ["prob_increase", "logit_softmax"])
def test_scorecam_compiled_matches_eager(make_images, weighting):
    model, x = bn_backbone(), make_images(batch=2, size=16, seed=3)
    # 2 images x 6 channels in chunks of 5: the last chunk is short (padded for the graph).
    eager = ScoreCAM(batch_size=5, weighting=weighting)(model, x)
    fast = ScoreCAM(batch_size=5, weighting=weighting, compile=True)(model, x)
    assert eager.saliency.amax() == 1  # non-trivial maps
    torch.testing.assert_close(fast.saliency, eager.saliency, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        fast.extras["channel_weights"], eager.extras["channel_weights"], atol=1e-5, rtol=1e-5
    )
    assert fast.forward_passes == eager.forward_passes


def test_rise_compiled_matches_eager(make_images):
    model, x = bn_backbone(), make_images(batch=2, size=16, seed=5)
    kwargs = dict(n_masks=10, grid_size=3, batch_size=4, seed=1)  # last chunk: 2 of 4
    eager = RISE(**kwargs)(model, x)
    fast = RISE(**kwargs, compile=True)(model, x)
    torch.testing.assert_close(fast.extras["raw"], eager.extras["raw"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast.saliency, eager.saliency, atol=1e-5, rtol=0)


def test_scorecam_chunk_size_defaults_by_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert ScoreCAM().chunk_size(cpu) == 16
    assert ScoreCAM(compile=True).chunk_size(cpu) == 8
    assert ScoreCAM().chunk_size(cuda) == 32
    assert ScoreCAM(batch_size=5, compile=True).chunk_size(cpu) == 5


def test_scorecam_rejects_compile_with_autocast():
    with pytest.raises(ValueError, match="compile and autocast_dtype"):
        ScoreCAM(compile=True, autocast_dtype="bfloat16")

"""The model-randomisation sanity check: its similarities against hand values / references, the
layer order, the untouched original, and the check's verdict on an explainer that ignores the model
(score 1) and on Grad-CAM (clearly lower)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr
from torch import nn
from torchmetrics.functional import structural_similarity_index_measure as tm_ssim

from explainbench.backbones.registry import build_backbone
from explainbench.evaluation.evaluator import ExplanationEvaluator
from explainbench.explainers.base import Explanation, normalize_per_image
from explainbench.explainers.gradcam import GradCAM
from explainbench.metrics import ModelRandomisation
from explainbench.metrics.randomisation import average_ranks, layer_groups, spearman, ssim


def _values(metric):
    return {k: v.item() for k, v in metric.compute().items()}


# -- Spearman ------------------------------------------------------------------------------------
def test_spearman_hand_values():
    # a = 1 2 3 4, b = 1 3 2 4: d = 0 1 1 0, rho = 1 - 6·2 / (4·15) = 0.8
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert spearman(a, torch.tensor([[1.0, 3.0, 2.0, 4.0]])).item() == pytest.approx(0.8)
    # ranks only: a monotone transform changes nothing, a reversal gives -1
    assert spearman(a, a**3 + 7).item() == pytest.approx(1.0)
    assert spearman(a, -a).item() == pytest.approx(-1.0)
    # ties share their average rank: a = 1 2 2 3 -> ranks 1 2.5 2.5 4, b -> 1 2 3 4
    # centred: (-1.5 0 0 1.5), (-1.5 -.5 .5 1.5): cov 4.5, var 4.5 and 5 -> 4.5 / sqrt(22.5)
    # (raster-order tie breaking would give ranks 1 2 3 4 and rho = 1)
    tied = torch.tensor([[1.0, 2.0, 2.0, 3.0]])
    assert spearman(tied, a).item() == pytest.approx(4.5 / math.sqrt(22.5))
    assert average_ranks(tied).tolist() == [[0.0, 1.5, 1.5, 3.0]]


def test_spearman_matches_scipy_with_ties_per_image():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 1, 6, 7), generator=g).float()  # many ties
    b = a + torch.randint(0, 4, (3, 1, 6, 7), generator=g).float()
    got = spearman(a, b)
    for i in range(3):
        assert got[i].item() == pytest.approx(
            spearmanr(a[i].flatten(), b[i].flatten())[0], abs=1e-6
        )


def test_spearman_of_constant_maps():
    flat, ramp = torch.full((1, 1, 3, 3), 0.5), torch.arange(9.0).view(1, 1, 3, 3)
    assert spearman(flat, ramp).item() == 0.0  # no ranking to agree with
    assert spearman(flat, torch.zeros(1, 1, 3, 3)).item() == 1.0


# -- SSIM ----------------------------------------------------------------------------------------
def test_ssim_hand_values_and_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 16, 13, generator=g)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    # constant maps 0.2 and 0.6: variances 0, so SSIM = (2·.2·.6 + C1) / (.2² + .6² + C1), C1 = 1e-4
    a, b = torch.full((1, 1, 12, 12), 0.2), torch.full((1, 1, 12, 12), 0.6)
    assert ssim(a, b).item() == pytest.approx((0.24 + 1e-4) / (0.40 + 1e-4), rel=1e-5)
    # a map and its inverse share the luminance range but anti-correlate: far below 1
    inverse = ssim(x, 1 - x)
    assert (inverse < 0.1).all()
    # Wang et al.'s Gaussian SSIM (11 / 1.5) as torchmetrics computes it: its map reflect-pads the
    # borders, so only positions 5 pixels inside (where the window is inside the map) compare
    y = (x + 0.3 * torch.rand(2, 1, 16, 13, generator=g)).clamp(0, 1)
    _, full = tm_ssim(y, x, data_range=1.0, reduction="none", return_full_image=True)
    ref = full[..., 5:-5, 5:-5].flatten(1).mean(1)
    assert ssim(y, x).tolist() == pytest.approx(ref.tolist(), abs=1e-5)


# -- models and explainers -----------------------------------------------------------------------
class ChannelMean:
    """An explainer that ignores the model: the image's channel mean, min-max normalised."""

    def __call__(self, model, x, target=None):
        return Explanation(normalize_per_image(x.mean(1, keepdim=True)), target)


class Recorder(ChannelMean):
    """Records, for every call, the set of layer groups whose weights differ from ``trained``."""

    def __init__(self, trained: nn.Module) -> None:
        self.trained = {k: v.clone() for k, v in trained.state_dict().items()}
        self.groups = layer_groups(trained)
        self.calls: list[set[str]] = []

    def __call__(self, model, x, target=None):
        state = model.state_dict()
        modules = dict(model.named_modules())
        changed = set()
        for group, names in self.groups:
            for name in names:
                for key, _ in modules[name].named_parameters(recurse=False):
                    if not torch.equal(state[f"{name}.{key}"], self.trained[f"{name}.{key}"]):
                        changed.add(group)
        self.calls.append(changed)
        return super().__call__(model, x, target)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return build_backbone("small_cnn", num_classes=2, widths=(8, 16, 16), dropout=0.0).eval()


def _squares(n, seed):
    """32 px images; class 1 has a bright 8x8 square in the top-left quadrant, class 0 in the
    bottom-right (a task Grad-CAM on a trained CNN localises)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    y = torch.arange(n) % 2
    for i in range(n):
        r = int(torch.randint(0, 9, (1,), generator=g)) + (0 if y[i] else 16)
        c = int(torch.randint(0, 9, (1,), generator=g)) + (0 if y[i] else 16)
        x[i, :, r : r + 8, c : c + 8] += 2.0
    return x, y


@pytest.fixture(scope="module")
def trained():
    model = _tiny().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(40):
        x, y = _squares(16, step)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = _squares(32, 1000)
    assert (model(x).argmax(1) == y).float().mean() > 0.9  # it did learn the task
    return model


def _check(model, explainer, x, **kwargs):
    metric = ModelRandomisation(**kwargs)
    metric.bind_explainer(explainer)
    metric.update_batch(
        model, {"image": x}, explainer(model, x, torch.zeros(len(x), dtype=torch.long))
    )
    return metric


# -- the verdicts ----------------------------------------------------------------------------------
def test_layer_groups_are_the_head_then_stages_top_down():
    groups = layer_groups(_tiny())
    assert [g for g, _ in groups] == ["head", "stage3", "stage2", "stage1"]
    assert groups[0][1] == ["classifier.3"]  # the head's linear layer
    assert groups[-1][1] == ["extractor.0", "extractor.1", "extractor.3", "extractor.4"]


def test_an_explainer_that_ignores_the_model_scores_one(trained):
    x, _ = _squares(4, 7)
    values = _values(_check(trained, ChannelMean(), x))
    assert set(values) == {
        "rand_spearman",
        "rand_ssim",
        "rand_spearman@head",
        "rand_spearman@stage3",
        "rand_spearman@stage2",
        "rand_spearman@stage1",
        "rand_indep_spearman",
    }
    assert values == pytest.approx(dict.fromkeys(values, 1.0), abs=1e-6)


def test_gradcam_on_a_trained_model_scores_clearly_lower(trained):
    x, y = _squares(8, 11)
    # measured over 3 model seeds x 2 image sets x 2 randomisation seeds: rand_spearman <= 0.25,
    # rand_ssim <= 0.48 (SSIM stays near the share of the map that is 0 in both), indep <= 0.36
    values = _values(_check(trained, GradCAM(), x))
    assert values["rand_spearman"] < 0.4 and values["rand_ssim"] < 0.6
    assert values["rand_indep_spearman"] < 0.5


def test_the_original_model_and_the_global_rng_are_untouched():
    model = _tiny()  # its own model: a shared one already randomised would hide a write-back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    _check(model, GradCAM(), _squares(2, 3)[0])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(rng, torch.get_rng_state())


def test_cascade_randomises_top_down_then_each_group_alone():
    model = _tiny()
    recorder = Recorder(model)
    metric = _check(model, recorder, torch.randn(2, 3, 32, 32))
    # call 0 explains the trained model (for the Explanation passed in); then the cascade, then
    # the independent steps (the head alone is the cascade's first step, not re-explained)
    assert recorder.calls == [
        set(),
        {"head"},
        {"head", "stage3"},
        {"head", "stage3", "stage2"},
        {"head", "stage3", "stage2", "stage1"},
        {"stage3"},
        {"stage2"},
        {"stage1"},
    ]
    assert metric.group_names == ["head", "stage3", "stage2", "stage1"]


def test_random_weights_are_seeded_and_the_copy_is_cached_and_follows_training():
    model = _tiny()
    x = torch.randn(2, 3, 32, 32)
    a, b, c = (_check(model, ChannelMean(), x, seed=s) for s in (0, 0, 1))
    key = "classifier.3.weight"
    assert torch.equal(a._cache[1].random["head"][key], b._cache[1].random["head"][key])
    assert not torch.equal(a._cache[1].random["head"][key], c._cache[1].random["head"][key])
    # a second batch reuses the copy; weights changed in between (training) are picked up
    copy_before = a._cache[1].copy
    with torch.no_grad():
        model.extractor[0].weight.add_(1.0)
    recorder = Recorder(model)
    a.bind_explainer(recorder)
    a.update_batch(model, {"image": x}, ChannelMean()(model, x))
    assert a._cache[1].copy is copy_before
    assert recorder.calls[0] == {"head"}  # stage1 equals the model's *current* weights


# -- state, errors, the evaluator --------------------------------------------------------------------
def test_split_and_merged_states_equal_single_instance(trained):
    x, _ = _squares(6, 5)
    target = torch.tensor([0, 1, 1, 0, 1, 0])
    expl = GradCAM()(trained, x, target)

    def part(sl):
        metric = ModelRandomisation()
        metric.bind_explainer(GradCAM())
        metric.update_batch(trained, {"image": x[sl]}, Explanation(expl.saliency[sl], target[sl]))
        return metric

    single, a, b = part(slice(None)), part(slice(0, 2)), part(slice(2, None))
    summed = ModelRandomisation()
    for state in single._defaults:  # what DDP's all_reduce(SUM) does
        setattr(summed, state, getattr(a, state) + getattr(b, state))
    summed._update_count = 1
    summed.group_names = a.group_names
    a.merge_state(b)
    expected = _values(single)
    assert _values(summed) == pytest.approx(expected, abs=1e-6)
    assert _values(a) == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected["rand_spearman"] < 1.0  # a real value, not a degenerate one


def test_errors_name_the_problem():
    metric = ModelRandomisation()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(RuntimeError, match="bind_explainer"):
        metric.update_batch(_tiny(), {"image": x}, ChannelMean()(None, x))
    metric.bind_explainer(ChannelMean())
    with pytest.raises(TypeError, match="Backbone"):
        metric.update_batch(nn.Linear(2, 2), {"image": x}, ChannelMean()(None, x))
    small = ModelRandomisation(max_groups=2)
    small.bind_explainer(ChannelMean())
    with pytest.raises(ValueError, match="max_groups=4"):
        small.update_batch(_tiny(), {"image": x}, ChannelMean()(None, x))


def test_the_evaluator_binds_each_explainer_to_its_own_metric(trained):
    explainers = {"gradcam": GradCAM(), "channel_mean": ChannelMean()}
    evaluator = ExplanationEvaluator(
        explainers, {"randomisation": ModelRandomisation()}, (0.0,) * 3, (1.0,) * 3, ["image"]
    )
    x, _ = _squares(4, 9)
    evaluator.update(trained, {"image": x}, torch.zeros(4, dtype=torch.long))
    results = evaluator.compute()
    assert results["channel_mean"]["rand_spearman"] == pytest.approx(1.0)
    assert results["gradcam"]["rand_spearman"] < 0.5


def test_max_images_checks_only_the_first_images_across_batches(trained):
    """max_images=5 over batches of 3 + 4: the same values as all of images 0..4 in one batch, and
    the explainer is not called on the randomised models once 5 images are in."""
    x, _ = _squares(7, 11)
    target = torch.tensor([0, 1, 1, 0, 1, 0, 1])
    expl = GradCAM()(trained, x, target)
    capped = ModelRandomisation(max_images=5)
    capped.bind_explainer(GradCAM())
    for sl in (slice(0, 3), slice(3, 7)):
        capped.update_batch(trained, {"image": x[sl]}, Explanation(expl.saliency[sl], target[sl]))
    first = ModelRandomisation()
    first.bind_explainer(GradCAM())
    first.update_batch(trained, {"image": x[:5]}, Explanation(expl.saliency[:5], target[:5]))
    assert int(capped.count) == 5
    assert _values(capped) == pytest.approx(_values(first), abs=1e-6)
    recorder = Recorder(trained)
    full = ModelRandomisation(max_images=2)
    full.bind_explainer(recorder)
    full.update_batch(trained, {"image": x[:2]}, Explanation(expl.saliency[:2], target[:2]))
    calls = len(recorder.calls)
    full.update_batch(trained, {"image": x[2:4]}, Explanation(expl.saliency[2:4], target[2:4]))
    assert len(recorder.calls) == calls  # nothing re-explained after the cap
    with pytest.raises(ValueError, match="max_images"):
        ModelRandomisation(max_images=0)


def test_attention_net_groups_its_named_stages_and_the_attention_module():
    """attention_net's extractor names its stages (``stage_outputs``): every trainable parameter
    of the model is in exactly one group, the attention module in its own group above the lowest
    stage, and the check runs end to end."""
    from explainbench.methods.attention_net import AttentionNet

    torch.manual_seed(0)
    net = build_backbone("small_cnn", num_classes=2, widths=(8, 16, 16), dropout=0.0)
    model = AttentionNet(net, attention={"kind": "sharable", "stage": "early"}).eval()
    groups = layer_groups(model)
    assert [g for g, _ in groups] == ["head", "later1", "later0", "rest", "first"]
    assert all(n.startswith("backbone.extractor.attention") for n in dict(groups)["rest"])
    owners = [n for _, names in groups for n in names]
    assert len(owners) == len(set(owners))
    grouped = {f"{m}.{p}" for m in owners for p, _ in dict(model.named_modules())[m].named_parameters(recurse=False)}  # fmt: skip
    assert grouped == {n for n, _ in model.named_parameters()}
    x, _ = _squares(2, 3)
    metric = _check(model, GradCAM(), x)
    assert set(metric.compute()) >= {"rand_spearman", "rand_spearman@rest"}


def test_relevant_features_keep_their_fit_on_the_randomised_copies(trained, tmp_path):
    """Relevant features' W is fitted on the trained model: the randomised copies pass its fit
    check as that model (and back-project the same filters through random weights), while a
    different model is still refused."""
    from explainbench.explainers.relevant_features import RelevantFeatures
    from tests.relevant_features.fitting import fit_on_images

    x, _ = _squares(8, 21)
    explainer = RelevantFeatures(path=str(fit_on_images(trained, x, tmp_path / "rf.pt")))
    out = _values(_check(trained, explainer, x[:3]))
    assert -1.0 <= out["rand_spearman"] < 0.9 and "rand_spearman@stage1" in out
    with pytest.raises(ValueError, match="another checkpoint"):
        explainer(_tiny(seed=1), x[:1])

"""Filter-wise responses of a hand-built network, and the relevant_features explainer's contract
and bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from explainbench.backbones.base import Backbone
from explainbench.explainers.relevant_features import RelevantFeatures
from explainbench.relevant_features.responses import (
    FilterResponses,
    layer_responses,
    select_layers,
)
from explainbench.relevant_features.store import model_fingerprint, save_features

# x = [[1, −2], [2, 0]] through conv weights (1, −2) → ReLU: channel 0 = (1, 0, 2, 0), L2 = √5;
# channel 1 = relu(−2x) = (0, 4, 0, 0), L2 = 4.
X = torch.tensor([[[[1.0, -2.0], [2.0, 0.0]]]])
CONV = [math.sqrt(5) / (math.sqrt(5) + 4), 4 / (math.sqrt(5) + 4)]
# FC unit 0: sum of the 8 rectified values − 1 = 6; unit 1: 0.5 · (channel 1) = 2 → (6, 2) / 8
FC = [0.75, 0.25]


def tiny_net() -> Backbone:
    conv = nn.Conv2d(1, 2, 1, bias=False)
    bn = nn.BatchNorm2d(2, eps=0.0)  # eval mode, fresh statistics: the identity
    fc = nn.Linear(8, 2)
    head = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1))
        fc.weight.copy_(torch.stack([torch.ones(8), torch.tensor([0.0] * 4 + [0.5] * 4)]))
        fc.bias.copy_(torch.tensor([-1.0, 0.0]))
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.bias.zero_()
    extractor = nn.Sequential(conv, bn, nn.ReLU())
    classifier = nn.Sequential(nn.Flatten(), fc, nn.ReLU(), head)
    return Backbone(extractor, classifier, 2, 1, 2).eval()


def test_responses_by_hand():
    model = tiny_net()
    layers = select_layers(model, "all", X)
    # the class layer (classifier.3) is left out; responses read after BN + ReLU
    assert [(la.name, la.read_at, la.kind, la.channels) for la in layers] == [
        ("extractor.0", "extractor.2", "conv", 2),
        ("classifier.1", "classifier.2", "fc", 2),
    ]
    responses = FilterResponses(layers)
    with torch.no_grad(), responses.capture(model):
        model(X)
    torch.testing.assert_close(responses.vector(), torch.tensor([CONV + FC]))
    assert responses.index == [("extractor.0", 0), ("extractor.0", 1), ("classifier.1", 0),
                               ("classifier.1", 1)]  # fmt: skip
    assert [la.name for la in select_layers(model, "only_conv", X)] == ["extractor.0"]
    assert [la.name for la in select_layers(model, "classifier.1", X)] == ["classifier.1"]


def test_fc_responses_are_absolute_values_and_l1_normalised():
    torch.testing.assert_close(
        layer_responses(torch.tensor([[-3.0, 1.0]])), torch.tensor([[0.75, 0.25]])
    )
    # conv: per-channel L2 over space, then L1 over channels
    out = torch.tensor([[[[3.0, 4.0]], [[0.0, -5.0]]]])  # L2 norms 5 and 5
    torch.testing.assert_close(layer_responses(out), torch.tensor([[0.5, 0.5]]))


@pytest.mark.parametrize("selection", ["nope", ["extractor.0", "classifier.3"], []])
def test_selection_matching_nothing_lists_the_layers(selection):
    with pytest.raises(ValueError, match=r"extractor\.0 \(conv\), classifier\.1 \(fc\)"):
        select_layers(tiny_net(), selection, X)


def test_only_conv_without_conv_layers_is_an_error():
    mlp = Backbone(
        nn.Identity(), nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Linear(3, 2)), 1, 1, 2
    )
    with pytest.raises(ValueError, match="'only_conv' matches no layer.*classifier.1 \\(fc\\)"):
        select_layers(mlp, "only_conv", X)


def write_features(path, model, W, **changes):
    fields = dict(
        W=W,
        index=[["extractor.0", 0], ["extractor.0", 1], ["classifier.1", 0], ["classifier.1", 1]],
        layers=["extractor.0", "classifier.1"],
        read_at=["extractor.2", "classifier.2"],
        kinds=["conv", "fc"],
        selection="all",
        mu=10.0,
        num_classes=2,
        checkpoint="/runs/a/checkpoints/last.ckpt",
        fingerprint=model_fingerprint(model),
    )
    fields.update(changes)
    save_features(path, **fields)
    return path


def test_explainer_contract_and_top_k(tmp_path):
    model = tiny_net()
    # class 0: r = (0, 4/(√5+4), 0.5 · 0.75, −0.25) → top-3 = conv filter 1, FC unit 0, none
    W = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.0], [-1.0, 0.0]])
    path = write_features(tmp_path / "rf.pt", model, W)
    explanation = RelevantFeatures(path=str(path), top_k=3)(model, X.repeat(2, 1, 1, 1), 0)
    assert explanation.saliency.shape == (2, 1, 2, 2)
    assert 0 <= explanation.saliency.min() and explanation.saliency.max() <= 1
    assert explanation.extras["filter_names"][0] == ["extractor.0:1", "classifier.1:0", ""]
    torch.testing.assert_close(
        explanation.extras["relevance"][0], torch.tensor([CONV[1], 0.5 * FC[0], 0.0])
    )
    maps = explanation.extras["filter_maps"]
    assert maps.shape == (2, 3, 2, 2) and (maps[:, 2] == 0).all()
    # conv filter 1 (−2x, rectified) only fires at pixel (0, 1): its back-projection is there
    assert maps[0, 0].argmax() == 1 and maps[0, 0].max() == 1
    torch.testing.assert_close(explanation.saliency[:, 0], maps.amax(dim=1))
    assert explanation.backward_passes == 3
    assert explanation.extras["gallery_text"][0] == "#1 extractor.0:1 #2 classifier.1:0"


def test_explainer_bad_inputs(tmp_path):
    model = tiny_net()
    W = torch.ones(4, 2)
    with pytest.raises(
        FileNotFoundError, match="fit them first with `python scripts/fit_relevant_features.py"
    ):
        RelevantFeatures(path=str(tmp_path / "missing.pt"))(model, X)
    with pytest.raises(ValueError, match="not loaded from one"):
        RelevantFeatures()(model, X)  # path=auto needs a checkpoint
    model.checkpoint_path = str(tmp_path / "b" / "last.ckpt")
    (tmp_path / "b").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--ckpt .*b/last\.ckpt"):
        RelevantFeatures()(model, X)
    other = write_features(tmp_path / "b" / "relevant_features.pt", model, W, fingerprint="0" * 16)
    with pytest.raises(
        ValueError, match=r"another checkpoint \(/runs/a/checkpoints/last.ckpt.*b/last\.ckpt"
    ):
        RelevantFeatures()(model, X)
    write_features(other, model, W, num_classes=5)
    with pytest.raises(ValueError, match=r"fitted for 5 classes .* has 2"):
        RelevantFeatures()(model, X)
    write_features(other, model, W, mu=0.0)
    with pytest.raises(ValueError, match="mu must be > 0"):
        RelevantFeatures()(model, X)
    write_features(other, model, W)
    assert RelevantFeatures()(model, X).saliency.shape == (1, 1, 2, 2)  # the auto path works
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        RelevantFeatures(top_k=0)

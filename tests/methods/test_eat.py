"""EAT: heads, loss terms by hand, EAR against finite differences, sentences, clear errors."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from explainbench.backbones import build_backbone
from explainbench.data.base import ExplainDataModule
from explainbench.data.info import DataInfo
from explainbench.explainers.gradcam import GradCAM
from explainbench.explainers.method import MethodExplainer
from explainbench.methods.build import build_method
from explainbench.methods.eat import EAT
from explainbench.methods.eat_heads import conv_heads
from explainbench.methods.eat_text import (
    check_template,
    join_words,
    readable_attribute,
    render_sentence,
)

ATTRIBUTES = [
    "centre: red",
    "centre: blue",
    "petals: white",
    "leaves: green",
    "has_bill_shape::hooked",
]
CLASSES = ["red flower", "blue flower", "green thing"]
INFO = DataInfo(num_classes=len(CLASSES), class_names=CLASSES, attribute_names=ATTRIBUTES)


def make_eat(dtype=torch.float32, **kwargs) -> EAT:
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", num_classes=len(CLASSES), widths=(4, 8))
    kwargs = {
        "category_width": 4,
        "attribute_width": 2,
        "embedding_dim": 3,
        "integrated_width": 5,
        "template": "This flower has {attributes}, so it is {class_name}.",
        **kwargs,
    }
    model = EAT(backbone, INFO, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs)
    return model.to(dtype).eval()


def batch(n: int = 4, dtype=torch.float32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(n, 3, 16, 16, generator=gen, dtype=dtype),
        "label": torch.arange(n) % len(CLASSES),
        "attributes": torch.tensor(
            [[1, 0, 1, 1, 0.7], [0, 1, 1, 0, 0.2], [0, 0, 1, 1, 0.5], [1, 0, 0, 1, 0.0]],
            dtype=dtype,
        )[:n],
    }


# -- heads -----------------------------------------------------------------------------------
def test_grouped_attribute_heads_equal_independent_heads():
    """One grouped stack of 3 heads computes exactly what 3 separate heads compute."""
    torch.manual_seed(0)
    separate = [conv_heads(6, 1, 1, width=2, depth=3).eval() for _ in range(3)]
    for head in separate:  # non-trivial BN statistics
        for m in head.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    grouped = conv_heads(6, 3, 1, width=2, depth=3).eval()
    states = [h.state_dict() for h in separate]
    grouped.load_state_dict(
        {
            k: v if k.endswith("num_batches_tracked") else torch.cat([s[k] for s in states])
            for k, v in grouped.state_dict().items()
        }
    )
    a = torch.randn(2, 6, 5, 5)
    expected = torch.cat([h(a) for h in separate], dim=1)
    torch.testing.assert_close(grouped(a), expected)


def test_head_depth_counts_conv_layers_and_rejects_bad_sizes():
    head = conv_heads(8, 1, 4, width=16, depth=4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in head) == 4
    assert head(torch.randn(2, 8, 6, 6)).shape == (2, 4)
    with pytest.raises(ValueError, match="depth >= 1"):
        conv_heads(8, 1, 4, width=16, depth=0)
    with pytest.raises(ValueError, match="odd"):
        conv_heads(8, 1, 4, width=16, depth=2, kernel_size=2)


def test_output_is_lambda_cp_plus_eta_ci_and_head_is_the_final_prediction():
    model = make_eat(lam=0.7, eta=1.3)
    a = model.features(batch()["image"])
    out = model.outputs(a)
    ci = model.integrated(torch.cat([out.attribute_embedding, out.category_embedding], dim=1))
    torch.testing.assert_close(out.logits, 0.7 * out.category + 1.3 * ci)
    torch.testing.assert_close(model.head(a), out.logits)
    assert out.attribute_embedding.shape == (4, len(ATTRIBUTES), 3)
    assert out.category_embedding.shape == (4, 1, 3)
    # E_a[i] = σ(a_i)·1 + b_i
    torch.testing.assert_close(
        out.attribute_embedding,
        torch.sigmoid(out.attributes)[..., None] + model.attribute_embedding.bias,
    )


# -- loss ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["binary", "soft"])
def test_loss_terms_by_hand(mode):
    model = make_eat(attribute_weight=2.0, attribute_targets=mode)
    data = batch()
    logits, terms = model.loss(data)
    assert set(terms) == {"ce", "attr"}
    with torch.no_grad():
        out = model.outputs(model.features(data["image"]))
    # CE(y, c) = -log softmax(c)_y, batch mean
    ce = -(out.logits.log_softmax(1).gather(1, data["label"][:, None])).mean()
    # binary: 0.7 and 0.5 count as present, 0.2 as absent; soft: the values themselves
    t = data["attributes"] if mode == "soft" else (data["attributes"] >= 0.5).float()
    p = torch.sigmoid(out.attributes)
    bce = -(t * p.log() + (1 - t) * (1 - p).log())  # [B, N_a]
    attr = bce.sum(1).div(len(ATTRIBUTES)).mean()  # (1/N_a) Σ_i CE(A_i, a_i), batch mean
    assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert terms["attr"].item() == pytest.approx(2.0 * attr.item(), rel=1e-5)
    torch.testing.assert_close(logits, out.logits)


def test_loss_reaches_every_part():
    model = make_eat().train()
    _, terms = model.loss(batch())
    sum(terms.values()).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, dead


def test_bad_batches_are_clear_errors():
    model = make_eat()
    data = batch()
    with pytest.raises(ValueError, match="predicts 5 per image"):
        model.loss({**data, "attributes": data["attributes"][:, :3]})
    with pytest.raises(ValueError, match="no 'attributes'") as err:
        model.loss({"image": data["image"], "label": data["label"]})
    # a generic message: no list of dataset names to keep in step with conf/data
    assert "annotations include 'attributes'" in str(err.value) and "cub" not in str(err.value)


# -- Embedding Attention Reasoning -----------------------------------------------------------
def test_ear_scores_equal_finite_differences():
    """s_i = Σ_j ∂c_y/∂E_a[i,j] is the derivative of c_y along row i's all-ones direction."""
    model = make_eat(torch.float64, lam=0.8, eta=1.2)
    x = batch(dtype=torch.float64)["image"]
    target = torch.tensor([2, 0, 1, 2])
    scores, got_target, probs = model.attribute_scores(x, target)
    assert torch.equal(got_target, target) and scores.shape == (4, len(ATTRIBUTES))
    with torch.no_grad():
        out = model.outputs(model.features(x))
        eps = 1e-6
        fd = torch.zeros_like(scores)
        for i in range(len(ATTRIBUTES)):
            step = torch.zeros_like(out.attribute_embedding)
            step[:, i, :] = eps
            up = model.integrate(
                out.category, out.attribute_embedding + step, out.category_embedding
            )
            down = model.integrate(
                out.category, out.attribute_embedding - step, out.category_embedding
            )
            fd[:, i] = (up - down).gather(1, target[:, None]).squeeze(1) / (2 * eps)
    torch.testing.assert_close(scores, fd, rtol=1e-6, atol=1e-9)
    assert scores.abs().max() > 1e-4  # not trivially zero
    torch.testing.assert_close(probs, torch.sigmoid(out.attributes))


def test_ear_score_is_the_derivative_of_c_y_by_the_attribute_prediction():
    """With E_a[i] = a_i·1 + b_i, Σ_j W_ij = ∂c_y/∂a_i: finite differences in a_i agree."""
    model = make_eat(torch.float64)
    x = batch(dtype=torch.float64)["image"]
    scores, target, _ = model.attribute_scores(x)
    with torch.no_grad():
        out = model.outputs(model.features(x))
        probs = torch.sigmoid(out.attributes)

        def c_y(p):
            return (
                model.integrate(out.category, model.attribute_embedding(p), out.category_embedding)
                .gather(1, target[:, None])
                .squeeze(1)
            )

        eps = 1e-6
        for i in range(len(ATTRIBUTES)):
            step = torch.zeros_like(probs)
            step[:, i] = eps
            torch.testing.assert_close(
                scores[:, i],
                (c_y(probs + step) - c_y(probs - step)) / (2 * eps),
                rtol=1e-6,
                atol=1e-9,
            )


def test_default_target_is_the_prediction_and_works_under_inference_mode():
    model = make_eat()
    x = batch()["image"]
    with torch.inference_mode():
        scores, target, _ = model.attribute_scores(x)
        explanation = model.explain_attributes(x)
    assert torch.equal(target, model(x).argmax(1))
    assert torch.equal(explanation.target, target)
    torch.testing.assert_close(explanation.scores, scores)


def test_sentence_names_the_top3_in_order(monkeypatch):
    model = make_eat(present_only=False)
    x = batch(2)["image"]
    scores = torch.tensor([[0.1, 0.9, -2.0, 0.5, 0.7], [3.0, -1.0, 2.0, 2.5, 0.0]])
    target = torch.tensor([1, 0])
    monkeypatch.setattr(
        model, "attribute_scores", lambda x, t=None: (scores, target, torch.full_like(scores, 0.5))
    )
    explanation = model.explain_attributes(x)
    assert explanation.top.tolist() == [[1, 4, 3], [0, 3, 2]]
    assert explanation.names[0] == ["centre: blue", "has_bill_shape::hooked", "leaves: green"]
    assert explanation.sentences == [
        "This flower has blue centre, hooked bill shape and green leaves, so it is blue flower.",
        "This flower has red centre, green leaves and white petals, so it is red flower.",
    ]
    assert [name for name, _, _ in explanation.ranking(1)] == [
        "centre: red",
        "leaves: green",
        "petals: white",
    ]
    assert explanation.ranking(1)[0][1] == pytest.approx(3.0)


def test_present_attributes_come_first_in_score_order():
    model = make_eat()
    scores = torch.tensor([[0.1, 0.9, -2.0, 0.5, 0.7], [3.0, -1.0, 2.0, 2.5, 0.0]])
    probs = torch.tensor([[0.9, 0.2, 0.6, 0.1, 0.5], [0.1, 0.8, 0.3, 0.2, 0.4]])
    # image 0: present 4 (0.7), 0 (0.1), 2 (-2.0); image 1: only 1 present, then the best others
    assert model.top_attributes(scores, probs, 3).tolist() == [[4, 0, 2], [1, 0, 3]]
    assert model.top_attributes(scores, probs, 3, present_only=False).tolist() == [
        [1, 4, 3],
        [0, 3, 2],
    ]


def test_explanations_follow_the_explainer_contract():
    model = make_eat()
    x = batch()["image"]
    target = torch.tensor([0, 1, 2, 0])
    explanation = MethodExplainer()(model, x, target)  # checks shape, range and target
    reference = GradCAM()(model, x, target)  # the category map: Grad-CAM through the final c
    torch.testing.assert_close(explanation.saliency, reference.saliency)
    detailed = model.explain_attributes(x, target, k=2)
    assert detailed.attribute_maps.shape == (4, 2, 16, 16)
    assert 0 <= detailed.attribute_maps.min() and detailed.attribute_maps.max() <= 1
    torch.testing.assert_close(detailed.category_map, reference.saliency)
    texts, maps = model.gallery_extras(x)
    assert len(texts) == 4 and list(maps) == ["attr 1", "attr 2", "attr 3"]
    assert maps["attr 1"].shape == (4, 1, 16, 16)


# -- text -------------------------------------------------------------------------------------
def test_text_helpers():
    assert readable_attribute("has_throat_color::yellow") == "yellow throat color"
    assert readable_attribute("centre: red") == "red centre"
    assert readable_attribute("natural_light") == "natural light"
    assert join_words(["a"]) == "a" and join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"]) == "a, b and c"
    assert render_sentence("{class_name}: {attributes}", ["x_y", "z"], "C") == "C: x y and z"


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("This bird has {attribute}, so it is {class_name}.", r"unknown field \{attribute\}"),
        ("This is {}.", "positional field"),
        ("This is {class_name", "not a format string"),
    ],
)
def test_bad_template_fails_at_construction(template, needle):
    assert check_template("{class_name} has {attributes}")
    with pytest.raises(ValueError, match=needle):
        make_eat(template=template)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lam": 0.4}, r"lam \(λ\) must be in \[0.5, 1.5\]"),
        ({"eta": 1.6}, r"eta \(η\) must be in \[0.5, 1.5\]"),
        ({"num_attributes": 312}, "num_attributes=312 does not match the 5 attributes"),
        ({"attribute_targets": "fuzzy"}, "'binary' or 'soft'"),
        ({"top_k": 6}, r"top_k must be in \[1, 5\]"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        make_eat(**kwargs)


def test_category_depth_zero_keeps_the_backbone_head():
    torch.manual_seed(0)
    backbone = build_backbone("small_cnn", num_classes=3, widths=(4, 8))
    own_head = backbone.classifier
    model = EAT(backbone, DataInfo(num_classes=3, attribute_names=ATTRIBUTES), category_depth=0)
    assert model.category_head is own_head
    # no parameter is left in the backbone that nothing uses
    assert not list(model.backbone.classifier.parameters())


# -- wiring with the data ----------------------------------------------------------------------
def method_cfg(**overrides):
    cfg = OmegaConf.load(
        Path(__file__).parents[2] / "explainbench" / "conf" / "method" / "eat.yaml"
    )
    cfg.scheduler = None
    return OmegaConf.create(
        {
            "method": OmegaConf.merge(cfg, overrides),
            "data": {"name": "x"},
            "backbone": {
                "_target_": "explainbench.backbones.build_backbone",
                "name": "small_cnn",
                "widths": [4, 8],
            },
        }
    )


class ToyData(ExplainDataModule):
    """Data facts only (no samples): what build_method reads."""

    def __init__(self, attribute_names=ATTRIBUTES) -> None:
        super().__init__()
        self.num_classes, self.class_names, self.attribute_names = 3, CLASSES, attribute_names


def test_build_method_passes_and_stores_the_data_info():
    model = build_method(method_cfg(), ToyData())
    assert model.attribute_names == ATTRIBUTES and model.class_names == CLASSES
    assert model.data_info == ToyData().info()
    # stored twice, as plain dicts: with the hyper-parameters and in the checkpoint's build_config
    plain = ToyData().info().to_dict()
    assert model.hparams["data_info"] == model.build_config["data_info"] == plain
    # every method gets the data's facts, whether it uses them or not
    classifier_cfg = method_cfg()
    classifier_cfg.method = {"_target_": "explainbench.methods.Classifier"}
    assert build_method(classifier_cfg, ToyData()).data_info.attribute_names == ATTRIBUTES


def test_eat_on_data_without_attributes_is_a_clear_error():
    """The message names what is missing, not a list of datasets that would go stale."""
    needle = "EAT needs the data's attribute names, but the data has none"
    with pytest.raises(ValueError, match=needle) as err:
        build_method(method_cfg(), ToyData(attribute_names=None))
    assert "annotations include 'attributes'" in str(err.value) and "cub" not in str(err.value)

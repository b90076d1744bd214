"""SentenceAccuracy: hand values on a model with fixed sentences, agreement with a real EAT's
``explain_attributes``, models without sentences, and the split/merged state."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from explainbench.backbones import build_backbone
from explainbench.data.info import DataInfo
from explainbench.explainers.base import Explanation
from explainbench.methods.eat import EAT
from explainbench.metrics.base import NoSamplesError
from explainbench.metrics.sentence import SentenceAccuracy, class_attribute_index

ATTRIBUTES = ["centre: red", "centre: blue", "leaves: green", "petals: white"]
CLASSES = ["centre: red", "centre: blue"]


class FixedSentences(nn.Module):
    """Names the attributes of ``top`` (rows) for the images, in that order; ``scores`` put
    them first and ``top_attributes`` returns their first ``k``."""

    def __init__(self, top, class_names=CLASSES, top_k=2) -> None:
        super().__init__()
        self.top = torch.tensor(top)
        self.class_names, self.attribute_names, self.top_k = class_names, ATTRIBUTES, top_k

    def attribute_scores(self, x, target=None):
        n = x.shape[0]
        scores = torch.zeros(n, len(ATTRIBUTES))
        for i, row in enumerate(self.top[:n].tolist()):
            for rank, a in enumerate(row):
                scores[i, a] = 10.0 - rank
        target = torch.as_tensor(target) if target is not None else torch.zeros(n, dtype=torch.long)
        return scores, target, torch.ones(n, len(ATTRIBUTES))

    def top_attributes(self, scores, probs, k, present_only=None):
        return scores.argsort(dim=1, descending=True, stable=True)[:, :k]


def test_hand_values():
    # 4 images; sentences name (red, green), (blue, white), (blue, green), (green, white), k=2
    model = FixedSentences([[0, 2], [1, 3], [1, 2], [2, 3]])
    batch = {
        "image": torch.zeros(4, 3, 8, 8),
        "label": torch.tensor([0, 1, 1, 0]),
        "attributes": torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1.0]]),
    }
    explained = torch.tensor([0, 1, 0, 0])  # image 2 is misclassified (label 1, predicted 0)
    metric = SentenceAccuracy()
    metric.update_batch(model, batch, Explanation(torch.zeros(4, 1, 8, 8), explained))
    out = metric.compute()
    # precision: image 0 has red and green (2/2), image 1 blue not white (1/2), image 2 neither
    # blue nor green (0/2), image 3 green and white (2/2): (1 + 0.5 + 0 + 1) / 4
    assert out["sentence_precision"].item() == pytest.approx(0.625)
    # class attribute named, correct images only: image 0 (red: yes), image 1 (blue: yes),
    # image 3 (red: no); image 2 is wrong and left out, though it names its label's "centre: blue"
    assert out["sentence_class_attr"].item() == pytest.approx(2 / 3)
    k1 = SentenceAccuracy(k=1)
    k1.update_batch(model, batch, Explanation(torch.zeros(4, 1, 8, 8), explained))
    assert k1.compute()["sentence_precision"].item() == pytest.approx(3 / 4)  # 1, 1, 0, 1


def test_class_attribute_missing_for_some_class_logs_precision_only():
    model = FixedSentences([[0, 2]], class_names=["centre: red", "a bird"])
    assert class_attribute_index(model.class_names, ATTRIBUTES) is None
    batch = {"image": torch.zeros(1, 3, 8, 8), "label": torch.tensor([0]),
             "attributes": torch.tensor([[0, 0, 1, 0.0]])}  # fmt: skip
    metric = SentenceAccuracy()
    metric.update_batch(model, batch, Explanation(torch.zeros(1, 1, 8, 8), torch.tensor([0])))
    assert metric.compute() == {"sentence_precision": pytest.approx(0.5)}


def test_a_model_without_sentences_has_no_value():
    metric = SentenceAccuracy()
    batch = {"image": torch.zeros(1, 3, 8, 8), "label": torch.tensor([0]),
             "attributes": torch.zeros(1, 4)}  # fmt: skip
    metric.update_batch(nn.Conv2d(3, 1, 1), batch, Explanation(torch.zeros(1, 1, 8, 8), None))
    with pytest.raises(NoSamplesError, match="EAT checkpoints only"):
        metric.compute()
    with pytest.raises(KeyError, match="attributes"):
        metric.update_batch(nn.Conv2d(3, 1, 1), {"image": batch["image"]}, Explanation(None, None))
    with pytest.raises(ValueError, match="k must be"):
        SentenceAccuracy(k=0)


def test_agrees_with_eat_sentences_and_merges():
    torch.manual_seed(0)
    info = DataInfo(num_classes=2, class_names=CLASSES, attribute_names=ATTRIBUTES)
    backbone = build_backbone("small_cnn", num_classes=2, widths=(4, 8))
    eat = EAT(backbone, info, optimizer=partial(torch.optim.SGD, lr=0.1), top_k=2,
              category_width=4, attribute_width=2, embedding_dim=3, integrated_width=5).eval()  # fmt: skip
    g = torch.Generator().manual_seed(3)
    batch = {
        "image": torch.randn(6, 3, 16, 16, generator=g),
        "label": torch.tensor([0, 1, 1, 0, 1, 0]),
        "attributes": (torch.rand(6, 4, generator=g) > 0.5).float(),
    }
    expl = eat.explain_attributes(batch["image"])
    names = expl.top
    truth = batch["attributes"].gather(1, names).mean(1)
    ok = expl.target == batch["label"]
    wanted = torch.tensor([0, 1])[batch["label"]]
    hits = (names == wanted[:, None]).any(1) & ok
    explanation = Explanation(torch.zeros(6, 1, 16, 16), expl.target)
    whole = SentenceAccuracy()
    whole.update_batch(eat, batch, explanation)
    out = whole.compute()
    assert out["sentence_precision"].item() == pytest.approx(truth.mean().item())
    assert out["sentence_class_attr"].item() == pytest.approx(
        hits.sum().item() / max(ok.sum().item(), 1)
    )
    a, b = SentenceAccuracy(), SentenceAccuracy()
    for metric, sl in ((a, slice(0, 2)), (b, slice(2, None))):
        part = {k: v[sl] for k, v in batch.items()}
        metric.update_batch(eat, part, Explanation(explanation.saliency[sl], expl.target[sl]))
    a.merge_state(b)
    assert {k: v.item() for k, v in a.compute().items()} == pytest.approx(
        {k: v.item() for k, v in out.items()}
    )

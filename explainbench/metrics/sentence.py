"""How right are a model's textual explanations? (EAT's attribute sentences, Xu et al., JSTSP 2020)

EAT explains a prediction with the ``k`` attributes of the largest EAR contribution
``s_i = Σ_j ∂c_y/∂E_a[i,j]`` ("This bird is a Yellowthroat because it has a yellow throat, ...").
The paper shows such sentences but gives no number for them; this metric gives two (our choice):

* ``sentence_precision``: the share of the attributes a sentence names that the image really has
  (``batch["attributes"]``, per image), averaged over images — a sentence should only state
  what is there;
* ``sentence_class_attr``: where the data names one attribute per class that defines it (an
  attribute named exactly like the class: an8flower's "centre: red" classes), the share of the
  correctly classified images whose sentence names their class's attribute — does the sentence
  give the reason the class is what it is? (Wrong predictions are left out: for them the class
  attribute the sentence should name is not defined.) Not logged where no class has such an
  attribute (CUB, SUN).

It scores the model's own sentences (``model.attribute_scores`` / ``top_attributes``, EAT's
interface) for the class the explainer explained (``explanation.target``), so it applies to an
EAT checkpoint only; for any other model it records nothing and ``compute()`` says so (the
evaluator then leaves the cell empty with a warning).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainbench.explainers.base import Explanation
from explainbench.metrics.base import ExplanationMetric


def class_attribute_index(class_names, attribute_names) -> Tensor | None:
    """``[K]`` index of the attribute named like each class, or None unless every class has one."""
    if not class_names or not attribute_names:
        return None
    if any(c not in attribute_names for c in class_names):
        return None
    return torch.tensor([list(attribute_names).index(c) for c in class_names])


class SentenceAccuracy(ExplanationMetric):
    """Precision of the attributes in a model's sentences, and how often they name the class's
    defining attribute (see the module docstring).

    Args:
        k: attributes per sentence (None: the model's ``top_k``, what its sentences use).

    ``compute()`` → ``{"sentence_precision", "sentence_class_attr"}`` (the second only where the
    data defines class attributes by name).
    """

    name = "sentence"
    required_keys: tuple[str, ...] = ("attributes",)
    higher_is_better = True

    def __init__(self, k: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if k is not None and k < 1:
            raise ValueError(f"k must be >= 1 or None (the model's top_k), got {k}")
        self.k = k
        self.add_state("precision_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("class_attr_hits", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.has_class_attributes = False

    def update(
        self,
        named: Tensor,
        attributes: Tensor,
        label: Tensor,
        target: Tensor,
        wanted: Tensor | None,
    ) -> None:
        """``named [B,k]`` attribute indices of each sentence, ``attributes [B,A]`` 0/1 truth,
        ``label``/``target [B]`` true and explained class, ``wanted [K]`` class attributes."""
        present = attributes.float().gather(1, named) >= 0.5
        self._add("precision_sum", present.float().mean(1).sum())
        self._add("count", float(named.shape[0]))
        if wanted is not None:
            self.has_class_attributes = True
            ok = target == label
            hit = (named == wanted.to(named.device)[label][:, None]).any(1)
            self._add("class_attr_hits", (hit & ok).sum().float())
            self._add("correct", ok.sum().float())

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        if not (hasattr(model, "attribute_scores") and hasattr(model, "top_attributes")):
            return  # no sentences to score (compute() says so)
        scores, target, probs = model.attribute_scores(batch["image"], explanation.target)
        named = model.top_attributes(scores, probs, self.k or model.top_k)
        wanted = class_attribute_index(model.class_names, model.attribute_names)
        self.update(named, batch["attributes"], batch["label"], target, wanted)

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty("sentences (the model writes none: EAT checkpoints only)")
        out = {"sentence_precision": self.precision_sum / self.count}
        if self.has_class_attributes:
            out["sentence_class_attr"] = self.class_attr_hits / self.correct.clamp_min(1)
        return out

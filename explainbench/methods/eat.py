"""EAT: Explainable Attribute-based multi-Task learning.

Xu, Wang, Wang, Xu, Dai, Wu, "Where is the Model Looking At? Concentrate and Explain the Network
Attention", IEEE JSTSP 2020 (arXiv:2009.13862).

Predicting class attributes next to the class makes the shared features look at the object;
the attributes then explain the decision in words.

* Image features ``A = f_img(x)`` (the backbone's explanation layer).
* Category head ``c_p = g_c(A)`` and one attribute head per attribute, ``a_i = g_a^i(A)``,
  built alike (:func:`~.eat_heads.conv_heads`).
* Integrated classification: ``E = [E_a; E_p]`` embeds the attribute predictions
  (``N_a × D_e``) and ``c_p`` (``1 × D_e``); the 3-layer CNN ``g_i`` gives ``c_i = g_i(E)``, and
  the output is ``c = λ·c_p + η·c_i``.
* Loss: ``CE(y, c) + (1/N_a) Σ_i CE(A_i, a_i)`` — the attribute terms are binary
  cross-entropies against the class attribute vector ``A`` (0/1 or soft targets); logged as
  ``loss/ce`` and ``loss/attr``.
* Embedding Attention Reasoning (EAR): ``W = ∂c_y/∂E_a`` and ``s_i = Σ_j W_ij``; the top-k
  attributes by ``s_i`` (those predicted present first, by default) fill a sentence template
  (:mod:`.eat_text`). ``E_a[i] = a_i·1 + b_i`` makes ``s_i = ∂c_y/∂a_i`` (see
  :class:`~.eat_heads.AttributeEmbedding`).
* Visual grounding: Grad-CAM of ``c_y`` (``explain``) and of each top attribute's output.

``features``/``head`` follow the Backbone contract with ``head(A) = c``, so every post-hoc
explainer explains the final prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.info import DataInfo
from ..explainers.base import Explanation, resolve_target
from ..explainers.gradcam import GradCAM
from .base import ExplainableMethod, check_label_kind
from .eat_heads import (
    AttributeEmbedding,
    CategoryEmbedding,
    IntegratedClassifier,
    conv_heads,
)
from .eat_text import check_template, render_sentence

WEIGHT_RANGE = (0.5, 1.5)  # the paper's range for λ and η


class EATOutputs(NamedTuple):
    """Everything one pass through the heads gives (logits unless said otherwise)."""

    category: Tensor  # c_p [B,R]
    attributes: Tensor  # attribute logits [B,N_a]; a = σ(attributes)
    attribute_embedding: Tensor  # E_a [B,N_a,D_e]
    category_embedding: Tensor  # E_p [B,1,D_e]
    logits: Tensor  # c = λ·c_p + η·c_i [B,R]


@dataclass
class AttributeExplanation:
    """EAT's multi-modal explanation of a batch (see :meth:`EAT.explain_attributes`).

    Attributes:
        target: ``[B]`` the explained class.
        scores: ``[B,N_a]`` EAR contributions ``s_i`` to ``c_target``.
        top: ``[B,k]`` attribute indices, highest ``s_i`` first (see :meth:`EAT.top_attributes`).
        names: per image, the ``k`` attribute names in rank order.
        sentences: per image, the filled template.
        probabilities: ``[B,N_a]`` predicted attribute presence ``σ(a_i)``.
        category_map: ``[B,1,H,W]`` Grad-CAM of ``c_target``, in [0, 1].
        attribute_maps: ``[B,k,H,W]`` Grad-CAM of each top attribute's output, in [0, 1].
    """

    target: Tensor
    scores: Tensor
    top: Tensor
    names: list[list[str]]
    sentences: list[str]
    probabilities: Tensor
    category_map: Tensor
    attribute_maps: Tensor

    def ranking(self, i: int) -> list[tuple[str, float, float]]:
        """Image ``i``'s ``(attribute, s_i, σ(a_i))`` rows, highest contribution first (the
        attribute table)."""
        names = self.names[i]
        rows = self.top[i].tolist()
        return [
            (n, float(self.scores[i, r]), float(self.probabilities[i, r]))
            for n, r in zip(names, rows, strict=True)
        ]


class _AttributeOutputs(nn.Module):
    """EAT seen as a model whose "classes" are the attribute logits, so :class:`GradCAM`
    grounds attribute ``i`` exactly as it grounds a class."""

    def __init__(self, eat: EAT) -> None:
        super().__init__()
        self.eat = eat

    def features(self, x: Tensor) -> Tensor:
        return self.eat.features(x)

    def head(self, a: Tensor) -> Tensor:
        return self.eat.attribute_heads(a)


class EAT(ExplainableMethod):
    """EAT on any backbone (see the module docstring).

    Args:
        backbone: the image feature extractor ``f_img`` is its ``features``.
        data_info: the data's facts (:class:`~explainbench.data.info.DataInfo`, given by
            ``build_method`` and stored with the checkpoint): its ``attribute_names`` (their number
            is ``N_a``) and its ``class_names``, for sentences (None: class indices).
        num_attributes: optional explicit ``N_a``; must equal ``len(attribute_names)``.
        category_depth, category_width: ``g_c`` layers and channels; ``category_depth=0`` keeps
            the backbone's own head (e.g. a pretrained linear classifier) as ``g_c``.
        attribute_depth, attribute_width: the same for each ``g_a^i`` (width per attribute).
        kernel_size: conv kernel of the heads' hidden layers.
        embedding_dim: ``D_e``.
        integrated_width: channels of ``g_i``.
        lam, eta: ``λ`` and ``η`` in ``c = λ·c_p + η·c_i``, each in [0.5, 1.5].
        attribute_weight: factor of the attribute term (1 in the paper).
        attribute_targets: ``"binary"`` (targets >= 0.5 count as present) or ``"soft"`` (the
            data's values in [0, 1], e.g. CUB's continuous percentages).
        top_k: attributes in a textual explanation.
        present_only: rank the attributes the model predicts present (``σ(a_i) >= 0.5``) before
            the others, so a sentence "has" only what the image has (see :meth:`top_attributes`).
        template: sentence with ``{attributes}`` and ``{class_name}``.
        **kwargs: optimizer / scheduler, see :class:`ExplainableMethod`.
    """

    def __init__(
        self,
        backbone,
        data_info: DataInfo | Mapping | None = None,
        num_attributes: int | None = None,
        category_depth: int = 4,
        category_width: int = 64,
        attribute_depth: int = 4,
        attribute_width: int = 8,
        kernel_size: int = 3,
        embedding_dim: int = 32,
        integrated_width: int = 64,
        lam: float = 1.0,
        eta: float = 1.0,
        attribute_weight: float = 1.0,
        attribute_targets: Literal["binary", "soft"] = "binary",
        top_k: int = 3,
        present_only: bool = True,
        template: str = "This object has {attributes}, so it is {class_name}.",
        **kwargs,
    ) -> None:
        data_info = DataInfo.coerce(data_info, backbone.num_classes)
        check_label_kind(type(self), data_info)  # before the attribute checks: the first cause
        attribute_names = data_info.attribute_names or []
        class_names = data_info.class_names
        if not attribute_names:
            raise ValueError(
                "EAT needs the data's attribute names, but the data has none: use data whose "
                "annotations include 'attributes'."
            )
        if num_attributes is not None and int(num_attributes) != len(attribute_names):
            raise ValueError(
                f"method.num_attributes={num_attributes} does not match the {len(attribute_names)} "
                "attributes of the data. Leave method.num_attributes unset (it follows the data)."
            )
        for name, value in (("lam (λ)", lam), ("eta (η)", eta)):
            if not WEIGHT_RANGE[0] <= value <= WEIGHT_RANGE[1]:
                raise ValueError(
                    f"EAT {name} must be in [{WEIGHT_RANGE[0]}, {WEIGHT_RANGE[1]}], got {value}"
                )
        if attribute_targets not in ("binary", "soft"):
            raise ValueError(
                f"attribute_targets must be 'binary' or 'soft', got '{attribute_targets}'"
            )
        if not 1 <= top_k <= len(attribute_names):
            raise ValueError(
                f"top_k must be in [1, {len(attribute_names)}] (the number of attributes), got {top_k}"
            )
        super().__init__(backbone, data_info, **kwargs)
        self.template = check_template(template)
        self.attribute_names = attribute_names
        self.class_names = class_names
        self.num_attributes = len(attribute_names)
        self.lam, self.eta = float(lam), float(eta)
        self.attribute_weight = attribute_weight
        self.attribute_targets = attribute_targets
        self.top_k = top_k
        self.present_only = present_only

        channels, classes = backbone.feature_channels, backbone.num_classes
        if category_depth == 0:
            self.category_head = backbone.classifier
        else:
            self.category_head = conv_heads(
                channels, 1, classes, category_width, category_depth, kernel_size
            )
        # the backbone's own classifier is either g_c or unused: drop it from the backbone so the
        # optimiser holds no dead weights and DDP finds no parameters without gradients
        backbone.classifier = nn.Identity()
        self.attribute_heads = conv_heads(
            channels, self.num_attributes, 1, attribute_width, attribute_depth, kernel_size
        )
        self.attribute_embedding = AttributeEmbedding(self.num_attributes, embedding_dim)
        self.category_embedding = CategoryEmbedding(classes, embedding_dim)
        self.integrated = IntegratedClassifier(
            self.num_attributes + 1, embedding_dim, classes, integrated_width
        )

    # -- the network -------------------------------------------------------------------------
    def outputs(self, a: Tensor) -> EATOutputs:
        """All head outputs for features ``A`` (one pass)."""
        cp = self.category_head(a)
        attributes = self.attribute_heads(a)
        e_a = self.attribute_embedding(torch.sigmoid(attributes))
        e_p = self.category_embedding(cp)
        return EATOutputs(cp, attributes, e_a, e_p, self.integrate(cp, e_a, e_p))

    def integrate(self, cp: Tensor, e_a: Tensor, e_p: Tensor) -> Tensor:
        """``c = λ·c_p + η·g_i([E_a; E_p])``."""
        return self.lam * cp + self.eta * self.integrated(torch.cat([e_a, e_p], dim=1))

    def head(self, a: Tensor) -> Tensor:
        return self.outputs(a).logits

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    # -- training ----------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        targets = self._attribute_targets(batch)
        out = self.outputs(self.features(batch["image"]))
        ce = F.cross_entropy(out.logits, batch["label"])
        # mean over images and attributes = (1/N_a) Σ_i CE(A_i, a_i), batch-averaged
        attr = F.binary_cross_entropy_with_logits(out.attributes, targets)
        return out.logits, {"ce": ce, "attr": self.attribute_weight * attr}

    def _attribute_targets(self, batch: dict[str, Tensor]) -> Tensor:
        targets = batch.get("attributes")
        if targets is None:
            raise ValueError(
                f"EAT trains on its {self.num_attributes} class attributes, but the batch has no "
                "'attributes': use data whose annotations include 'attributes'."
            )
        if targets.ndim != 2 or targets.shape[1] != self.num_attributes:
            raise ValueError(
                f"the batch has attributes of shape {tuple(targets.shape)}, but the model "
                f"predicts {self.num_attributes} per image: train and evaluate on the same data."
            )
        targets = targets.float()
        return (
            (targets >= 0.5).float() if self.attribute_targets == "binary" else targets.clamp(0, 1)
        )

    # -- Embedding Attention Reasoning -------------------------------------------------------
    def attribute_scores(
        self, x: Tensor, target: Tensor | int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """EAR: ``(s [B,N_a], target [B], σ(a) [B,N_a])`` with ``s_i = Σ_j ∂c_target/∂E_a[i,j]``.

        The gradient is taken with respect to ``E_a`` with ``c_p`` and ``E_p`` held fixed (they do
        not depend on ``E_a``); one forward and one backward through ``g_i``. Works under an outer
        ``no_grad``/``inference_mode`` (validation loops, galleries).
        """
        with torch.inference_mode():
            a = self.features(x)
        with torch.inference_mode(False), torch.enable_grad():
            with torch.no_grad():
                out = self.outputs(a.clone())
            e_a = out.attribute_embedding.requires_grad_(True)
            c = self.integrate(out.category, e_a, out.category_embedding)
            target = resolve_target(c.detach(), target)
            (w,) = torch.autograd.grad(c.gather(1, target[:, None]).sum(), e_a)
        return w.sum(dim=-1), target, torch.sigmoid(out.attributes)

    def top_attributes(
        self, scores: Tensor, probs: Tensor, k: int, present_only: bool | None = None
    ) -> Tensor:
        """``[B,k]`` attribute indices by descending ``s_i``; with ``present_only`` (default: the
        model's setting) those predicted present come first, in ``s_i`` order.

        Why: ``s_i`` is a local derivative, so an attribute the image lacks can score high (the
        class score would move if it appeared); the sentence "This bird has ..." must still only
        name attributes it has. Images with fewer than ``k`` present attributes are filled up
        with the best-scoring others.
        """
        present_only = self.present_only if present_only is None else present_only
        order = scores.argsort(dim=1, descending=True, stable=True)
        if present_only:
            absent = (probs.gather(1, order) < 0.5).int()
            order = order.gather(1, absent.argsort(dim=1, stable=True))  # present first, order kept
        return order[:, :k]

    def sentence(self, attribute_indices: Sequence[int], target: int) -> str:
        names = [self.attribute_names[i] for i in attribute_indices]
        class_name = self.class_names[target] if self.class_names else str(target)
        return render_sentence(self.template, names, class_name)

    # -- explanations ------------------------------------------------------------------------
    def explain(self, x: Tensor, target: Tensor | int | None = None) -> Explanation:
        """The category attention map: Grad-CAM of the final ``c_target`` on ``A``."""
        return GradCAM()(self, x, target)

    def explain_attributes(
        self, x: Tensor, target: Tensor | int | None = None, k: int | None = None
    ) -> AttributeExplanation:
        """Ranked attributes (EAR), the sentence and Grad-CAM maps of class and top attributes."""
        k = self.top_k if k is None else k
        if not 1 <= k <= self.num_attributes:
            raise ValueError(f"k must be in [1, {self.num_attributes}], got {k}")
        scores, target, probs = self.attribute_scores(x, target)
        with torch.inference_mode(False):  # an index tensor Grad-CAM may save for backward
            top = self.top_attributes(scores, probs, k)
        category = self.explain(x, target).saliency
        view = _AttributeOutputs(self)
        maps = torch.cat([GradCAM()(view, x, top[:, j]).saliency for j in range(k)], dim=1)
        names = [[self.attribute_names[i] for i in row] for row in top.tolist()]
        sentences = [
            self.sentence(row, t) for row, t in zip(top.tolist(), target.tolist(), strict=True)
        ]
        return AttributeExplanation(target, scores, top, names, sentences, probs, category, maps)

    def gallery_extras(self, x: Tensor) -> tuple[list[str], dict[str, Tensor]]:
        """Each image's sentence and the maps of its top attributes (columns ``attr 1..k``);
        see :meth:`ExplainableMethod.gallery_extras`."""
        explanation = self.explain_attributes(x)
        maps = {
            f"attr {j + 1}": explanation.attribute_maps[:, j : j + 1]
            for j in range(explanation.top.shape[1])
        }
        return explanation.sentences, maps

"""Explanation by relevant features: Oramas, Wang & Tuytelaars, "Visual Explanation by
Interpretation: Improving Visual Feedback Capabilities of Deep Neural Networks", ICLR 2019
(arXiv:1712.06302), Sec. 3.2.

The relevant (layer, filter) pairs and their per-class weights ``W`` are fitted once on the
training split (``scripts/fit_relevant_features.py``, the μ-Lasso of
:mod:`explainbench.relevant_features`). At test time the image's filter-wise response ``x`` and
the predicted class ``ĵ`` give ``r = w_ĵ ∘ x``; the ``top_k`` pairs with the largest positive
``r`` are back-projected to the input with "the Deconvnet-based method with guided
backpropagation" — one backward pass whose ReLUs use the guided rule (deconvnet's rectified
signal, masked by the forward activations), with the stride-1 resampling fix of the same
paper. The paper back-propagates "the activations from filter q at layer p": the whole
activation map of that filter is the backward signal (every other filter zero). Each
filter's map (input-gradient channels reduced like ``guided_backprop``) is min-max
normalised; the explanation is their pixel-wise maximum. The paper shows the per-filter maps
side by side (its Fig. 1/6); how to merge them into one map for a benchmark is our choice
(the pixel-wise max keeps each filter's strongest evidence).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from ..metrics.randomisation import trained_model
from ..relevant_features.responses import FilterResponses, Layer
from ..relevant_features.store import check_features_match, default_path, load_features
from .backprop import REDUCTIONS, backprop_rules, reduce_channels
from .base import (
    Explanation,
    check_explainable,
    normalize_per_image,
    resolve_target,
    to_model_device,
)


class RelevantFeatures:
    """Heatmaps of the top-k relevant filters of the predicted class.

    Args:
        path: the fitted ``relevant_features.pt``; ``"auto"``: the one in the folder of the
            checkpoint the model was loaded from (``load_method`` records it, so evaluate.py's
            ``ckpt_path`` decides).
        top_k: filters per image (paper's figures: 3); only those with positive ``w_ĵ ∘ x``.
        stride_fix: the stride-1 resampling of strided convolutions and pooling (the paper's
            heatmaps use it).
        reduction: input-gradient channels → one map, as ``guided_backprop`` (``max_abs``).
        functional: also apply the guided rule to functional ReLUs.

    One forward and ``top_k`` backward passes per batch. ``extras``: ``filter_maps``
    ``[B,k,H,W]`` (zeros where an image has fewer than k positive pairs), ``filter_names``
    (per image, ``"layer:filter"`` or ``""``), ``relevance`` ``[B,k]`` (``r`` of each), and
    ``gallery_text`` / ``gallery_maps`` for the heatmap gallery.
    """

    def __init__(
        self,
        path: str | os.PathLike = "auto",
        top_k: int = 3,
        stride_fix: bool = True,
        reduction: str = "max_abs",
        functional: bool = True,
    ) -> None:
        if int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.path = str(path)
        self.top_k = int(top_k)
        self.stride_fix = stride_fix
        self.reduction = reduction
        self.functional = functional
        self._cache: dict = {}

    def _resolve_path(self, model: nn.Module) -> str:
        if self.path != "auto":
            return self.path
        ckpt = getattr(model, "checkpoint_path", None)
        if ckpt is None:
            raise ValueError(
                "relevant_features with path=auto reads relevant_features.pt next to the "
                "checkpoint, but this model was not loaded from one (evaluate.py ckpt_path=...); "
                "set explainers.relevant_features.path=<file>."
            )
        return str(default_path(ckpt))

    def load(self, model: nn.Module) -> tuple[Tensor, list[Layer], list[tuple[str, int]]]:
        """``W`` on the model's device, the layers and the ``(layer, filter)`` index, checked
        against ``model`` once per (file, model)."""
        path = self._resolve_path(model)
        key = (path, id(model))
        if key not in self._cache:
            # a randomisation-check copy is checked as the trained model it was made from
            fitted_on = trained_model(model)
            features = load_features(path, getattr(fitted_on, "checkpoint_path", None))
            check_features_match(features, fitted_on, path)
            if not float(features["mu"]) > 0:
                raise ValueError(f"{path} has mu={features['mu']}; mu must be > 0: refit it")
            modules = dict(model.named_modules())
            missing = [n for n in features["layers"] + features["read_at"] if n not in modules]
            if missing:
                raise ValueError(f"{path} names layers {missing} that this model does not have")
            index = [(str(name), int(q)) for name, q in features["index"]]
            layers = [
                Layer(name, read_at, kind, sum(1 for n, _ in index if n == name))
                for name, read_at, kind in zip(
                    features["layers"], features["read_at"], features["kinds"], strict=True
                )
            ]
            param = next(model.parameters())
            self._cache[key] = (features["W"].to(param.device, param.dtype), layers, index)
        return self._cache[key]

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        check_explainable(model)
        x = to_model_device(model, x)
        W, layers, index = self.load(model)
        responses = FilterResponses(layers)
        offsets, start = {}, 0
        for layer in layers:
            offsets[layer.name] = start
            start += layer.channels
        batch, k = x.shape[0], min(self.top_k, len(index))
        with torch.inference_mode(False), torch.enable_grad():
            # ordinary tensors even under an outer inference mode (Lightning validation)
            maps = torch.zeros(batch, self.top_k, *x.shape[-2:], device=x.device, dtype=x.dtype)
            values = torch.zeros(batch, self.top_k, device=x.device)
            leaf = x.detach().clone().requires_grad_(True)
            with (
                backprop_rules(model, "guided", self.stride_fix, self.functional),
                responses.capture(model),
            ):
                logits = model.head(model.features(leaf.clone()))
                target = resolve_target(logits.detach(), target)
                relevance = W[:, target].T * responses.vector()  # r = w_ĵ ∘ x, [B, F]
                top = relevance.topk(k, dim=1)
                for rank in range(k):
                    grad = self._back_project(
                        responses, layers, offsets, top.indices[:, rank], top.values[:, rank] > 0,
                        leaf, retain=rank < k - 1,
                    )  # fmt: skip
                    if grad is not None:
                        with torch.no_grad():
                            m = normalize_per_image(reduce_channels(grad, self.reduction))
                            maps[:, rank] = m[:, 0] * (top.values[:, rank] > 0)[:, None, None]
            values[:, :k] = top.values.detach()
            saliency = maps.amax(dim=1, keepdim=True).detach()
        names = [
            [
                f"{index[int(i)][0]}:{index[int(i)][1]}" if v > 0 else ""
                for i, v in zip(top.indices[b].tolist(), top.values[b].tolist(), strict=True)
            ]
            + [""] * (self.top_k - k)
            for b in range(batch)
        ]
        return Explanation(
            saliency,
            target.detach(),
            forward_passes=1.0,
            backward_passes=float(k),
            extras={
                "filter_maps": maps.detach(),
                "filter_names": names,
                "relevance": values,
                "gallery_text": [
                    " ".join(
                        f"#{i + 1} {n.removeprefix('backbone.')}" for i, n in enumerate(row) if n
                    )
                    for row in names
                ],  # fmt: skip
                # the gallery shows the combined map, then each filter's (the paper's Fig. 1)
                "gallery_maps": {
                    "relevant_features": saliency.detach(),
                    **{f"#{i + 1}": maps[:, i : i + 1].detach() for i in range(k)},
                },
            },
        )

    @staticmethod
    def _back_project(
        responses: FilterResponses,
        layers: list[Layer],
        offsets: dict[str, int],
        chosen: Tensor,
        positive: Tensor,
        leaf: Tensor,
        retain: bool,
    ) -> Tensor | None:
        """The input gradient of each image's chosen filter, its own activation map the
        backward signal (all other filters zero); None when no image has a positive pair."""
        outputs, signals = [], []
        for layer in layers:
            out = responses.outputs[layer.name]
            local = chosen - offsets[layer.name]
            rows = positive & (local >= 0) & (local < layer.channels)
            if not bool(rows.any()):
                continue
            signal = torch.zeros_like(out)
            b = rows.nonzero()[:, 0]
            signal[b, local[b]] = out[b, local[b]].detach()
            outputs.append(out)
            signals.append(signal)
        if not outputs:
            return None
        (grad,) = torch.autograd.grad(outputs, leaf, signals, retain_graph=retain)
        return grad

"""Gradient-weighted class activation maps: Grad-CAM and Grad-CAM++.

* Grad-CAM — Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization", ICCV 2017 (arXiv:1610.02391).
* Grad-CAM++ — Chattopadhyay et al., "Grad-CAM++: Generalized Gradient-based Visual
  Explanations for Deep Convolutional Networks", WACV 2018 (arXiv:1710.11063).

Both read the explanation layer ``A = model.features(x)`` and the gradient of the target
logit with respect to it. No hooks are needed: the model is already split at that layer, so
``A`` is computed without a graph and only ``model.head(A)`` is differentiated — one cheap
backward through the head instead of one through the whole network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Explanation, check_explainable, resolve_target, to_model_device, upsample_to


def activations_and_gradients(
    model: nn.Module, x: Tensor, target: Tensor | int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(A, dY_c/dA, target)`` for a batch: one forward, one backward through the head.

    Works under an outer ``torch.no_grad()`` / ``torch.inference_mode()`` (Lightning's
    validation loop): the features are computed in inference mode, then cloned outside it —
    inference tensors cannot enter autograd — and marked as requiring grad, so frozen
    parameters are no obstacle either. Parameter ``.grad`` fields are never touched.
    """
    with torch.inference_mode():
        feats = model.features(x)
    with torch.inference_mode(False), torch.enable_grad():
        feats = feats.clone().requires_grad_(True)
        # head gets a copy: a head that starts with an in-place op (ReLU(inplace=True)) must
        # not write into the leaf we differentiate against.
        logits = model.head(feats.clone())
        target = resolve_target(logits.detach(), target)
        # Summing the per-image target logits gives each image's own gradient: images don't mix.
        score = logits.gather(1, target[:, None]).sum()
        (grads,) = torch.autograd.grad(score, feats)
    return feats.detach(), grads, target


def weighted_cam(feats: Tensor, weights: Tensor) -> Tensor:
    """``ReLU(Σ_k w_k A_k)`` as ``[B,1,P,Q]`` for weights ``[B,K]``."""
    return torch.einsum("bk,bkpq->bpq", weights, feats).clamp_min(0).unsqueeze(1)


class GradCAM:
    """Grad-CAM (Selvaraju et al., ICCV 2017).

    ``w_k = mean_ij dY_c/dA_k[i,j]``; map = ``ReLU(Σ_k w_k A_k)``, bilinearly upsampled to the
    input size and min-max normalised per image. Costs one forward and one backward (through
    the head only) per image. ``extras["cam"]`` holds the map at feature resolution, before
    upsampling and normalisation.
    """

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        check_explainable(model)
        x = to_model_device(model, x)
        feats, grads, target = activations_and_gradients(model, x, target)
        # no_grad, not inference_mode: the results stay ordinary tensors callers may edit in place.
        with torch.no_grad():
            cam = weighted_cam(feats, self.channel_weights(feats, grads))
            saliency = upsample_to(cam, x.shape[-2:])
        return Explanation(
            saliency, target, forward_passes=1.0, backward_passes=1.0, extras={"cam": cam}
        )

    def channel_weights(self, feats: Tensor, grads: Tensor) -> Tensor:
        """Global-average-pooled gradients ``[B,K]`` (the paper's neuron importance α_k^c)."""
        return grads.mean(dim=(2, 3))


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhyay et al., WACV 2018), closed-form weights of its Eq. 19.

    With the exponential score ``Y = exp(S_c)`` the higher derivatives are powers of
    ``g = dS_c/dA`` and ``exp(S_c)`` cancels from
    ``α_k[i,j] = g² / (2 g² + Σ_ab A_k[a,b] · g³)``; the channel weight is
    ``w_k = Σ_ij α_k[i,j] · ReLU(g[i,j])`` (the ``exp(S_c)`` factor left in it is one positive
    number per image, which the min-max normalisation removes).

    Args:
        eps: added to the denominator of α. The default ``0.0`` follows the paper and the
            authors' code (a zero denominator gives α = 0). ``1e-6`` reproduces the ``grad-cam``
            package (``pytorch_grad_cam.GradCAMPlusPlus``); it matters when gradients are small
            (``g² ≲ eps``, e.g. many classes or large maps), where it shrinks α towards ``g²/eps``.
    """

    def __init__(self, eps: float = 0.0) -> None:
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = eps

    def channel_weights(self, feats: Tensor, grads: Tensor) -> Tensor:
        g2 = grads.square()
        g3 = g2 * grads
        sum_a = feats.sum(dim=(2, 3), keepdim=True)
        denom = 2 * g2 + sum_a * g3 + self.eps
        safe = torch.where(denom != 0, denom, torch.ones_like(denom))
        # α is only defined where the gradient is non-zero (Eq. 19 is 0/0 otherwise).
        alpha = torch.where((grads != 0) & (denom != 0), g2 / safe, torch.zeros_like(g2))
        return (alpha * grads.clamp_min(0)).sum(dim=(2, 3))

"""Grad-CAM, Grad-CAM++ and the activation map against values computed by hand.

The toy backbone's head is global average pooling + linear, so ``dY_c/dA_k[i,j] = W[c,k] / PQ``
everywhere: Grad-CAM reduces to CAM (Zhou et al.) and Grad-CAM++'s α has a closed form.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from explainbench.explainers.activation import ActivationMap
from explainbench.explainers.gradcam import GradCAM, GradCAMPlusPlus


def minmax_upsampled(cam: torch.Tensor, size) -> torch.Tensor:
    """Independent re-statement of the expected post-processing: bilinear, then min-max."""
    up = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    lo = up.amin(dim=(2, 3), keepdim=True)
    hi = up.amax(dim=(2, 3), keepdim=True)
    return (up - lo) / (hi - lo)


def features_and_fc(model, x):
    with torch.no_grad():
        return model.features(x), model.classifier[-1].weight


def test_gradcam_is_cam_for_a_gap_linear_head(toy_backbone, make_images):
    x = make_images(batch=2, size=32)
    target = torch.tensor([1, 3])
    feats, fc = features_and_fc(toy_backbone, x)
    pq = feats.shape[2] * feats.shape[3]
    cam = torch.stack(
        [(fc[c][:, None, None] / pq * a).sum(0) for a, c in zip(feats, target, strict=True)]
    ).relu()
    ex = GradCAM()(toy_backbone, x, target)
    torch.testing.assert_close(ex.extras["cam"], cam[:, None], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        ex.saliency, minmax_upsampled(cam[:, None], (32, 32)), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("eps", [0.0, 1e-2])
def test_gradcampp_closed_form_for_a_gap_linear_head(toy_backbone, make_images, eps):
    """g constant per channel: w_k = PQ · ReLU(g_k) · g_k² / (2 g_k² + S_k g_k³ + eps)."""
    x = make_images(batch=2, size=32, seed=5)
    target = torch.tensor([0, 2])
    feats, fc = features_and_fc(toy_backbone, x)
    pq = feats.shape[2] * feats.shape[3]
    g = fc[target] / pq  # [B,K]
    s = feats.sum(dim=(2, 3))
    w = pq * g.relu() * g**2 / (2 * g**2 + s * g**3 + eps)
    cam = torch.einsum("bk,bkpq->bpq", w, feats).relu()[:, None]
    ex = GradCAMPlusPlus(eps=eps)(toy_backbone, x, target)
    torch.testing.assert_close(ex.extras["cam"], cam, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ex.saliency, minmax_upsampled(cam, (32, 32)), atol=1e-5, rtol=0)


def test_gradcampp_rejects_negative_eps():
    with pytest.raises(ValueError, match="eps"):
        GradCAMPlusPlus(eps=-1.0)


def test_gradcam_backprops_through_the_head_only(toy_backbone, make_images, counting):
    model = counting(toy_backbone)
    ex = GradCAM()(model, make_images(batch=3, size=32))
    assert (model.feature_images, model.head_images) == (3, 3)
    assert (ex.forward_passes, ex.backward_passes) == (1.0, 1.0)


def test_head_with_inplace_relu_is_supported(make_toy_backbone, make_images):
    """A head that starts with ReLU(inplace=True) (e.g. a split before a ReLU) must not break
    autograd: the explainer differentiates w.r.t. a leaf the head never writes into."""
    model = make_toy_backbone()
    model.classifier.insert(0, torch.nn.ReLU(inplace=True))
    GradCAM()(model, make_images(batch=2, size=32))


@pytest.mark.parametrize("reduction", ["mean", "max"])
def test_activation_map_by_hand(toy_backbone, make_images, counting, reduction):
    x = make_images(batch=2, size=(32, 48))
    feats, _ = features_and_fc(toy_backbone, x)
    cam = feats.mean(1, keepdim=True) if reduction == "mean" else feats.amax(1, keepdim=True)
    model = counting(toy_backbone)
    ex = ActivationMap(reduction=reduction)(model, x, target=2)
    torch.testing.assert_close(ex.saliency, minmax_upsampled(cam, (32, 48)), atol=1e-5, rtol=0)
    assert torch.equal(ex.target, torch.tensor([2, 2]))
    assert (model.feature_images, ex.forward_passes, ex.backward_passes) == (2, 1.0, 0.0)


def test_activation_map_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        ActivationMap(reduction="median")

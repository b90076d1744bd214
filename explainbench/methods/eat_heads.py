"""The network parts of EAT (Xu et al., "Where is the Model Looking At? Concentrate and Explain
the Network Attention", IEEE JSTSP 2020, arXiv:2009.13862).

On the shared image features ``A = f_img(x)``:

* :func:`conv_heads` builds the category head ``g_c`` (one head, ``R`` outputs) and the
  attribute heads ``g_a^i`` (``N_a`` heads, one output each) with the same recipe: the paper's
  small CNN heads, ``depth`` layers in all;
* :class:`AttributeEmbedding` and :class:`CategoryEmbedding` embed the attribute predictions
  ``a`` as ``E_a`` (``N_a × D_e``) and the preliminary category prediction ``c_p`` as ``E_p``
  (``1 × D_e``);
* :class:`IntegratedClassifier` is the 3-layer CNN ``g_i`` that reads ``E = [E_a; E_p]`` and
  gives the integrated prediction ``c_i``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_heads(
    in_channels: int,
    heads: int,
    outputs_per_head: int,
    width: int,
    depth: int,
    kernel_size: int = 3,
) -> nn.Sequential:
    """``heads`` independent CNN heads on a ``[B,K,P,Q]`` feature map → ``[B, heads·outputs]``.

    Each head is ``depth - 1`` blocks of ``k×k`` conv + BN + ReLU (``width`` channels, stride 1,
    so the map keeps its resolution for Grad-CAM) and a final ``1×1`` conv to its outputs,
    then global average pooling. ``depth = 1`` is a linear classifier on pooled features.

    The ``N_a`` attribute heads are one grouped-convolution stack instead of ``N_a`` modules:
    the first conv maps ``A`` to ``heads·width`` channels (channels ``[i·width, (i+1)·width)``
    belong to head ``i``, which so sees all of ``A``), and every later conv has
    ``groups=heads``, so no head reads another head's channels. That is exactly ``N_a``
    separate heads (BatchNorm is per channel, hence per head), computed in a few large
    kernels rather than hundreds of small ones.
    """
    if depth < 1 or width < 1 or heads < 1 or outputs_per_head < 1:
        raise ValueError(
            f"a head needs depth >= 1, width >= 1 and outputs >= 1, got depth={depth}, "
            f"width={width}, heads={heads}, outputs_per_head={outputs_per_head}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"head kernel_size must be a positive odd number, got {kernel_size}")
    layers: list[nn.Module] = []
    cin, groups = in_channels, 1
    for _ in range(depth - 1):
        cout = heads * width
        layers += [
            nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        cin, groups = cout, heads
    layers += [
        nn.Conv2d(cin, heads * outputs_per_head, 1, groups=groups),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
    ]
    return nn.Sequential(*layers)


class AttributeEmbedding(nn.Module):
    """``E_a[i] = a_i · 1 + b_i``: each attribute prediction ``a_i`` in [0, 1] (the sigmoid of
    its head's logit) spread over the ``D_e`` coordinates of its row, on top of a learned
    per-attribute vector ``b_i`` that tells ``g_i`` which attribute the row is.

    Why the all-ones direction: EAR scores attribute ``i`` by ``s_i = Σ_j ∂c_y/∂E_a[i,j]``, the
    derivative of ``c_y`` along the all-ones direction of row ``i``. With this embedding that
    direction *is* the attribute's, so ``s_i = ∂c_y/∂a_i`` exactly: how much the class score
    rises with the attribute's predicted presence. With a free learned direction ``w_i``
    (``a_i · w_i + b_i``) the sum mixes the signs of ``w_i``'s coordinates, and the ranking
    follows the embedding's random signs instead of the evidence. Since ``a_i`` is a scalar, a
    linear embedding has no more information to offer than this one.
    """

    def __init__(self, num_attributes: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.bias = nn.Parameter(torch.randn(num_attributes, dim) / dim**0.5)

    def forward(self, probs: Tensor) -> Tensor:
        """``[B, N_a]`` predictions → ``E_a`` ``[B, N_a, D_e]``."""
        return probs.unsqueeze(-1) + self.bias


class CategoryEmbedding(nn.Module):
    """``E_p = W · softmax(c_p) + b``: the preliminary class distribution as one ``D_e``-row."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_classes, dim)

    def forward(self, logits: Tensor) -> Tensor:
        """``[B, R]`` logits ``c_p`` → ``E_p`` ``[B, 1, D_e]``."""
        return self.linear(logits.softmax(dim=1)).unsqueeze(1)


class IntegratedClassifier(nn.Module):
    """``g_i``: a 3-layer CNN over the ``(N_a + 1) × D_e`` matrix ``E`` → ``c_i`` ``[B, R]``.

    The layers read ``E`` as a one-channel image: a ``1 × D_e`` convolution turns each row
    (one attribute, or the category) into ``width`` features with weights shared by all rows; a
    ``(N_a + 1) × 1`` convolution combines all rows, each with its own weights; a ``1 × 1``
    convolution maps to the classes. ReLU between them.
    """

    def __init__(self, rows: int, dim: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"integrated classifier width must be >= 1, got {width}")
        self.layers = nn.Sequential(
            nn.Conv2d(1, width, (1, dim)),
            nn.ReLU(),
            nn.Conv2d(width, width, (rows, 1)),
            nn.ReLU(),
            nn.Conv2d(width, num_classes, 1),
            nn.Flatten(1),
        )

    def forward(self, embeddings: Tensor) -> Tensor:
        """``E`` ``[B, N_a + 1, D_e]`` → ``c_i`` ``[B, R]``."""
        return self.layers(embeddings.unsqueeze(1))

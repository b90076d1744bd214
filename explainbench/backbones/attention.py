"""Attention modules: the Residual Attention Network's module and the sharable attention of Xie et al.

* :class:`ResidualAttention` — Wang et al., "Residual Attention Network for Image Classification"
  (CVPR 2017, "RAN"). ``p`` pre-activation bottleneck units, then a trunk branch ``T`` (``t``
  units) and a soft-mask branch ``M`` (:class:`BottomUpTopDown` + :func:`mask_head`), combined by
  attention residual learning ``H = (1 + M) ⊙ T``, then ``p`` more units. Defaults ``p=1, t=2,
  r=1`` are the paper's.
* :class:`SharableAttention` — Xie et al., "Deep Features Analysis with Attention Networks": ONE
  bottom-up top-down structure, computed once from the features of the chosen stage, gives the
  masks of several scales; each scale's mask is two 1x1 convolutions on the shared structure
  followed by a sigmoid, multiplied with that scale's features.

Choices where the papers are silent (each is a constructor argument):

* Sharable attention's *scales* are backbone stages, the chosen one and every later one (the
  caller passes the later stages as ``later``). Each scale's mask is read from the shared
  structure's top-down feature map nearest to that stage's resolution (the structure has one per
  max-pooling level), resized to it exactly with ``F.interpolate(size=...)`` when it differs.
* Masks are applied as ``(1 + M) ⊙ F``, like RAN, not ``M ⊙ F`` (the paper says "multiplied"):
  a plain product with a sigmoid mask at several stages keeps shrinking the features, which is
  what RAN's attention residual learning was introduced to avoid.
* The "two 1x1 convolutions" have RAN's head form, BN-ReLU-1x1-BN-ReLU-1x1-sigmoid.
* At the chosen stage the sharable module has the same layout as RAN's (``p`` pre units, a ``t``
  unit trunk, ``p`` post units), so that at the last stage (one scale) sharable and residual
  attention are the same network; they differ where the shared structure serves later stages.
* Atrous convolution (the paper's best CIFAR-10 model, "sharable attention and atrous
  convolution", nothing more said): ``atrous=True`` dilates the 3x3 convolutions of the trunk
  units (rate 2, resolution kept).

Every upsampling goes to the size of the map it meets (never a fixed size), so odd input sizes
work. A mask branch that max-pools ``depth`` times needs feature maps of at least
``2**depth`` pixels a side (each pooling then halves at least two pixels):
:func:`check_mask_input` raises :class:`MaskInputTooSmall` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F


class MaskInputTooSmall(ValueError):
    """Feature maps smaller than the mask branch's pooling depth allows."""


def min_mask_side(depth: int) -> int:
    """The smallest feature-map side a mask branch with ``depth`` max-poolings accepts."""
    return 2**depth


def check_mask_input(x: Tensor, depth: int, where: str = "the attention mask branch") -> None:
    side = min_mask_side(depth)
    if min(x.shape[-2:]) < side:
        raise MaskInputTooSmall(
            f"{where} max-pools {depth} times and needs feature maps of at least {side}x{side}, "
            f"got {x.shape[-2]}x{x.shape[-1]}: use larger inputs or a smaller depth."
        )


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ResidualUnit(nn.Module):
    """Pre-activation bottleneck unit (He et al. 2016), RAN's building block:
    BN-ReLU-1x1 (cout/4), BN-ReLU-3x3 (``stride``, ``dilation``), BN-ReLU-1x1 (cout), plus the
    shortcut (a 1x1 convolution of the pre-activated input when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        mid = max(1, cout // 4)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(
            mid, mid, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            if cin != cout or stride != 1
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(a)
        h = self.conv1(a)
        h = self.conv2(F.relu(self.bn2(h)))
        h = self.conv3(F.relu(self.bn3(h)))
        return h + skip


def residual_units(channels: int, n: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(*(ResidualUnit(channels, channels, dilation=dilation) for _ in range(n)))


def mask_head(cin: int, cout: int) -> nn.Sequential:
    """RAN's mask head, BN-ReLU-1x1-BN-ReLU-1x1-sigmoid: the sharable masks' "two 1x1
    convolutions followed by a sigmoid". The last convolution is ``[-2]`` (tests set it)."""
    return nn.Sequential(
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cin, 1, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1),
        nn.Sigmoid(),
    )


class BottomUpTopDown(nn.Module):
    """RAN's soft-mask body without its head: ``depth`` times max-pool (3x3, stride 2, as RAN)
    + ``r`` residual units; ``r`` more at the bottom (RAN's innermost ``2r``); then back up, at
    each level bilinear upsampling to the size of that level's bottom-up map, plus a skip
    connection (a residual unit on that map), + ``r`` units; finally upsampling to the input size.

    ``forward`` returns the top-down maps of every level, finest first: ``[0]`` at the input's
    size, ``[k]`` at the size after ``k`` poolings (``[depth]`` is the bottom).
    """

    def __init__(self, channels: int, depth: int, r: int = 1) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"the mask branch needs at least one max-pooling, got depth={depth}")
        self.depth = depth
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.down = nn.ModuleList(residual_units(channels, r) for _ in range(depth))
        self.bottom = residual_units(channels, r)
        self.skips = nn.ModuleList(ResidualUnit(channels, channels) for _ in range(depth - 1))
        self.up = nn.ModuleList(residual_units(channels, r) for _ in range(depth - 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        check_mask_input(x, self.depth)
        bottom_up = []
        h = x
        for unit in self.down:
            h = unit(self.pool(h))
            bottom_up.append(h)
        h = self.bottom(h)
        levels = [h]
        for level in reversed(range(self.depth - 1)):  # bottom_up[level] is pooling level + 1
            skip = bottom_up[level]
            h = self.up[level](_resize(h, skip.shape[-2:]) + self.skips[level](skip))
            levels.insert(0, h)
        levels.insert(0, _resize(h, x.shape[-2:]))
        return levels


class ResidualAttention(nn.Module):
    """One RAN attention module on ``channels``-channel features (see the module docstring).

    Args:
        depth: max-poolings of the soft-mask branch (RAN: 3, 2, 1 at its stages 1, 2, 3).
        p, t, r: pre/post units, trunk units, units between poolings (RAN: 1, 2, 1).
        atrous: dilate the trunk's 3x3 convolutions (rate 2).
    """

    def __init__(
        self,
        channels: int,
        depth: int = 1,
        p: int = 1,
        t: int = 2,
        r: int = 1,
        atrous: bool = False,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.pre = residual_units(channels, p)
        self.trunk = residual_units(channels, t, dilation=2 if atrous else 1)
        self.mask_body = BottomUpTopDown(channels, depth, r)
        self.mask_head = mask_head(channels, channels)
        self.post = residual_units(channels, p)

    def forward_with_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(H, M)``: the module's output and its mask ``M [B,C,h,w]`` in (0, 1)."""
        check_mask_input(x, self.depth)
        x = self.pre(x)
        mask = self.mask_head(self.mask_body(x)[0])
        return self.post((1 + mask) * self.trunk(x)), mask

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_mask(x)[0]


class SharableAttention(nn.Module):
    """Sharable attention over ``len(scale_channels)`` scales (see the module docstring).

    Args:
        channels: channels of the chosen stage's features (the shared structure's width).
        scale_channels: channels of each scale's features, the chosen stage first.
        depth: max-poolings of the shared structure.
        p, t, r, atrous: as :class:`ResidualAttention`, for the chosen stage's trunk.

    ``forward(x, later)``: ``x`` the chosen stage's features, ``later`` the modules computing
    each later scale's features from the previous one (the backbone's later stages).
    """

    def __init__(
        self,
        channels: int,
        scale_channels: Sequence[int],
        depth: int = 1,
        p: int = 1,
        t: int = 2,
        r: int = 1,
        atrous: bool = False,
    ) -> None:
        super().__init__()
        if not scale_channels or scale_channels[0] != channels:
            raise ValueError(
                f"scale_channels must start with the chosen stage's {channels} channels, got "
                f"{list(scale_channels)}"
            )
        self.depth = depth
        self.pre = residual_units(channels, p)
        self.trunk = residual_units(channels, t, dilation=2 if atrous else 1)
        self.shared = BottomUpTopDown(channels, depth, r)  # the one shared structure
        self.heads = nn.ModuleList(mask_head(channels, c) for c in scale_channels)
        self.post = residual_units(channels, p)

    def scale_mask(self, scale: int, levels: Sequence[Tensor], size: Sequence[int]) -> Tensor:
        """Scale ``scale``'s mask at ``size``: its head on the shared level nearest that size."""
        nearest = min(
            range(len(levels)),
            key=lambda k: abs(
                math.log(levels[k].shape[-2] * levels[k].shape[-1] / (size[0] * size[1]))
            ),
        )
        return self.heads[scale](_resize(levels[nearest], size))

    def forward(self, x: Tensor, later: Sequence[nn.Module] = ()) -> tuple[Tensor, list[Tensor]]:
        """``(features after the last scale, [mask of each scale])``."""
        if len(later) != len(self.heads) - 1:
            raise ValueError(
                f"SharableAttention has {len(self.heads)} scales but got {len(later)} later "
                f"stages (expected {len(self.heads) - 1})"
            )
        check_mask_input(x, self.depth)
        x = self.pre(x)
        levels = self.shared(x)
        trunk = self.trunk(x)
        masks = [self.scale_mask(0, levels, trunk.shape[-2:])]
        h = self.post((1 + masks[0]) * trunk)
        for scale, stage in enumerate(later, start=1):
            h = stage(h)
            mask = self.scale_mask(scale, levels, h.shape[-2:])
            masks.append(mask)
            h = (1 + mask) * h
        return h, masks


__all__ = [
    "BottomUpTopDown",
    "MaskInputTooSmall",
    "ResidualAttention",
    "ResidualUnit",
    "SharableAttention",
    "check_mask_input",
    "mask_head",
    "min_mask_side",
]

"""Attention networks by stage (Xie et al., "Deep Features Analysis with Attention Networks").

A backbone with attention inserted after one of its stages:

* ``kind="residual"``: a Residual Attention Network module (Wang et al. 2017,
  :class:`~explainbench.backbones.attention.ResidualAttention`) on the chosen stage's features;
* ``kind="sharable"``: the paper's sharable attention
  (:class:`~explainbench.backbones.attention.SharableAttention`): one bottom-up top-down
  structure on the chosen stage's features gives a mask to the chosen stage and to every later
  stage (its "scales"): at ``late`` one mask, at ``early`` three;
* ``kind="none"``: the plain backbone (the base row of the paper's Table 1).

Stages (our mapping; the paper names only "early / middle / later stage" of Inception-v1):
``early``, ``middle``, ``late`` are the backbone's last three named stages of
:func:`~explainbench.backbones.truncate.attach_stages`, i.e. the stages at strides 8, 16, 32 of
the ImageNet networks: ``googlenet`` inception3b / inception4e / inception5b, ``resnet18`` /
``resnet50`` layer2 / layer3 / layer4, ``small_cnn`` (four stages) stage2 / stage3 / stage4. Any
stage name of that table is accepted too (e.g. ``layer1``). ``late`` is the explanation layer
itself, so every post-hoc explainer sees the attended features: ``features(x)`` is the
extractor with the attention in it, ``head`` the backbone's.

Mask-branch depth (max-poolings): by default one per scale, so that the shared structure has a
level for every later stage (late 1, middle 2, early 3: RAN's 1, 2, 3 for its stages 3, 2, 1).
The input must be at least ``stage stride × 2^depth`` pixels a side (64 px for googlenet and the
ResNets at every stage, 16 px for small_cnn); smaller inputs are refused before the forward pass.

Explanation (``explainers=[method]``): the chosen stage's attention mask, averaged over channels,
bilinearly upsampled to the input and min-max normalised per image like every explainer's map
(one forward pass). ``kind="none"`` has no mask: it explains with the channel-averaged features
of the chosen stage instead (the paper's Fig. 3 "Inception-v1" heatmap). The gallery shows the
mask of every scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ..backbones.attention import ResidualAttention, SharableAttention
from ..backbones.ran import RAN_MODULES
from ..backbones.truncate import attach_stages, stage_segments
from ..explainers.base import Explanation, resolve_target, upsample_to
from .base import ExplainableMethod

KINDS = ("none", "residual", "sharable")
POSITIONS = ("early", "middle", "late")  # the backbone's last three named stages
_PROBE_SIZE = 64


@dataclass(frozen=True)
class AttentionSpec:
    """``method.attention``: see conf/method/attention_net.yaml."""

    kind: str = "sharable"
    stage: str = "early"
    depth: int | None = None
    atrous: bool = False
    p: int = 1
    t: int = 2
    r: int = 1

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> AttentionSpec:
        cfg = dict(cfg or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(valid))
        if unknown:
            raise ValueError(
                f"Unknown method.attention key(s) {', '.join(unknown)}. Valid: {', '.join(valid)}."
            )
        spec = cls(**cfg)
        if spec.kind not in KINDS:
            raise ValueError(
                f"Unknown method.attention.kind '{spec.kind}'. Valid: {', '.join(KINDS)}."
            )
        if spec.depth is not None and int(spec.depth) < 1:
            raise ValueError(f"method.attention.depth must be >= 1 or null, got {spec.depth}")
        if min(spec.p, spec.t) < 0 or spec.r < 1:
            raise ValueError(
                f"method.attention needs p, t >= 0 and r >= 1, got p={spec.p}, t={spec.t}, r={spec.r}"
            )
        return spec


def resolve_stage(stage: str, names: list[str], backbone: str) -> str:
    """``early``/``middle``/``late`` → the backbone's stage name; a stage name passes through."""
    positions = dict(zip(POSITIONS[3 - min(3, len(names)) :], names[-3:], strict=True))
    if stage in positions:
        return positions[stage]
    if stage in names:
        return stage
    raise ValueError(
        f"Unknown method.attention.stage '{stage}' for backbone '{backbone}'. Valid: "
        f"{', '.join([*positions, *names])}."
    )


class AttentionExtractor(nn.Module):
    """The backbone's extractor with attention after stage ``first``: ``forward(x)`` gives the
    explanation layer, :meth:`forward_with_maps` also the attention maps, one per scale
    (``kind="none"``: the chosen stage's features)."""

    def __init__(
        self, first: nn.Module, later: list[nn.Module], kind: str, attention: nn.Module | None
    ) -> None:
        super().__init__()
        self.first = first
        self.later = nn.ModuleList(later)
        self.kind = kind
        self.attention = attention

    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = self.first(x)
        if self.kind == "sharable":
            return self.attention(h, list(self.later))
        if self.kind == "residual":
            h, mask = self.attention.forward_with_mask(h)
            maps = [mask]
        else:
            maps = [h]
        for stage in self.later:
            h = stage(h)
        return h, maps

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_maps(x)[0]

    def stage_outputs(self) -> dict[str, str]:
        """Stage name → submodule whose output is that stage's features, for layer-wise
        heatmaps: the backbone up to the chosen stage (before its attention), then each later
        stage (before its own mask, under sharable attention)."""
        return {"first": "first", **{f"later{i}": f"later.{i}" for i in range(len(self.later))}}


def _probe_stages(segments: list[nn.Module]) -> list[tuple[int, int]]:
    """``(channels, stride)`` after each segment, from one forward pass of zeros in eval mode."""
    modes = [m.training for m in segments]
    shapes = []
    try:
        h = torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE)
        with torch.no_grad():
            for segment in segments:
                h = segment.eval()(h)
                shapes.append((int(h.shape[1]), max(1, round(_PROBE_SIZE / h.shape[-1]))))
    finally:
        for segment, mode in zip(segments, modes, strict=True):
            segment.train(mode)
    return shapes


class AttentionNet(ExplainableMethod):
    """A backbone with residual or sharable attention at one stage (see the module docstring).

    Args:
        backbone: ``googlenet``, ``resnet18``/``resnet50``, ``small_cnn`` (any backbone with named
            stages, :func:`~explainbench.backbones.truncate.attach_stages`); not ``ran56``/``ran92``.
        attention: ``kind`` (none | residual | sharable), ``stage`` (early | middle | late or a
            stage name), ``depth`` (max-poolings; None: one per scale), ``atrous`` (dilated trunk
            convolutions), ``p``, ``t``, ``r`` (RAN's unit counts).
        label_smoothing: of the cross-entropy.
        **kwargs: optimizer / scheduler, see :class:`ExplainableMethod`.
    """

    def __init__(
        self,
        backbone,
        attention: Mapping | None = None,
        label_smoothing: float = 0.0,
        **kwargs,
    ) -> None:
        spec = AttentionSpec.from_config(attention)
        if backbone.name in RAN_MODULES:
            raise ValueError(
                f"backbone={backbone.name} already has residual attention modules: train it with "
                "method=classifier, or use method=attention_net with googlenet, resnet18, "
                "resnet50 or small_cnn."
            )
        names = list(attach_stages(backbone))
        stage = resolve_stage(spec.stage, names, backbone.name)
        scales = names[names.index(stage) :]
        segments = stage_segments(backbone, scales)
        shapes = _probe_stages(segments)
        depth = int(spec.depth or len(scales))
        channels, stride = shapes[0]
        units = dict(p=spec.p, t=spec.t, r=spec.r, atrous=spec.atrous)
        if spec.kind == "residual":
            module = ResidualAttention(channels, depth=depth, **units)
        elif spec.kind == "sharable":
            module = SharableAttention(channels, [c for c, _ in shapes], depth=depth, **units)
        else:
            module = None
        backbone.extractor = AttentionExtractor(segments[0], segments[1:], spec.kind, module)
        super().__init__(backbone, **kwargs)
        self.spec = spec
        self.stage = stage
        # the stages that get a mask (sharable: every scale), in the order of the maps
        self.mask_stages = scales if spec.kind == "sharable" else [stage]
        self.depth = depth
        self.stage_stride = stride
        self.min_input_size = stride * 2**depth if module is not None else 0
        self.label_smoothing = label_smoothing

    # -- the network ---------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Refuse inputs too small for the mask branch's poolings, naming the minimum size."""
        if min(x.shape[-2:]) < self.min_input_size:
            m = self.min_input_size
            raise ValueError(
                f"Input {x.shape[-2]}x{x.shape[-1]} is too small for {self.spec.kind} attention at "
                f"stage '{self.stage}' (stride {self.stage_stride}) of {self.backbone.name}: its "
                f"mask branch max-pools {self.depth} times, so inputs must be at least {m}x{m} px. "
                "Use larger images (e.g. data.image_size) or a smaller method.attention.depth."
            )

    def features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.backbone.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def attention_maps(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``(explanation-layer features, {stage: map [B,C,h,w]})``: each stage's attention mask
        in (0, 1) (``kind="none"``: the chosen stage's features)."""
        self.check_input(x)
        feats, maps = self.backbone.extractor.forward_with_maps(x)
        return feats, dict(zip(self.mask_stages, maps, strict=True))

    # -- training ------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self(batch["image"])
        return logits, {
            "ce": self.classification_loss(logits, batch["label"], self.label_smoothing)
        }

    # -- explanation ---------------------------------------------------------------------------
    def explain(self, x: Tensor, target: Tensor | int | None = None) -> Explanation:
        """The chosen stage's mask, channel-averaged, upsampled, normalised (one forward pass)."""
        with torch.no_grad():
            feats, maps = self.attention_maps(x)
            target = resolve_target(self.head(feats), target)
        saliency = upsample_to(maps[self.stage].mean(1, keepdim=True), x.shape[-2:])
        return Explanation(
            saliency,
            target,
            forward_passes=1,
            extras={"stage": self.stage, "kind": self.spec.kind},
        )

    def gallery_extras(self, x: Tensor) -> tuple[list[str], dict[str, Tensor]]:
        """Every scale's mask (``kind="none"``: the chosen stage's features), as in :meth:`explain`."""
        with torch.no_grad():
            _, maps = self.attention_maps(x)
        what = "features" if self.spec.kind == "none" else "mask"
        return [], {
            f"{what} {name}": upsample_to(m.mean(1, keepdim=True), x.shape[-2:])
            for name, m in maps.items()
        }

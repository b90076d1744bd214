"""A backbone cut at a named stage: methods that replace the last block of a network (region
grouping) attach their own module to an earlier stage's features.

Stage names per backbone (the extractor is cut right after the named stage):

* ``resnet18`` / ``resnet50``: ``layer1`` .. ``layer4`` (default ``layer3``, stride 16, as the
  region-grouping paper replaces ``layer4``);
* ``small_cnn``, ``vgg16``, ``vgg16_7x7``, ``alexnet``: ``stage1`` .. ``stageN``, the blocks of
  convolutions between two max-pools (the pool that follows a stage is cut off with the rest).
  Defaults: ``small_cnn`` the stage before its last (stride 4, 16x16 maps at 64 px), ``vgg16``
  ``stage4`` (conv4_3, stride 8), ``alexnet`` ``stage2`` (conv2, stride 8);
* ``googlenet``: ``inception3b``, ``inception4e``, ``inception5b`` (default ``inception4e``);
* ``ran56`` / ``ran92``: ``stage1`` .. ``stage4``, each ending after its last attention module
  (the last: the rest of the stack).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .base import Backbone

# the stage each backbone is cut at when the method's config says `attach: auto`
DEFAULT_ATTACH = {
    "resnet18": "layer3",
    "resnet50": "layer3",
    "small_cnn": "penultimate",  # the stage before the last: stage3 of the default four
    "vgg16": "stage4",
    "vgg16_7x7": "stage4",
    "alexnet": "stage2",
    "googlenet": "inception4e",
}

_RESNET_STAGES = {
    "layer1": 5,
    "layer2": 6,
    "layer3": 7,
    "layer4": 8,
}  # modules kept in the extractor
_GOOGLENET_STAGES = {"inception3b": 7, "inception4e": 13, "inception5b": 16}
# resolution of the dry run that measures the cut's channels and stride
_PROBE_SIZE = 64


def _pooled_stages(layers: nn.Sequential) -> dict[str, int]:
    """``stageN`` → modules kept, for plain conv stacks whose stages are separated by max-pools."""
    ends = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d) and i > 0]
    if not isinstance(layers[-1], nn.MaxPool2d):  # the last stage, unless a pool ends the stack
        ends.append(len(layers))
    return {f"stage{i + 1}": end for i, end in enumerate(ends)}


def _attention_stages(layers: nn.Sequential) -> dict[str, int]:
    """``stageN`` → modules kept, for Wang et al.'s attention stacks (ran56 / ran92): a stage
    ends after its last attention module; the last stage is the rest of the stack."""
    from .attention import ResidualAttention  # truncate is imported by the attention modules' users

    kinds = [isinstance(m, ResidualAttention) for m in layers]
    ends = [i + 1 for i in range(len(kinds) - 1) if kinds[i] and not kinds[i + 1]]
    return {f"stage{i + 1}": end for i, end in enumerate([*ends, len(layers)])}


def attach_stages(backbone: Backbone) -> dict[str, int]:
    """The stage names of ``backbone`` and the number of extractor modules each keeps."""
    if backbone.name.startswith("resnet"):
        return dict(_RESNET_STAGES)
    if backbone.name == "googlenet":
        return dict(_GOOGLENET_STAGES)
    if backbone.name.startswith("ran"):
        return _attention_stages(backbone.extractor)
    if isinstance(backbone.extractor, nn.Sequential):
        return _pooled_stages(backbone.extractor)
    raise ValueError(f"Backbone '{backbone.name}' has no named stages to attach a module to.")


def truncate_backbone(backbone: Backbone, stage: str = "auto") -> Backbone:
    """Cut ``backbone``'s extractor after ``stage`` (``"auto"``: :data:`DEFAULT_ATTACH`), in place.

    The layers after the cut and the backbone's own classifier are dropped (the caller puts its
    head there), so the optimiser holds no dead weights and DDP finds none without gradients.
    ``feature_channels`` and ``feature_stride`` are updated from a dry run. Returns ``backbone``.
    """
    if stage in (None, "auto"):
        if backbone.name not in DEFAULT_ATTACH:
            raise ValueError(
                f"No default attach stage for backbone '{backbone.name}': set method.attach."
            )
        stage = DEFAULT_ATTACH[backbone.name]
    stages = attach_stages(backbone)
    if stage == "penultimate":  # small_cnn of any depth: the last stage is the one replaced
        stage = list(stages)[max(0, len(stages) - 2)]
    if stage not in stages:
        raise ValueError(
            f"Unknown attach stage '{stage}' for backbone '{backbone.name}'. Available: {', '.join(stages)}."
        )
    keep = stages[stage]
    extractor = backbone.extractor
    if backbone.name == "googlenet":  # the trunk's input transform stays in front of the layers
        cut = copy.copy(extractor)
        cut._modules = dict(extractor._modules)
        cut.layers = extractor.layers[:keep]
    else:
        cut = extractor[:keep]
    backbone.extractor = cut
    backbone.classifier = nn.Identity()
    backbone.feature_channels, backbone.feature_stride = _probe(cut)
    return backbone


def _probe(module: nn.Module) -> tuple[int, int]:
    """Channels and stride of ``module``'s output, from one small forward pass in eval mode."""
    training = module.training
    param = next(module.parameters(), None)
    device = param.device if param is not None else "cpu"
    try:
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE, device=device))
    finally:
        module.train(training)
    return int(out.shape[1]), max(1, round(_PROBE_SIZE / out.shape[-1]))


def stage_segments(backbone: Backbone, stages: list[str]) -> list[nn.Module]:
    """``backbone``'s extractor cut into consecutive pieces ending at each of ``stages`` (names
    of :func:`attach_stages`, in network order): piece 0 maps images to the first stage's
    features, piece ``k`` the features of stage ``k - 1`` to those of stage ``k``; the last piece
    ends at the explanation layer when the last stage is the backbone's last. The pieces share
    the backbone's modules (no copies)."""
    table = attach_stages(backbone)
    ends = [table[name] for name in stages]
    if ends != sorted(ends):
        raise ValueError(f"stages must be in network order, got {stages}")
    extractor = backbone.extractor
    layers = extractor.layers if backbone.name == "googlenet" else extractor
    if ends[-1] != len(layers):
        raise ValueError(
            f"stage '{stages[-1]}' is not the end of {backbone.name}'s extractor: the last piece "
            "would drop its later layers"
        )
    if backbone.name == "googlenet":  # the trunk's input transform stays in front of the layers
        first = copy.copy(extractor)
        first._modules = dict(extractor._modules)
        first.layers = layers[: ends[0]]
    else:
        first = layers[: ends[0]]
    return [first, *(layers[a:b] for a, b in zip(ends, ends[1:], strict=False))]

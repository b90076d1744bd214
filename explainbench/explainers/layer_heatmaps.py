"""Layer-wise feature heatmaps: the channel-averaged activations of a low, a middle and a high
layer, upsampled to the image (Xie et al., "Deep Features Analysis with Attention Networks",
Fig. 2: "the heatmap of bottom layers with less semantic information interprets more attention
on low-level features, while the heatmap of top layers ... on the most salient portions").

The paper does not say how its heatmaps are computed beyond "heatmaps of different layers"; we
take the map :class:`~explainbench.explainers.activation.ActivationMap` draws for the
explanation layer (mean over channels, bilinear upsampling, min-max per image) and draw it for
three layers at once. Which layers are "low", "middle" and "high" is not stated either (their
network is Inception-v1): by default they are the outputs of the first, the middle
(``stages[len // 2]``) and the last stage of the backbone, with the stage names of
:mod:`explainbench.backbones.truncate` (see :func:`stage_outputs`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..backbones.base import Backbone
from ..backbones.truncate import attach_stages
from .activation import channel_map, check_reduction
from .base import (
    Explanation,
    check_explainable,
    features_and_target,
    outside_inference_mode,
    upsample_to,
)

LEVELS = ("low", "middle", "high")


def find_backbone(model: nn.Module) -> Backbone | None:
    """``model`` itself when it is a Backbone, a method's ``backbone``, else None."""
    if isinstance(model, Backbone):
        return model
    backbone = getattr(model, "backbone", None)
    return backbone if isinstance(backbone, Backbone) else None


def stage_outputs(backbone: Backbone) -> dict[str, str]:
    """Stage name → the module (named relative to the backbone) whose output ends the stage.

    The stages are :func:`~explainbench.backbones.truncate.attach_stages`' (``layer1..4`` of a
    ResNet, ``inception3b/4e/5b`` of GoogLeNet, the blocks between max-pools of a plain conv
    stack: small_cnn, VGG, AlexNet), restricted to the modules the extractor still has (a
    truncated backbone lacks the later ones). An extractor that knows its own stages says so
    with a ``stage_outputs()`` method (attention_net's extractor). An extractor without named
    stages falls back to its direct children, each a stage named after itself.
    """
    extractor = backbone.extractor
    if callable(getattr(extractor, "stage_outputs", None)):
        return {name: f"extractor.{module}" for name, module in extractor.stage_outputs().items()}
    layers, prefix = extractor, "extractor"
    if not isinstance(extractor, nn.Sequential) and isinstance(
        getattr(extractor, "layers", None), nn.Sequential
    ):  # GoogLeNet's trunk: the input transform, then its Sequential of layers
        layers, prefix = extractor.layers, "extractor.layers"
    try:
        stages = attach_stages(backbone)
    except ValueError:
        children = [name for name, _ in extractor.named_children()]
        return {name: f"extractor.{name}" for name in children} or {"extractor": "extractor"}
    return {name: f"{prefix}.{keep - 1}" for name, keep in stages.items() if keep <= len(layers)}


def default_layers(backbone: Backbone) -> tuple[str, str, str]:
    """The low, middle and high layer: outputs of the first, middle and last stage."""
    names = list(stage_outputs(backbone).values())
    return names[0], names[len(names) // 2], names[-1]


class LayerHeatmaps:
    """Heatmaps of a low, a middle and a high layer from one forward pass (forward hooks).

    Each layer's output ``[B,C,h,w]`` is reduced over its channels (mean by default) the moment
    the layer runs (so a later in-place ReLU cannot change it), upsampled bilinearly to the
    input size and min-max normalised per image. The Explanation's ``saliency`` is the map of
    ``layer`` so every metric can score it; ``extras`` holds ``layer_maps`` (level → map),
    ``layer_names`` (level → module name) and ``gallery_maps`` (the three maps as gallery
    columns, see :func:`~explainbench.evaluation.render_gallery`). A layer that runs several
    times in one pass (a ResNet block's shared ReLU) gives its last output. The target is
    resolved from the same pass, as for :class:`ActivationMap`; the maps ignore it.

    Args:
        layers: the low, middle and high layer: module names (``extractor.3``, relative to the
            backbone; a method's own modules by their full name) or stage names of the backbone
            (``layer1``, ``stage2``); None: :func:`default_layers`.
        layer: the one whose map is the saliency: ``low``, ``middle``, ``high`` or any module or
            stage name (hooked in the same pass).
        reduction: ``mean`` (default) or ``max`` over the channels.
    """

    def __init__(
        self, layers: Sequence[str] | None = None, layer: str = "high", reduction: str = "mean"
    ) -> None:
        if layers is not None:
            layers = [str(name) for name in layers]
            if len(layers) != len(LEVELS):
                raise ValueError(
                    f"layer_heatmaps.layers must name {len(LEVELS)} layers ({', '.join(LEVELS)}), "
                    f"got {len(layers)}: {layers}"
                )
        self.layers = layers
        self.layer = str(layer)
        self.reduction = check_reduction(reduction)

    def resolve(self, model: nn.Module) -> tuple[dict[str, str], dict[str, nn.Module]]:
        """Level (and ``selected``, when ``layer`` is none of the levels) → module name, and the
        name → module table for them; an unknown name is a ValueError listing the candidates."""
        backbone = find_backbone(model)
        stages = stage_outputs(backbone) if backbone is not None else {}
        table = {name: m for name, m in model.named_modules() if name}
        if backbone is not None and backbone is not model:  # backbone-relative names too
            for name, m in backbone.named_modules():
                if name:
                    table.setdefault(name, m)
        if self.layers is None:
            if backbone is None:
                raise ValueError(
                    f"layer_heatmaps has no default layers for a {type(model).__name__} (not a "
                    "Backbone and no .backbone): set explainers.layer_heatmaps.layers=[low,middle,high]"
                )
            wanted = dict(zip(LEVELS, default_layers(backbone), strict=True))
        else:
            wanted = dict(zip(LEVELS, self.layers, strict=True))
        if self.layer not in LEVELS:
            wanted["selected"] = self.layer
        names = {}
        for level, name in wanted.items():
            name = stages.get(name, name)  # a stage name stands for its last module
            if name not in table:
                raise ValueError(self._unknown(name, stages, table))
            names[level] = name
        return names, {name: table[name] for name in names.values()}

    @staticmethod
    def _unknown(name: str, stages: dict[str, str], table: dict[str, nn.Module]) -> str:
        close = difflib.get_close_matches(name, list(table), n=3)
        listed = ", ".join(f"{module} ({stage})" for stage, module in stages.items())
        return (
            f"layer_heatmaps: unknown layer '{name}'. "
            + (f"Stage outputs: {listed}; " if listed else "")
            + (f"close module names: {', '.join(close)}; " if close else "")
            + f"any of the model's {len(table)} module names is valid (print(model) shows them)."
        )

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        check_explainable(model)  # before resolving: a model without features/head is a TypeError
        names, modules = self.resolve(model)
        cams: dict[str, Tensor] = {}

        def hook_for(name: str):
            def hook(module: nn.Module, inputs, output) -> None:
                if not isinstance(output, Tensor) or output.ndim != 4:
                    shape = tuple(output.shape) if isinstance(output, Tensor) else type(output)
                    raise ValueError(
                        f"layer_heatmaps: layer '{name}' outputs {shape}, not [B,C,H,W] maps: "
                        "choose a convolutional layer"
                    )
                cams[name] = channel_map(output, self.reduction)

            return hook

        handles = [m.register_forward_hook(hook_for(name)) for name, m in modules.items()]
        try:
            x, _, target = features_and_target(model, x, target)
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in modules if name not in cams]
        if missing:
            raise ValueError(
                f"layer_heatmaps: layer(s) {missing} did not run in model.features(x)/head(A): "
                "choose layers on the model's forward path"
            )
        with torch.inference_mode():
            maps = {level: upsample_to(cams[name], x.shape[-2:]) for level, name in names.items()}
        levels = list(maps)
        tensors = outside_inference_mode(target, *maps.values())
        target, maps = tensors[0], dict(zip(levels, tensors[1:], strict=True))
        chosen = maps["selected" if self.layer not in LEVELS else self.layer]
        layer_maps = {level: maps[level] for level in LEVELS}
        extras = {
            "layer_maps": layer_maps,
            "layer_names": {level: names[level] for level in LEVELS},
            "gallery_maps": {f"{level}\n{names[level]}": m for level, m in layer_maps.items()},
        }
        if "selected" in maps:  # the saliency's own layer, when it is none of the three
            extras["gallery_maps"][f"saliency\n{names['selected']}"] = chosen
        return Explanation(chosen, target, forward_passes=1.0, backward_passes=0.0, extras=extras)

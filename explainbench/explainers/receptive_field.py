"""Receptive-field geometry of a CNN's layers: which input box a unit of a layer sees.

For every layer the walk records, per axis (rows, columns),

* ``size`` — the receptive field ``r`` (input pixels one unit sees),
* ``jump`` — the input distance between two neighbouring units (the product of the strides),
* ``start`` — the input coordinate of the first pixel of unit 0's field (negative where the
  field reaches into the padding),

with the usual recurrences for a layer of kernel ``k`` (dilated: ``d(k − 1) + 1``), stride
``s`` and padding ``p`` seen from its input's geometry ``(r, j, a)``:
``r' = r + (k − 1)·j``, ``j' = j·s``, ``a' = a − p·j``. Unit ``i`` then covers the input
pixels ``a' + i·j' … a' + i·j' + r' − 1``; :meth:`Geometry.box` clips that to the image.

Supported: ``nn.Sequential`` stacks (walked recursively: ``small_cnn``, ``vgg16``,
``alexnet``) of ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` and element-wise modules (ReLUs,
batch norm, dropout, …); torchvision ResNet blocks (``BasicBlock`` / ``Bottleneck``: the
field of the main path; the 1×1 shortcut sees a sub-box of it); GoogLeNet (its trunk,
``BasicConv2d`` and ``Inception`` blocks: the union of the branches' fields, which share a
centre). A global (adaptive) pool makes every later layer — flatten, linear — see the whole
image (``whole_image=True``). Anything else raises a ValueError naming the module, so a
geometry is never silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

ELEMENTWISE = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid,
    nn.Tanh, nn.Dropout, nn.Dropout2d, nn.Identity, nn.LocalResponseNorm, nn.GroupNorm,
)  # fmt: skip
GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
AFTER_GLOBAL = (nn.Flatten, nn.Linear, nn.Dropout, nn.Identity, nn.ReLU, nn.BatchNorm1d)
SUPPORTED = (
    "nn.Sequential, Conv2d, MaxPool2d, AvgPool2d, element-wise layers, torchvision ResNet "
    "BasicBlock/Bottleneck, GoogLeNet BasicConv2d/Inception, a global pool then Flatten/Linear"
)


@dataclass(frozen=True)
class Geometry:
    """Receptive field ``size``, ``jump`` and ``start`` per axis ``(rows, columns)``."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[int, int] = (0, 0)
    whole_image: bool = False  # after a global pool: every unit sees the whole image

    def box(self, i: int, j: int, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Input box ``(top, left, bottom, right)`` (bottom/right exclusive) of unit
        ``(i, j)``, clipped to an image of ``image_size = (H, W)``."""
        h, w = image_size
        if self.whole_image:
            return 0, 0, h, w
        top, left, bottom, right = self.field(i, j)
        return max(top, 0), max(left, 0), min(bottom, h), min(right, w)

    def field(self, i: int, j: int) -> tuple[int, int, int, int]:
        """The unclipped field ``(top, left, bottom, right)`` of unit ``(i, j)``: it may reach
        outside the image (into the padding). Not defined after a global pool."""
        if self.whole_image:
            raise ValueError("a unit after a global pool sees the whole image: use box()")
        top = self.start[0] + i * self.jump[0]
        left = self.start[1] + j * self.jump[1]
        return top, left, top + self.size[0], left + self.size[1]

    def through(self, kernel, stride, padding, dilation=1) -> Geometry:
        """The geometry after a window operation with these (int or pair) parameters."""
        k, s, p, d = (_pair(v) for v in (kernel, stride, padding, dilation))
        return Geometry(
            size=tuple(self.size[a] + d[a] * (k[a] - 1) * self.jump[a] for a in range(2)),
            jump=tuple(self.jump[a] * s[a] for a in range(2)),
            start=tuple(self.start[a] - p[a] * self.jump[a] for a in range(2)),
        )


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int]:
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":  # torch pads (total // 2) before, the rest after
        return tuple(conv.dilation[a] * (conv.kernel_size[a] - 1) // 2 for a in range(2))
    return tuple(conv.padding)


def _union(geometries: list[Geometry], name: str) -> Geometry:
    """The field covering every branch's field (branches of one block, same jump)."""
    if len({g.jump for g in geometries}) != 1:
        raise ValueError(f"receptive field: the branches of '{name}' have different strides")
    first = tuple(min(g.start[a] for g in geometries) for a in range(2))
    end = tuple(max(g.start[a] + g.size[a] for g in geometries) for a in range(2))
    size = tuple(end[a] - first[a] for a in range(2))
    return Geometry(size=size, jump=geometries[0].jump, start=first)


def _walk(module: nn.Module, name: str, geo: Geometry, out: dict[str, Geometry]) -> Geometry:
    """Geometry after ``module`` (input geometry ``geo``); records it, and that of every
    sub-layer on the way, in ``out`` under qualified names."""
    kind = type(module).__name__
    prefix = f"{name}." if name else ""
    if geo.whole_image and isinstance(module, (*AFTER_GLOBAL, nn.Sequential)):
        if isinstance(module, nn.Sequential):
            for child_name, child in module.named_children():
                _walk(child, prefix + child_name, geo, out)
        result = geo
    elif isinstance(module, nn.Sequential) or kind in ("BasicConv2d", "_GoogLeNetTrunk"):
        # BasicConv2d applies conv, bn (and F.relu) in order; the trunk is its `layers`
        result = geo
        for child_name, child in module.named_children():
            result = _walk(child, prefix + child_name, result, out)
    elif isinstance(module, nn.Conv2d):
        result = geo.through(
            module.kernel_size, module.stride, _conv_padding(module), module.dilation
        )
    elif isinstance(module, nn.MaxPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        result = geo.through(module.kernel_size, stride, module.padding, module.dilation)
    elif isinstance(module, nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        result = geo.through(module.kernel_size, stride, module.padding)
    elif isinstance(module, ELEMENTWISE):
        result = geo
    elif isinstance(module, GLOBAL_POOLS) and _pair(module.output_size) == (1, 1):
        result = replace(geo, whole_image=True)
    elif kind in ("BasicBlock", "Bottleneck"):
        # main path conv1 → conv2 (→ conv3); the shortcut (downsample, 1×1) sees a sub-box
        result = geo
        for child_name, child in module.named_children():
            if child_name != "downsample":
                result = _walk(child, prefix + child_name, result, out)
        if module.downsample is not None:
            _walk(module.downsample, prefix + "downsample", geo, out)
    elif kind == "Inception":
        branches = [
            _walk(getattr(module, b), prefix + b, geo, out)
            for b in ("branch1", "branch2", "branch3", "branch4")
        ]
        result = _union(branches, name)
    else:
        raise ValueError(
            f"receptive field: unsupported module '{name}' ({kind}); supported: {SUPPORTED}"
        )
    if name:
        out[name] = result
    return result


def layer_geometry(model: nn.Module) -> dict[str, Geometry]:
    """``{qualified module name: Geometry of its output}`` for every layer of ``model``'s
    backbone, named as in ``model.named_modules()`` (e.g. ``"backbone.extractor.3"`` for a
    method, ``"extractor.3"`` for a bare :class:`~explainbench.backbones.base.Backbone`).

    The extractor is walked from the input, then the classifier from the extractor's output.
    """
    backbone, prefix = (model.backbone, "backbone.") if hasattr(model, "backbone") else (model, "")
    if not hasattr(backbone, "extractor"):
        raise ValueError(
            f"receptive field: {type(model).__name__} has no backbone.extractor (a Backbone "
            "or an explainbench method was expected)"
        )
    out: dict[str, Geometry] = {}
    geo = _walk(backbone.extractor, prefix + "extractor", Geometry(), out)
    _walk(backbone.classifier, prefix + "classifier", geo, out)
    return out


def stride_periods(model: nn.Module) -> list[int]:
    """The input periods of the lattices that strided layers' backward passes scatter onto: the
    jump (either axis) after every layer with a stride > 1, e.g. ``[2, 4, 8]`` for three 2×2
    max-pools."""
    return sorted(
        {j for g in layer_geometry(model).values() if not g.whole_image for j in g.jump if j > 1}
    )

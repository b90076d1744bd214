"""Filter-wise responses (Oramas et al., ICLR 2019, Sec. 3.1): per image, per layer, the L2
norm of each channel over space (a fully connected unit: its absolute value), L1-normalised
within the layer "to compensate for the difference in length among different layers", all
layers concatenated into ``x ∈ R^F``.

Layers are the convolutional (``nn.Conv*``) and fully connected (``nn.Linear``) modules of
``model.features`` → ``model.head``, except the class layer (the last of them, whose outputs
are the logits), named by their qualified module name (``model.get_submodule(name)``).

Where a layer's response is read (the paper is silent; our choice): after the normalisation and
activation modules that directly consume it (e.g. ``conv → BatchNorm → ReLU``: the ReLU's
output), as in Caffe, where the ReLU runs in place on the convolution's output blob and a
"filter response" is rectified. A raw convolution output before batch norm carries a per-channel
scale and offset that the next module undoes, which would skew the L1 normalisation across
filters. "Directly" is checked by tensor identity in one probe forward pass, so a residual
addition (a new tensor) ends the chain; a module called more than once per forward (a shared
ReLU) is never a read point.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

FOLLOWERS = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
)
SELECTIONS = ("all", "only_conv")


@dataclass(frozen=True)
class Layer:
    """A selected layer: its module ``name``, the module whose output is read (``read_at``),
    ``kind`` (``"conv"`` or ``"fc"``) and its number of filters (``channels``)."""

    name: str
    read_at: str
    kind: str
    channels: int


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    """The explainers' forward: ``head(features(x))``."""
    return model.head(model.features(x))


def trace_layers(model: nn.Module, x: Tensor) -> list[Layer]:
    """Every conv / FC layer of ``model`` in call order (one probe pass on ``x``), with its read
    point and filter count, the class layer excluded."""
    names = {module: name for name, module in model.named_modules()}
    calls: list[tuple[nn.Module, Tensor | None, Tensor]] = []  # (module, input, output)
    count: dict[nn.Module, int] = {}

    def hook(module, inputs, output):
        count[module] = count.get(module, 0) + 1
        first = inputs[0] if inputs and torch.is_tensor(inputs[0]) else None
        if torch.is_tensor(output):
            calls.append((module, first, output))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            _forward(model, x[:1])
    finally:
        for h in handles:
            h.remove()
    layers = []
    for i, (module, _, output) in enumerate(calls):
        if not isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) or count[module] > 1:
            continue
        read_module, read_output = module, output
        for nxt, nxt_input, nxt_output in calls[i + 1 :]:
            direct = nxt_input is not None and nxt_input.data_ptr() == read_output.data_ptr()
            if not direct:
                break
            if (
                not isinstance(nxt, FOLLOWERS)
                or count[nxt] > 1
                or nxt_output.shape != read_output.shape
            ):
                break
            read_module, read_output = nxt, nxt_output
        kind = "fc" if isinstance(module, nn.Linear) else "conv"
        layers.append(Layer(names[module], names[read_module], kind, int(output.shape[1])))
    return layers[:-1]  # the last conv / FC layer outputs the logits: the class layer


def select_layers(model: nn.Module, selection: str | Sequence[str], x: Tensor) -> list[Layer]:
    """The layers of ``selection``: ``"all"`` (every conv and FC layer but the class layer),
    ``"only_conv"``, or module names (a list or a comma-separated string). Anything that matches
    no layer is one ValueError listing the layer names."""
    layers = trace_layers(model, x)
    valid = ", ".join(f"{layer.name} ({layer.kind})" for layer in layers)
    if isinstance(selection, str) and selection in SELECTIONS:
        chosen = [la for la in layers if selection == "all" or la.kind == "conv"]
        if not chosen:
            raise ValueError(
                f"Layer selection '{selection}' matches no layer; the layers are: {valid}"
            )
        return chosen
    wanted = (
        [s.strip() for s in selection.split(",")] if isinstance(selection, str) else list(selection)
    )
    by_name = {layer.name: layer for layer in layers}
    unknown = [name for name in wanted if name not in by_name]
    if unknown or not wanted:
        raise ValueError(
            f"Layer selection {wanted} matches no layer for {', '.join(unknown) or 'an empty list'}: "
            f"choose 'all', 'only_conv' or names among: {valid}"
        )
    return [by_name[name] for name in dict.fromkeys(wanted)]


def layer_responses(output: Tensor) -> Tensor:
    """``[B,K,...]`` → ``[B,K]``: the L2 norm of each channel over space (``[B,K]`` outputs of
    an FC layer: the absolute value), L1-normalised over the K filters (an all-zero layer stays
    zero)."""
    norms = output.flatten(2).norm(dim=2) if output.ndim > 2 else output.abs()
    return norms / norms.sum(dim=1, keepdim=True).clamp_min(torch.finfo(norms.dtype).tiny)


class FilterResponses:
    """Captures the read-point outputs of ``layers`` during a forward pass.

    ``with responses.capture(model): model.head(model.features(x))`` fills ``outputs`` (layer
    name → the read module's output, with its graph when autograd records); ``vector()`` is the
    concatenated ``[B, F]`` response, in the order of ``index``.
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = list(layers)
        self.index = [(layer.name, q) for layer in self.layers for q in range(layer.channels)]
        self.outputs: dict[str, Tensor] = {}

    @contextmanager
    def capture(self, model: nn.Module) -> Iterator[FilterResponses]:
        self.outputs = {}
        handles = []
        for layer in self.layers:

            def hook(module, inputs, output, name=layer.name):
                self.outputs[name] = output

            handles.append(model.get_submodule(layer.read_at).register_forward_hook(hook))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def vector(self) -> Tensor:
        missing = [la.name for la in self.layers if la.name not in self.outputs]
        if missing:
            raise RuntimeError(f"No output was captured for layers {missing}")
        return torch.cat(
            [layer_responses(self.outputs[la.name].detach()) for la in self.layers], dim=1
        )


def one_hot_labels(label: Tensor, num_classes: int) -> Tensor:
    """The paper's binary label vectors ``l_i ∈ {0,1}^C``: one-hot for class indices, the 0/1
    vector itself for multi-label data."""
    if label.ndim == 2:
        return label.float()
    return nn.functional.one_hot(label.long(), num_classes).float()


@torch.inference_mode()
def collect_responses(
    model: nn.Module, loader: DataLoader, layers: Sequence[Layer], num_classes: int, n: int
) -> tuple[Tensor, Tensor]:
    """Stream ``loader`` through ``model`` (on its device, inference mode) and return the
    responses ``X`` ``[n, F]`` and labels ``[n, C]`` of its first ``n`` images. Memory: one batch
    plus the preallocated ``X``."""
    device = next(model.parameters()).device
    responses = FilterResponses(layers)
    X = torch.empty(n, len(responses.index), device=device)
    Y = torch.empty(n, num_classes, device=device)
    filled = 0
    with responses.capture(model):
        for batch in loader:
            if filled >= n:
                break
            take = min(n - filled, batch["image"].shape[0])
            _forward(model, batch["image"][:take].to(device))
            X[filled : filled + take] = responses.vector()
            Y[filled : filled + take] = one_hot_labels(
                batch["label"][:take].to(device), num_classes
            )
            filled += take
    return X[:filled], Y[:filled]

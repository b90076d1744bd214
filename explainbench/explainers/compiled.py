"""Many forwards of one model through ``torch.compile``, for Score-CAM and RISE.

Score-CAM and RISE spend nearly all their time in thousands of forwards of masked copies of
an image. Compiled with inductor, BatchNorm, ReLU and residual adds become a few fused
kernels around oneDNN's convolutions instead of separate passes over memory, and a
channels-last copy of the weights saves oneDNN a weight reorder per call. Logits stay within ~1e-5 of eager
mode; the speed-ups are measured in docs/results/bench_explainers_cpu.md.

Why not inductor's *freezing*: it would bake the weights into the graph as constants, and
dynamo does not recompile when a module with the same structure but other weights comes
along (we measured stale logits after a weight update), while its measured gain here was
nil. Without it the weights stay graph inputs: a compiled graph always uses the weights it is
given. The channels-last copy is refreshed whenever a parameter or buffer of the model
changes (data pointer or in-place version counter), e.g. after an optimizer step when a
callback explains during training; that costs a copy, not a compilation.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from itertools import chain

import torch
from torch import Tensor, nn


class _Logits(nn.Module):
    """``head(features(x))`` as one module, so that one graph covers both."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.head(self.model.features(x))


def weights_key(model: nn.Module) -> tuple:
    """Identifies the model and the current contents of its parameters and buffers: changes
    whenever any of them is replaced or modified in place (optimizer steps, ``load_state_dict``,
    BatchNorm statistics, ``.to()``) or a module switches between train and eval."""
    tensors = chain(model.parameters(), model.buffers())
    modes = tuple(module.training for module in model.modules())
    return (id(model), modes, tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors))


class CompiledLogits:
    """``(model, x) -> model.head(model.features(x))`` through ``torch.compile``.

    Runs a copy of ``model`` (channels-last when ``x`` is), compiled once with
    ``dynamic=False``: feed it inputs of one shape (pad the last chunk of a loop rather than
    shrinking it), or every new shape compiles anew. The model itself is left untouched.

    If compiling fails (no C++ toolchain for inductor, a model dynamo cannot handle), the
    error is reported once as a warning and the forwards run eagerly: an evaluation of
    thousands of images should not die on an optional speed-up.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._compiled: Callable[[Tensor], Tensor] | None = None
        self._failed = False

    def __call__(self, model: nn.Module, x: Tensor) -> Tensor:
        if self._failed:
            return model.head(model.features(x))
        key = weights_key(model)
        if key != self._key:
            self._compiled = self._compile(model, x)
            self._key = key
        try:
            return self._compiled(x)
        except Exception as err:  # noqa: BLE001 — any compiler failure: fall back, say why
            message = str(err).splitlines()[0] if str(err) else ""
            warnings.warn(
                f"torch.compile of {type(model).__name__} failed ({type(err).__name__}: "
                f"{message}); running eagerly instead (set compile: false to silence this)",
                RuntimeWarning,
                stacklevel=2,
            )
            self._failed = True
            return model.head(model.features(x))

    def __getstate__(self) -> dict:
        # Compiled graphs don't pickle (ddp_spawn pickles callbacks and their explainers):
        # a copy starts uncompiled and compiles on first use.
        return {**self.__dict__, "_key": None, "_compiled": None}

    @staticmethod
    def _compile(model: nn.Module, x: Tensor) -> Callable[[Tensor], Tensor]:
        # Copied outside inference mode so that the copy's parameters stay ordinary tensors;
        # it keeps the model's train/eval flags: the explanation must not depend on compiling.
        with torch.inference_mode(False), torch.no_grad():
            copied = copy.deepcopy(model)
            if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
                copied = copied.to(memory_format=torch.channels_last)
        return torch.compile(_Logits(copied), dynamic=False)

"""Reading checkpoint files without running code from them: :func:`load_checkpoint`.

``torch.load(weights_only=False)`` unpickles arbitrary objects, and unpickling can call any
function the file names: a crafted ``.ckpt`` runs code the moment it is loaded. Every checkpoint
explainbench reads from a user-given path (``backbone.checkpoint=``, ``evaluate.py ckpt_path=``)
goes through :func:`load_checkpoint`, which uses ``weights_only=True``: tensors, plain containers
and numbers, plus the types in :data:`SAFE_GLOBALS`. A file that needs anything else is refused
with the type it asked for and the opt-in ``trust_checkpoint=true``, for files the user trusts.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

# Types beyond torch's own weights-only set that checkpoints written by explainbench contain.
# Empty on purpose: a train.py checkpoint (Lightning 2.6: state_dict, loops, callbacks,
# optimizer/scheduler states, hyper-parameters as plain containers, build_config) holds
# only tensors, dicts, lists, tuples, strings and numbers. Add a type here only when train.py
# itself starts writing it (e.g. numpy RNG state would need numpy._core.multiarray._reconstruct,
# numpy.ndarray, numpy.dtype and numpy.dtypes.UInt32DType); never omegaconf containers:
# hyper-parameters are stored as plain Python containers instead.
SAFE_GLOBALS: list[Any] = []

TRUST_HINT = "trust_checkpoint=true"


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint that needs a type outside the weights-only allow-list to be unpickled."""


def _refused_type(err: BaseException) -> str | None:
    """The type or function a weights-only load refused, as torch's unpickler error names it."""
    text = str(err)
    found = re.search(r"GLOBAL (\S+) was not an allowed global", text) or re.search(
        r"but got <class '([^']+)'>", text
    )
    return found.group(1) if found else None


def _unpickler_reason(err: BaseException) -> str:
    """The weights-only unpickler's own one-line reason (e.g. ``Unsupported operand 110``)."""
    after = str(err).split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
    return after[0].strip() if after and after[0].strip() else type(err).__name__


def load_checkpoint(
    path: str | os.PathLike,
    trust: bool = False,
    what: str = "Checkpoint",
    map_location: Any = "cpu",
    mmap: bool = False,
) -> Any:
    """``torch.load`` of ``path``, refusing anything that could run code unless ``trust``.

    Args:
        path: the file.
        trust: ``True`` unpickles everything (``weights_only=False``): only for files from a
            source the user trusts (``trust_checkpoint=true``).
        what: how the messages name the file, e.g. ``"Backbone checkpoint"`` or
            ``"Checkpoint"`` with the config key that gave it.
        map_location: as for ``torch.load``.
        mmap: map the tensors' storage instead of reading it (``torch.load(mmap=True)``), for
            callers that only look at shapes and configs; torch maps only its zip format, so
            other files are read (and refused) as without it.

    Raises:
        FileNotFoundError: no such file.
        UntrustedCheckpointError: the file needs a type outside the allow-list; the message names
            the type and the opt-in.
        ValueError: the file is not a readable checkpoint at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} '{path}' does not exist.")
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        if trust:
            return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        refused = None if trust else _refused_type(err)
        if refused is None:  # not a pickle at all, or a construct the safe loader cannot read
            reason = str(err) if trust else _unpickler_reason(err)
            hint = "" if trust else f" (if it is a pickle from a source you trust: {TRUST_HINT})"
            raise ValueError(
                f"Cannot read {what.lower()} '{path}': not a PyTorch checkpoint, or a damaged one "
                f"({reason}){hint}."
            ) from None
        raise UntrustedCheckpointError(
            f"{what} '{path}' needs the type '{refused}', which explainbench never writes: loading it "
            f"could run code from the file. If you trust this file, add {TRUST_HINT} to the command."
        ) from None
    except Exception as err:  # noqa: BLE001 - truncated zip, not a torch file, ...: one message
        raise ValueError(f"Cannot read {what.lower()} '{path}': {err}") from err

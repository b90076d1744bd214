"""Checkpoints from user-given paths are read weights-only: a crafted file cannot run code.

The crafted file holds an object whose ``__reduce__`` calls :func:`leave_marker`: a full
unpickle (``weights_only=False``) runs it and creates the marker file; a safe load must refuse
the file before that happens, name the type and the opt-in ``trust_checkpoint=true``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch

from explainbench.backbones import build_backbone
from explainbench.methods.build import build_method, load_method
from explainbench.utils.checkpoint import UntrustedCheckpointError, load_checkpoint
from explainbench.utils.instantiate import unwrap_instantiation_error

from .helpers import compose_cfg, run_cli

PAYLOAD_TYPE = f"{__name__}.leave_marker"


def leave_marker(path: str) -> dict:
    """The 'payload': any function a crafted pickle names runs during a full unpickle."""
    Path(path).write_text("the checkpoint ran code\n")
    return {}


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return leave_marker, (self.marker,)


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """(checkpoint path, marker path): a Lightning-like checkpoint carrying the payload."""
    marker = tmp_path / "marker.txt"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


def assert_refused(err: pytest.ExceptionInfo, marker: Path) -> None:
    message = str(err.value)
    assert PAYLOAD_TYPE in message
    assert "trust_checkpoint=true" in message
    assert not marker.exists(), "the crafted checkpoint ran its payload"


def test_crafted_checkpoint_is_refused_by_evaluate_loader(crafted):
    path, marker = crafted
    with pytest.raises(UntrustedCheckpointError) as err:
        load_method(str(path))
    assert_refused(err, marker)


def test_crafted_backbone_checkpoint_is_refused(crafted):
    path, marker = crafted
    with pytest.raises(UntrustedCheckpointError) as err:
        build_backbone("small_cnn", 6, checkpoint=path)
    assert_refused(err, marker)


def test_trusted_checkpoint_is_fully_unpickled(crafted):
    path, marker = crafted
    blob = load_checkpoint(path, trust=True)
    assert marker.exists() and blob["hyper_parameters"] == {}


def test_trust_checkpoint_key_reaches_the_backbone_loader(crafted, tmp_path):
    """``trust_checkpoint=true`` on the train.py command line is what unlocks backbone.checkpoint."""
    path, marker = crafted
    base = ["method=lcam_img", f"backbone.checkpoint={path}"]

    def build(overrides: list[str]) -> None:
        try:
            cfg = compose_cfg(overrides, tmp_path)
            build_method(cfg, hydra.utils.instantiate(cfg.data))
        except Exception as err:  # the error a user sees, not Hydra's wrapper
            raise unwrap_instantiation_error(err) from None

    with pytest.raises(UntrustedCheckpointError):
        build(base)
    assert not marker.exists()
    # trusted: the file is unpickled (the marker appears); its empty state dict then does not fit
    with pytest.raises(ValueError, match="does not fit backbone"):
        build([*base, "trust_checkpoint=true"])
    assert marker.exists()


def test_evaluate_cli_refuses_crafted_checkpoint_in_one_line(crafted, tmp_path):
    path, marker = crafted
    proc = run_cli(
        "evaluate.py", [f"ckpt_path={path}", f"paths.output_dir={tmp_path / 'eval'}"], tmp_path
    )
    assert proc.returncode != 0
    assert "Error: UntrustedCheckpointError" in proc.stderr
    assert PAYLOAD_TYPE in proc.stderr and "trust_checkpoint=true" in proc.stderr
    assert not marker.exists()

"""Training speed options: ``backbone.channels_last``, ``backbone.compile`` (checkpoints keep
plain keys), ``trainer.precision=bf16-mixed`` end to end on CPU, and one-line errors for a
precision the device does not support or a speed option of the wrong type."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from explainbench.methods.build import build_backbone_for_data
from explainbench.utils import precision as precision_mod
from explainbench.utils.precision import check_precision
from explainbench.utils.validate import ConfigTypeError

from .helpers import TINY_DATA, compose_cfg, run_unwrapped


def backbone(tmp_path, *overrides):
    cfg = compose_cfg(["backbone=small_cnn", *overrides], tmp_path)
    return build_backbone_for_data(cfg.backbone, 8)


def test_channels_last_lays_out_the_conv_weights_nhwc(tmp_path):
    conv = next(m for m in backbone(tmp_path).modules() if isinstance(m, torch.nn.Conv2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc = backbone(tmp_path, "backbone.channels_last=true")
    convs = [m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_compile_keeps_plain_checkpoint_keys(tmp_path):
    torch.manual_seed(0)
    eager = backbone(tmp_path)
    compiled = backbone(tmp_path, "backbone.compile=true")
    # compiled in place: features() and head() go through torch.compile ...
    assert compiled.extractor._compiled_call_impl is not None
    assert compiled.classifier._compiled_call_impl is not None
    assert eager.extractor._compiled_call_impl is None
    # ... and the state dict is the eager one's, key for key (no "_orig_mod." prefix)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    eager.load_state_dict(compiled.state_dict())


def test_bf16_mixed_training_on_cpu(tmp_path):
    cfg = compose_cfg(
        [*TINY_DATA, "trainer.max_epochs=1", "trainer.accelerator=cpu",
         "trainer.precision=bf16-mixed", "backbone.channels_last=true"],
        tmp_path,
    )  # fmt: skip
    metrics = run_unwrapped(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert math.isfinite(metrics["test/loss"])


def test_fp16_on_cpu_is_one_line_naming_bf16(tmp_path):
    cfg = compose_cfg(
        [*TINY_DATA, "trainer.accelerator=cpu", "trainer.precision=16-mixed"], tmp_path
    )
    with pytest.raises(ValueError) as err:
        run_unwrapped(cfg)
    assert str(err.value) == (
        "trainer.precision=16-mixed needs a CUDA GPU (CPUs rarely compute float16 natively: "
        "slower than float32). On CPU use trainer.precision=bf16-mixed or 32-true."
    )


def test_bf16_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    trainer = OmegaConf.create({"accelerator": "gpu", "precision": "bf16-mixed"})
    with pytest.raises(ValueError, match=r"^trainer.precision=bf16-mixed: Tesla V100 does not "):
        check_precision(trainer)
    assert precision_mod.run_device(OmegaConf.create({"accelerator": "auto"})) == "cuda"
    check_precision(OmegaConf.create({"accelerator": "gpu", "precision": "16-mixed"}))


def test_unknown_precision_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of 32-true, bf16-mixed, 16-mixed"):
        check_precision(OmegaConf.create({"accelerator": "cpu", "precision": "8-mixed"}))


def test_speed_option_of_the_wrong_type(tmp_path):
    cfg = compose_cfg(["backbone.compile=yes"], tmp_path)
    with pytest.raises(
        ConfigTypeError, match=r"backbone.compile=\"yes\" \(str\): expected true/false"
    ):
        run_unwrapped(cfg)

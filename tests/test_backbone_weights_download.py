"""``backbone.weights=IMAGENET1K_V1`` follows torchvision: the torch hub cache, else a download
there with a progress bar; offline, a fast error naming the file, the folder and the URL.

Nothing is downloaded: the download is replaced by a stand-in, and the "offline" server is a
loopback port where nothing listens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torchvision import models

from explainbench.backbones import build_backbone, registry


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    """A torch hub cache without any weights file; returns its checkpoints folder."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_absent_weights_are_downloaded_into_the_hub_cache(empty_hub, monkeypatch):
    reference = models.resnet18(weights=None).state_dict()
    calls = []

    def fake_download(url, model_dir=None, progress=False, **kwargs):
        calls.append({"url": url, "model_dir": model_dir, "progress": progress})
        return reference

    monkeypatch.setattr(registry, "url_unreachable", lambda url, timeout=5.0: None, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    backbone = build_backbone("resnet18", num_classes=1000, weights="IMAGENET1K_V1")

    assert calls == [
        {
            "url": models.ResNet18_Weights.IMAGENET1K_V1.url,
            "model_dir": str(empty_hub),
            "progress": True,
        }
    ]
    assert backbone.source == "torchvision:IMAGENET1K_V1"
    # the head is nn.Sequential(avgpool, flatten, fc): its fc came from the "downloaded" state
    assert torch.equal(backbone.classifier[2].weight, reference["fc.weight"])


@dataclass(frozen=True)
class _OfflineWeights:
    """Stands in for a torchvision Weights entry whose server is a closed loopback port."""

    url: str = "http://127.0.0.1:9/resnet18-f37072fd.pth"
    name: str = "IMAGENET1K_V1"


def test_offline_download_fails_fast_naming_file_folder_and_url(empty_hub, monkeypatch):
    monkeypatch.setattr(registry.models, "get_weight", lambda tag: _OfflineWeights())
    monkeypatch.setattr(
        torch.hub,
        "load_state_dict_from_url",
        lambda *a, **k: pytest.fail("tried to download offline"),
    )
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        build_backbone("resnet18", num_classes=6, weights="IMAGENET1K_V1")
    assert time.monotonic() - start < 7.0  # the probe gives the server 5 s
    message = str(err.value)
    assert "'resnet18-f37072fd.pth'" in message
    assert str(empty_hub) in message
    assert _OfflineWeights.url in message

"""an8flower is learnable by the default small CNN on CPU (slow: ~1-2 min per variant on 2
idle cores; run with ``pytest -m slow tests/data`` or ``EXPLAINBENCH_SLOW=1``).

The settings of ``make train``: the data module's defaults (4000 train images with brightness
jitter, 1000 test), the optimiser of ``conf/method/classifier.yaml`` (AdamW, lr 3e-3, cosine)
and ``conf/trainer/default.yaml``'s 3 epochs, in a plain torch loop so only the data is under
test.
"""

from __future__ import annotations

import os
import time

import pytest
import torch
from torch.nn import functional as F

from explainbench.backbones import build_backbone
from explainbench.data.an8flower import An8Flower, An8FlowerDataModule

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _only_when_asked(request):
    markexpr = request.config.getoption("-m") or ""
    if "slow" not in markexpr.replace("not slow", "") and not os.environ.get("EXPLAINBENCH_SLOW"):
        pytest.skip("slow: run with `-m slow` or EXPLAINBENCH_SLOW=1")


def stacked(dataset: An8Flower) -> tuple[torch.Tensor, torch.Tensor]:
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    return batch["image"], batch["label"]


@pytest.mark.parametrize(("variant", "target"), [("single6c", 0.95), ("double12c", 0.90)])
def test_small_cnn_learns_the_part_colour(variant, target):
    torch.manual_seed(0)
    datamodule = An8FlowerDataModule(variant=variant)
    train = datamodule.dataset("train")
    test_images, test_labels = stacked(datamodule.dataset("test"))
    model = build_backbone("small_cnn", num_classes=datamodule.num_classes)
    epochs = 3
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    start = time.perf_counter()
    for _ in range(epochs):
        images, labels = stacked(train)  # brightness jitter drawn anew each epoch
        model.train()
        for batch in torch.randperm(len(labels)).split(64):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat([model(x).argmax(1) for x in test_images.split(250)])
    accuracy = (predicted == test_labels).float().mean().item()
    print(f"{variant}: test accuracy {accuracy:.3f} after {time.perf_counter() - start:.0f}s")
    assert accuracy >= target

"""The training step updates the accuracy state only; the epoch's accuracy is logged once, at
the end of the epoch (logging the metric object every step cost ~1 ms per step: see
methods/base.py and scripts/bench_train.py)."""

from __future__ import annotations

import hydra
import pytest
import torch

from explainbench.methods.build import build_method

from .helpers import TINY_DATA, compose_cfg


def test_train_accuracy_is_logged_once_per_epoch_over_all_its_images(tmp_path):
    cfg = compose_cfg(TINY_DATA, tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    method = build_method(cfg, datamodule)
    logged = []
    method.log = lambda name, value, **kwargs: logged.append((name, float(value)))

    def fixed_logits(batch):
        return batch["logits"], {"ce": torch.tensor(0.5)}

    method.loss = fixed_logits
    hot = torch.eye(6) * 5.0  # logits whose argmax is the row's class

    def batch(predicted: list[int], labels: list[int]) -> dict:
        return {"logits": hot[predicted], "label": torch.tensor(labels)}

    # epoch 1: 2 of 3 right, then 1 of 1: 3/4 over the images (not the mean of the batches, 5/6)
    method.training_step(batch([0, 1, 2], [0, 1, 0]), 0)
    method.training_step(batch([4], [4]), 1)
    assert [name for name, _ in logged] == ["train/loss", "train/loss"]  # no per-step accuracy
    method.on_train_epoch_end()
    assert logged[-1] == ("train/acc", pytest.approx(0.75))
    # epoch 2 starts from an empty state: 0 of 1
    method.training_step(batch([3], [2]), 0)
    method.on_train_epoch_end()
    assert logged[-1] == ("train/acc", pytest.approx(0.0))

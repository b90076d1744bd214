"""The rich progress bar reads the metrics (a host sync per read on a GPU) every
``metrics_every`` training batches, not after every batch."""

from __future__ import annotations

import hydra
import lightning as L

from explainbench.callbacks.progress import SparseMetricsRichProgressBar
from explainbench.methods.build import build_method

from .helpers import TINY_DATA, compose_cfg


def test_rich_bar_reads_the_metrics_every_n_training_batches_and_at_epoch_end(tmp_path):
    cfg = compose_cfg(TINY_DATA, tmp_path)  # 64 training images, batches of 16: 4 batches
    datamodule = hydra.utils.instantiate(cfg.data)
    method = build_method(cfg, datamodule)
    bar = SparseMetricsRichProgressBar(metrics_every=3)
    reads = []
    original = bar.get_metrics

    def counting(trainer, pl_module):
        reads.append(trainer.fit_loop.epoch_loop.batch_progress.current.completed)
        return original(trainer, pl_module)

    bar.get_metrics = counting
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(method, datamodule=datamodule)
    # batch 3 (the 3rd completed batch is counted after its batch-end hooks: 2 completed), then
    # the epoch end after all 4; a plain RichProgressBar reads after each of the 4 batches too
    assert reads == [2, 4]
    assert "train/loss" in bar.get_metrics(trainer, method)

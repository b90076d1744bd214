"""Unreadable images: counted in metrics.json, and a split with none readable is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate

from .data.test_attribute_folder import write_folder
from .helpers import compose_cfg, run_cli, run_unwrapped

# 3 classes x 4 images, 2 / 1 / 1 per class: train 6, val 3, test 3
DATA = [
    "data=attribute_folder",
    "data.image_size=16",
    "data.resize_size=null",
    "data.split_ratios=[0.5,0.25,0.25]",
    "data.batch_size=4",
    "data.pin_memory=false",
]


def folder_config(tmp_path: Path, *overrides: str):
    root = write_folder(tmp_path / "folder")
    cfg = compose_cfg(
        [f"data.root={root}", *DATA, "callbacks.model_summary=null", *overrides], tmp_path / "run"
    )
    return cfg, instantiate(cfg.data)


def corrupt(paths: list[Path]) -> None:
    for path in paths:
        path.write_bytes(b"not an image")


def split_files(datamodule, split: str) -> list[Path]:
    return [path for path, _ in datamodule.dataset(split).samples]


def test_skipped_images_are_counted_once_in_metrics_json(tmp_path):
    """One unreadable file per split, read over two epochs by DataLoader worker processes
    (whose own counters never reach the main process): counted once each."""
    cfg, datamodule = folder_config(tmp_path, "data.num_workers=2", "trainer.max_epochs=2")
    bad = [split_files(datamodule, split)[0] for split in ("train", "val", "test")]
    corrupt(bad)
    run_unwrapped(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data/skipped_images"] == len(bad)
    assert "test/acc" in metrics


def test_split_without_a_readable_image_is_one_line_naming_the_split_and_files(tmp_path):
    """Every validation image unreadable: one line naming the split and its files at the end
    of the first validation, instead of an empty epoch and "ModelCheckpoint could not find
    val/acc"."""
    cfg, datamodule = folder_config(tmp_path)
    corrupt(split_files(datamodule, "val"))
    args = [f"data.root={cfg.data.root}", *DATA, "data.num_workers=0", "trainer.max_epochs=1"]
    proc = run_cli("train.py", args, tmp_path / "runs")
    assert proc.returncode == 1
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith("Error: UnreadableSplitError: No image of the val split could be read")
    assert all(str(path) in line for path in split_files(datamodule, "val"))

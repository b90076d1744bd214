"""``python -m explainbench.report``: a sweep dir → one Markdown table (rows = jobs, columns =
the overrides that vary and the metrics), on a hand-made sweep dir and on a real tiny sweep."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from explainbench.report import format_number, main, report

from .helpers import ROOT, TINY_DATA, run_cli


def write_job(folder, overrides, metrics=None, error=None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (folder / "error.txt").write_text(error)


@pytest.fixture
def sweep(tmp_path):
    """Jobs 0, 1, 2 (failed) and 10 (so number order differs from name order)."""
    root = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    common = ["method=classifier", "trainer.max_epochs=2"]
    write_job(
        root / "0",
        [*common, "method.optimizer.lr=0.1"],
        {"test/acc": 0.8125, "val/acc_best": 0.84375, "test/loss": 0.51234, "train/loss": 12345.6},
    )
    write_job(
        root / "1",
        [*common, "method.optimizer.lr=0.01"],
        {"test/acc": 0.75, "val/acc_best": 0.8, "test/loss": 0.6, "data/skipped_images": 0},
    )
    write_job(
        root / "2",
        [*common, "method.optimizer.lr=1.0", "+trainer.foo=3"],
        error="Error: ValueError: lr too\nlarge\noverrides: method.optimizer.lr=1.0\n\nTraceback ...",
    )
    write_job(
        root / "10",
        [*common, "method.optimizer.lr=0.001"],
        {"test/acc": 0.5, "test/loss": None, "val/acc_best": 0.5},
    )
    hydra = {
        "mode": "MULTIRUN",
        "job": {"name": "train"},
        "overrides": {
            "hydra": ["hydra.mode=MULTIRUN"],
            "task": ["method.optimizer.lr=0.1,0.01,1.0,0.001", "explainers=[gradcam]"],
        },
    }
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "seed": 0}))
    return root


def test_fake_sweep_gives_the_expected_table(sweep):
    assert report(sweep) == (
        "`python train.py -m method.optimizer.lr=0.1,0.01,1.0,0.001 'explainers=[gradcam]'`\n"
        "\n"
        "| job | method.optimizer.lr | trainer.foo | test/acc | test/loss | data/skipped_images "
        "| train/loss | val/acc_best | status |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---|\n"
        "| 0 | 0.1 |  | 0.8125 | 0.5123 |  | 12346 | 0.8438 | ok |\n"
        "| 1 | 0.01 |  | 0.75 | 0.6 | 0 |  | 0.8 | ok |\n"
        "| 2 | 1.0 | 3 |  |  |  |  |  | failed: ValueError: lr too large |\n"
        "| 10 | 0.001 |  | 0.5 | nan |  |  | 0.5 | ok |\n"
    )


def test_chosen_metrics_all_overrides_and_out_file(sweep, tmp_path, capsys):
    out = tmp_path / "tables" / "sweep.md"
    main([str(sweep), "--out", str(out), "--metrics", "val/*,test/acc", "--all-overrides"])
    text = out.read_text()
    assert capsys.readouterr().out == text
    assert text.splitlines()[2:5] == [
        "| job | method | trainer.max_epochs | method.optimizer.lr | trainer.foo | val/acc_best "
        "| test/acc | status |",
        "|---|---|---|---|---|---:|---:|---|",
        "| 0 | classifier | 2 | 0.1 |  | 0.8438 | 0.8125 | ok |",
    ]
    with pytest.raises(SystemExit, match="no metric matches 'test/iou'. Available: data/"):
        report(sweep, metrics=["test/iou"])


def test_a_single_run_dir_is_one_row_without_status(sweep):
    lines = report(sweep / "1").splitlines()
    assert lines == [
        "| job | test/acc | test/loss | data/skipped_images | val/acc_best |",
        "|---|---:|---:|---:|---:|",
        "| 1 | 0.75 | 0.6 | 0 | 0.8 |",
    ]


def test_a_folder_without_runs_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match=r"no runs in .*: expected job folders with \.hydra"):
        report(tmp_path)


@pytest.mark.parametrize(
    "value,text",
    [
        (0.123456, "0.1235"),
        (12.0, "12"),
        (123456.7, "123457"),
        (7, "7"),
        (None, "nan"),
        (2e-5, "2e-05"),
    ],
)
def test_numbers_are_compact(value, text):
    assert format_number(value) == text


@pytest.mark.slow  # a sweep of 2 jobs through the CLI: 20-60 s on 2 busy cores
def test_report_of_a_real_sweep_through_the_cli(tmp_path):
    """Job 0 fails at start-up (an empty validation split), job 1 trains one epoch."""
    start = time.perf_counter()
    args = ["-m", "data.val_size=0,32", "trainer.max_epochs=1", "callbacks.model_summary=null"]
    args += [a for a in TINY_DATA if not a.startswith("data.val_size")]
    proc = run_cli("train.py", args, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    out = tmp_path / "table.md"
    table = subprocess.run(
        [sys.executable, "-m", "explainbench.report", str(sweep_dir), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    metrics = json.loads((sweep_dir / "1" / "metrics.json").read_text())
    lines = out.read_text().splitlines()
    assert table.stdout == out.read_text()
    assert lines[0] == f"`python train.py {' '.join(args)} paths.log_dir={tmp_path}`"
    header = lines[2].strip("| ").split(" | ")
    assert header[:4] == ["job", "data.val_size", "test/acc", "test/loss"]
    assert header[-1] == "status"
    row0, row1 = (line.strip("| ").split(" | ") for line in lines[4:6])
    assert row0[:2] == ["0", "0"] and lines[4].endswith(
        "| failed: ValueError: an8flower val_size must be >= 1, got 0 |"
    )
    assert row1[:4] == [
        "1",
        "32",
        format_number(metrics["test/acc"]),
        format_number(metrics["test/loss"]),
    ]
    assert row1[-1] == "ok" and len(lines) == 6
    print(f"sweep + report: {time.perf_counter() - start:.1f} s")

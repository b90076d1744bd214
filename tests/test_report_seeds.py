"""``python -m explainbench.report`` on repeated seeds (mean ± std per setting of the other
swept keys) and on job dirs that hold only an offline W&B run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from explainbench.report import main, report, wandb_offline_summary

from .test_report import write_job


@pytest.fixture
def seeds_sweep(tmp_path):
    """lr 0.1 × seeds 0,1,2 and lr 0.01 × seeds 0,1 (+ seed 2 failed)."""
    root = tmp_path / "sweep"
    values = {
        ("0.1", "0"): (0.5, 1.0),
        ("0.1", "1"): (0.75, 0.5),
        ("0.1", "2"): (1.0, 0.25),
        ("0.01", "0"): (0.25, 2.0),
        ("0.01", "1"): (0.5, 4.0),
    }
    for job, ((lr, seed), (acc, loss)) in enumerate(values.items()):
        write_job(root / str(job), [f"method.optimizer.lr={lr}", f"seed={seed}"],
                  {"test/acc": acc, "test/loss": loss})  # fmt: skip
    write_job(root / "5", ["method.optimizer.lr=0.01", "seed=2"], error="Error: ValueError: boom")
    return root


def test_seeds_grouped_with_mean_and_sample_std(seeds_sweep):
    # lr 0.1: acc 0.5, 0.75, 1.0 → mean 0.75, std 0.25; loss 1, .5, .25 → 0.5833, 0.3819
    # lr 0.01: acc .25, .5 → 0.375 ± 0.1768; loss 2, 4 → 3 ± 1.414 (the failed seed left out)
    assert report(seeds_sweep).splitlines() == [
        "| method.optimizer.lr | seeds | test/acc | test/loss | failed |",
        "|---|---|---:|---:|---:|",
        "| 0.1 | 0,1,2 | 0.75 ± 0.25 | 0.5833 ± 0.3819 | 0 |",
        "| 0.01 | 0,1,2 | 0.375 ± 0.1768 | 3 ± 1.414 | 1 |",
    ]


def test_per_seed_keeps_one_row_per_job(seeds_sweep, capsys):
    main([str(seeds_sweep), "--per-seed", "--metrics", "test/acc"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| job | method.optimizer.lr | seed | test/acc | status |"
    assert len(lines) == 2 + 6


def test_group_seeds_flag_without_seeds(tmp_path):
    """No seed swept: --group-seeds groups the identical settings (one job each)."""
    write_job(tmp_path / "s" / "0", ["method.optimizer.lr=0.1"], {"test/acc": 0.5})
    write_job(tmp_path / "s" / "1", ["method.optimizer.lr=0.2"], {"test/acc": 0.25})
    assert report(tmp_path / "s", group_seeds=True).splitlines()[2:] == [
        "| 0.1 |  | 0.5 |",
        "| 0.2 |  | 0.25 |",
    ]


def offline_wandb_run(folder, summary: dict, seed: int) -> None:
    """A real offline W&B run (wandb.init in offline mode) in ``folder``/wandb/."""
    code = (
        "import json, sys, wandb\n"
        f"run = wandb.init(project='t', dir=sys.argv[1], mode='offline', config={{'seed': {seed}}})\n"
        "run.log(json.loads(sys.argv[2]))\n"
        "run.finish()\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", code, str(folder), json.dumps(summary)],
        check=True,
        capture_output=True,
        env={"WANDB_SILENT": "true", "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_reads_offline_wandb_runs_without_metrics_json(tmp_path):
    root = tmp_path / "sweep"
    offline_wandb_run(root / "0", {"test/acc": 0.5, "epoch": 3}, seed=0)
    offline_wandb_run(root / "1", {"test/acc": 0.75, "epoch": 3}, seed=1)
    for job, seed in ((0, 0), (1, 1)):
        (root / str(job) / ".hydra").mkdir()
        (root / str(job) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
    assert not list(root.rglob("metrics.json"))
    assert wandb_offline_summary(root / "0") == {"test/acc": 0.5, "epoch": 3.0}
    assert report(root, metrics=["test/acc"]).splitlines()[2:] == ["| 0,1 | 0.625 ± 0.1768 |"]


def test_older_wandb_summary_file_is_read_first(tmp_path):
    files = tmp_path / "wandb" / "offline-run-20250101_000000-abc" / "files"
    files.mkdir(parents=True)
    (files / "wandb-summary.json").write_text(
        json.dumps({"test/acc": 0.875, "_step": 4, "_wandb": {"runtime": 3}, "note": "x"})
    )
    assert wandb_offline_summary(tmp_path) == {"test/acc": 0.875}

"""A sweep (-m) in which one job fails runs the others, then lists the failure and exits 1."""

from __future__ import annotations

from .helpers import TINY_DATA, run_cli


def test_a_failing_sweep_job_does_not_stop_the_others(tmp_path):
    # job 0 fails at start-up (an empty validation split), job 1 is a normal run
    proc = run_cli(
        "train.py",
        [
            "-m",
            "data.val_size=0,32",
            "trainer.max_epochs=1",
            "callbacks.model_summary=null",
            *[a for a in TINY_DATA if not a.startswith("data.val_size")],
        ],
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    assert (sweep_dir / "1" / "metrics.json").is_file(), proc.stderr[-3000:]
    assert not (sweep_dir / "1" / "error.txt").exists()
    error = (sweep_dir / "0" / "error.txt").read_text()
    message = "Error: ValueError: an8flower val_size must be >= 1, got 0"
    assert error.startswith(f"{message}\noverrides: data.val_size=0 ")
    assert "Traceback (most recent call last)" in error
    assert "1 sweep job(s) failed:" in proc.stderr
    assert f"  {sweep_dir / '0'}: {message}" in proc.stderr

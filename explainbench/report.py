"""One Markdown table of a sweep: rows = jobs, columns = the overrides that vary and the metrics.

    python -m explainbench.report <multirun dir> [--out table.md] [--metrics test/acc,val/*]
        [--all-overrides]

Works on any ``train.py -m`` or ``evaluate.py -m`` sweep dir (``<multirun>/<job>/``), and on a
single run dir (one row). Each job is read from its run dir (docs/design.md, "Run directory"):
``.hydra/overrides.yaml`` (its overrides), ``metrics.json`` (its final scalars) and, for a
failed job, ``error.txt`` (a ``status`` column then says which jobs failed and why). The
command that made the sweep (from ``multirun.yaml``, or a run's ``.hydra/hydra.yaml``) is the
first line, as in evaluate's ``results.md``. The table is printed and, with ``--out``, written.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .utils.markdown import markdown_table
from .utils.sweep import ERROR_FILE, read_job_error

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
METRICS_FILE = "metrics.json"
# logger=wandb with WANDB_MODE=offline writes <run dir>/wandb/offline-run-<time>-<id>/
WANDB_OFFLINE_RUNS = "wandb/offline-run-*"
# the override that names a repetition, not a setting: --group-seeds averages over it
SEED_KEY = "seed"


@dataclass
class Job:
    """One run of a sweep: its folder name, overrides (key → value text), final metrics and,
    when it failed, the error's one-line message."""

    name: str
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        return "ok" if self.metrics else f"no {METRICS_FILE}"


def is_run_dir(path: Path) -> bool:
    return any(
        (path / name).exists() for name in (OVERRIDES_FILE, METRICS_FILE, ERROR_FILE)
    ) or any(path.glob(WANDB_OFFLINE_RUNS))


def wandb_offline_summary(path: Path) -> dict[str, float]:
    """The final scalars of the last offline W&B run in run dir ``path`` ({} when none).

    Older wandb writes ``files/wandb-summary.json``; wandb 0.2x-0.3x offline keeps only the
    binary ``run-<id>.wandb`` log, read back with ``wandb leet inspect --summary --json``.
    W&B's own keys (``_step``, ``_runtime``, ...) and non-numbers are left out."""
    runs = sorted(path.glob(WANDB_OFFLINE_RUNS))
    if not runs:
        return {}
    summary_file = runs[-1] / "files" / "wandb-summary.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
    else:
        command = [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json"]
        done = subprocess.run(
            [*command, str(runs[-1])], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise SystemExit(
                f"Error: could not read the offline W&B run {runs[-1]}: "
                f"{(done.stderr.strip().splitlines() or ['wandb leet inspect failed'])[-1]}"
            )
        summary = json.loads(done.stdout).get("summary") or {}
    return {
        k: float(v)
        for k, v in summary.items()
        if not k.startswith("_") and isinstance(v, int | float) and not isinstance(v, bool)
    }


def natural_key(name: str) -> list:
    """Job folders in number order (2 before 10); other names alphabetically among them."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)
    ]


def find_jobs(path: Path) -> list[Path]:
    """The run dirs of sweep dir ``path`` (its sub-folders holding a run), or ``[path]`` for a
    single run dir."""
    if not path.is_dir():
        raise SystemExit(f"Error: {path} is not a directory: give a multirun or run directory")
    if is_run_dir(path):
        return [path]
    jobs = sorted(
        (p for p in path.iterdir() if p.is_dir() and is_run_dir(p)),
        key=lambda p: natural_key(p.name),
    )
    if not jobs:
        raise SystemExit(
            f"Error: no runs in {path}: expected job folders with {OVERRIDES_FILE}, "
            f"{METRICS_FILE} or {ERROR_FILE} (outputs/<task>/multiruns/<timestamp>/<job>/)"
        )
    return jobs


def parse_override(line: str) -> tuple[str, str]:
    """``key=value`` → ``(key, value)``; ``+key=v`` / ``++key=v`` count as ``key``; a deletion
    ``~key`` has the value ``~``."""
    if line.startswith("~"):
        return line[1:].split("=", 1)[0], "~"
    key, _, value = line.partition("=")
    return key.lstrip("+"), value


def read_job(path: Path) -> Job:
    job = Job(path.name)
    overrides = path / OVERRIDES_FILE
    if overrides.is_file():
        job.overrides = dict(
            parse_override(str(o)) for o in yaml.safe_load(overrides.read_text()) or []
        )
    metrics = path / METRICS_FILE
    if metrics.is_file():
        job.metrics = json.loads(metrics.read_text())
    else:  # a run logged to W&B offline only (or whose metrics.json was not written)
        job.metrics = wandb_offline_summary(path)
    if (path / ERROR_FILE).is_file():
        message = read_job_error(path / ERROR_FILE)[0]
        job.error = message.removeprefix("Error: ")  # task_wrapper's prefix; the column says it
    return job


def sweep_command(path: Path) -> str | None:
    """The command line that made the sweep (``multirun.yaml``) or the run (``.hydra/hydra.yaml``);
    None when neither is there."""
    for config in (path / "multirun.yaml", path / ".hydra" / "hydra.yaml"):
        if config.is_file():
            hydra = (yaml.safe_load(config.read_text()) or {}).get("hydra", {})
            break
    else:
        return None
    overrides = hydra.get("overrides", {})
    # Hydra records -m as the override hydra.mode=MULTIRUN; a sweep's job is rerun without -m
    user_hydra = [o for o in overrides.get("hydra") or [] if not o.startswith("hydra.mode=")]
    multirun = config.name == "multirun.yaml"
    args = [*(["-m"] if multirun else []), *(overrides.get("task") or []), *user_hydra]
    script = f"{hydra.get('job', {}).get('name', 'train')}.py"
    return " ".join(["python", script, *(shlex.quote(str(a)) for a in args)])


def format_number(value) -> str:
    """Compact: 4 significant digits, whole numbers from 10^4 on, ``nan`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = f"{value:.4g}"
    return f"{value:.0f}" if "e+" in text else text


def override_columns(jobs: list[Job], show_all: bool) -> list[str]:
    """Override keys in order of first appearance; unless ``show_all``, only those whose value
    differs between jobs (absent in some job counts as different)."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    if show_all:
        return keys
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def metric_columns(jobs: list[Job], wanted: list[str] | None) -> list[str]:
    """All metric keys, ``test/*`` first, each group sorted; or those ``wanted`` (exact keys or
    shell patterns like ``val/*``), in that order."""
    available = sorted({k for job in jobs for k in job.metrics})
    if wanted is None:
        return sorted(available, key=lambda k: (not k.startswith("test/"), k))
    columns: list[str] = []
    for pattern in wanted:
        matches = [k for k in available if fnmatch.fnmatchcase(k, pattern)]
        if not matches:
            raise SystemExit(
                f"Error: no metric matches '{pattern}'. Available: {', '.join(available) or 'none'}"
            )
        columns += [k for k in matches if k not in columns]
    return columns


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (sample standard deviation, n-1); a single value alone."""
    if len(values) == 1:
        return format_number(values[0])
    return f"{format_number(statistics.mean(values))} ± {format_number(statistics.stdev(values))}"


def seed_groups(jobs: list[Job], keys: list[str], metric_keys: list[str]) -> tuple[list, list]:
    """Header and rows of the per-seed summary: one row per setting of the other varying keys
    (first-appearance order), the seeds it ran, and each metric's mean ± std over the jobs that
    have it (failed jobs and missing values are left out, and counted in ``failed``)."""
    others = [k for k in keys if k != SEED_KEY]
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.overrides.get(k, "") for k in others), []).append(job)
    with_failed = any(job.status != "ok" for job in jobs)
    header = [*others, "seeds", *metric_keys, *(["failed"] if with_failed else [])]
    rows = []
    for setting, members in groups.items():
        cells = []
        for m in metric_keys:
            values = [job.metrics[m] for job in members if job.metrics.get(m) is not None]
            cells.append(mean_std(values) if values else "")
        seeds = ",".join(job.overrides.get(SEED_KEY, "") for job in members)
        failed = [str(sum(job.status != "ok" for job in members))] if with_failed else []
        rows.append([*setting, seeds, *cells, *failed])
    return header, rows


def report(
    path: Path,
    metrics: list[str] | None = None,
    all_overrides: bool = False,
    group_seeds: bool | None = None,
) -> str:
    """The Markdown text: the command in backticks, a blank line, the table. ``group_seeds``
    (None: when ``seed`` varies between jobs) gives one row per setting of the other varying
    overrides with each metric's mean ± std over its seeds."""
    path = Path(path)
    jobs = [read_job(p) for p in find_jobs(path)]
    keys = override_columns(jobs, all_overrides)
    metric_keys = metric_columns(jobs, metrics)
    if group_seeds is None:
        group_seeds = SEED_KEY in override_columns(jobs, False)
    command = sweep_command(path)
    lines = [f"`{command}`", ""] if command else []
    if group_seeds:
        header, rows = seed_groups(jobs, keys, metric_keys)
        others = len(header) - len(metric_keys) - (header[-1] == "failed")
        align = ["left"] * others + ["right"] * len(metric_keys)
        align += ["right"] * (header[-1] == "failed")
        return "\n".join([*lines, *markdown_table(header, rows, align)]) + "\n"
    with_status = any(job.status != "ok" for job in jobs)
    header = ["job", *keys, *metric_keys, *(["status"] if with_status else [])]
    align = ["left"] * (1 + len(keys)) + ["right"] * len(metric_keys) + ["left"] * with_status
    rows = [
        [
            job.name,
            *(job.overrides.get(k, "") for k in keys),
            *(format_number(job.metrics[m]) if m in job.metrics else "" for m in metric_keys),
            *([job.status] if with_status else []),
        ]
        for job in jobs
    ]
    return "\n".join([*lines, *markdown_table(header, rows, align)]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m explainbench.report",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun dir (or a single run dir)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--metrics",
        help="comma-separated metric keys or patterns, in column order (default: all, test/* first)",
    )
    parser.add_argument(
        "--all-overrides",
        action="store_true",
        help="a column for every override, not only those that vary between jobs",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--group-seeds",
        action="store_true",
        default=None,
        help="one row per setting of the other overrides, metrics as mean ± std over the seeds "
        "(the default when `seed` varies between jobs)",
    )
    seeds.add_argument(
        "--per-seed", dest="group_seeds", action="store_false", help="one row per job"
    )
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    text = report(args.sweep_dir, wanted, args.all_overrides, args.group_seeds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

"""A non-editable install works on its own: the configs ship inside the package and the console
scripts run from any folder, writing their runs under it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explainbench.utils.paths import CONF_DIR

from .helpers import ROOT, TINY_DATA, run_dirs

PACKAGE = ROOT / "explainbench"
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_every_config_file_is_package_data():
    """The configs live inside the package and pyproject ships every one of them."""
    assert CONF_DIR.is_relative_to(PACKAGE), f"{CONF_DIR} is outside the package: not installed"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["explainbench"]
    configs = {p for p in CONF_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern)}  # setuptools' glob
    assert configs and not configs - shipped, f"not package data: {sorted(configs - shipped)}"


def test_console_scripts_are_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "explainbench-train": "explainbench.train:main",
        "explainbench-evaluate": "explainbench.evaluate:main",
        "explainbench-report": "explainbench.report:main",
        "explainbench-demo": "explainbench.demo:main",
    }


def test_non_editable_install_trains_from_another_folder(tmp_path):
    """``pip install`` (a wheel, not editable) into a folder of its own, then
    ``explainbench-train debug=fdr`` from an unrelated folder: it finds its configs in the
    installed package and writes its run under that folder."""
    # build from a copy: an in-tree build would leave build/ and *.egg-info in the repository
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source / "explainbench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    site = tmp_path / "site"
    # the dependencies are this environment's; --target keeps the install out of it
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (site / "explainbench" / "conf" / "train.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("PROJECT_ROOT", None)  # set for the repository's own tests; an installed user has none
    proc = subprocess.run(
        [str(site / "bin" / "explainbench-train"), "debug=fdr", "logger=csv", *TINY_DATA],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = run_dirs(proc.stdout)
    assert (elsewhere / run_dir).resolve().is_relative_to(elsewhere / "outputs")
    # the installed copy is the one that runs there, not the repository's
    where = subprocess.run(
        [sys.executable, "-c", "import explainbench; print(explainbench.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert Path(where.strip()).is_relative_to(site)

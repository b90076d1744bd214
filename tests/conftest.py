"""Shared test set-up: offline W&B, one CPU thread per test process, the repo root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def readme(request):
    """The README commands this test claims with ``@pytest.mark.readme(...)`` (tests/readme.py);
    the test fails if it never runs one of them."""
    from .readme import ReadmeRunner

    runner = ReadmeRunner([c for m in request.node.iter_markers("readme") for c in m.args])
    yield runner
    if runner.unrun():
        pytest.fail(f"claims README commands it never ran: {runner.unrun()}")


def pytest_runtest_setup(item):
    if item.get_closest_marker("readme") and "readme" not in item.fixturenames:
        pytest.fail("a test marked readme(...) must run its commands through the readme fixture")

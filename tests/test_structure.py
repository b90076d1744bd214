"""The package's rooms: the benchmark engine is free of Lightning, entry points import it (not
the callbacks), and no module reaches into another's private helpers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "explainbench"


def imports(path: Path) -> list[ast.ImportFrom]:
    return [
        node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
    ]


def test_evaluation_imports_no_lightning():
    """explainbench.evaluation is driven by evaluate.py as well as by the callbacks: pure torch."""
    code = (
        "import sys, explainbench.evaluation; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_evaluate_uses_the_evaluation_package_not_the_callbacks():
    modules = {node.module for node in imports(PACKAGE / "evaluate.py")}
    assert "evaluation" in modules and not any(m and m.startswith("callbacks") for m in modules)


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_imports_a_private_name(path):
    private = [
        f"{node.module}.{alias.name}"
        for node in imports(path)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not private, (
        f"{path.name} imports private helpers {private}: make them public where they live"
    )

"""Where the repository's configs live (the package is installed in editable mode from the repo)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

"""Where the configs live: inside the package, so an installed (non-editable) package has them."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

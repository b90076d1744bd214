"""Benchmark explanations of a checkpoint: ``python evaluate.py ckpt_path=... explainers=[gradcam,rise]``."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from explainbench.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()

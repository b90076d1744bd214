"""Train a method: ``python train.py method=lcam_img backbone=vgg16`` (configs in conf/)."""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from explainbench.train import main  # noqa: E402

if __name__ == "__main__":
    main()

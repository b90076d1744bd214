"""Write generated an8flower images in the original an8Flower folder layout.

    python scripts/export_an8flower.py --out data/an8flower --variant single6c --size 64 --count 600

writes ``<out>/an8Flower_single_6c/<class>/<split>_<index>.png`` and the discriminative-part
masks in ``<out>/an8Flower_single_6c/<class>_MASK/`` (same file names), which
``conf/data/an8flower_folder.yaml`` (``explainbench.data.an8flower_folder``) reads back.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# runnable from a checkout without `pip install -e .`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explainbench.data.an8flower_folder import export_an8flower  # noqa: E402
from explainbench.data.an8flower_render import MAX_SIZE, MIN_SIZE, VARIANTS  # noqa: E402
from explainbench.data.base import SPLITS  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="root folder (data.root)")
    parser.add_argument("--variant", default="single6c", choices=VARIANTS)
    parser.add_argument("--size", default=64, type=int, help=f"image side, {MIN_SIZE}-{MAX_SIZE}")
    parser.add_argument("--count", default=600, type=int, help="number of images")
    parser.add_argument("--seed", default=0, type=int, help="generator seed")
    parser.add_argument(
        "--split",
        default="train",
        choices=SPLITS,
        help="generator split the images are drawn from (indices 0..count-1)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = export_an8flower(args.out, args.variant, args.size, args.count, args.seed, args.split)
    print(f"wrote {args.count} images and masks to {folder} in {time.perf_counter() - start:.1f}s")
    return folder


if __name__ == "__main__":
    main()

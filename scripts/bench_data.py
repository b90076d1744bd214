"""Generation throughput of the an8flower renderer (images/s on one core, one process).

    python scripts/bench_data.py [--count 3000] [--sizes 64 128] [--variant single6c]

Pins torch and numpy's BLAS to one thread so the number is per core; renders a warm-up
batch first (texture banks, allocator), then times whole-split rendering as
``An8FlowerDataModule.setup()`` does it, and the per-sample ``render_sample`` path. Also
reports sample fetching + default collation from an in-memory split (the training path).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from explainbench.data.an8flower import An8Flower  # noqa: E402
from explainbench.data.an8flower_render import FlowerRenderer, render_sample  # noqa: E402


def best_rate(fn, count: int, repeats: int = 3) -> float:
    """Best of ``repeats`` runs, in items/s (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--variant", default="single6c")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"an8flower {args.variant}, 1 process, 1 thread "
        f"(numpy {np.__version__}, torch {torch.__version__})"
    )
    for size in args.sizes:
        renderer = FlowerRenderer(0, args.variant, size)
        renderer.render("train", np.arange(256))  # warm-up
        n = max(200, args.count * 64 * 64 // (size * size))
        batch = best_rate(lambda n=n, r=renderer: r.render("train", np.arange(n)), n)
        single_n = max(50, n // 10)
        render_sample(0, "train", 0, args.variant, size)  # warm-up of the cached renderer
        single = best_rate(
            lambda k=single_n, s=size: [
                render_sample(0, "train", i, args.variant, s) for i in range(k)
            ],
            single_n,
        )
        print(
            f"{size:4d} px: {batch:8.0f} images/s per core (batched split render, {n} images)"
            f" | {single:6.0f} images/s (render_sample one at a time)"
        )
    dataset = An8Flower("train", args.variant, 64, length=2048)
    loader = DataLoader(dataset, batch_size=64)
    rate = best_rate(lambda: [b for b in loader], len(dataset))
    print(
        f"  64 px: {rate:8.0f} samples/s from an in-memory split through DataLoader(batch_size=64)"
    )


if __name__ == "__main__":
    main()

"""Generation throughput of the an8flower renderer (images/s on one core, one process), or
how long iNaturalist 2017's index takes to build (``--inat``).

    python scripts/bench_data.py [--count 3000] [--sizes 64 128] [--variant single6c]
    python scripts/bench_data.py --inat [--inat-images 579184]

Pins torch and numpy's BLAS to one thread so the number is per core; renders a warm-up
batch first (texture banks, allocator), then times whole-split rendering as
``An8FlowerDataModule.setup()`` does it, and the per-sample ``render_sample`` path. Also
reports sample fetching + default collation from an in-memory split (the training path).

``--inat`` writes a synthetic train2017.json / val2017.json of the official size (579,184 /
95,986 images, 5,089 species, COCO style, no images but the first of each split) and a box file
for a tenth of the validation images into a temporary folder, then times what a run does before
its first batch: the data module's constructor (indexes train2017.json) and the three splits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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


def write_inat_index(root: Path, train: int, val: int, classes: int = 5089) -> None:
    """The JSON files of iNaturalist 2017 at full size (no images), as the official ones are laid out."""
    rng = np.random.default_rng(0)
    categories = [
        {"id": c, "name": f"Species {c}", "supercategory": f"Super{c % 13}"} for c in range(classes)
    ]
    first_id = 0
    for name, count in (("train2017.json", train), ("val2017.json", val)):
        labels = rng.integers(0, classes, count)
        ids = range(first_id, first_id + count)
        images = [
            {
                "id": i,
                "file_name": f"train_val_images/Super{c % 13}/Species {c}/{i:032x}.jpg",
                "width": 800,
                "height": 600,
                "license": 1,
                "rights_holder": "someone",
            }
            for i, c in zip(ids, labels.tolist(), strict=True)
        ]
        annotations = [
            {"id": i, "image_id": i, "category_id": c}
            for i, c in zip(ids, labels.tolist(), strict=True)
        ]
        data = {
            "info": {"year": 2017},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (root / name).write_text(json.dumps(data))
        if name == "val2017.json":
            boxed = images[::10]
            boxes = [
                {"id": k, "image_id": im["id"], "category_id": 0, "bbox": [10, 20, 300, 200]}
                for k, im in enumerate(boxed)
            ]
            (root / "val_2017_bboxes.json").write_text(
                json.dumps({"images": boxed, "annotations": boxes})
            )
        first_id += count


def bench_inat_index(train: int, val: int) -> None:
    from explainbench.data.inaturalist import INaturalistDataModule, carve_val

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_inat_index(root, train, val)
        print(
            f"iNaturalist 2017 synthetic index: {train} train + {val} val images, 5089 species "
            f"(written in {time.perf_counter() - start:.1f} s, "
            f"train2017.json {(root / 'train2017.json').stat().st_size / 1e6:.0f} MB)"
        )
        (root / "train_val_images").mkdir()
        # the data module opens nothing but the first image of each split: give it those
        probe = INaturalistDataModule(str(root), num_workers=0)
        train = probe._indexed("train")
        val = carve_val(train["labels"], train["ids"], probe.val_fraction, probe.split_seed)
        firsts = [train["names"][np.flatnonzero(~val)[0]], train["names"][np.flatnonzero(val)[0]]]
        for name in [*firsts, probe._indexed("test")["names"][0]]:
            path = root / name.decode()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        del probe, train
        start = time.perf_counter()
        dm = INaturalistDataModule(str(root), num_workers=0)
        built = time.perf_counter() - start
        sizes = {split: len(dm.dataset(split)) for split in ("train", "val", "test")}
        total = time.perf_counter() - start
        print(
            f"  constructor (indexes train2017.json): {built:.1f} s; "
            f"+ train/val/test splits (val2017.json, boxes): {total:.1f} s in all; sizes {sizes}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--variant", default="single6c")
    parser.add_argument(
        "--inat", action="store_true", help="time the iNaturalist 2017 index instead"
    )
    parser.add_argument(
        "--inat-images", type=int, default=579184, help="training images of that index"
    )
    args = parser.parse_args()
    if args.inat:
        bench_inat_index(args.inat_images, round(args.inat_images * 95986 / 579184))
        return
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

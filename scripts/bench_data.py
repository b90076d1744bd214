"""Generation throughput of the an8flower renderer (images/s on one core, one process), how
long iNaturalist 2017's index takes to build (``--inat``), or whether CIFAR-10 / MNIST batches
come faster than ``small_cnn`` trains on them (``--cifar10``, ``--mnist``).

    python scripts/bench_data.py [--count 3000] [--sizes 64 128] [--variant single6c]
    python scripts/bench_data.py --inat [--inat-images 579184]
    python scripts/bench_data.py --cifar10 [--threads 2] [--batches 60]
    python scripts/bench_data.py --mnist [--threads 2] [--batches 60]

Pins torch and numpy's BLAS to one thread so the number is per core; renders a warm-up
batch first (texture banks, allocator), then times whole-split rendering as
``An8FlowerDataModule.setup()`` does it, and the per-sample ``render_sample`` path. Also
reports sample fetching + default collation from an in-memory split (the training path).

``--inat`` writes a synthetic train2017.json / val2017.json of the official size (579,184 /
95,986 images, 5,089 species, COCO style, no images but the first of each split) and a box file
for a tenth of the validation images into a temporary folder, then times what a run does before
its first batch: the data module's constructor (indexes train2017.json) and the three splits.

``--cifar10`` / ``--mnist`` write the official files at full size (random pixels: 50,000 + 10,000
CIFAR images, 60,000 + 10,000 MNIST digits) into a temporary folder, build the data module from
``conf/data/<name>.yaml`` (its default loader settings: batch size, workers), and time, on
``--threads`` torch threads: reading the files (``setup``), the training loader alone (images/s
through the DataLoader, augmentation included), ``small_cnn`` training steps alone (forward,
backward, SGD, on batches already loaded) and the two together, as a training epoch runs them.
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


def write_full_size(name: str, root: Path) -> None:
    """The official files of ``name`` at full size, random pixels and labels."""
    rng = np.random.default_rng(0)
    if name == "cifar10":
        import pickle

        folder = root / "cifar-10-batches-py"
        folder.mkdir()
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for file_name in files:
            data = {
                b"data": rng.integers(0, 256, (10000, 3072), dtype=np.uint8),
                b"labels": rng.integers(0, 10, 10000).tolist(),
            }
            (folder / file_name).write_bytes(pickle.dumps(data, protocol=2))
        names = [f"class{i}".encode() for i in range(10)]
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
        return
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 60000), ("t10k", 10000)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count).astype(np.uint8)
        for kind, magic, values in (("images-idx3", 2051, images), ("labels-idx1", 2049, labels)):
            header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in values.shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + values.tobytes())


def bench_in_memory(name: str, threads: int, batches: int) -> None:
    """Loader vs ``small_cnn`` training images/s for ``conf/data/<name>.yaml`` (module docstring)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from explainbench.backbones import build_backbone
    from explainbench.utils.paths import CONF_DIR

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        write_full_size(name, Path(tmp))
        cfg = OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml")
        cfg.root = tmp
        dm = instantiate(cfg)
        start = time.perf_counter()
        dm.setup("fit")
        read = time.perf_counter() - start
        loader = dm.train_dataloader()
        size = dm.batch_size * batches

        def load() -> list:
            out = []
            for batch in loader:
                out.append(batch)
                if len(out) == batches:
                    return out
            return out

        loaded = load()
        load_rate = best_rate(load, size)
        model = build_backbone(name="small_cnn", num_classes=dm.num_classes)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(batch) -> None:
            loss = torch.nn.functional.cross_entropy(model(batch["image"]), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        # training is the slow part: fewer batches keep the run short
        train_batches = loaded[: max(1, batches // 6)]
        train_size = dm.batch_size * len(train_batches)
        step(loaded[0])  # warm-up
        train_rate = best_rate(lambda: [step(b) for b in train_batches], train_size)

        def both() -> None:
            for k, batch in enumerate(loader):
                step(batch)
                if k + 1 == len(train_batches):
                    return

        both_rate = best_rate(both, train_size)
    print(
        f"{name}: {len(dm.dataset('train'))} train / {len(dm.dataset('val'))} val images, "
        f"batch_size={dm.batch_size}, num_workers={dm.num_workers}, {threads} torch threads "
        f"(torch {torch.__version__}); files read in {read:.2f} s"
    )
    print(f"  train loader alone:        {load_rate:8.0f} images/s ({batches} batches)")
    print(
        f"  small_cnn training alone:  {train_rate:8.0f} images/s "
        f"(forward + backward + SGD, {len(train_batches)} batches)"
    )
    share = (1 / load_rate) / (1 / load_rate + 1 / train_rate)
    print(
        f"  loader + training:         {both_rate:8.0f} images/s "
        f"(from the rates alone, loading is {100 * share:.1f} % of an epoch's time)"
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
    for name in ("cifar10", "mnist"):
        parser.add_argument(
            f"--{name}", action="store_true", help=f"time {name} loading against small_cnn training"
        )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (--cifar10/--mnist)")
    parser.add_argument("--batches", type=int, default=60, help="batches timed (--cifar10/--mnist)")
    args = parser.parse_args()
    if args.cifar10 or args.mnist:
        for name in ("cifar10", "mnist"):
            if getattr(args, name):
                bench_in_memory(name, args.threads, args.batches)
        return
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

"""Fit the relevant features of a trained checkpoint (Oramas et al., ICLR 2019, Sec. 3.1).

    python -m explainbench.relevant_features.fit --ckpt <run>/checkpoints/last.ckpt \
        [--layers all|only_conv|name,...] [--mu 10] [--max-images N] [--out FILE]

Streams the TRAIN split of the checkpoint's own data through the model (on --device, inference
mode), collects the filter-wise responses X, solves the μ-Lasso for all classes at once and
writes ``relevant_features.pt`` into the checkpoint's folder (``--out`` for another file, e.g.
one per layer selection). ``explainers=[relevant_features]`` of evaluate.py reads it.

(``scripts/fit_relevant_features.py`` is the same command.) A module of the package, not only a
script, so that the demo driver (``explainbench/demo.py``) runs it from an installed package.
argparse, like the other analysis scripts: the inputs are one checkpoint and a few numbers;
the data settings come from the checkpoint (``methods/build.stored_datamodule``).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from explainbench.methods.build import load_method, stored_datamodule
from explainbench.relevant_features.mu_lasso import solve_mu_lasso
from explainbench.relevant_features.projection import check_radius
from explainbench.relevant_features.responses import collect_responses, select_layers
from explainbench.relevant_features.store import default_path, model_fingerprint, save_features

# The paper: "we set the sparsity parameter μ = 10 for all the tested datasets" (Sec. 4.1).
PAPER_MU = 10.0


def fit(
    ckpt: str,
    layers: str = "all",
    mu: float = PAPER_MU,
    max_images: int | None = None,
    out: str | None = None,
    device: str = "auto",
    batch_size: int = 250,
    seed: int = 0,
    max_iter: int = 5000,
) -> Path:
    mu = check_radius(mu)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_method(ckpt).to(device)
    num_classes = model.data_info.num_classes
    datamodule = stored_datamodule(model)
    train = datamodule.dataset("train")
    n = len(train) if max_images is None else min(max_images, len(train))
    loader = DataLoader(
        Subset(train, range(n)),
        batch_size=batch_size,
        num_workers=datamodule.num_workers,
        collate_fn=datamodule.collate_fn,
    )
    # The training split as training saw it, augmentation included (e.g. an8flower's
    # brightness jitter); seeded so a refit gives the same X.
    torch.manual_seed(seed)
    first = next(iter(DataLoader(Subset(train, [0]), collate_fn=datamodule.collate_fn)))
    selected = select_layers(model, layers, first["image"].to(device))
    start = time.perf_counter()
    X, Y = collect_responses(model, loader, selected, num_classes, n)
    seconds_x = time.perf_counter() - start
    result = solve_mu_lasso(X, Y, mu, max_iter=max_iter)
    seconds = time.perf_counter() - start
    path = Path(out) if out else default_path(ckpt)
    index = [(layer.name, q) for layer in selected for q in range(layer.channels)]
    save_features(
        path,
        W=result.W.float().cpu(),
        index=[[name, q] for name, q in index],
        layers=[layer.name for layer in selected],
        read_at=[layer.read_at for layer in selected],
        kinds=[layer.kind for layer in selected],
        selection=layers,
        mu=mu,
        num_classes=num_classes,
        checkpoint=str(ckpt),
        fingerprint=model_fingerprint(model),
        images=int(X.shape[0]),
        objective=result.objective.float().cpu(),
        nonzeros=result.nonzeros.cpu(),
    )
    per_layer = {}
    nonzero_rows = (result.W != 0).any(dim=1).cpu()
    for (name, _), used in zip(index, nonzero_rows, strict=True):
        per_layer[name] = per_layer.get(name, 0) + int(used)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"checkpoint: {ckpt}")
    print(f"layers ({layers}): {len(selected)}, filters F = {X.shape[1]}, images N = {X.shape[0]}")
    print(f"mu = {mu:g}: {result.iterations} iterations, converged: {result.converged}")
    print(f"non-zeros per class: {result.nonzeros.tolist()}")
    print(f"relevant filters (non-zero for some class) per layer: {per_layer}")
    print(f"time: responses {seconds_x:.1f} s, total {seconds:.1f} s; peak memory {peak_mb:.0f} MB")
    print(f"wrote {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a train.py checkpoint")
    parser.add_argument(
        "--layers", default="all", help="all | only_conv | comma-separated module names"
    )
    parser.add_argument("--mu", type=float, default=PAPER_MU, help="L1 radius (paper: 10)")
    parser.add_argument("--max-images", type=int, default=None, help="first N training images")
    parser.add_argument("--out", default=None, help="default: relevant_features.pt by the ckpt")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--max-iter", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fit(args.ckpt, args.layers, args.mu, args.max_images, args.out, args.device,
            args.batch_size, max_iter=args.max_iter)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"Error: {type(err).__name__}: {err}") from None


if __name__ == "__main__":
    main()

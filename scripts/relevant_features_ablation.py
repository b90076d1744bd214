"""Ablation of the relevant features (Oramas et al., ICLR 2019, Sec. 4.1 / Fig. 4).

    python scripts/relevant_features_ablation.py --ckpt <run>/checkpoints/last.ckpt \
        [--features <ckpt dir>/relevant_features.pt <ckpt dir>/relevant_features_only_conv.pt] \
        [--seeds 5] [--out table.md]

Per class j, as in the paper: the test accuracy of class j after zeroing class j's relevant
filters (the rows of ``w_j`` that are non-zero) against the original model. Sets: one per
features file (named by its layer selection: All, OnlyConv), and for each a Random set with the
same number of filters per layer, drawn uniformly among that layer's filters, over ``--seeds``
seeds (mean ± std). A filter is zeroed where its response is read (after the layer's BN and
ReLU, see relevant_features/responses.py), by a forward hook multiplying that channel by 0, so
the next layer sees it removed. Prints a markdown table (mean class accuracy and per class).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

import torch

from explainbench.methods.build import load_method, stored_datamodule
from explainbench.relevant_features.store import check_features_match, load_features

NAMES = {"all": "All", "only_conv": "OnlyConv"}


@contextmanager
def zeroed(model, read_at: dict[str, str], filters: dict[str, list[int]]):
    """Within the context, the listed filters (layer name → channel indices) output 0."""
    handles = []
    for layer, channels in filters.items():
        if not channels:
            continue
        keep = None

        def hook(module, inputs, output, channels=channels):
            nonlocal keep
            if keep is None or keep.shape[0] != output.shape[1]:
                keep = torch.ones(output.shape[1], device=output.device, dtype=output.dtype)
                keep[channels] = 0
            return output * keep.view(1, -1, *([1] * (output.ndim - 2)))

        handles.append(model.get_submodule(read_at[layer]).register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def class_accuracy(model, loader, num_classes: int, device, only_class: int | None = None):
    """Per-class accuracy (recall) ``[C]``; with ``only_class`` only that class's images count."""
    correct = torch.zeros(num_classes)
    total = torch.zeros(num_classes)
    for batch in loader:
        label = batch["label"]
        if only_class is not None:
            keep = label == only_class
            if not keep.any():
                continue
            image, label = batch["image"][keep], label[keep]
        else:
            image = batch["image"]
        pred = model.head(model.features(image.to(device))).argmax(1).cpu()
        correct += torch.bincount(label[pred == label], minlength=num_classes).float()
        total += torch.bincount(label, minlength=num_classes).float()
    return correct / total.clamp_min(1)


def relevant_filters(features: dict, j: int) -> dict[str, list[int]]:
    filters: dict[str, list[int]] = {name: [] for name in features["layers"]}
    for (name, q), w in zip(features["index"], features["W"][:, j].tolist(), strict=True):
        if w != 0:
            filters[name].append(int(q))
    return filters


def random_like(features: dict, filters: dict[str, list[int]], generator) -> dict[str, list[int]]:
    """The same count per layer, drawn uniformly among the layer's filters."""
    sizes = {}
    for name, _ in features["index"]:
        sizes[name] = sizes.get(name, 0) + 1
    return {
        name: torch.randperm(sizes[name], generator=generator)[: len(chosen)].tolist()
        for name, chosen in filters.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--features", nargs="*", default=None, help="relevant-features files")
    parser.add_argument("--seeds", type=int, default=5, help="random sets per class")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_method(args.ckpt).to(device)
    num_classes = model.data_info.num_classes
    folder = Path(args.ckpt).parent
    paths = args.features or [
        p
        for p in (folder / "relevant_features.pt", folder / "relevant_features_only_conv.pt")
        if p.is_file()
    ]
    if not paths:
        paths = [folder / "relevant_features.pt"]  # load_features names the fitting command
    sets = []
    for path in paths:
        features = load_features(path, args.ckpt)
        check_features_match(features, model, path)
        sets.append((NAMES.get(str(features["selection"]), str(features["selection"])), features))
    datamodule = stored_datamodule(model, batch_size=args.batch_size)
    loader = datamodule.test_dataloader()
    original = class_accuracy(model, loader, num_classes, device)
    columns = {"original": (original, None, None)}
    for name, features in sets:
        read_at = dict(zip(features["layers"], features["read_at"], strict=True))
        ablated = torch.zeros(num_classes)
        rand = torch.zeros(args.seeds, num_classes)
        counts = []
        for j in range(num_classes):
            filters = relevant_filters(features, j)
            counts.append(sum(len(v) for v in filters.values()))
            with zeroed(model, read_at, filters):
                ablated[j] = class_accuracy(model, loader, num_classes, device, j)[j]
            for s in range(args.seeds):
                generator = torch.Generator().manual_seed(1000 * s + j)
                with zeroed(model, read_at, random_like(features, filters, generator)):
                    rand[s, j] = class_accuracy(model, loader, num_classes, device, j)[j]
        columns[f"{name} ({sum(counts)} filters over all classes)"] = (ablated, None, None)
        # the mean row's ± is the spread over seeds of the mean class accuracy
        columns[f"Random like {name} ({args.seeds} seeds)"] = (
            rand.mean(0),
            rand.std(0),
            rand.mean(1).std(),
        )
    class_names = model.data_info.class_names or [str(j) for j in range(num_classes)]
    lines = [
        f"`python scripts/relevant_features_ablation.py --ckpt {args.ckpt}"
        + (f" --features {' '.join(map(str, args.features))}" if args.features else "")
        + f" --seeds {args.seeds}`",
        "",
        f"Class accuracy (%) on {len(loader.dataset)} test images after zeroing each class's "
        "relevant filters (Random: the same count per layer, mean ± std over seeds).",
        "",
        "| class | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]

    def cell(mean, std, mca_std, j=None):
        m = mean.mean() if j is None else mean[j]
        if std is None:
            return f"{100 * m:.1f}"
        s = mca_std if j is None else std[j]
        return f"{100 * m:.1f} ± {100 * s:.1f}"

    lines.append("| **mean (mCA)** | " + " | ".join(cell(*v) for v in columns.values()) + " |")
    for j in range(num_classes):
        lines.append(
            f"| {class_names[j]} | " + " | ".join(cell(*v, j) for v in columns.values()) + " |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

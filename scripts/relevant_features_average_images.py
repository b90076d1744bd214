"""Average images of the relevant filters of each class (Oramas et al., ICLR 2019, Fig. 5).

    python scripts/relevant_features_average_images.py --ckpt <run>/checkpoints/last.ckpt \\
        [--features <relevant-features file>] --out average_images.png

For class ``j`` the relevant filters are the top ``--top-k`` entries of ``W[:, j]`` that are
positive (as in the relevant_features explainer). For each, over the chosen split, every image
is scored by the filter's maximum response (its activation map's maximum; a fully connected
unit's value) and the input patch under that maximum's receptive field (from the layer
geometry, :mod:`explainbench.explainers.receptive_field`) is kept for the ``--patches`` (100,
the paper's number) best images; their pixel-wise mean is the average image. The grid has a
row per class and a column per relevant filter, labelled ``layer:filter``.

Choices where the paper is silent: by default only the images of class ``j`` compete
(``--images all``: every image) — the figure is per class; the patch is the unit's full
receptive field, and where it reaches outside the image (padding) those pixels are left out
of the mean (a pixel no patch covers is drawn white); a fully connected unit's field is the
whole image. One pass, no second read of the data (augmented training images stay
consistent); memory: classes × top-k × patches crops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from explainbench.data.info import DataInfo  # noqa: E402
from explainbench.explainers.receptive_field import Geometry, layer_geometry  # noqa: E402
from explainbench.methods.build import load_method, stored_datamodule  # noqa: E402
from explainbench.relevant_features.store import check_features_match, default_path  # noqa: E402
from explainbench.utils.image import denormalize  # noqa: E402
from explainbench.viz import save_figure  # noqa: E402

FEATURE_KEYS = ("W", "index", "layers", "mu", "num_classes", "checkpoint")


def load_features(path: str | Path, num_classes: int) -> dict:
    """The relevant-features file (weights-only), checked against the model's class count."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    missing = [key for key in FEATURE_KEYS if key not in blob]
    if missing:
        raise SystemExit(f"{path}: not a relevant-features file (missing {missing})")
    if blob["num_classes"] != num_classes or blob["W"].shape[1] != num_classes:
        raise SystemExit(
            f"{path} was fitted for {blob['num_classes']} classes, the checkpoint has {num_classes}"
        )
    return blob


def relevant_filters(w: Tensor, index: list, top_k: int) -> dict[int, list[tuple[str, int]]]:
    """``{class: [(layer, filter), …]}``: the top ``top_k`` positive entries of ``W[:, j]``,
    largest first."""
    chosen = {}
    for j in range(w.shape[1]):
        values, rows = w[:, j].topk(min(top_k, w.shape[0]))
        chosen[j] = [
            (str(index[r][0]), int(index[r][1]))
            for v, r in zip(values.tolist(), rows.tolist(), strict=True)
            if v > 0
        ]
    return chosen


def crop(image: Tensor, geo: Geometry, i: int, j: int) -> Tensor:
    """The ``[C, r_h, r_w]`` input patch of unit ``(i, j)``'s receptive field; pixels outside
    the image are NaN (left out of the mean). A whole-image field returns the image."""
    if geo.whole_image:
        return image
    top, left, bottom, right = geo.field(i, j)
    h, w = image.shape[-2:]
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    inside = image[:, max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)]
    return F.pad(inside, pad, value=float("nan"))


def max_responses(a: Tensor, channel: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per image: the maximum of ``channel``'s response and its unit ``(i, j)`` (0, 0 for a
    fully connected layer)."""
    if a.dim() == 2:
        zeros = torch.zeros(a.shape[0], dtype=torch.long)
        return a[:, channel], zeros, zeros
    flat = a[:, channel].flatten(1)
    values, where = flat.max(dim=1)
    return values, where // a.shape[-1], where % a.shape[-1]


@torch.no_grad()
def top_patches(
    model: nn.Module,
    batches,
    filters: dict[int, list[tuple[str, int]]],
    patches: int = 100,
    same_class: bool = True,
    read_at: dict[str, str] | None = None,
) -> dict[tuple[int, str, int], tuple[Tensor, Tensor]]:
    """``{(class, layer, filter): (responses [n], crops [n, C, r_h, r_w])}`` of the ``patches``
    images with the highest maximum response (``same_class``: images of that class only),
    highest first, over ``batches`` of ``{"image", "label"}`` (normalised images).
    ``read_at`` (layer → module): where a layer's response is read, as the fitting read it
    (a conv's BN + ReLU output; the features file's ``read_at``); default the layer itself.
    BN and ReLU keep the receptive field, so the crop uses the layer's geometry."""
    geometry = layer_geometry(model)
    layers = sorted({layer for chosen in filters.values() for layer, _ in chosen})
    read_at = read_at or {}
    outputs: dict[str, Tensor] = {}
    handles = [
        model.get_submodule(read_at.get(name, name)).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o.detach().cpu())
        )
        for name in layers
    ]
    kept: dict[tuple[int, str, int], tuple[Tensor, Tensor]] = {}
    try:
        for batch in batches:
            images, labels = batch["image"], batch["label"]
            model(images.to(next(model.parameters()).device))
            for cls, chosen in filters.items():
                pick = (labels == cls) if same_class else torch.ones_like(labels, dtype=torch.bool)
                if not pick.any():
                    continue
                for layer, f in chosen:
                    values, rows, cols = max_responses(outputs[layer][pick], f)
                    crops = torch.stack(
                        [
                            crop(image, geometry[layer], int(r), int(c))
                            for image, r, c in zip(images[pick].cpu(), rows, cols, strict=True)
                        ]
                    )
                    key = (cls, layer, f)
                    if key in kept:
                        values = torch.cat([kept[key][0], values])
                        crops = torch.cat([kept[key][1], crops])
                    best = values.topk(min(patches, len(values))).indices
                    kept[key] = (values[best], crops[best])
    finally:
        for handle in handles:
            handle.remove()
    return kept


def average_image(crops: Tensor) -> Tensor:
    """Pixel-wise mean over the crops, leaving out NaN (outside-the-image) pixels; a pixel no
    crop covers is NaN."""
    return crops.nanmean(dim=0)


def plot(averages: dict, filters: dict, info: DataInfo, out: str, class_names=None) -> None:
    """Rows: classes; columns: the class's relevant filters (``layer:filter``)."""
    columns = max(1, max(len(chosen) for chosen in filters.values()))
    rows = len(filters)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (cls, chosen) in enumerate(filters.items()):
        name = class_names[cls] if class_names else str(cls)
        axes[row][0].text(-0.1, 0.5, name, transform=axes[row][0].transAxes, ha="right",
                          va="center", fontsize=8)  # fmt: skip
        for col, (layer, f) in enumerate(chosen):
            key = (cls, layer, f)
            if key not in averages:
                continue
            pixels = denormalize(averages[key][None], info.mean, info.std)[0]
            pixels = torch.nan_to_num(pixels, nan=1.0).clamp(0, 1)
            axes[row][col].imshow(pixels.permute(1, 2, 0).numpy())
            axes[row][col].set_title(f"{layer.removeprefix('backbone.')}:{f}", fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint the features were fitted on")
    parser.add_argument("--features", default=None,
                        help="the fitted relevant-features file (default: next to --ckpt)")  # fmt: skip
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--top-k", type=int, default=3, help="relevant filters per class")
    parser.add_argument("--patches", type=int, default=100, help="best images per filter")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--images", default="class", choices=["class", "all"],
                        help="which images compete for a class's filter")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=None, help="override data.train_size")
    args = parser.parse_args()

    model = load_method(args.ckpt)
    info = DataInfo.from_dict(model.build_config["data_info"])
    features = args.features or default_path(args.ckpt)
    blob = load_features(features, info.num_classes)
    check_features_match(blob, model, features)  # fitted on these weights
    filters = relevant_filters(blob["W"], blob["index"], args.top_k)
    read_at = dict(zip(blob["layers"], blob.get("read_at", blob["layers"]), strict=True))
    datamodule = stored_datamodule(model, batch_size=args.batch_size, train_size=args.train_size)
    loader = DataLoader(datamodule.dataset(args.split), batch_size=args.batch_size,
                        collate_fn=datamodule.collate_fn)  # fmt: skip
    kept = top_patches(model, loader, filters, args.patches, args.images == "class", read_at)
    averages = {key: average_image(crops) for key, (_, crops) in kept.items()}
    plot(averages, filters, info, args.out, getattr(info, "class_names", None))
    print(f"checkpoint: {args.ckpt}\nfeatures: {args.features} (mu {blob['mu']:g})")
    print("| class | layer:filter | W | patches | mean max response |")
    print("|---|---|---|---|---|")
    rows = {(str(layer), int(f)): r for r, (layer, f) in enumerate(blob["index"])}
    for cls, chosen in filters.items():
        for layer, f in chosen:
            values = kept.get((cls, layer, f), (torch.empty(0),))[0]
            weight = f"{blob['W'][rows[layer, f], cls]:.3f}"
            mean = f"{values.mean():.3f}" if len(values) else "-"
            print(f"| {cls} | {layer}:{f} | {weight} | {len(values)} | {mean} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

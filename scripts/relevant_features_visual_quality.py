"""Visual quality of deconvnet / guided-backprop heatmaps with and without the stride fix, next to
upsampled activation maps (Oramas et al., ICLR 2019, Fig. 2 / 7), and the grid artifact measured.

    python scripts/relevant_features_visual_quality.py --ckpt <run>/checkpoints/last.ckpt \\
        --out visual_quality.png --images 4

For a few test images and a low, a middle and a high layer (the first, middle and last of the
backbone's stages, ``backbones/truncate.py``: the last module of each), the filter with the
largest activation in that image is shown as (a) its activation map upsampled bilinearly to
the image and (b) its activation map projected back to the input (Zeiler & Fergus: the filter's
own map, every other channel zeroed) by deconvnet and by guided backprop, each without and
with the stride fix. Grid: a row per (image, layer); columns input, upsampled activation,
deconvnet, deconvnet + fix, guided, guided + fix.

The grid artifact of every map is the share of its non-DC spectral energy at the stride
frequencies of the network (:mod:`explainbench.explainers.stride_artifacts`, periods from
the layer geometry); the script prints a markdown table of its mean per method, with / without
the fix, per layer and for the class logit's map (the plain explainers). Choices where the
paper is silent: the most active filter per layer and image, channel reduction ``max_abs``.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from explainbench.backbones.truncate import attach_stages  # noqa: E402
from explainbench.data.info import DataInfo  # noqa: E402
from explainbench.explainers.backprop import (  # noqa: E402
    Deconvnet,
    GuidedBackprop,
    filter_backprop,
    reduce_channels,
)
from explainbench.explainers.base import normalize_per_image, upsample_to  # noqa: E402
from explainbench.explainers.receptive_field import stride_periods  # noqa: E402
from explainbench.explainers.stride_artifacts import stride_frequency_share  # noqa: E402
from explainbench.methods.build import load_method, stored_datamodule  # noqa: E402
from explainbench.utils.image import denormalize  # noqa: E402
from explainbench.viz import save_figure  # noqa: E402

RULES = {"deconvnet": Deconvnet, "guided": GuidedBackprop}
COLUMNS = ["input", "activation"] + [
    f"{rule}{' + fix' if fix else ''}" for rule in RULES for fix in (False, True)
]


def pick_layers(model: nn.Module) -> dict[str, str]:
    """``{"low" | "mid" | "high": qualified module name}``: the last module of the first,
    middle and last stage of the backbone's extractor."""
    backbone, prefix = (model.backbone, "backbone.") if hasattr(model, "backbone") else (model, "")
    ends = list(attach_stages(backbone).values())
    picks = {"low": ends[0], "mid": ends[(len(ends) - 1) // 2], "high": ends[-1]}
    return {level: f"{prefix}extractor.{end - 1}" for level, end in picks.items()}


def layer_maps(model: nn.Module, x: Tensor, name: str) -> dict[str, Tensor]:
    """The ``[B,1,H,W]`` maps of the most active filter of layer ``name`` per image, by column."""
    layer = model.get_submodule(name)
    captured = {}
    handle = layer.register_forward_hook(lambda m, i, o: captured.__setitem__("a", o.detach()))
    with torch.no_grad():
        model.head(model.features(x))
    handle.remove()
    a = captured["a"]
    channel = a.flatten(2).amax(dim=2).argmax(dim=1)
    active = a[torch.arange(len(x)), channel][:, None]
    maps = {"activation": normalize_per_image(upsample_to(active, tuple(x.shape[-2:])))}
    for rule in RULES:
        for fix in (False, True):
            grad = filter_backprop(model, x, layer, channel, rule, stride_fix=fix)
            maps[f"{rule}{' + fix' if fix else ''}"] = normalize_per_image(
                reduce_channels(grad, "max_abs")
            )
    return maps


def logit_maps(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """The plain explainers' maps of the predicted class, without and with the fix."""
    return {
        f"{rule}{' + fix' if fix else ''}": cls(stride_fix=fix)(model, x).saliency
        for rule, cls in RULES.items()
        for fix in (False, True)
    }


def plot(x: Tensor, maps: dict, info: DataInfo, out: str) -> None:
    levels = list(maps)
    rows = [(b, level) for b in range(len(x)) for level in levels]
    fig, axes = plt.subplots(len(rows), len(COLUMNS), figsize=(1.6 * len(COLUMNS), 1.7 * len(rows)),
                             squeeze=False)  # fmt: skip
    pixels = denormalize(x.cpu(), info.mean, info.std).clamp(0, 1)
    for r, (b, level) in enumerate(rows):
        for c, column in enumerate(COLUMNS):
            ax = axes[r][c]
            ax.axis("off")
            if column == "input":
                ax.imshow(pixels[b].permute(1, 2, 0).numpy())
                ax.text(-0.1, 0.5, f"img {b}\n{level}", transform=ax.transAxes, ha="right",
                        va="center", fontsize=7)  # fmt: skip
            else:
                ax.imshow(maps[level][column][b, 0].cpu().numpy(), cmap="jet", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(column, fontsize=8)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def share_table(maps: dict, logits: dict, periods: list[int]) -> list[str]:
    """Markdown rows: method, fix, mean stride-frequency share per layer, logit and overall."""
    levels = list(maps)
    lines = [
        f"| method | stride fix | {' | '.join(levels)} | logit | mean |",
        "|---|---|" + "---|" * (len(levels) + 2),
    ]
    for rule in RULES:
        for fix in (False, True):
            column = f"{rule}{' + fix' if fix else ''}"
            shares = [stride_frequency_share(maps[lv][column], periods) for lv in levels]
            shares.append(stride_frequency_share(logits[column], periods))
            cells = " | ".join(f"{s.mean():.3f}" for s in shares)
            overall = torch.cat([s.flatten() for s in shares]).mean()
            lines.append(f"| {rule} | {'yes' if fix else 'no'} | {cells} | {overall:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a trained checkpoint")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--images", type=int, default=4, help="test images in the grid")
    parser.add_argument("--table-images", type=int, default=32,
                        help="test images the share table averages over")  # fmt: skip
    args = parser.parse_args()

    model = load_method(args.ckpt)
    info = DataInfo.from_dict(model.build_config["data_info"])
    datamodule = stored_datamodule(model)
    loader = DataLoader(datamodule.dataset("test"), batch_size=max(args.images, args.table_images),
                        collate_fn=datamodule.collate_fn)  # fmt: skip
    x = next(iter(loader))["image"]
    layers = pick_layers(model)
    maps = {f"{level} ({name.removeprefix('backbone.')})": layer_maps(model, x, name)
            for level, name in layers.items()}  # fmt: skip
    logits = logit_maps(model, x)
    periods = stride_periods(model)
    shown = {lv: {c: m[: args.images] for c, m in by.items()} for lv, by in maps.items()}
    plot(x[: args.images], shown, info, args.out)
    print(f"checkpoint: {args.ckpt}; {len(x)} test images; stride periods {periods}")
    print("\n".join(share_table(maps, logits, periods)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

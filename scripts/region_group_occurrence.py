"""Empirical part occurrence of a region-grouping model against its Beta prior (one panel per part).

    python scripts/region_group_occurrence.py --ckpt <run>/checkpoints/last.ckpt --out occurrence.png

Over the test split of the checkpoint's own data, each image's occurrence of part ``k``,
``t_k = max_ij (G * Q^k)`` (the method's own :func:`part_occurrence`, with its smoothing), is
what the prior (Eq. 2 of Huang & Li, CVPR 2020) pushes towards Beta(α, β). The plot shows each
part's histogram of ``t_k`` (as a density) with the Beta(α, β) of the checkpoint's config: its
pdf and its mass per histogram bin. The y axis is logarithmic, because Beta(1, 1e-3), the
paper's prior, puts almost all its mass in the last bin (every part in every image). It also
prints the checkpoint's test accuracy (same pass) and, per part, the mean occurrence, the share of images with ``t_k > 0.5`` and the part's
term of the prior loss over the whole split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from explainbench.methods.build import load_method, stored_datamodule  # noqa: E402
from explainbench.methods.region_group_parts import part_occurrence, prior_loss  # noqa: E402
from explainbench.viz import save_figure  # noqa: E402


@torch.no_grad()
def occurrences(model, loader) -> tuple[torch.Tensor, float | None]:
    """``[N,K]`` occurrences ``t_k`` of every image of ``loader``, and the model's accuracy on
    them (None when the batches carry no ``label``), from the same forward pass."""
    rows, correct, total = [], 0, 0
    for batch in loader:
        out = model.outputs(model.features(batch["image"]))
        rows.append(part_occurrence(out.parts, model.smooth_radius, model.smooth_std))
        if "label" in batch:
            correct += int((out.logits.argmax(1) == batch["label"]).sum())
            total += len(batch["label"])
    return torch.cat(rows), (correct / total if total else None)


def plot(t: np.ndarray, alpha: float, beta: float, title: str, out: str, bins: int = 20) -> None:
    k = t.shape[1]
    edges = np.linspace(0.0, 1.0, bins + 1)
    x = np.linspace(0.0, 1.0, 1001)[1:-1]
    prior_bins = np.diff(stats.beta.cdf(edges, alpha, beta)) / np.diff(edges)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.6), sharey=True, squeeze=False)
    for part, ax in enumerate(axes[0]):
        ax.hist(t[:, part], bins=edges, density=True, color="tab:blue", alpha=0.7, label="t_k")
        ax.plot(x, stats.beta.pdf(x, alpha, beta), color="tab:red", lw=1, label="prior pdf")
        ax.stairs(prior_bins, edges, color="tab:red", ls="--", label="prior per bin")
        ax.set_yscale("log")
        ax.set_ylim(1e-3, bins * 1.5)
        ax.set_xlabel(f"occurrence of part {part}")
        ax.set_title(f"part {part}: mean {t[:, part].mean():.2f}", fontsize=9)
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of a method=region_group run")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--test-size", type=int, default=None, help="override data.test_size")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--bins", type=int, default=20)
    args = parser.parse_args()

    model = load_method(args.ckpt)
    if not callable(getattr(model, "part_maps", None)) or not hasattr(model, "prior_alpha"):
        raise SystemExit(
            f"{args.ckpt} is a {type(model).__name__} checkpoint, not region grouping (method=region_group)."
        )
    datamodule = stored_datamodule(model, batch_size=args.batch_size, test_size=args.test_size)
    datamodule.setup("test")
    t, accuracy = occurrences(model, datamodule.test_dataloader())
    alpha, beta = model.prior_alpha, model.prior_beta

    name = "w/o attention" if not model.use_attention else "with attention"
    run = Path(args.ckpt).resolve().parent.parent.name  # <run>/checkpoints/last.ckpt
    title = (
        f"{run}: prior weight {model.prior_weight:g} ({name}); {t.shape[0]} test images, "
        f"Beta({alpha:g}, {beta:g})"
    )
    plot(t.numpy(), alpha, beta, title, args.out, args.bins)
    print(f"checkpoint: {args.ckpt}")
    print(
        f"prior weight {model.prior_weight:g}, Beta({alpha:g}, {beta:g}), {t.shape[0]} test images"
    )
    if accuracy is not None:
        print(f"accuracy: {accuracy:.4f} (this checkpoint, {t.shape[0]} test images)")
    print("| part | mean t_k | t_k > 0.5 | prior loss term |")
    print("|---|---|---|---|")
    for k in range(t.shape[1]):
        term = prior_loss(t[:, k : k + 1], alpha, beta).item()
        print(f"| {k} | {t[:, k].mean():.3f} | {(t[:, k] > 0.5).float().mean():.1%} | {term:.3f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

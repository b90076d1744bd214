"""The cost model on paper: hours of the papers' explanation benchmarks (docs/results/performance.md).

    python scripts/cost_table.py [--backbones vgg16 resnet50] [--size 224] [--batch 8]
                                 [--device cpu] [--repeats 3] [--gpu-forward-ms 1.0]
                                 [--gpu-backward-ms 2.0]

For each backbone (random init: speed does not depend on the weights, and none can be
downloaded here) it measures seconds per forward and per backward per image on ``--device``
(explainbench.evaluation.cost.time_passes, batch ``--batch``), takes the passes per image of
each explainer from its config — Grad-CAM and Grad-CAM++ 1 + 1, Score-CAM K + 1 (K: the
backbone's channels at its explained layer; an upper bound, channels with an empty activation
are skipped), RISE ``n_masks`` + 1 (conf/explainers/rise.yaml, 4000) — and prints the hours
for L-CAM's 2,000 ImageNet images, the 50,000-image ImageNet validation set and iNaturalist's
95,986 test images on 1, 8 and 64 devices (a linear split). The passes are not measured by
running the explainers (Score-CAM on VGG16 is 513 forwards per image: minutes on a CPU); the
passes × time per pass model itself is checked against measured explainer times by
``evaluate.py estimate=true`` and its ``timing:`` line.

``--gpu-forward-ms`` / ``--gpu-backward-ms``: an *assumed* GPU time per image and pass (not
measured unless ``--device cuda``), printed as a second table, labelled as an assumption.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from explainbench.backbones import build_backbone  # noqa: E402
from explainbench.evaluation.cost import Passes, PassTimes, estimate_hours, time_passes  # noqa: E402
from explainbench.utils.paths import CONF_DIR  # noqa: E402

DATASETS = {"L-CAM ImageNet subset": 2_000, "ImageNet val": 50_000, "iNaturalist test": 95_986}
DEVICES = (1, 8, 64)


def paper_passes(channels: int) -> dict[str, Passes]:
    rise = OmegaConf.load(CONF_DIR / "explainers" / "rise.yaml").rise
    return {
        "gradcam": Passes(1, 1),
        "gradcampp": Passes(1, 1),
        "scorecam": Passes(channels + 1, 0),
        "rise": Passes(int(rise.n_masks) + 1, 0),
    }


def print_table(backbone: str, passes: dict[str, Passes], times: PassTimes, label: str) -> None:
    print(f"\n{backbone}, {label}: {1000 * times.forward:.3g} ms per forward, "
          f"{1000 * times.backward:.3g} ms per backward, per image")  # fmt: skip
    header = ["explainer", "fw+bw /img", "s/img", "images", *[f"h on {d}" for d in DEVICES]]
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    for explainer, p in passes.items():
        for dataset, images in DATASETS.items():
            hours = estimate_hours({explainer: p}, times, images, DEVICES)[explainer]
            cells = [explainer, f"{p.forward:g}+{p.backward:g}", f"{p.seconds(times):.3g}",
                     f"{images:,} ({dataset})", *[f"{hours[d]:.3g}" for d in DEVICES]]  # fmt: skip
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--gpu-forward-ms", type=float, default=None, help="assumed, per image")
    parser.add_argument("--gpu-backward-ms", type=float, default=None, help="assumed, per image")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}, {args.size} px, "
          f"batch {args.batch}, best of {args.repeats}")  # fmt: skip
    for name in args.backbones:
        torch.manual_seed(0)
        model = build_backbone(name, num_classes=1000).eval().to(device)
        x = torch.randn(args.batch, 3, args.size, args.size, device=device)
        times = time_passes(model, x, repeats=args.repeats)
        passes = paper_passes(model.feature_channels)
        print_table(name, passes, times, f"measured on {device}")
        if args.gpu_forward_ms is not None:
            assumed = PassTimes(args.gpu_forward_ms / 1000, (args.gpu_backward_ms or 0) / 1000)
            print_table(name, passes, assumed, "ASSUMED GPU time per pass (not measured)")


if __name__ == "__main__":
    main()

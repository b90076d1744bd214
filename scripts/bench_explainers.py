"""Speed, peak memory and reference agreement of the post-hoc explainers.

    python scripts/bench_explainers.py [--batch 2] [--size 224] [--repeats 1] [--device cpu]
                                       [--threads 1] [--chunk 64] [--skip NAME ...]

Times every explainer of ``conf/explainers/`` that builds (a missing module, e.g. one
still being written, is listed as skipped) and the ``grad-cam`` package's GradCAM,
GradCAMPlusPlus and ScoreCAM on the same model (resnet18 split at layer4, random init with a
fixed seed: pretrained weights cannot be downloaded here, and speed does not depend on
them), the same input batch and the same targets (top-1), on the same device and threads.

Each explainer runs in its own freshly spawned process, so its peak memory is its own: the
peak resident set size (CPU) or ``torch.cuda.max_memory_allocated`` (GPU) above what the
process held once the model and the batch were built. Cheap explainers get one untimed
warm-up call; Score-CAM and RISE (thousands of forwards, one-time costs amortised) don't.
ms/image is the best timed call (``--repeats`` of them; at least 5 for the cheap explainers)
divided by the batch size. The default is a
quick run (batch 2): the package's Score-CAM alone is 512 forwards per image at 224 px.
One torch thread by default: on a shared machine a multi-threaded OpenMP pool stalls at every
barrier while another process holds a core (we saw the same forward vary 50x), which would
make the comparison a lottery; ``--threads N`` for multi-core numbers on a quiet machine. The
CPU-time column (user + system, all threads) is less sensitive to other load than wall time.

Agreement is the largest absolute difference of the min-max normalised maps at input
resolution (the package resizes with cv2, bilinear with half-pixel centres; we interpolate
the same way), checked against 1e-4 for the settings built to reproduce the package.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TOL = 1e-4
SEED = 0
# Explainers whose single call is already thousands of forwards: no warm-up call, --repeats
# timed calls. The others get a warm-up call and at least CHEAP_REPEATS timed calls.
EXPENSIVE = {"scorecam", "scorecam[pgc]", "scorecam[pgc,compile]", "scorecam[pgc,bf16]", "rise",
             "pgc.ScoreCAM"}  # fmt: skip
# Explainers that compile on first use: one untimed call on one image first (it compiles the
# fixed-shape graph), its wall time reported as the compilation cost.
COMPILED = {"scorecam[pgc,compile]"}
CHEAP_REPEATS = 5


def ours(name: str, args: argparse.Namespace):
    """One of our explainers as ``conf/explainers/<name>.yaml`` configures it, with this
    benchmark's settings on top; built lazily, so a broken module is reported, not fatal."""
    import hydra
    from omegaconf import OmegaConf

    from explainbench.utils.paths import CONF_DIR

    def build(file: str, **settings):
        entry = OmegaConf.load(CONF_DIR / "explainers" / f"{file}.yaml")[file]
        return hydra.utils.instantiate(OmegaConf.merge(entry, settings))

    chunk = {"batch_size": args.chunk} if args.chunk else {}
    if name == "rise" and args.rise_masks:
        return build("rise", n_masks=args.rise_masks)
    if name == "gradcampp[pgc]":
        return build("gradcampp", eps=1e-6)
    if name == "scorecam":
        return build("scorecam", **chunk)
    if name.startswith("scorecam[pgc"):
        return build(
            "scorecam",
            **chunk,
            weighting="logit_softmax",
            align_corners=True,
            autocast_dtype="bfloat16" if name.endswith("bf16]") else None,
            compile=name.endswith("compile]"),
        )
    return build(name)


OURS = ["activation", "gradcam", "gradcampp", "gradcampp[pgc]", "scorecam", "scorecam[pgc]",
        "scorecam[pgc,compile]", "scorecam[pgc,bf16]", "rise", "guided_backprop", "deconvnet",
        "method"]  # fmt: skip
LEGEND = (
    "pgc.* = pytorch_grad_cam (the grad-cam package); rows without a prefix are "
    "explainbench with its defaults;\ngradcampp[pgc] = GradCAMPlusPlus(eps=1e-6); "
    "scorecam[pgc] = ScoreCAM(weighting='logit_softmax', align_corners=True);\n"
    "scorecam[pgc,compile] = the same with compile=True (torch.compile; its compilation\n"
    "  is one untimed call, reported below; its peak memory includes the compiler's);\n"
    "scorecam[pgc,bf16] = the same with autocast_dtype='bfloat16' (fast, not exact)"
)
REFERENCE = ["pgc.GradCAM", "pgc.GradCAMPlusPlus", "pgc.ScoreCAM"]
# (ours, reference, what the ratio is called, speed-up target, expected to match to TOL)
PAIRS = [
    ("gradcam", "pgc.GradCAM", "GradCAM", 1.0, True),
    ("gradcampp[pgc]", "pgc.GradCAMPlusPlus", "GradCAM++", None, True),
    ("scorecam[pgc]", "pgc.ScoreCAM", "ScoreCAM", 2.0, True),
    ("scorecam[pgc,compile]", "pgc.ScoreCAM", "ScoreCAM, compiled", 2.0, True),
    ("scorecam[pgc,bf16]", "pgc.ScoreCAM", "ScoreCAM, bf16 autocast", None, False),
]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): less sensitive to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_reference(name: str, model, x, target):
    import pytorch_grad_cam as pgc
    import pytorch_grad_cam.score_cam as pgc_score
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class _Quiet:  # the package's ScoreCAM draws a tqdm bar per image; keep the output readable
        @staticmethod
        def tqdm(iterable, *args, **kwargs):
            return iterable

    pgc_score.tqdm = _Quiet
    targets = [ClassifierOutputTarget(int(c)) for c in target]
    with getattr(pgc, name.split(".", 1)[1])(model=model, target_layers=[model.extractor]) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=targets))[:, None], None


def worker(name: str, args: argparse.Namespace, conn) -> None:
    """Build model and batch, run ``name``; send back timing, memory and the maps."""
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        from explainbench.backbones import build_backbone

        device = torch.device(args.device)
        torch.manual_seed(SEED)
        model = build_backbone(args.backbone, num_classes=args.num_classes).eval().to(device)
        gen = torch.Generator().manual_seed(SEED + 1)
        x = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
        with torch.no_grad():
            target = model(x).argmax(1)  # the same top-1 targets for every explainer
        if name.startswith("pgc."):
            import pytorch_grad_cam  # noqa: F401  (imports cv2, scipy, ...: not the explainer's memory)

            def call():
                return run_reference(name, model, x, target)
        else:
            explainer = ours(name, args)

            def call():
                explanation = explainer(model, x, target)
                return explanation.saliency, explanation

        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            base = rss_mib()
        expensive = name in EXPENSIVE
        if not expensive:
            call()
        warmup = None
        if name in COMPILED:
            start = time.perf_counter()
            explainer(model, x[:1], target[:1])
            warmup = time.perf_counter() - start
        times, cpu_times = [], []
        for _ in range(args.repeats if expensive else max(args.repeats, CHEAP_REPEATS)):
            sync()
            start, cpu_start = time.perf_counter(), cpu_seconds()
            saliency, explanation = call()
            sync()
            times.append(time.perf_counter() - start)
            cpu_times.append(cpu_seconds() - cpu_start)
        if device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        else:
            peak = rss_mib() - base
        passes = (
            (explanation.forward_passes, explanation.backward_passes)
            if explanation
            else (None, None)
        )
        conn.send(
            {
                "ms": 1000 * min(times) / args.batch,
                "cpu_ms": 1000 * min(cpu_times) / args.batch,
                "peak": peak,
                "passes": passes,
                "warmup": warmup,
                "saliency": saliency.detach().float().cpu().numpy()[:, 0],
            }
        )
    except Exception as err:  # reported in the table; one failing explainer must not stop the run
        conn.send({"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()})
    finally:
        conn.close()


def measure(name: str, args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker, args=(name, args, child))
    proc.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        result = None
    proc.join()
    return result or {"error": f"worker died (exit code {proc.exitcode})"}


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2, help="images per explainer call")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls; the best is reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per explainer process (default 1; 0 = torch's default)",
    )
    parser.add_argument(
        "--chunk", type=int, default=None, help="our Score-CAM's batch_size (default: its own)"
    )
    parser.add_argument(
        "--rise-masks",
        type=int,
        default=500,
        help="RISE masks per image (its cost is linear in it; 0 = its config default, 4000)",
    )
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument(
        "--skip", nargs="*", default=[], help="names to leave out, e.g. pgc.ScoreCAM"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print tracebacks of failed explainers"
    )
    args = parser.parse_args()

    from importlib.metadata import version

    import pytorch_grad_cam  # noqa: F401  (fail early: the reference is a dev dependency)

    threads = args.threads or torch.get_num_threads()
    cheap = max(args.repeats, CHEAP_REPEATS)
    rise, chunk = args.rise_masks or "default", args.chunk or "default"
    machine = f"{os.cpu_count()} CPUs ({platform.machine()})"
    print(
        f"explainer benchmark: {args.backbone} (random init, seed {SEED}, {args.num_classes} "
        f"classes), batch {args.batch}, {args.size}x{args.size} px, top-1 targets, device "
        f"{args.device}, {threads} torch thread(s)\nScore-CAM/RISE: best of {args.repeats} "
        f"call(s); others: best of {cheap} after a warm-up; our Score-CAM chunk {chunk}; "
        f"RISE {rise} masks per image\ntorch {torch.__version__}, grad-cam "
        f"{version('grad-cam')}, {machine}, load average {load()} at start"
    )
    results: dict[str, dict] = {}
    for name in [*OURS, *REFERENCE]:
        if name in args.skip:
            continue
        start = time.perf_counter()
        results[name] = res = measure(name, args)
        status = res.get("error") or f"{res['ms']:.1f} ms/image"
        took = time.perf_counter() - start
        print(f"  .. {name}: {status} ({took:.0f} s, load {load()})", flush=True)
        if "error" in res and args.verbose:
            print(res["trace"])

    mem = "peak MiB (GPU)" if args.device.startswith("cuda") else "peak MiB (RSS)"
    header = f"{'ms/image':>10}{'CPU ms/image':>14}{mem:>16}{'fw/img':>8}{'bw/img':>8}"
    print(f"\n{'explainer':<22}{header}")
    for name, res in results.items():
        if "error" in res:
            print(f"{name:<22}{'skipped':>10}  {res['error'].splitlines()[0][:70]}")
            continue
        fw, bw = res["passes"]
        print(
            f"{name:<22}{res['ms']:>10.1f}{res['cpu_ms']:>14.1f}{res['peak']:>16.0f}"
            f"{fmt(fw, '>8.1f', ' ' * 7 + '-')}{fmt(bw, '>8.1f', ' ' * 7 + '-')}"
        )

    print(LEGEND)
    for name, res in results.items():
        if res.get("warmup") is not None:
            print(f"{name}: first call (one image, compiles): {res['warmup']:.1f} s")
    print(f"\nagreement with pytorch_grad_cam (max |diff| of the [0,1] maps, tolerance {TOL:g}):")
    for mine, ref, _, _, exact in PAIRS:
        a, b = results.get(mine, {}), results.get(ref, {})
        if "saliency" in a and "saliency" in b:
            diff = float(np.abs(a["saliency"] - b["saliency"]).max())
            verdict = "match" if diff <= TOL else ("MISMATCH" if exact else "differs (expected)")
            print(f"  {mine:<18} vs {ref:<20} {diff:.1e}  {verdict}")
    print("\nratios (pytorch_grad_cam / ours; wall time, CPU time in brackets):")
    for mine, ref, label, goal, _ in PAIRS:
        a, b = results.get(mine, {}), results.get(ref, {})
        if "ms" not in a or "ms" not in b:
            continue
        speed, cpu_speed = b["ms"] / a["ms"], b["cpu_ms"] / a["cpu_ms"]
        line = f"  {label} speed-up vs pytorch_grad_cam: {speed:.1f}x ({cpu_speed:.1f}x)"
        if goal is not None:
            line += f", target >= {goal:g}x {'met' if speed >= goal else 'NOT met'}"
        line += f"; peak memory {a['peak']:.0f} vs {b['peak']:.0f} MiB"
        print(line)


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()

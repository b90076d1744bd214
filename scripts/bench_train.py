"""Training throughput of train.py's stack against a plain PyTorch loop doing the same work.

    python scripts/bench_train.py [--backbone small_cnn resnet18] [--size 64] [--batch 64]
                                  [--batches 60] [--warmup 5] [--repeats 3] [--threads 0]
                                  [--device cpu] [--precision 32-true] [--channels-last]
                                  [--profile] [OVERRIDE ...]

Framework: the config composed from conf/train.yaml with Hydra's compose API (the defaults:
an8flower, method=classifier, callbacks=default, logger=csv, trainer=default) and built by the
same code train.py uses (``hydra.utils.instantiate`` of data / callbacks / loggers / trainer,
``methods.build.build_method``), then ``trainer.fit`` for one epoch of ``--warmup + --batches``
batches (``data.train_size`` set to that many batches), validation off (the plain loop does not validate; the per-epoch checkpoint, progress
bar, loggers and the method's per-step logging and accuracy stay on).

Plain loop: the same data module object's ``train_dataloader()`` (same dataset, batch size,
shuffling, workers), the same model built by ``build_method`` from the same config and seed,
the optimiser from its own ``configure_optimizers()``, and per batch: to device, forward,
cross-entropy, backward, step, zero_grad (under autocast for a mixed precision); no logging.

Timing: from the start of batch ``--warmup`` (the warm-up batches, the first-call costs and
everything before the loop are excluded) to the end of training (Trainer: ``on_train_end``,
so the epoch-end checkpoint is included; plain: after the last step). ``--repeats`` rounds,
interleaved (each round runs both, alternating which goes first, so a change of machine load
hits both), the median images/s of each and the overhead ``plain/framework - 1`` of the
medians are reported. On CUDA the timers synchronise the device.

``--profile``: one extra framework run under cProfile, the top functions by cumulative time.
Extra ``OVERRIDE`` arguments (``key=value``) go to the compose call of both sides.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("WANDB_MODE", "offline")

import hydra  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from explainbench.methods.build import build_method  # noqa: E402
from explainbench.utils.instantiate import instantiate_named  # noqa: E402
from explainbench.utils.paths import CONF_DIR  # noqa: E402

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def compose_train(overrides: list[str], out_dir: str) -> DictConfig:
    """conf/train.yaml as train.py composes it (the hydra node too: some defaults read it)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = out_dir
        cfg.paths.log_dir = out_dir
    return cfg


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer(L.Callback):
    """Wall time from the start of batch ``warmup`` to the end of training, and the images in it."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.images = warmup, None, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            sync(pl_module.device)
            self.start = time.perf_counter()
        if batch_idx >= self.warmup:
            self.images += batch["image"].shape[0]

    def on_train_end(self, trainer, pl_module) -> None:
        sync(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def framework_run(cfg: DictConfig, datamodule, warmup: int, profile: bool = False) -> float:
    """Images/s of ``trainer.fit`` built as train.py builds it."""
    L.seed_everything(cfg.seed, workers=True)
    model = build_method(cfg, datamodule)
    callbacks = instantiate_named(cfg.get("callbacks"))
    loggers = instantiate_named(cfg.get("logger"))
    timer = Timer(warmup)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[*callbacks, timer], logger=loggers)
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(trainer.fit, model=model, datamodule=datamodule)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    else:
        trainer.fit(model=model, datamodule=datamodule)
    return timer.images / timer.seconds


def plain_run(cfg: DictConfig, datamodule, warmup: int) -> float:
    """Images/s of a hand-written loop over the same data, model and optimiser."""
    L.seed_everything(cfg.seed, workers=True)
    model = build_method(cfg, datamodule)
    device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
    model.to(device).train()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    dtype = AUTOCAST.get(str(cfg.trainer.precision))
    start, images = None, 0
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        x = batch["image"].to(device, non_blocking=True)
        y = batch["label"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            images += x.shape[0]
    sync(device)
    return images / (time.perf_counter() - start)


def overrides_for(backbone: str, args: argparse.Namespace) -> list[str]:
    batches = args.warmup + args.batches
    gpu = args.device.startswith("cuda")
    return [
        f"backbone={backbone}",
        f"data.image_size={args.size}",
        f"data.batch_size={args.batch}",
        f"data.train_size={args.batch * batches}",
        "data.val_size=16",
        "data.test_size=16",
        "trainer.max_epochs=1",
        "++trainer.limit_val_batches=0",
        "++trainer.num_sanity_val_steps=0",
        f"trainer.accelerator={'gpu' if gpu else 'cpu'}",
        f"trainer.precision={args.precision}",
        f"backbone.channels_last={str(args.channels_last).lower()}",
        "train=true",
        "test=false",
        *args.overrides,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", nargs="+", default=["small_cnn", "resnet18"])
    parser.add_argument("--size", type=int, default=64, help="an8flower image side (pixels)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=60, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--precision", default="32-true", help="32-true | bf16-mixed | 16-mixed")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one framework run")
    parser.add_argument("overrides", nargs="*", help="extra key=value config overrides")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print(
        f"settings: {args.size} px, batch {args.batch}, {args.warmup} warm-up + {args.batches} "
        f"timed batches, {args.repeats} interleaved rounds, precision {args.precision}, "
        f"channels_last {args.channels_last}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for backbone in args.backbone:
            cfg = compose_train(overrides_for(backbone, args), out_dir)
            # one data module for every run (an8flower renders its splits once, on setup)
            datamodule = hydra.utils.instantiate(cfg.data)
            datamodule.setup("fit")
            framework, plain = [], []
            for r in range(args.repeats):
                order = [("framework", framework), ("plain", plain)]
                for side, results in order if r % 2 == 0 else order[::-1]:
                    run = framework_run if side == "framework" else plain_run
                    results.append(run(cfg, datamodule, args.warmup))
                print(f"  {backbone} round {r}: framework {framework[-1]:.1f} img/s, "
                      f"plain {plain[-1]:.1f} img/s", flush=True)  # fmt: skip
            if args.profile:
                framework_run(cfg, datamodule, args.warmup, profile=True)
            f_med, p_med = statistics.median(framework), statistics.median(plain)
            rows.append((backbone, f_med, p_med, p_med / f_med - 1.0))
    print()
    print("| backbone | framework img/s | plain img/s | overhead |")
    print("|---|---:|---:|---:|")
    for backbone, f_med, p_med, overhead in rows:
        print(f"| {backbone} | {f_med:.1f} | {p_med:.1f} | {100 * overhead:+.1f} % |")


if __name__ == "__main__":
    main()

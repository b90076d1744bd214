"""``make demo``: every method and post-hoc explainer on an8flower, scored side by side.

    python -m explainbench.demo [--tiny] [--resume [DIR]] [--out-root outputs/demo] [--quiet]
                                [--logger wandb|csv]
    explainbench-demo ...                    (the same, installed as a console script)

A small driver around ordinary runs, so that any stage re-runs alone with the command the report
prints: ``train.py experiment=demo_*`` for each model (conf/experiment/demo_*.yaml), the
relevant-features fit (``python -m explainbench.relevant_features.fit``), then ``evaluate.py`` of
every learned explanation (``explainers=[method]``) and every post-hoc explainer of the classifier,
all on the same fixed test images (``data.subset=N data.subset_seed=0``). Each stage writes into
``<out-root>/<timestamp>/<stage>/``; ``report.md`` and ``report.html`` (explainbench/demo_report.py)
go into ``<out-root>/<timestamp>/``.

Resuming (our choice): without ``--resume`` a new timestamped dir is made; ``--resume DIR`` goes on
in DIR and ``--resume`` alone in the newest dir under ``--out-root`` that has no ``report.md`` yet
(an unfinished demo). A stage whose ``metrics.json`` exists is finished (train.py and evaluate.py
write it last) and is skipped; any other stage is run again from the start, what its earlier
attempt left moved to ``<demo dir>/.unfinished/<stage>-<n>``. A stage that fails
does not stop the demo: the stages that need it are skipped and the report lists them as missing.
``--tiny`` shrinks everything (64 training images, one epoch, 8 test images) for the tests;
``--stages a,b`` runs only those stages (with ``--resume DIR`` to re-run them in DIR); the report
covers every stage, the others as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

DEFAULT_ROOT = Path("outputs/demo")
STAGE_FILE = "demo_stage.json"  # the command, elapsed seconds and return code of a stage
METRICS_FILE = "metrics.json"  # written last by train.py / evaluate.py: the stage is finished
REPORT_FILE = "report.md"
WANDB_OFFLINE_RUNS = "*/wandb/offline-run-*"  # one per stage; `wandb sync` takes them all
CKPT = Path("checkpoints") / "last.ckpt"

# The same fixed test images for every evaluation (the an8flower test split is generated from
# its seed, so every single6c checkpoint sees the same images)
TEST_IMAGES = 100
# RISE masks: 1000 in scripts/an8flower_results.sh; 250 keeps the demo in its budget (our choice:
# with 500, RISE alone took 72 of eval_posthoc's 166 s on 100 images, 2 shared CPU cores)
RISE_MASKS = 250
# gallery rows per evaluation (evaluate.yaml: 8): report.html inlines every gallery.png
GALLERY_IMAGES = 4
TINY_TRAIN = [
    "data.train_size=64",
    "data.val_size=32",
    "data.test_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=1",
]
TINY_TEST_IMAGES = 8
TINY_RISE_MASKS = 50
TINY_RANDOMISATION_IMAGES = 4

POSTHOC = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "scorecam": "Score-CAM",
    "rise": "RISE",
    "activation": "activation map",
    "guided_backprop": "guided backprop",
    "deconvnet": "deconvnet",
}
# the metrics of every evaluation (conf/metrics/default.yaml's); region grouping adds its own
METRICS = ["ad_ic", "deletion_insertion", "iou", "pointing_game", "far", "passes"]
# the model-randomisation sanity check (Adebayo et al.) on the first images only: it re-explains
# each image 1 + 2 x (layer groups) times, which for Score-CAM and RISE would be most of the demo
RANDOMISATION = "randomisation"
RANDOMISATION_IMAGES = 20


@dataclass
class Stage:
    """One run of the demo: ``kind`` is train | fit | evaluate; ``args`` its command-line
    arguments after the program; ``needs`` the stages whose output it reads; ``rows`` (evaluate
    stages) the report's row label of each explainer; ``model`` the train stage whose accuracy
    the rows show."""

    name: str
    kind: str
    args: list[str]
    needs: list[str] = field(default_factory=list)
    rows: dict[str, str] = field(default_factory=dict)
    model: str | None = None

    def command(self, stage_dir: Path) -> list[str]:
        if self.kind == "fit":
            return [sys.executable, "-m", "explainbench.relevant_features.fit", *self.args]
        program = "explainbench.train" if self.kind == "train" else "explainbench.evaluate"
        return [sys.executable, "-m", program, *self.args, f"hydra.run.dir={stage_dir}"]


def logger_args(demo_dir: Path, stage: str, logger: str) -> list[str]:
    """A stage's logger: ``csv``, or one W&B run per stage (offline without an API key), named
    after the stage, grouped under the demo dir's name and saved in the stage dir; evaluate
    stages add ``metric_prefix=<stage>`` and ``tags=[demo,<stage>]`` themselves."""
    if logger == "csv":
        return ["logger=csv"]
    return [
        "logger=wandb",
        f"logger.wandb.group={demo_dir.name}",
        f"logger.wandb.name={stage}",
        f"logger.wandb.save_dir={demo_dir / stage}",
    ]


def plan(demo_dir: Path, tiny: bool = False, logger: str = "wandb") -> list[Stage]:
    """The demo's stages in run order (paths inside ``demo_dir``); ``logger``: wandb | csv."""
    train_extra = [*(TINY_TRAIN if tiny else [])]
    images = TINY_TEST_IMAGES if tiny else TEST_IMAGES
    masks = TINY_RISE_MASKS if tiny else RISE_MASKS
    metrics = [*METRICS, RANDOMISATION]
    eval_extra = [
        f"metrics.{RANDOMISATION}.max_images="
        f"{TINY_RANDOMISATION_IMAGES if tiny else RANDOMISATION_IMAGES}",
        f"data.subset={images}",
        "data.subset_seed=0",
        f"gallery_images={GALLERY_IMAGES}",
    ]

    def ckpt(stage: str) -> str:
        return str(demo_dir / stage / CKPT)

    def train(name: str, *args: str, needs: tuple[str, ...] = ()) -> Stage:
        args = [*args, *train_extra, *logger_args(demo_dir, name, logger)]
        return Stage(name, "train", args, needs=list(needs))

    def evaluate(name, model, explainers, rows, *args, metric_list=metrics, needs=()):
        return Stage(
            name,
            "evaluate",
            [
                f"ckpt_path={ckpt(model)}",
                f"explainers=[{','.join(explainers)}]",
                f"metrics=[{','.join(metric_list)}]",
                *args,
                *eval_extra,
                *logger_args(demo_dir, name, logger),
                *([f"metric_prefix={name}", f"tags=[demo,{name}]"] if logger == "wandb" else []),
            ],
            needs=[model, *needs],
            rows=rows,
            model=model,
        )

    classifier = ckpt("classifier")
    return [
        train("classifier", "experiment=demo_classifier"),
        train(
            "lcam_img",
            "experiment=demo_lcam",
            f"backbone.checkpoint={classifier}",
            needs=("classifier",),
        ),  # fmt: skip
        train(
            "lcam_fm",
            "experiment=demo_lcam",
            "method=lcam_fm",
            f"backbone.checkpoint={classifier}",
            needs=("classifier",),
        ),  # fmt: skip
        train("eat", "experiment=demo_eat"),
        train("region_group", "experiment=demo_region_group"),
        train("attention", "experiment=demo_attention"),
        Stage(
            "relevant_features_fit",
            "fit",
            ["--ckpt", classifier, "--out", str(demo_dir / "relevant_features_fit" / "rf.pt")]
            + (["--max-images", "64"] if tiny else []),
            needs=["classifier"],
        ),
        evaluate(
            "eval_posthoc", "classifier", list(POSTHOC), POSTHOC, f"explainers.rise.n_masks={masks}"
        ),  # fmt: skip
        evaluate(
            "eval_relevant_features",
            "classifier",
            ["relevant_features"],
            {"relevant_features": "relevant features"},
            f"explainers.relevant_features.path={demo_dir / 'relevant_features_fit' / 'rf.pt'}",
            needs=("relevant_features_fit",),
        ),  # fmt: skip
        evaluate("eval_lcam_img", "lcam_img", ["method"], {"method": "L-CAM-Img"}),
        evaluate("eval_lcam_fm", "lcam_fm", ["method"], {"method": "L-CAM-Fm"}),
        evaluate(
            "eval_eat", "eat", ["method"], {"method": "EAT"}, metric_list=[*metrics, "sentence"]
        ),
        evaluate(
            "eval_region_group",
            "region_group",
            ["method"],
            {"method": "region grouping"},
            "metrics.landmarks.normalizer=image",
            metric_list=[*metrics, "landmarks", "part_iou"],
        ),  # fmt: skip
        evaluate(
            "eval_attention", "attention", ["method"], {"method": "attention (sharable, early)"}
        ),  # fmt: skip
    ]


Runner = Callable[[list[str], Path, bool], int]


def subprocess_runner(command: list[str], stage_dir: Path, quiet: bool) -> int:
    """Run one stage; its output goes to the terminal (the stage's own progress bar) or, with
    ``quiet``, to ``<stage>/stage.log``."""
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    if not quiet:
        return subprocess.run(command, env=env).returncode
    with open(stage_dir / "stage.log", "w") as log:
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def is_finished(stage_dir: Path) -> bool:
    return (stage_dir / METRICS_FILE).is_file()


def set_aside(stage_dir: Path, demo_dir: Path) -> Path | None:
    """Move what an unfinished earlier attempt left in ``stage_dir`` to
    ``<demo dir>/.unfinished/<stage>-<n>``, so the new attempt starts clean (no stale
    checkpoint or gallery) and W&B gets one run per stage (``wandb sync <demo>/*/wandb/...``
    does not match the hidden folder). Returns where it went, or None if there was nothing."""
    if not stage_dir.is_dir() or not any(stage_dir.iterdir()):
        return None
    aside = demo_dir / ".unfinished"
    aside.mkdir(exist_ok=True)
    n = 1 + sum(1 for p in aside.glob(f"{stage_dir.name}-*"))
    target = aside / f"{stage_dir.name}-{n}"
    stage_dir.rename(target)
    print(f"[demo] {stage_dir.name}: the unfinished attempt moved to {target}", flush=True)
    return target


def run_stages(
    stages: list[Stage], demo_dir: Path, runner: Runner = subprocess_runner, quiet: bool = False
) -> dict[str, str]:
    """Run every unfinished stage in order; returns each stage's status: done | skipped (finished
    before) | failed (exit code n) | not run (needs ...)."""
    status: dict[str, str] = {}
    for number, stage in enumerate(stages, 1):
        stage_dir = demo_dir / stage.name
        counter = f"({number}/{len(stages)})"
        if is_finished(stage_dir):
            status[stage.name] = "skipped"
            print(f"[demo] {stage.name}: finished before ({METRICS_FILE}), skipped", flush=True)
            continue
        broken = [
            n
            for n in stage.needs
            if status.get(n) not in ("done", "skipped") and not is_finished(demo_dir / n)
        ]
        if broken:
            status[stage.name] = f"not run (needs {', '.join(broken)})"
            print(f"[demo] {stage.name}: not run, needs {', '.join(broken)}", flush=True)
            continue
        set_aside(stage_dir, demo_dir)
        stage_dir.mkdir(parents=True, exist_ok=True)
        command = stage.command(stage_dir)
        print(f"[demo] {counter} {stage.name}: {shlex.join(command)}", flush=True)
        start = time.perf_counter()
        code = runner(command, stage_dir, quiet)
        seconds = time.perf_counter() - start
        if code == 0 and stage.kind == "fit":
            # the fit writes no metrics.json of its own: the driver marks it finished
            (stage_dir / METRICS_FILE).write_text(json.dumps({"fit/seconds": seconds}) + "\n")
        status[stage.name] = "done" if code == 0 else f"failed (exit code {code})"
        record = {"command": shlex.join(command), "seconds": seconds, "returncode": code}
        (stage_dir / STAGE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        print(f"[demo] {stage.name}: {status[stage.name]} in {seconds:.1f} s", flush=True)
    return status


def select(stages: list[Stage], names: list[str]) -> list[Stage]:
    """The stages named, in run order; an unknown name is an error listing the stages."""
    known = [s.name for s in stages]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"Error: unknown stage(s) {', '.join(unknown)}; the stages: {', '.join(known)}"
        )
    return [s for s in stages if s.name in names]


def resume_dir(root: Path, resume: str | None) -> Path:
    """The demo dir: ``resume`` (a path), the newest unfinished dir under ``root`` (``latest``),
    or a new timestamped dir (None)."""
    if resume is None:
        return root / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if resume != "latest":
        path = Path(resume)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume {resume}: no such demo dir (expected {root}/<time>)")
        return path
    unfinished = sorted(p for p in root.glob("*") if p.is_dir() and not (p / REPORT_FILE).is_file())
    if not unfinished:
        raise FileNotFoundError(
            f"--resume: no unfinished demo dir (one without {REPORT_FILE}) under {root}; "
            "run without --resume to start one, or pass the dir: --resume <dir>"
        )
    return unfinished[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few images, one epoch (tests)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="go on in DIR (default: the newest demo dir without report.md)",
    )
    parser.add_argument("--out-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--quiet", action="store_true", help="stage output to <stage>/stage.log")
    parser.add_argument(
        "--stages",
        default=None,
        help="comma-separated stage names to run (default: all); the others are left as they are",
    )
    parser.add_argument(
        "--logger",
        choices=["wandb", "csv"],
        default="wandb",
        help="wandb (default): one W&B run per stage, offline without an API key; csv: none",
    )
    args = parser.parse_args(argv)
    from .demo_report import write_report

    try:
        demo_dir = resume_dir(args.out_root, args.resume)
    except FileNotFoundError as err:
        raise SystemExit(f"Error: {type(err).__name__}: {err}") from None
    demo_dir.mkdir(parents=True, exist_ok=True)
    print(f"[demo] {demo_dir}", flush=True)
    stages = plan(demo_dir, tiny=args.tiny, logger=args.logger)
    chosen = select(stages, args.stages.split(",")) if args.stages else stages
    start = time.perf_counter()
    status = run_stages(chosen, demo_dir, quiet=args.quiet)
    for stage in stages:  # the report covers every stage; --stages left the others alone
        if stage.name not in status:
            status[stage.name] = "skipped" if is_finished(demo_dir / stage.name) else "not selected"
    paths = write_report(demo_dir, stages, status)
    print(f"[demo] total {time.perf_counter() - start:.1f} s; report: {', '.join(map(str, paths))}")
    if any(demo_dir.glob(WANDB_OFFLINE_RUNS)):
        print(f"[demo] W&B (offline): wandb sync {demo_dir}/{WANDB_OFFLINE_RUNS}", flush=True)
    if any(s.startswith(("failed", "not run")) for s in status.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Explanation benchmark of a trained checkpoint: every explainer × every metric on the test split.

``python evaluate.py ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt
explainers=[gradcam,gradcampp,scorecam,rise]`` writes ``results.csv``, ``results.md``,
``metrics.json``, ``gallery.png``, ``gallery.pt`` and ``curves.json`` to its run dir and prints
the table; with ``gallery_per_image=true`` also each gallery row as ``gallery/<index>.png``
(index: the sample's index in the test split), e.g. one layer-heatmap grid per image with
``explainers=[layer_heatmaps]``.

``gallery.pt`` (``torch.load(path, weights_only=True)``) holds the gallery images' records:
``index`` [N] (test-split index), ``image`` [N,3,H,W] in [0,1], ``label``, ``pred`` [N],
``class_names``, ``captions``, ``texts`` (the method's / explainers' text per image, "" if
none), ``maps`` {gallery column: [N,1,H,W]}, ``explainer_maps`` {explainer: its saliency, what
the metrics scored}, ``masks`` {part_mask / mask: [N,1,H,W]} and ``iou`` {explainer: [N] IoU
AUC against the IoU metric's mask (NaN for an empty mask); only with an IoU metric}.
``curves.json``: ``{explainer: {curve: {"x": [...], "y": [...]}}}`` (IoU vs threshold,
deletion / insertion probability vs fraction of pixels).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import hydra
import lightning as L
import matplotlib.pyplot as plt
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from .evaluation import ExplanationEvaluator
from .evaluation.cost import estimate_table, passes_per_image, time_passes
from .evaluation.gallery import gallery_records
from .evaluation.records import gallery_record, label_name, write_curves
from .evaluation.task import EvaluationTask
from .methods.build import load_method
from .metrics.base import saliency_at
from .train import check_multirun_strategy
from .utils.devices import check_devices
from .utils.extras import require_extras
from .utils.instantiate import instantiate_named, instantiate_named_dict
from .utils.markdown import markdown_table
from .utils.paths import CONF_DIR
from .utils.precision import check_precision
from .utils.run import log_resolved_config, task_wrapper, write_metrics
from .utils.validate import validate_config
from .utils.writable_paths import check_output_paths
from .viz import figure_to_array, gallery_figure, overlay, save_figure

log = logging.getLogger("explainbench")

_MISSING = object()  # OmegaConf.select's answer for a key that is absent (None is a value)


def data_config(
    cfg: DictConfig, build_config: dict, overrides: list[str] | None = None
) -> DictConfig:
    """The checkpoint's own data config with this command line's ``data.*`` overrides on top
    (``overrides``: default the Hydra task's); choosing another dataset (``data=...``) or
    ``data_from_checkpoint=false`` uses ``cfg.data``."""
    if overrides is None:
        try:
            overrides = list(HydraConfig.get().overrides.task)
        except ValueError:  # not under Hydra (a notebook)
            overrides = []
    # Hydra's own parser: quoting, lists, null, and the +/++/~ prefixes read as Hydra reads them
    parsed = OverridesParser.create().parse_overrides(overrides)
    if (
        not cfg.get("data_from_checkpoint", True)
        or "data" not in build_config
        or any(o.key_or_group == "data" for o in parsed)
    ):
        return cfg.data
    data = OmegaConf.create(build_config["data"])
    for override in parsed:
        if override.key_or_group.startswith("data."):
            apply_override(data, override.key_or_group[len("data.") :], override)
    return data


def apply_override(config: DictConfig, key: str, override: Override) -> None:
    """Apply one parsed override to ``config`` at ``key``: a deletion (``~data.x``, or
    ``~data.x=v`` only where x is v, as in Hydra) or a change/addition (``data.x=v``,
    ``+data.x=v``). A key the stored config lacks is added: the checkpoint's data may be another
    dataset than evaluate.yaml's, whose keys Hydra checked the override against."""
    value = override.value()
    if not override.is_delete():
        OmegaConf.update(config, key, value, merge=True, force_add=True)
        return
    current = OmegaConf.select(config, key, default=_MISSING)
    if current is _MISSING:
        raise ValueError(
            f"Cannot delete {override.input_line}: the checkpoint's data config has no '{key}'."
        )
    if value is not None and value != current:
        raise ValueError(
            f"Cannot delete {override.input_line}: the checkpoint's data.{key} is {current}."
        )
    parent, _, leaf = key.rpartition(".")
    del (OmegaConf.select(config, parent) if parent else config)[leaf]


def results_table(results: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Rows in the order of the ``explainers`` config, columns in the order of the ``metrics``
    config (each metric's keys in its own order), ``ms_per_image`` last."""
    columns = list(dict.fromkeys(k for row in results.values() for k in row))
    rows = [
        [name] + [f"{row[c]:.2f}" if c in row else "" for c in columns]
        for name, row in results.items()
    ]
    return ["explainer", *columns], rows


def write_results(run_dir: Path, results: dict[str, dict[str, float]], command: str) -> None:
    header, rows = results_table(results)
    with open(run_dir / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    lines = [f"`{command}`", "", *markdown_table(header, rows)]
    (run_dir / "results.md").write_text("\n".join(lines) + "\n")
    write_metrics(
        run_dir, {f"test/{k}/{name}": v for name, row in results.items() for k, v in row.items()}
    )


def print_results(results: dict[str, dict[str, float]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = results_table(results)
    table = Table(title=title)
    for column in header:
        table.add_column(column, justify="left" if column == "explainer" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, 11 * len(header))).print(table)


class Report:
    """What rank 0 does with the results (called by :class:`EvaluationTask` once, on global
    rank 0, inside the worker under ``ddp_spawn``): the files, the printed table, the loggers.
    A picklable object rather than a closure, for ``ddp_spawn``."""

    def __init__(self, cfg: DictConfig, command: str) -> None:
        self.run_dir = Path(cfg.paths.output_dir)
        self.command = command
        self.title = Path(cfg.ckpt_path).name
        self.per_image = bool(cfg.get("gallery_per_image"))
        self.prefix = str(cfg.get("metric_prefix") or "test")

    def __call__(self, task, results: dict[str, dict[str, float]], gallery: dict | None) -> None:
        run_dir, dm = self.run_dir, task.datamodule
        run_dir.mkdir(parents=True, exist_ok=True)  # paths.output_dir may be a new folder
        write_results(run_dir, results, self.command)
        write_curves(run_dir / "curves.json", task.curves)
        log_results_table(task.loggers, results, self.prefix)
        if gallery is not None:
            class_names = getattr(dm, "class_names", None)
            records = gallery_records(
                task.method, gallery, task.evaluator.explainers, dm.mean, dm.std, class_names
            )
            record = gallery_record(records, gallery, task.evaluator.metrics, class_names)
            torch.save(record, run_dir / "gallery.pt")
            pixels, maps, captions = records.pixels, records.maps, records.captions
            wants_rows = self.per_image or any(isinstance(lg, WandbLogger) for lg in task.loggers)
            rows = []  # one figure per image: gallery/<index>.png and the W&B images
            for i, index in enumerate(gallery["index"].tolist() if wants_rows else []):
                row = {title: m[i : i + 1] for title, m in maps.items()}
                rows.append((index, gallery_figure(pixels[i : i + 1], row, captions[i : i + 1])))
            method = type(task.method).__name__
            log_gallery(task.loggers, rows, record, method, self.prefix)
            log_explanations(task.loggers, record, method, self.prefix)
            save_figure(gallery_figure(pixels, maps, captions), run_dir / "gallery.png")
            for index, fig in rows:
                if self.per_image:
                    save_figure(fig, run_dir / "gallery" / f"{index}.png")
                else:
                    plt.close(fig)
        n = len(dm.dataset("test"))
        print_results(results, f"{n} test images, {self.title}")
        print(timing_line(task.timing), flush=True)
        print(f"run_dir: {run_dir}", flush=True)


def timing_line(timing: dict[str, float]) -> str:
    """One line on where the test loop's time went (read by scripts/bench_evaluate.py)."""
    loop, inside = timing["loop_seconds"], timing["explainer_seconds"]
    processes = int(timing["processes"])
    return (
        f"timing: {int(timing['images'])} images, {processes} process(es), "
        f"loop {loop / processes:.3f} s per process, "
        f"{100 * inside / max(loop, 1e-9):.1f} % inside the explainers"
    )


def log_results_table(loggers, results: dict[str, dict[str, float]], prefix: str = "test") -> None:
    """Every logger gets the per-explainer scalars (``<prefix>/<metric>/<explainer>``; prefix
    ``metric_prefix``, default ``test`` as train.py logs them; the demo's stage name), from
    rank 0 only (they are already reduced over processes); W&B loggers also get the table as a
    ``wandb.Table`` (key ``<prefix>/results``). metrics.json keeps ``test/...`` whatever the
    prefix (the demo report reads it)."""
    header, rows = results_table(results)
    flat = {f"{prefix}/{k}/{name}": v for name, row in results.items() for k, v in row.items()}
    for logger in loggers:
        logger.log_metrics(flat, step=0)
        logger.save()
        if isinstance(logger, WandbLogger):
            logger.log_table(key=f"{prefix}/results", columns=header, data=rows)


def image_caption(record: dict, i: int, method: str) -> str:
    """``class <label>, prediction <pred>, method <method>`` of gallery image ``i``."""
    names = record["class_names"]
    pred = int(record["pred"][i])
    return (
        f"class {label_name(record['label'][i], pred, names)}, "
        f"prediction {label_name(record['pred'][i], pred, names)}, method {method}"
    )


def explainer_label(explainer: str, method: str) -> str:
    """The explainer's name; the trained method's own explain() (``method``) by its class."""
    return f"{explainer} ({method})" if explainer == "method" else explainer


def wandb_loggers(loggers) -> list[WandbLogger]:
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def log_gallery(loggers, rows: list, record: dict, method: str, prefix: str = "test") -> None:
    """One ``wandb.Image`` per gallery row (the image and its maps) under ``<prefix>/gallery``,
    captioned ``index <i>: class <label>, prediction <pred>, method <method>: <columns>``."""
    if not (targets := wandb_loggers(loggers)):
        return
    images = [figure_to_array(fig) for _, fig in rows]
    columns = ", ".join(explainer_label(e, method) for e in record["explainer_maps"])
    texts = [
        f"index {index}: {image_caption(record, i, method)}: {columns}"
        for i, (index, _) in enumerate(rows)
    ]
    for logger in targets:
        logger.log_image(key=f"{prefix}/gallery", images=images, caption=texts)


EXPLANATION_COLUMNS = ["index", "image", "label", "prediction", "explainer", "text", "iou"]


def log_explanations(loggers, record: dict, method: str, prefix: str = "test") -> None:
    """A ``wandb.Table`` under ``<prefix>/explanations``: one row per (gallery image,
    explainer): its test index, the explainer's map over the image (``wandb.Image`` captioned
    class, prediction, method), label and prediction (class names), explainer, the image's
    text (EAT's sentence, region grouping's part attention) and its IoU AUC (None without an
    IoU metric or with an empty mask)."""
    if not (targets := wandb_loggers(loggers)):
        return
    import wandb

    pixels = record["image"].expand(-1, 3, -1, -1)
    data = []
    for i, index in enumerate(record["index"].tolist()):
        pred = int(record["pred"][i])
        names = record["class_names"]
        for name, maps in record["explainer_maps"].items():
            label = explainer_label(name, method)
            heat = overlay(pixels[i], saliency_at(maps[i : i + 1], pixels.shape[-2:])[0])
            image = wandb.Image(
                (heat * 255).round().astype("uint8"),
                caption=image_caption(record, i, label),
            )
            iou = record["iou"].get(name)
            iou = None if iou is None or torch.isnan(iou[i]) else float(iou[i])
            data.append(
                [
                    index,
                    image,
                    label_name(record["label"][i], pred, names),
                    label_name(record["pred"][i], pred, names),
                    label,
                    record["texts"][i],
                    iou,
                ]
            )
    for logger in targets:
        logger.log_table(key=f"{prefix}/explanations", columns=EXPLANATION_COLUMNS, data=data)


def print_estimate(cfg: DictConfig, model, datamodule, explainers: dict) -> None:
    """``estimate=true``: the cost model's hours for this run (see evaluation/cost.py),
    measured on one batch of the test split on the device the run would use."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    use_cuda = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    model = model.to(device).eval()
    batch = next(iter(datamodule.test_dataloader()))
    x = batch["image"].to(device)
    times = time_passes(model, x)
    passes = {name: passes_per_image(e, model, x[:1]) for name, e in explainers.items()}
    images = len(datamodule.dataset("test"))
    header, rows = estimate_table(passes, times, images)
    print(
        f"Estimate for {images} test images on {device} (batch {x.shape[0]}): "
        f"{1000 * times.forward:.3g} ms per forward, {1000 * times.backward:.3g} ms per "
        "backward, per image; hours split linearly over devices of this speed",
        flush=True,
    )
    print("\n".join(markdown_table(header, rows)), flush=True)


def run(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Explain the test split with every explainer, score with every metric, write the
    results; through a Lightning ``Trainer`` (``cfg.trainer``), so ``trainer=ddp`` shards it.
    Returns the results on global rank 0 of this process ({} on other ranks, and in the
    launching process of ``ddp_spawn``, whose workers write the files)."""
    validate_config(cfg)
    check_output_paths(cfg)
    check_multirun_strategy(cfg)
    check_devices(cfg.trainer)
    check_precision(cfg.trainer)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    model = load_method(cfg.ckpt_path, trust=bool(cfg.get("trust_checkpoint")))
    datamodule = hydra.utils.instantiate(data_config(cfg, model.build_config))
    if datamodule.num_classes != model.data_info.num_classes:
        raise ValueError(
            f"The checkpoint has {model.data_info.num_classes} classes but the data has "
            f"{datamodule.num_classes}: "
            "evaluate on the dataset (and variant) the model was trained on."
        )
    datamodule.setup("test")
    explainers = instantiate_named_dict(cfg.get("explainers"))
    if not explainers:
        raise ValueError("No explainers to evaluate: choose some, e.g. explainers=[gradcam,rise].")
    if cfg.get("estimate"):
        print_estimate(cfg, model, datamodule, explainers)
        return {}
    metrics = instantiate_named_dict(cfg.get("metrics"))
    evaluator = ExplanationEvaluator(
        explainers, metrics, datamodule.mean, datamodule.std, datamodule.annotations
    )
    command = "python evaluate.py " + " ".join(HydraConfig.get().overrides.task)
    task = EvaluationTask(model, evaluator, datamodule, cfg.gallery_images, Report(cfg, command))
    loggers = instantiate_named(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, enable_model_summary=False
    )
    log_resolved_config(trainer.loggers, cfg)
    trainer.test(task, verbose=False)
    return task.results if trainer.is_global_zero else {}


@require_extras
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate.yaml")
@task_wrapper
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()

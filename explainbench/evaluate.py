"""Explanation benchmark of a trained checkpoint: every explainer × every metric on the test split.

``python evaluate.py ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt
explainers=[gradcam,gradcampp,scorecam,rise]`` writes ``results.csv``, ``results.md``,
``metrics.json`` and ``gallery.png`` to its run dir and prints the table.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .evaluation import ExplanationEvaluator, render_gallery
from .utils.instantiate import instantiate_named_dict, load_method_checkpoint
from .utils.paths import CONF_DIR
from .utils.run import task_wrapper, write_metrics
from .utils.validate import validate_config
from .utils.writable_paths import check_output_paths
from .viz import save_figure

log = logging.getLogger("explainbench")


def data_config(cfg: DictConfig, stored: dict) -> DictConfig:
    """The checkpoint's own data config, with this command line's ``data.*`` overrides on top;
    choosing another dataset (``data=...``) or ``data_from_checkpoint=false`` uses ``cfg.data``."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        overrides = []
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if not cfg.get("data_from_checkpoint", True) or "data" in keys or "data" not in stored:
        return cfg.data
    dotlist = [
        o.lstrip("+")[len("data.") :] for o in overrides if o.lstrip("+").startswith("data.")
    ]
    return OmegaConf.merge(OmegaConf.create(stored["data"]), OmegaConf.from_dotlist(dotlist))


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
    lines = [f"`{command}`", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(cfg: DictConfig) -> dict[str, dict[str, float]]:
    validate_config(cfg)
    check_output_paths(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    device = pick_device(cfg.device)
    model, stored = load_method_checkpoint(cfg.ckpt_path, trust=bool(cfg.get("trust_checkpoint")))
    model.to(device)
    datamodule = hydra.utils.instantiate(data_config(cfg, stored))
    if datamodule.num_classes != stored["num_classes"]:
        raise ValueError(
            f"The checkpoint has {stored['num_classes']} classes but the data has {datamodule.num_classes}: "
            "evaluate on the dataset (and variant) the model was trained on."
        )
    datamodule.setup("test")
    explainers = instantiate_named_dict(cfg.get("explainers"))
    if not explainers:
        raise ValueError("No explainers to evaluate: choose some, e.g. explainers=[gradcam,rise].")
    metrics = instantiate_named_dict(cfg.get("metrics"))
    evaluator = ExplanationEvaluator(
        explainers, metrics, datamodule.mean, datamodule.std, datamodule.annotations
    )
    evaluator.to(device)

    from rich.progress import Progress

    loader = datamodule.test_dataloader()
    gallery = None
    with Progress(transient=False) as progress:
        task = progress.add_task("explaining", total=len(loader.dataset))
        for batch in loader:
            batch = {
                k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
            }
            if gallery is None:
                gallery = {
                    k: v[: cfg.gallery_images]
                    for k, v in batch.items()
                    if isinstance(v, torch.Tensor)
                }
            evaluator.update(model, batch)
            progress.advance(task, batch["image"].shape[0])
    results = evaluator.compute()

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)  # paths.output_dir may be overridden to a new folder
    command = "python evaluate.py " + " ".join(HydraConfig.get().overrides.task)
    write_results(run_dir, results, command)
    if gallery is not None and cfg.gallery_images:
        fig = render_gallery(
            model,
            gallery,
            explainers,
            datamodule.mean,
            datamodule.std,
            getattr(datamodule, "class_names", None),
        )
        save_figure(fig, run_dir / "gallery.png")
    print_results(results, f"{len(loader.dataset)} test images, {Path(cfg.ckpt_path).name}")
    print(f"run_dir: {run_dir}", flush=True)
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate.yaml")
@task_wrapper
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()

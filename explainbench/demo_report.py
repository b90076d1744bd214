"""The demo's report: ``report.md`` and a self-contained ``report.html`` (images inlined as
base64 PNG) in the demo dir, from the stage dirs that explainbench/demo.py filled.

Read from each stage dir: ``metrics.json`` (train: ``test/acc``; evaluate:
``test/<metric>/<explainer>``), ``results.csv`` (the column order), ``gallery.png`` and
``demo_stage.json`` (command, seconds). The main table has one row per explanation method and one
column per metric key, the arrow from the metric's direction and the best value of each column in
bold. A cell is empty only where the metric was not computed for that row; a footnote says why.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .demo_figures import (
    bar_charts,
    combined_gallery,
    curve_plot,
    family_of,
    method_maps,
    read_curves,
    read_gallery,
    sentences,
)
from .metrics.far import ForegroundAttentionRate
from .metrics.iou import MaskIoU
from .metrics.landmarks import LandmarkLocalization
from .metrics.part_iou import PartIoU
from .metrics.pass_count import PassCount
from .metrics.pointing_game import PointingGame
from .metrics.sentence import SentenceAccuracy
from .utils.markdown import markdown_table

# Which direction is better, per column key. A metric class with one direction for all its keys
# gives its ``higher_is_better``; AD/IC and deletion/insertion mix both (their classes leave it
# None), so their keys are listed. The randomisation sanity check: a high rank correlation / SSIM
# between the maps of the trained and the randomised model means the explainer ignores the model,
# so lower is better.
DIRECTIONS: list[tuple[str, bool]] = [
    (r"^ad@", False),
    (r"^ic@", True),
    (r"^deletion$", False),
    (r"^insertion$", True),
    (r"^iou", MaskIoU.higher_is_better),
    (r"^pointing_game", PointingGame.higher_is_better),
    (r"^far$", ForegroundAttentionRate.higher_is_better),
    (r"^(fw|bw)$", PassCount.higher_is_better),
    (r"^landmark_error", LandmarkLocalization.higher_is_better),
    (r"^part_iou", PartIoU.higher_is_better),
    (r"^ms_per_image$", False),
    (r"(randomi[sz]ation|spearman|ssim)", False),
    (r"^sentence_", SentenceAccuracy.higher_is_better),
]

# Why a metric has no value for a row, by column key (the evaluator skips a metric whose
# annotation the data or the explanation lacks).
WHY_EMPTY = [
    (r"^(landmark_error|part_iou)", "needs part maps, which only region grouping produces"),
    (r"^sentence_", "scores textual explanations, which only EAT writes"),
    (r"", "skipped by the evaluator for this row (see the stage's evaluate.log)"),
]

# Each paper's claim where the table has both numbers: (paper, row a, row b, column): "a better
# than b on column" holds or not.
CLAIMS = [
    ("L-CAM (Gkartzonika et al.)", "L-CAM-Img", "Grad-CAM", "ad@15"),
    ("L-CAM (Gkartzonika et al.)", "L-CAM-Img", "Grad-CAM", "ic@15"),
    ("L-CAM (Gkartzonika et al.)", "L-CAM-Fm", "Grad-CAM", "ad@100"),
    ("EAT (foreground attention)", "EAT", "Grad-CAM", "far"),
    ("Region grouping (Huang & Li)", "region grouping", "Grad-CAM", "iou_auc"),
    ("Attention networks (Xie et al.)", "attention (sharable, early)", "activation map", "iou_auc"),
    ("Relevant features (Oramas et al.)", "relevant features", "guided backprop", "iou_auc"),
    ("Relevant features (Oramas et al.)", "relevant features", "deconvnet", "iou_auc"),
]

# What issue 16 asks for that the demo does not produce yet
NOT_BUILT: list[str] = []


def higher_is_better(key: str) -> bool | None:
    for pattern, direction in DIRECTIONS:
        if re.search(pattern, key):
            return direction
    return None


def why_empty(key: str) -> str:
    return next(reason for pattern, reason in WHY_EMPTY if re.search(pattern, key))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class Table:
    """The main table: ``values[row][key]``, ``columns`` in first-seen order, and the model
    (train stage) behind each row."""

    rows: list[str]
    columns: list[str]
    values: dict[str, dict[str, float]]
    model_of: dict[str, str]


def collect(demo_dir: Path, stages) -> Table:
    rows, columns, values, model_of = [], [], {}, {}
    for stage in stages:
        if stage.kind != "evaluate":
            continue
        stage_dir = demo_dir / stage.name
        metrics = read_json(stage_dir / "metrics.json")
        if not metrics:
            continue
        order = []
        if (stage_dir / "results.csv").is_file():
            with open(stage_dir / "results.csv", newline="") as f:
                order = next(csv.reader(f))[1:]
        for explainer, label in stage.rows.items():
            row = {}
            for name, value in metrics.items():
                key, _, who = name.removeprefix("test/").rpartition("/")
                if who == explainer and value is not None and not math.isnan(value):
                    row[key] = float(value)
            if not row:
                continue
            rows.append(label)
            values[label] = row
            model_of[label] = stage.model
            for key in [*order, *row]:
                if key in row and key not in columns:
                    columns.append(key)
    return Table(rows, columns, values, model_of)


def best_rows(table: Table, key: str) -> set[str]:
    direction = higher_is_better(key)
    present = {r: table.values[r][key] for r in table.rows if key in table.values[r]}
    if direction is None or len(present) < 2:
        return set()
    best = max(present.values()) if direction else min(present.values())
    return {r for r, v in present.items() if v == best}


def header_label(key: str) -> str:
    direction = higher_is_better(key)
    return key + ("" if direction is None else " ↑" if direction else " ↓")


def claim_lines(table: Table) -> list[str]:
    lines = []
    for paper, a, b, key in CLAIMS:
        direction = higher_is_better(key)
        word = "higher" if direction else "lower"
        va, vb = (table.values.get(r, {}).get(key) for r in (a, b))
        text = f"{paper}: {a}'s {key} {word} than {b}'s"
        if va is None or vb is None:
            missing = [r for r, v in ((a, va), (b, vb)) if v is None]
            lines.append(f"{text}: not tested here (no {key} for {', '.join(missing)})")
            continue
        holds = va > vb if direction else va < vb
        verdict = "holds" if holds else "does not hold, a tie" if va == vb else "does not hold"
        lines.append(f"{text}: {verdict} ({va:.4g} vs {vb:.4g})")
    return lines


def fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def main_table(table: Table, accuracy: dict[str, float]) -> tuple[list[str], list[list[str]], list]:
    """Header, rows (cells as text, ``**best**`` marked) and footnotes (key, reason, rows)."""
    header = ["method", "model acc ↑", *map(header_label, table.columns)]
    # one footnote per reason and set of rows: the columns of one metric (part_iou, part_iou_bg)
    # share theirs
    footnotes, marks = [], {}
    for key in table.columns:
        empty = [r for r in table.rows if key not in table.values[r]]
        if not empty:
            continue
        for i, (keys, why, rows) in enumerate(footnotes, 1):
            if (why, rows) == (why_empty(key), empty):
                keys.append(key)
                marks[key] = i
                break
        else:
            footnotes.append(([key], why_empty(key), empty))
            marks[key] = len(footnotes)
    body = []
    for row in table.rows:
        acc = accuracy.get(table.model_of[row])
        cells = [row, "" if acc is None else fmt(acc)]
        for key in table.columns:
            value = table.values[row].get(key)
            if value is None:
                cells.append(f"[{marks[key]}]")
            elif row in best_rows(table, key):
                cells.append(f"**{fmt(value)}**")
            else:
                cells.append(fmt(value))
        body.append(cells)
    return header, body, footnotes


def stage_records(demo_dir: Path, stages, status: dict[str, str]) -> list[list[str]]:
    rows = []
    for stage in stages:
        record = read_json(demo_dir / stage.name / "demo_stage.json")
        seconds = record.get("seconds")
        rows.append(
            [
                stage.name,
                status.get(stage.name, "not run"),
                "" if seconds is None else f"{seconds:.1f}",
                f"`{record['command']}`" if "command" in record else "",
            ]
        )
    return rows


def main_columns(table: Table) -> tuple[list[str], list[str]]:
    """The main table's columns (keys of a metric family) and the rest (per-step values of the
    randomisation check), each in first-seen order."""
    main = [k for k in table.columns if family_of(k) is not None]
    return main, [k for k in table.columns if k not in main]


class Sections:
    """The report as Markdown and HTML side by side, section by section."""

    def __init__(self, demo_dir: Path, title: str) -> None:
        self.demo_dir = demo_dir
        self.md = [f"# {title}", ""]
        self.html = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self.md += [f"## {text}", ""]
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, *lines: str) -> None:
        self.md += [*lines, ""]
        self.html.append(f"<p>{'<br>'.join(html.escape(x.rstrip()) for x in lines)}</p>")

    def items(self, lines: list[str]) -> None:
        self.md += [f"- {x}" for x in lines] + [""]
        self.html.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.md += markdown_table(header, rows) + [""]
        self.html.append(html_table(header, rows))

    def image(self, title: str, path: Path) -> None:
        rel = path.relative_to(self.demo_dir).as_posix()
        self.md += [f"![{title}]({rel})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(
            f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{data}'>"
        )

    def write(self) -> list[Path]:
        style = (
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>explainbench demo</title>"
            f"<style>{style}</style></head><body>{''.join(self.html)}</body></html>\n"
        )
        (self.demo_dir / "report.md").write_text("\n".join(self.md))
        (self.demo_dir / "report.html").write_text(page)
        return [self.demo_dir / "report.md", self.demo_dir / "report.html"]


def write_report(demo_dir: Path, stages, status: dict[str, str]) -> list[Path]:
    demo_dir = Path(demo_dir)
    figures = demo_dir / "figures"
    full = collect(demo_dir, stages)
    columns, other = main_columns(full)
    table = Table(full.rows, columns, full.values, full.model_of)
    accuracy = {
        s.name: read_json(demo_dir / s.name / "metrics.json").get("test/acc")
        for s in stages
        if s.kind == "train"
    }
    accuracy = {k: v for k, v in accuracy.items() if v is not None}
    header, body, footnotes = main_table(table, accuracy)
    notes = [f"[{i}] {', '.join(keys)}: {why} ({', '.join(rows)})" for i, (keys, why, rows) in
             enumerate(footnotes, 1)]  # fmt: skip
    evals = [s for s in stages if s.kind == "evaluate"]
    missing = [
        f"{label} ({s.name}: {status.get(s.name, 'not run')})"
        for s in evals
        for label in s.rows.values()
        if label not in table.values
    ] + NOT_BUILT
    timing = stage_records(demo_dir, stages, status)
    total = sum(float(r[2]) for r in timing if r[2])
    galleries = {s.name: read_gallery(demo_dir / s.name) for s in evals}

    out = Sections(demo_dir, "explainbench demo: an8flower single6c")
    out.text(
        "Rows: explanation methods; columns: metrics (↑ higher is better, ↓ lower); the best "
        "value of each column in **bold**. `model acc`: test accuracy of the model explained. "
        f"Every method is scored on the same {images_of(stages)} test images."
    )
    out.table(header, body)
    if notes:
        out.text(*notes)
    out.heading("The papers' claims, re-tested")
    out.items(claim_lines(table))
    out.heading("Metric families")
    for title, path in bar_charts(table, figures):
        out.image(title, path)
    iou = {
        label: curve
        for s in evals
        for label, curve in read_curves(demo_dir / s.name, s.rows, "iou").items()
    }
    if iou:
        out.heading("IoU curves (against the discriminative part)")
        out.image("IoU against the saliency threshold",
                  curve_plot(iou, figures / "iou_curves.png", "threshold", "mean IoU"))  # fmt: skip
    gallery = combined_gallery(
        [(galleries[s.name], s.rows) for s in evals], figures / "gallery_all.png"
    )
    if gallery is not None:
        out.heading("Every method on the same images (the ground-truth part outlined)")
        out.image("gallery", gallery)
    eat_sentences = sentences(galleries.get("eval_eat"))
    if eat_sentences:
        out.heading("EAT's textual explanations")
        out.items(eat_sentences)
    parts = method_maps(galleries.get("eval_region_group"), figures / "region_group_parts.png")
    if parts is not None:
        out.heading("Region grouping: the part maps")
        out.image("part assignment", parts)
    if other:
        out.heading("Randomisation check, cascade step by step")
        rows = [[r] + [fmt(full.values[r][k]) if k in full.values[r] else "—" for k in other]
                for r in full.rows if any(k in full.values[r] for k in other)]  # fmt: skip
        out.table(["method", *other], rows)
        out.text("@group: Spearman after the groups down to that one were re-initialised (head "
                 "first, then the stages top down); —: the model has no such layer group.")  # fmt: skip
    out.heading("Trained models (test accuracy)")
    out.table(["stage", "test/acc"], [[name, fmt(acc)] for name, acc in accuracy.items()])
    out.heading("Missing")
    out.items(missing or ["nothing"])
    out.heading("Galleries of each evaluation")
    for s in evals:
        if (demo_dir / s.name / "gallery.png").is_file():
            out.image(s.name, demo_dir / s.name / "gallery.png")
    out.heading(f"Stages (total {total:.1f} s)")
    out.table(["stage", "status", "seconds", "command"], timing)
    return out.write()


def images_of(stages) -> str:
    """The evaluations' ``data.subset`` (the number of test images), from their arguments."""
    for s in stages:
        for arg in s.args:
            if arg.startswith("data.subset="):
                return arg.split("=", 1)[1]
    return "the"


def html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        if text.startswith("**") and text.endswith("**"):
            return f"<b>{html.escape(text[2:-2])}</b>"
        return html.escape(text.strip("`"))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"

"""make demo (explainbench/demo.py) and its report (explainbench/demo_report.py).

Fast: the report builder on fake stage dirs (hand-written metrics.json / results.csv) and the
resume logic with a mocked runner. Slow: the driver end to end in --tiny mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explainbench.demo import Stage, main, plan, resume_dir, run_stages
from explainbench.demo_report import write_report

ROOT = Path(__file__).resolve().parents[1]


def fake_eval(stage_dir: Path, values: dict[str, dict[str, float]]) -> None:
    """An evaluate.py run dir: results.csv (column order) and metrics.json."""
    stage_dir.mkdir(parents=True)
    columns = list(dict.fromkeys(k for row in values.values() for k in row))
    lines = [",".join(["explainer", *columns])]
    lines += [",".join([n, *(str(r.get(c, "")) for c in columns)]) for n, r in values.items()]
    (stage_dir / "results.csv").write_text("\n".join(lines) + "\n")
    metrics = {f"test/{k}/{n}": v for n, r in values.items() for k, v in r.items()}
    (stage_dir / "metrics.json").write_text(json.dumps(metrics))


def fake_stages(tmp_path: Path) -> list[Stage]:
    (tmp_path / "classifier").mkdir()
    (tmp_path / "classifier" / "metrics.json").write_text(json.dumps({"test/acc": 0.875}))
    (tmp_path / "classifier" / "demo_stage.json").write_text(
        json.dumps({"command": "python -m explainbench.train x=1", "seconds": 12.5})
    )
    (tmp_path / "region_group").mkdir()
    (tmp_path / "region_group" / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))
    fake_eval(
        tmp_path / "eval_posthoc",
        {
            "gradcam": {"ad@15": 20.0, "ic@15": 3.0, "iou_auc": 0.1, "ms_per_image": 4.0},
            "rise": {"ad@15": 12.0, "ic@15": 1.0, "iou_auc": 0.3, "ms_per_image": 90.0},
        },
    )
    fake_eval(
        tmp_path / "eval_region_group",
        {
            "method": {
                "ad@15": 30.0,
                "ic@15": 7.0,
                "iou_auc": 0.2,
                "landmark_error": 9.5,
                "part_iou": 0.4,
            }
        },
    )
    return [
        Stage("classifier", "train", []),
        Stage("region_group", "train", []),
        Stage(
            "eval_posthoc",
            "evaluate",
            [],
            rows={"gradcam": "Grad-CAM", "rise": "RISE"},
            model="classifier",
        ),  # fmt: skip
        Stage(
            "eval_region_group",
            "evaluate",
            [],
            rows={"method": "region grouping"},
            model="region_group",
        ),  # fmt: skip
        Stage("eval_lcam_img", "evaluate", [], rows={"method": "L-CAM-Img"}, model="lcam_img"),
    ]


def table_rows(report: str, first_only: bool = False) -> dict[str, list[str]]:
    """Rows of the report's tables by their first cell (``first_only``: the main table's)."""
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    if first_only:
        block = report.split("\n\n")
        lines = next(b for b in block if b.startswith("| ")).splitlines()
        lines = [line for line in lines if line.startswith("| ")]
    return {
        line.split(" | ")[0][2:]: [c.strip() for c in line.strip("|").split("|")] for line in lines
    }


def test_report_table_best_arrows_footnote(tmp_path):
    stages = fake_stages(tmp_path)
    status = {"classifier": "done", "eval_lcam_img": "not run (needs lcam_img)"}
    write_report(tmp_path, stages, status)
    report = (tmp_path / "report.md").read_text()
    rows = table_rows(report)
    header = rows["method"]
    assert header == ["method", "model acc ↑", "ad@15 ↓", "ic@15 ↑", "iou_auc ↑",
                      "ms_per_image ↓", "landmark_error ↓", "part_iou ↑"]  # fmt: skip
    # best per column: lowest AD (RISE 12), highest IC (region grouping 7), highest IoU (RISE),
    # lowest ms (Grad-CAM); landmark_error has one value, nothing to compare
    assert rows["Grad-CAM"] == ["Grad-CAM", "0.875", "20", "3", "0.1", "**4**", "[2]", "[2]"]
    assert rows["RISE"] == ["RISE", "0.875", "**12**", "1", "**0.3**", "90", "[2]", "[2]"]
    assert rows["region grouping"] == [
        "region grouping",
        "0.5",
        "30",
        "**7**",
        "0.2",
        "[1]",
        "9.5",
        "0.4",
    ]
    assert (
        "[2] landmark_error, part_iou: needs part maps, which only region grouping produces (Grad-CAM, RISE)"
        in report
    )
    assert "[1] ms_per_image: skipped by the evaluator" in report
    assert "L-CAM-Img (eval_lcam_img: not run (needs lcam_img))" in report  # missing method
    assert "| classifier | 0.875 |" in report and "| region_group | 0.5 |" in report
    assert "| classifier | done | 12.5 | `python -m explainbench.train x=1` |" in report
    # claims: only where both numbers exist
    assert "region grouping's iou_auc higher than Grad-CAM's: holds (0.2 vs 0.1)" in report
    assert (
        "L-CAM-Img's ad@15 lower than Grad-CAM's: not tested here (no ad@15 for L-CAM-Img)"
        in report
    )
    page = (tmp_path / "report.html").read_text()
    assert "<b>12</b>" in page and "<b>7</b>" in page and "<th>ad@15 ↓</th>" in page


def test_report_embeds_gallery(tmp_path):
    stages = fake_stages(tmp_path)
    png = b"\x89PNG\r\n\x1a\nfake"
    (tmp_path / "eval_posthoc" / "gallery.png").write_bytes(png)
    write_report(tmp_path, stages, {})
    assert "data:image/png;base64,iVBORw0KGgpmYWtl" in (tmp_path / "report.html").read_text()
    assert "![eval_posthoc](eval_posthoc/gallery.png)" in (tmp_path / "report.md").read_text()


def test_resume_skips_finished_stages_and_reruns_others(tmp_path):
    stages = [
        Stage("a", "train", ["x=1"]),
        Stage("b", "train", ["x=2"]),
        Stage("c", "evaluate", ["ckpt_path=b"], needs=["b"]),
        Stage("d", "evaluate", ["ckpt_path=a"], needs=["a"]),
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text("{}")  # finished before the crash
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "last.ckpt").write_text("")  # crashed: no metrics.json
    ran = []

    def runner(command, stage_dir, quiet):
        ran.append(stage_dir.name)
        if stage_dir.name == "b":
            return 3
        (stage_dir / "metrics.json").write_text("{}")
        return 0

    status = run_stages(stages, tmp_path, runner=runner, quiet=True)
    assert ran == ["b", "d"]
    # b's crashed attempt was set aside before the new one (its last.ckpt is not reused)
    assert (tmp_path / ".unfinished" / "b-1" / "last.ckpt").is_file()
    assert not (tmp_path / "b" / "last.ckpt").exists()
    assert status == {"a": "skipped", "b": "failed (exit code 3)",
                      "c": "not run (needs b)", "d": "done"}  # fmt: skip
    assert json.loads((tmp_path / "b" / "demo_stage.json").read_text())["returncode"] == 3
    # a second resume runs only what is still unfinished
    ran.clear()
    run_stages(stages, tmp_path, runner=runner, quiet=True)
    assert ran == ["b"]
    assert (tmp_path / ".unfinished" / "b-2" / "demo_stage.json").is_file()  # the second attempt


def test_fit_stage_marked_finished_by_driver(tmp_path):
    stage = Stage("fit", "fit", ["--ckpt", "x"])
    run_stages([stage], tmp_path, runner=lambda c, d, q: 0, quiet=True)
    assert "fit/seconds" in json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert stage.command(tmp_path)[1:3] == ["-m", "explainbench.relevant_features.fit"]


def test_resume_dir_latest_unfinished(tmp_path):
    for name, done in [("2024-01-01_00-00-00", False), ("2024-01-02_00-00-00", True)]:
        (tmp_path / name).mkdir()
        if done:
            (tmp_path / name / "report.md").write_text("")
    assert resume_dir(tmp_path, "latest") == tmp_path / "2024-01-01_00-00-00"
    assert resume_dir(tmp_path, None).parent == tmp_path
    (tmp_path / "2024-01-01_00-00-00" / "report.md").write_text("")
    with pytest.raises(SystemExit, match="no unfinished demo dir"):
        main(["--resume", "--out-root", str(tmp_path)])


def test_plan_uses_the_same_test_images_everywhere(tmp_path):
    stages = plan(tmp_path, tiny=True)
    evals = [s for s in stages if s.kind == "evaluate"]
    assert len(evals) == 7
    for s in evals:
        assert "data.subset=8" in s.args and "data.subset_seed=0" in s.args, s.name
    trains = {s.name: s.args for s in stages if s.kind == "train"}
    assert all("trainer.max_epochs=1" in a for a in trains.values())
    assert (
        f"backbone.checkpoint={tmp_path / 'classifier/checkpoints/last.ckpt'}" in trains["lcam_fm"]
    )


@pytest.mark.slow
def test_demo_tiny_end_to_end(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "explainbench.demo", "--tiny", "--quiet",
               "--out-root", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (report_file,) = tmp_path.glob("*/report.md")
    demo_dir = report_file.parent
    report = report_file.read_text()
    for label in ["Grad-CAM", "RISE", "relevant features", "L-CAM-Img", "L-CAM-Fm", "EAT",
                  "region grouping", "attention (sharable, early)"]:  # fmt: skip
        assert f"| {label} |" in report, label
    assert "ad@15 ↓" in report and "**" in report
    assert "base64," in (demo_dir / "report.html").read_text()
    # W&B: one offline run per stage, grouped by the demo dir, and the sync command printed
    from .test_demo_wandb import check_demo_wandb_runs

    check_demo_wandb_runs(demo_dir, plan(demo_dir, tiny=True))
    assert f"wandb sync {demo_dir}/*/wandb/offline-run-*" in proc.stdout
    # resume after a "crash": drop one stage's metrics.json; only it runs again
    (demo_dir / "eval_eat" / "metrics.json").unlink()
    report_file.unlink()  # the demo did not get to its report
    proc = subprocess.run([*command, "--resume"], cwd=tmp_path, env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "eval_eat: done" in proc.stdout
    assert proc.stdout.count("finished before") == 13


def fake_gallery(
    stage_dir: Path, index: list[int], maps: dict[str, float], text: str = "", extra=None
):
    """A gallery.pt whose images and maps are constant per image: image ``i`` has pixel value
    ``i / 100`` and explainer ``e``'s map ``maps[e] + i / 100``, so alignment is checkable."""
    import torch

    n = len(index)
    level = torch.tensor(index, dtype=torch.float32).view(n, 1, 1, 1) / 100
    part = torch.zeros(n, 1, 8, 8)
    part[:, :, 2:5, 3:6] = 1
    torch.save(
        {
            "index": torch.tensor(index),
            "image": level.expand(n, 3, 8, 8).clone(),
            "label": torch.tensor(index) % 2,
            "pred": torch.tensor([0] * n),
            "class_names": ["centre: red", "leaves: blue"],
            "captions": [""] * n,
            "texts": [f"{text} {i}" if text else "" for i in index],
            "maps": dict(extra or {}),
            "explainer_maps": {e: (v + level).expand(n, 1, 8, 8).clone() for e, v in maps.items()},
            "masks": {"part_mask": part},
            "iou": {},
        },
        stage_dir / "gallery.pt",
    )


def test_report_figures_sentences_and_combined_gallery(tmp_path):
    import torch

    from explainbench.demo_figures import combined_panels, read_gallery

    stages = fake_stages(tmp_path)
    fake_gallery(tmp_path / "eval_posthoc", [5, 3, 9], {"gradcam": 0.1, "rise": 0.2})
    parts = {"parts": torch.rand(2, 1, 8, 8)}
    fake_gallery(tmp_path / "eval_region_group", [9, 5], {"method": 0.3}, "p1:0.60", parts)
    stages.append(Stage("eval_eat", "evaluate", [], rows={"method": "EAT"}, model="eat"))
    (tmp_path / "eval_eat").mkdir()
    fake_gallery(tmp_path / "eval_eat", [5], {"method": 0.4}, "This flower has centre: red")
    curve = {"x": [0.1, 0.5, 0.9], "y": [0.4, 0.2, 0.05]}
    (tmp_path / "eval_posthoc" / "curves.json").write_text(
        json.dumps({"gradcam": {"iou": curve}, "rise": {"deletion": curve}})
    )
    # the combined gallery: the images both stages show (5, 9) in the first stage's order, each
    # method's map of the same image in one row
    galleries = [(read_gallery(tmp_path / s.name), s.rows) for s in stages[2:4]]
    pixels, maps, captions, outline = combined_panels(galleries)
    assert pixels[:, 0, 0, 0].tolist() == pytest.approx([0.05, 0.09])
    assert list(maps) == ["Grad-CAM", "RISE", "region grouping"]
    assert maps["region grouping"][:, 0, 0, 0].tolist() == pytest.approx([0.35, 0.39])
    assert maps["RISE"][:, 0, 0, 0].tolist() == pytest.approx([0.25, 0.29])
    assert captions == ["#5\nleaves: blue", "#9\nleaves: blue"] and outline.sum() == 18
    write_report(tmp_path, stages, {})
    report = (tmp_path / "report.md").read_text()
    for figure in ["figures/gallery_all.png", "figures/iou_curves.png",
                   "figures/region_group_parts.png", "figures/average_drop_increase_in_confidence_l_cam.png",
                   "figures/localisation_iou_the_part_pointing_game_the_object.png", "figures/parts_region_grouping.png"]:  # fmt: skip
        assert f"]({figure})" in report and (tmp_path / figure).is_file(), figure
    assert "- #5 (leaves: blue → centre: red): This flower has centre: red 5" in report
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == report.count("![")


def test_demo_driver_two_stages_resume_report_and_wandb(tmp_path):
    """The driver for real on two stages (--tiny: the classifier, then the post-hoc explainers
    on 8 test images), with a crash between them: the report's structure, the resume that
    skips the finished stage, and each stage's offline W&B run (the full chain: the slow
    test_demo_tiny_end_to_end)."""
    from tests.test_demo_wandb import check_demo_wandb_runs

    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "explainbench.demo", "--tiny", "--quiet",
               "--out-root", str(tmp_path)]  # fmt: skip
    first = subprocess.run([*command, "--stages", "classifier"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)  # fmt: skip
    # the other stages were not selected: the demo says so, and its exit code is 0
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (demo_dir,) = tmp_path.glob("20*")
    record = (demo_dir / "classifier" / "demo_stage.json").read_text()
    (demo_dir / "report.md").unlink()  # "crashed" before its report
    second = subprocess.run([*command, "--resume", "--stages", "classifier,eval_posthoc"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "classifier: finished before (metrics.json), skipped" in second.stdout
    assert "(2/2) eval_posthoc:" in second.stdout and "eval_posthoc: done in" in second.stdout
    assert (demo_dir / "classifier" / "demo_stage.json").read_text() == record  # not re-run
    report = (demo_dir / "report.md").read_text()
    rows = table_rows(report, first_only=True)
    header = rows["method"]
    assert header[:3] == ["method", "model acc ↑", "ad@100 ↓"]
    for key in ["iou_auc ↑", "pointing_game ↑", "far ↑", "rand_spearman ↓", "ms_per_image ↓"]:
        assert key in header, key
    for label in plan(demo_dir, tiny=True)[7].rows.values():  # eval_posthoc's seven explainers
        cells = rows[label]
        assert len(cells) == len(header) and all(cells), (label, cells)
    assert sum(c.startswith("**") for r in rows.values() for c in r) >= len(header) - 2
    assert "L-CAM-Img (eval_lcam_img: not selected)" in report
    for figure in ["figures/gallery_all.png", "figures/iou_curves.png"]:
        assert (demo_dir / figure).is_file() and f"]({figure})" in report
    assert "| eval_posthoc | done |" in report and "| classifier | skipped |" in report
    stages = [s for s in plan(demo_dir, tiny=True) if s.name in ("classifier", "eval_posthoc")]
    check_demo_wandb_runs(demo_dir, stages)
    assert f"wandb sync {demo_dir}/*/wandb/offline-run-*" in second.stdout


def test_claim_lines_holds_does_not_hold_and_ties():
    from explainbench.demo_report import Table, claim_lines

    values = {"L-CAM-Img": {"ad@15": 13.0, "ic@15": 25.0}, "Grad-CAM": {"ad@15": 19.5, "ic@15": 25.0},
              "L-CAM-Fm": {"ad@100": 3.0}}  # fmt: skip
    lines = claim_lines(Table(list(values), ["ad@15", "ic@15", "ad@100"], values, {}))
    assert "L-CAM-Img's ad@15 lower than Grad-CAM's: holds (13 vs 19.5)" in lines[0]
    assert lines[1].endswith("ic@15 higher than Grad-CAM's: does not hold, a tie (25 vs 25)")
    assert lines[2].endswith("not tested here (no ad@100 for Grad-CAM)")

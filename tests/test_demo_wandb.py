"""make demo's W&B side: one offline run per train / evaluate stage, grouped under the demo dir's
name, named after the stage, evaluate metrics as ``<stage>/<metric>/<explainer>``, and the
``wandb sync`` command printed at the end. The runs of a real demo are checked by
:func:`check_demo_wandb_runs`, called from tests/test_demo.py's end-to-end run."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from explainbench import demo
from explainbench.demo import Stage, plan

from .test_evaluate_records import wandb_run_view


def check_demo_wandb_runs(demo_dir: Path, stages: list[Stage]) -> None:
    """Every train / evaluate stage of ``demo_dir`` has exactly one offline W&B run: group =
    the demo dir's name, name = the stage; an evaluate stage's run is tagged ``demo, <stage>``
    and holds ``<stage>/<metric>/<explainer>`` equal to its metrics.json; a train stage's run
    keeps its experiment's tags."""
    for stage in stages:
        if stage.kind == "fit":  # the relevant-features fit is not a train.py run: no logger
            continue
        runs = list((demo_dir / stage.name / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{stage.name}: {len(runs)} offline W&B runs"
        view = wandb_run_view(runs[0])
        assert view["run"]["run_group"] == demo_dir.name, stage.name
        assert view["run"]["display_name"] == stage.name
        tags = view["run"]["tags"]
        if stage.kind == "train":
            assert "demo" in tags and "an8flower" in tags, (stage.name, tags)
            continue
        assert tags == ["demo", stage.name]
        flat = json.loads((demo_dir / stage.name / "metrics.json").read_text())
        for explainer in stage.rows:
            key = f"{stage.name}/iou_auc/{explainer}"
            assert view["logged"][key] == pytest.approx(flat[f"test/iou_auc/{explainer}"]), key
        assert f"{stage.name}/explanations" in view["tables"], stage.name


def test_plan_gives_each_stage_its_own_wandb_run(tmp_path):
    demo_dir = tmp_path / "2026-01-01_00-00-00"
    stages = {s.name: s for s in plan(demo_dir, tiny=True)}
    for name in ("classifier", "eval_posthoc"):
        args = stages[name].args
        assert "logger=wandb" in args and "logger=csv" not in args
        assert "logger.wandb.group=2026-01-01_00-00-00" in args
        assert f"logger.wandb.name={name}" in args
        assert f"logger.wandb.save_dir={demo_dir / name}" in args
    assert "metric_prefix=eval_posthoc" in stages["eval_posthoc"].args
    assert "tags=[demo,eval_posthoc]" in stages["eval_posthoc"].args
    # train stages keep their experiment's tags
    assert not any(a.startswith(("tags=", "metric_prefix=")) for a in stages["classifier"].args)
    assert "--ckpt" in stages["relevant_features_fit"].args  # the fit takes no Hydra overrides
    assert not any("wandb" in a for a in stages["relevant_features_fit"].args)
    csv = plan(demo_dir, tiny=True, logger="csv")
    for stage in csv:
        assert not any("wandb" in a or a.startswith("metric_prefix=") for a in stage.args)
        assert ("logger=csv" in stage.args) == (stage.kind != "fit"), stage.name


def test_main_prints_the_sync_command_for_the_offline_runs(tmp_path, monkeypatch, capsys):
    demo_dir = tmp_path / "d"
    for stage in ("classifier", "eval_posthoc"):
        (demo_dir / stage / "wandb" / f"offline-run-2026_{stage}").mkdir(parents=True)
    (demo_dir / "classifier" / "wandb" / "latest-run").mkdir()  # wandb's symlink: not a run
    monkeypatch.setattr(demo, "run_stages", lambda *a, **k: {})
    monkeypatch.setattr("explainbench.demo_report.write_report", lambda *a: [demo_dir / "r.md"])
    demo.main(["--resume", str(demo_dir), "--logger", "wandb"])
    lines = [x for x in capsys.readouterr().out.splitlines() if "wandb sync" in x]
    assert lines == [f"[demo] W&B (offline): wandb sync {demo_dir}/*/wandb/offline-run-*"]
    # the shell expands the pattern to exactly the stages' runs
    expanded = glob.glob(lines[0].split("wandb sync ")[1])
    assert sorted(Path(p).name for p in expanded) == [
        "offline-run-2026_classifier",
        "offline-run-2026_eval_posthoc",
    ]
    # no offline runs (--logger csv): no sync line
    csv_dir = tmp_path / "c"
    csv_dir.mkdir()
    demo.main(["--resume", str(csv_dir), "--logger", "csv"])
    assert "wandb sync" not in capsys.readouterr().out

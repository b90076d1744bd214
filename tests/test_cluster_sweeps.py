"""Clusters and sweeps through Hydra plugins: the SLURM DDP preset's submitit parameters, a
2-job sweep through submitit's local launcher, 3 Optuna trials, and the one-line error when a
plugin's optional extra is not installed."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from explainbench.utils import extras

from .helpers import TINY_DATA, compose_cfg, run_cli

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


def test_slurm_preset_gives_one_task_per_gpu_and_the_trainer_follows(tmp_path):
    cfg = compose_cfg(
        [
            "hydra/launcher=slurm_ddp",
            "trainer=slurm",
            "hydra.launcher.gpus_per_node=8",
            "hydra.launcher.nodes=3",
        ],
        tmp_path,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (8, 8, 3)
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (8, 3)
    assert cfg.trainer.strategy == "ddp"
    # the preset's defaults: 4 GPUs on 1 node
    cfg = compose_cfg(["hydra/launcher=slurm_ddp", "trainer=slurm"], tmp_path)
    assert (cfg.hydra.launcher.tasks_per_node, cfg.trainer.devices, cfg.trainer.num_nodes) == (
        4,
        4,
        1,
    )


@pytest.mark.readme(
    "python train.py -m hydra/launcher=slurm_ddp trainer=slurm hydra.launcher.nodes=2 "
    "hydra.launcher.gpus_per_node=4 hydra.launcher.partition=<partition> "
    "experiment=eat_cub_resnet50"
)
def test_readme_slurm_command_composes_a_two_node_eight_process_job(readme, tmp_path):
    """No cluster here: the README's SLURM command is composed (what submitit would be given)."""
    overrides = readme.overrides(subs={"partition": "gpu"})
    assert overrides[0] == "-m"  # a multirun: the launcher submits the job
    cfg = compose_cfg([*overrides[1:], "hydra.mode=MULTIRUN"], tmp_path)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and cfg.backbone.name == "resnet50"
    assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.strategy) == (4, 2, "ddp")


def test_slurm_launcher_lets_a_sweep_use_ddp(tmp_path):
    """Each SLURM job's tasks are the DDP processes: -m with trainer=slurm is allowed there, and
    still refused with the basic launcher (each DDP child would re-run the sweep)."""
    from explainbench.train import check_multirun_strategy

    cfg = compose_cfg(
        ["hydra/launcher=slurm_ddp", "trainer=slurm", "hydra.mode=MULTIRUN"], tmp_path
    )
    check_multirun_strategy(cfg)
    cfg = compose_cfg(["trainer=ddp", "hydra.mode=MULTIRUN"], tmp_path)
    with pytest.raises(ValueError, match="cannot use strategy=ddp"):
        check_multirun_strategy(cfg)


def test_missing_extra_is_one_line_naming_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def without_plugins(name, *args, **kwargs):
        if name.startswith("hydra_plugins."):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_plugins)
    message = extras.missing_extra(["seed=1", "hydra/launcher=submitit_slurm"])
    assert message == (
        "Error: ModuleNotFoundError: 'hydra/launcher=submitit_slurm' needs the optional extra "
        "[slurm] (hydra-submitit-launcher), which is not installed: pip install -e '.[slurm]' "
        "(or pip install hydra-submitit-launcher)"
    )
    assert "[slurm]" in extras.missing_extra(["hydra/launcher=slurm_ddp"])
    # our preset names the sweeper inside its file
    assert "[optuna]" in extras.missing_extra(["hparams_search=an8flower_optuna"])
    assert extras.missing_extra(["hparams_search=lr_grid", "trainer=slurm", "seed=3"]) is None


@pytest.mark.slow  # a child process with the plugin hidden (~5 s); the message itself is tested fast above
def test_missing_extra_from_the_command_line(tmp_path):
    """train.py itself, with the plugin reported absent the way an uninstalled package is
    (find_spec → None, patched by a sitecustomize on the child's path): exit 1, one line."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text(
        "import importlib.util as u\n"
        "_f = u.find_spec\n"
        "u.find_spec = lambda n, *a, **k: None if n.startswith('hydra_plugins.hydra_submitit') "
        "else _f(n, *a, **k)\n"
    )
    import os

    from .helpers import ROOT

    path = os.pathsep.join([str(shadow), str(ROOT)])
    proc = run_cli(
        "train.py", ["-m", "hydra/launcher=submitit_slurm"], tmp_path, env={"PYTHONPATH": path}
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [extras.EXTRAS[0].message("hydra/launcher=submitit_slurm")], proc.stderr


@pytest.mark.slow
def test_two_job_sweep_through_submitit_local(tmp_path):
    proc = run_cli(
        "train.py",
        ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "seed=1,2",
         *TINY_DATA, "trainer.max_epochs=1"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, seed in zip(jobs, (1, 2), strict=True):
        assert f"seed={seed}" in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert "test/acc" in yaml.safe_load((job / "metrics.json").read_text())
    # submitit ran them (its job folders and pickled results), not the basic launcher
    assert any((sweep / ".submitit").rglob("*_result.pkl"))


@pytest.mark.slow  # three training trials (~10 s)
@pytest.mark.readme("python train.py hparams_search=an8flower_optuna")
def test_optuna_runs_three_trials_and_reports_the_best(readme, tmp_path):
    proc = readme.run(
        tmp_path,
        extra=["hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2",
               *TINY_DATA, "trainer.max_epochs=1"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2"]
    scores, lrs = [], []
    for job in jobs:
        scores.append(yaml.safe_load((job / "metrics.json").read_text())["val/acc_best"])
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        lr = float(next(o for o in overrides if o.startswith("method.optimizer.lr=")).split("=")[1])
        assert 0.001 <= lr <= 0.1
        lrs.append(lr)
    assert len(set(lrs)) == 3  # three different trials
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(scores))

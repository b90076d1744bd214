"""evaluate.py through a Lightning Trainer: the same numbers with 1 and 2 processes (an uneven
split, no image counted twice), its loggers, and one-line errors for devices / nodes that do
not exist."""

from __future__ import annotations

import json

import pytest
import torch

from explainbench.evaluation.task import ShardSampler
from explainbench.utils.devices import CLUSTER_ENV, check_devices

from .helpers import compose_cfg, run_cli, run_dirs, tiny_checkpoint

# 7 of the 16 test images (odd: 4 + 3 on two processes), batches of 3 (so the shards end in
# batches of different sizes); explainers and metrics cheap enough for seconds per run
EVAL_ARGS = [
    "explainers=[gradcam,activation]",
    "metrics=[iou,ad_ic]",
    "data.subset=7",
    "data.batch_size=3",
    "gallery_images=2",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory, "trainer.accelerator=cpu")


@pytest.fixture(scope="module")
def single_process_run(checkpoint, tmp_path_factory):
    """One process, logging to an offline W&B run too: the reference run dir."""
    tmp = tmp_path_factory.mktemp("single")
    proc = run_cli("evaluate.py", [f"ckpt_path={checkpoint}", "logger=wandb", *EVAL_ARGS], tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    return out


def test_shard_sampler_covers_every_index_once_contiguously():
    dataset = list(range(7))
    shards = [list(ShardSampler(dataset, 3, r)) for r in range(3)]
    assert shards == [[0, 1, 2], [3, 4], [5, 6]]
    assert [len(ShardSampler(dataset, 2, r)) for r in range(2)] == [4, 3]


def _scores(run_dir) -> dict[str, float]:
    flat = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in flat.items() if "ms_per_image" not in k}


@pytest.mark.slow  # ~25 s: a 2-process DDP launch on CPU
def test_ddp_sim_gives_the_single_process_metrics(checkpoint, single_process_run, tmp_path):
    proc = run_cli(
        "evaluate.py", [f"ckpt_path={checkpoint}", "trainer=ddp_sim", *EVAL_ARGS], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    (out,) = run_dirs(proc.stdout)  # one run dir, printed once (rank 0)
    single, ddp = _scores(single_process_run), _scores(out)
    assert set(ddp) == set(single) and len(single) == 2 * 8  # 2 explainers x (2 iou + 6 ad/ic)
    for key, value in single.items():
        assert ddp[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    flat = json.loads((out / "metrics.json").read_text())
    assert flat["test/ms_per_image/gradcam"] > 0
    assert (out / "gallery.png").is_file() and "7 test images" in proc.stdout


@pytest.mark.slow  # its fixture trains and evaluates a model (~8 s)
def test_evaluate_logs_metrics_table_and_gallery_to_wandb(single_process_run):
    """The offline W&B run holds the per-explainer metrics, the results table and one
    captioned gallery image per gallery row."""
    (run,) = (single_process_run / "wandb").glob("offline-run-*")
    summary_files = list(run.glob("files/media/table/test/results_*.table.json"))
    assert len(summary_files) == 1
    table = json.loads(summary_files[0].read_text())
    assert table["columns"][0] == "explainer" and [r[0] for r in table["data"]] == [
        "gradcam",
        "activation",
    ]
    metrics = json.loads((single_process_run / "metrics.json").read_text())
    assert table["data"][0][table["columns"].index("iou_auc")] == (
        f"{metrics['test/iou_auc/gradcam']:.2f}"
    )
    assert len(list(run.glob("files/media/images/test/gallery_*.png"))) == 2
    from .test_train import read_wandb_history

    logged = {k: v for item in read_wandb_history(run) for k, v in item.items()}
    assert logged["test/iou_auc/gradcam"] == pytest.approx(metrics["test/iou_auc/gradcam"])
    assert logged["test/ad@15/activation"] == pytest.approx(metrics["test/ad@15/activation"])
    assert logged["test/gallery.count"] == 2
    # the first two images of the 7-image subset, named by their index in the test split
    assert [c.split(":")[0] for c in logged["test/gallery.captions"]] == ["index 6", "index 8"]
    assert all(
        ": class " in c and ", prediction " in c and ", method Classifier: gradcam, activation" in c
        for c in logged["test/gallery.captions"]
    )


def test_more_gpus_than_exist_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "H200")
    with pytest.raises(
        ValueError, match=r"asks for 4 GPUs but this machine has 1: cuda:0 \(H200\)"
    ):
        check_devices({"accelerator": "gpu", "devices": 4})
    with pytest.raises(ValueError, match="asks for 2 GPUs"):
        check_devices({"accelerator": "auto", "devices": "0,1"})
    check_devices({"accelerator": "gpu", "devices": -1})  # all of them: fine
    check_devices({"accelerator": "cpu", "devices": 2})  # CPU processes (ddp_sim): fine


def test_gpu_accelerator_without_gpu_fails_before_training(monkeypatch, tmp_path):
    from .helpers import run_unwrapped

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cfg = compose_cfg(["trainer=gpu"], tmp_path)
    with pytest.raises(ValueError, match="trainer.accelerator=gpu but this machine has no GPU"):
        run_unwrapped(cfg)


def test_num_nodes_without_cluster_environment_is_one_line(monkeypatch, tmp_path):
    from explainbench.evaluate import run

    for names in CLUSTER_ENV.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    cfg = compose_cfg(
        ["ckpt_path=/nowhere/last.ckpt", "trainer=ddp_sim", "+trainer.num_nodes=2"],
        tmp_path,
        config_name="evaluate.yaml",
    )
    with pytest.raises(ValueError, match="trainer.num_nodes=2 needs a launcher") as err:
        run(cfg)
    assert "\n" not in str(err.value) and "SLURM" in str(err.value)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    check_devices({"accelerator": "cpu", "devices": 2, "num_nodes": 2})

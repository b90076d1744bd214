"""evaluate.py's per-image records (gallery.pt), its curves (curves.json) and what a W&B reader
sees of an evaluation (``<prefix>/<metric>/<explainer>``, group, name, tags, the explanations
table, captions), against hand values on a tiny an8flower run."""

from __future__ import annotations

import json

import hydra
import numpy as np
import pytest
import torch

from explainbench.evaluate import data_config
from explainbench.evaluation import ExplanationEvaluator
from explainbench.explainers.activation import ActivationMap
from explainbench.explainers.gradcam import GradCAM
from explainbench.methods.build import load_method
from explainbench.metrics import MaskIoU
from explainbench.metrics.deletion_insertion import DeletionInsertion
from explainbench.utils.image import denormalize

from .helpers import compose_cfg, run_cli, run_dirs, tiny_checkpoint

THRESHOLDS = [0.05 * i for i in range(1, 20)]
EVAL_ARGS = [
    "explainers=[gradcam,activation]",
    "metrics=[iou,deletion_insertion]",
    "metrics.deletion_insertion.n_steps=4",
    "data.subset=5",
    "data.subset_seed=0",
    "gallery_images=3",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def evaluated(checkpoint, tmp_path_factory):
    """evaluate.py in this process (csv logger): its run dir."""
    from explainbench.evaluate import run

    out = tmp_path_factory.mktemp("evaluated")
    run(compose_cfg([f"ckpt_path={checkpoint}", *EVAL_ARGS], out, config_name="evaluate.yaml"))
    return out


def model_and_data(checkpoint, tmp_path):
    """The model and the checkpoint's whole test split (16 images, no subset)."""
    model = load_method(str(checkpoint)).eval()
    cfg = compose_cfg([f"ckpt_path={checkpoint}"], tmp_path, config_name="evaluate.yaml")
    dm = hydra.utils.instantiate(data_config(cfg, model.build_config, overrides=[]))
    dm.setup("test")
    return model, dm


def mean_height(x: list[float], y: list[float]) -> float:
    """Trapezoid area under ``y(x)`` divided by the span of ``x``."""
    pairs = list(zip(x, y, strict=True))
    area = sum((b - a) * (u + v) / 2 for (a, u), (b, v) in zip(pairs, pairs[1:], strict=False))
    return area / (x[-1] - x[0])


def hand_iou_auc(saliency: np.ndarray, mask: np.ndarray) -> float:
    """IoU of ``saliency >= t`` with ``mask > 0.5`` per threshold, its mean height."""
    m = mask > 0.5
    curve = [((saliency >= t) & m).sum() / ((saliency >= t) | m).sum() for t in THRESHOLDS]
    return mean_height(THRESHOLDS, curve)


def test_gallery_pt_holds_the_explainers_maps_masks_and_per_image_iou(
    checkpoint, evaluated, tmp_path
):
    record = torch.load(evaluated / "gallery.pt", weights_only=True)
    model, dm = model_and_data(checkpoint, tmp_path)
    test = dm.dataset("test")
    index = record["index"].tolist()
    assert len(index) == 3 and len(set(index)) == 3  # the first 3 of the 5-image subset
    samples = [test[i] for i in index]
    x = torch.stack([s["image"] for s in samples])
    torch.testing.assert_close(record["image"], denormalize(x, dm.mean, dm.std))
    assert record["label"].tolist() == [int(s["label"]) for s in samples]
    assert record["pred"].tolist() == model(x).argmax(1).tolist()
    assert record["class_names"] == list(dm.class_names)
    assert record["texts"] == ["", "", ""]  # a plain classifier has no gallery text
    assert list(record["maps"]) == ["gradcam", "activation"]  # exactly the gallery's columns
    direct = {
        "gradcam": GradCAM()(model, x).saliency,
        "activation": ActivationMap()(model, x).saliency,
    }
    for name, saliency in direct.items():
        torch.testing.assert_close(record["explainer_maps"][name], saliency, atol=1e-5, rtol=1e-4)
    assert set(record["masks"]) == {"part_mask", "mask"}
    for key in ("part_mask", "mask"):
        assert record["masks"][key].shape == (3, 1, 64, 64)
        torch.testing.assert_close(
            record["masks"][key], torch.stack([s[key] for s in samples]).float().view(3, 1, 64, 64)
        )
    # per-image IoU AUC against the iou metric's mask (part_mask), by hand
    for name, saliency in direct.items():
        hand = [hand_iou_auc(saliency[i, 0].numpy(), record["masks"]["part_mask"][i, 0].numpy())
                for i in range(3)]  # fmt: skip
        assert record["iou"][name].tolist() == pytest.approx(hand, abs=1e-5), name
    assert record["captions"][0].startswith(f"y={dm.class_names[record['label'][0]]}")


def test_curves_json_equals_the_metrics_compute_curve(checkpoint, evaluated, tmp_path):
    curves = json.loads((evaluated / "curves.json").read_text())
    model, dm = model_and_data(checkpoint, tmp_path)
    subset = hydra.utils.instantiate(
        data_config(compose_cfg([f"ckpt_path={checkpoint}"], tmp_path, config_name="evaluate.yaml"),
                    model.build_config, overrides=["data.subset=5", "data.subset_seed=0"])
    )  # fmt: skip
    subset.setup("test")
    batch = next(iter(torch.utils.data.DataLoader(subset.dataset("test"), batch_size=5)))
    evaluator = ExplanationEvaluator(
        {"gradcam": GradCAM()},
        {"iou": MaskIoU(), "deletion_insertion": DeletionInsertion(n_steps=4)},
        dm.mean,
        dm.std,
        dm.annotations,
    )
    evaluator.update(model, batch)
    iou = evaluator.metrics["gradcam"]["iou"]
    thresholds, mean_iou = iou.compute_curve()
    assert curves["gradcam"]["iou"]["x"] == pytest.approx(thresholds.tolist())
    assert curves["gradcam"]["iou"]["y"] == pytest.approx(mean_iou.tolist(), abs=1e-5)
    di = evaluator.metrics["gradcam"]["deletion_insertion"].compute_curves()
    for mode in ("deletion", "insertion"):
        assert curves["gradcam"][mode]["x"] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
        assert curves["gradcam"][mode]["y"] == pytest.approx(di[mode].tolist(), abs=1e-5)
    assert set(curves) == {"gradcam", "activation"}
    # the curve's trapezoid area / span is the table's iou_auc
    x, y = curves["activation"]["iou"]["x"], curves["activation"]["iou"]["y"]
    area = mean_height(x, y)
    flat = json.loads((evaluated / "metrics.json").read_text())
    assert area == pytest.approx(flat["test/iou_auc/activation"], abs=1e-5)


def wandb_records(run_dir) -> list[dict]:
    """Every record of an offline W&B run, read back with `wandb leet inspect --json`."""
    import subprocess
    import sys
    from pathlib import Path

    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def wandb_run_view(run_dir) -> dict:
    """What a reader of an offline W&B run sees: ``run`` (name, group, tags), ``logged`` (every
    history key's last value) and ``tables`` (key → the table as ``wandb sync`` uploads it:
    the artifact's table.json, whose image cells hold their captions)."""
    records = wandb_records(run_dir)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    logged = {
        k: v for r in records if r["type"] == "history" for k, v in r["history"]["item"].items()
    }
    tables = {}
    for r in records:
        if r["type"] == "artifact":
            for entry in r["artifact"]["manifest"]["contents"]:
                if entry["path"].endswith(".table.json"):
                    key = entry["path"].removesuffix(".table.json")
                    tables[key] = json.loads(open(entry["local_path"]).read())
    return {"run": run, "logged": logged, "tables": tables}


@pytest.mark.slow  # ~20 s: an evaluate.py subprocess with an offline W&B run
def test_wandb_run_shows_prefixed_metrics_group_tags_and_explanations_table(checkpoint, tmp_path):
    args = [f"ckpt_path={checkpoint}", *EVAL_ARGS, "logger=wandb", "metric_prefix=eval_x",
            "logger.wandb.group=demo_1", "logger.wandb.name=eval_x", "tags=[demo,eval_x]"]  # fmt: skip
    proc = run_cli("evaluate.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = run_dirs(proc.stdout)
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    view = wandb_run_view(run_dir)
    assert view["run"]["display_name"] == "eval_x" and view["run"]["run_group"] == "demo_1"
    assert view["run"]["tags"] == ["demo", "eval_x"]
    flat = json.loads((out / "metrics.json").read_text())  # metrics.json keeps test/...
    for key in ("iou_auc", "iou@0.5", "deletion", "insertion"):
        for name in ("gradcam", "activation"):
            assert view["logged"][f"eval_x/{key}/{name}"] == pytest.approx(
                flat[f"test/{key}/{name}"]
            )
    assert not any(k.startswith("test/") for k in view["logged"])
    record = torch.load(out / "gallery.pt", weights_only=True)
    names = record["class_names"]
    label = [names[i] for i in record["label"]]
    pred = [names[i] for i in record["pred"]]
    captions = view["logged"]["eval_x/gallery.captions"]
    assert captions == [
        f"index {i}: class {y}, prediction {p}, method Classifier: gradcam, activation"
        for i, y, p in zip(record["index"].tolist(), label, pred, strict=True)
    ]
    table = view["tables"]["eval_x/explanations"]
    assert table["columns"] == ["index", "image", "label", "prediction", "explainer", "text", "iou"]
    assert len(table["data"]) == 3 * 2  # (gallery image, explainer)
    for k, row in enumerate(table["data"]):
        i, name = divmod(k, 2)
        explainer = ["gradcam", "activation"][name]
        assert row[0] == record["index"][i] and row[2:6] == [label[i], pred[i], explainer, ""]
        assert row[6] == pytest.approx(float(record["iou"][explainer][i]))
        assert row[1]["_type"] == "image-file"
        assert row[1]["caption"] == f"class {label[i]}, prediction {pred[i]}, method {explainer}"
    assert "eval_x/results" in view["tables"]

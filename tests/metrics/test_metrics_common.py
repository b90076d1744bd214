"""What every metric shares: empty compute, DDP-safe state, configs, #FW/#BW.

Parametrised over conf/metrics/*.yaml, so a new metric (one module + one YAML) is held to the
same checks without editing this file."""

from __future__ import annotations

import copy
import warnings

import hydra
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from torchmetrics.utilities.data import dim_zero_sum

from explainbench.backbones.registry import build_backbone
from explainbench.explainers.base import Explanation
from explainbench.explainers.gradcam import GradCAM
from explainbench.metrics import (
    AverageDropIncrease,
    DeletionInsertion,
    ExplanationMetric,
    ForegroundAttentionRate,
    MaskIoU,
    NoSamplesError,
    PassCount,
    PointingGame,
)
from explainbench.utils.image import IMAGENET_MEAN, IMAGENET_STD, denormalize
from explainbench.utils.paths import CONF_DIR as CONF

NAMES = sorted(p.stem for p in (CONF / "metrics").glob("*.yaml") if p.stem != "default")


def metric_from_config(name: str) -> ExplanationMetric:
    """The metric of ``conf/metrics/<name>.yaml``, as configured."""
    return hydra.utils.instantiate(OmegaConf.load(CONF / "metrics" / f"{name}.yaml")[name])


class MeanModel(torch.nn.Module):
    """3 classes with logits linear in the mean intensity of three image bands."""

    def forward(self, x):
        pixels = denormalize(x, IMAGENET_MEAN, IMAGENET_STD).mean(1)
        h = x.shape[-2] // 3
        bands = [pixels[:, i * h : (i + 1) * h].mean((1, 2)) for i in range(3)]
        return 4 * torch.stack(bands, dim=1)


def _batch(n=6, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = (torch.rand(n, 3, size, size, generator=g) - 0.45) / 0.226
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.6).float()
    mask[0] = 0  # one missing annotation, to be skipped
    bbox = torch.tensor([[1.0, 2, 8, 9]] * n)
    bbox[1] = -1
    sal = torch.rand(n, 1, size, size, generator=g)
    sal[2] = 0.5  # a constant map
    target = torch.randint(0, 3, (n,), generator=g)
    batch = {"image": image, "label": target, "mask": mask, "part_mask": mask, "bbox": bbox}
    passes = torch.arange(n, dtype=torch.float32)
    return batch, Explanation(
        saliency=sal, target=target, forward_passes=passes, backward_passes=1.0
    )


def _model_for(metric, device="cpu"):
    """MeanModel; a metric that re-runs its explainer on changed copies of the model (the
    randomisation check) gets Grad-CAM and a tiny CNN instead, which has layers to change."""
    if not metric.needs_explainer:
        return MeanModel().to(device)
    metric.bind_explainer(GradCAM())
    torch.manual_seed(0)
    return build_backbone("small_cnn", 3, widths=(4, 8), dropout=0.0).eval().to(device)


def _half(batch, expl, sl):
    sub = {k: v[sl] for k, v in batch.items()}
    fw = expl.forward_passes[sl]
    return sub, Explanation(expl.saliency[sl], expl.target[sl], fw, expl.backward_passes)


def _values(metric):
    return {k: v.item() for k, v in metric.compute().items()}


@pytest.mark.parametrize("name", NAMES)
def test_every_file_is_one_named_entry_that_builds_a_metric(name):
    cfg = OmegaConf.load(CONF / "metrics" / f"{name}.yaml")
    assert list(cfg) == [name], f"conf/metrics/{name}.yaml must hold one entry named '{name}'"
    metric = metric_from_config(name)
    # its own name is the file's: warnings and errors about it name what the user typed
    assert isinstance(metric, ExplanationMetric) and metric.name == name


def test_default_metrics_are_files_of_the_group():
    defaults = OmegaConf.load(CONF / "metrics" / "default.yaml").defaults
    assert set(defaults) - {"_self_"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_compute_without_samples_raises(name):
    metric = metric_from_config(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        with pytest.raises(NoSamplesError, match="no evaluated"):
            metric.compute()


def test_all_skipped_raises_and_counts():
    metric = ForegroundAttentionRate()
    metric.update(torch.rand(3, 1, 4, 4), torch.zeros(3, 1, 4, 4))
    assert metric.skipped == 3
    with pytest.raises(NoSamplesError):
        metric.compute()


def test_missing_annotations():
    keys = {"image", "label"}
    assert AverageDropIncrease().missing_annotations(keys) == []
    assert DeletionInsertion().missing_annotations(keys) == []
    assert PassCount().missing_annotations(keys) == []
    assert ForegroundAttentionRate().missing_annotations(keys) == ["mask"]
    assert MaskIoU().missing_annotations(keys | {"mask"}) == ["part_mask"]
    assert PointingGame().missing_annotations(keys) == ["bbox or mask"]
    assert PointingGame(annotation="bbox").missing_annotations(keys | {"mask"}) == ["bbox"]
    assert PointingGame(mask_key="part_mask").missing_annotations(keys | {"part_mask"}) == []


@pytest.mark.parametrize("name", NAMES)
def test_split_and_merged_states_equal_single_instance(name):
    # DDP reduces states by summing; merge_state does the same between two local instances.
    batch, expl = _batch()
    single = metric_from_config(name)
    if missing := single.missing_annotations(batch.keys()):
        # part-map metrics need annotations this batch lacks; their own files test the merge
        pytest.skip(f"{name} needs {missing}: see tests/metrics/test_metrics_{name}.py")
    model = _model_for(single)
    single.update_batch(model, batch, expl)
    a, b = metric_from_config(name), metric_from_config(name)
    _model_for(a), _model_for(b)
    a.update_batch(model, *_half(batch, expl, slice(0, 2)))
    b.update_batch(model, *_half(batch, expl, slice(2, None)))
    # by hand: a state-wise sum (what all_reduce(SUM) does) into an updated instance, as on
    # every rank (plain attributes learnt in update, e.g. randomisation's layer names, are kept) ...
    summed = copy.deepcopy(b)
    for state in single._defaults:
        setattr(summed, state, getattr(a, state) + getattr(b, state))
    summed._update_count = 1  # states were set by hand, not by update()
    # ... and torchmetrics' merge_state
    a.merge_state(b)
    expected = _values(single)
    assert _values(summed) == pytest.approx(expected, abs=1e-6)
    assert _values(a) == pytest.approx(expected, abs=1e-6)
    # every state is a tensor reduced by summation (no list states that DDP would concatenate)
    for state in single._defaults:
        assert isinstance(getattr(single, state), torch.Tensor)
        assert single._reductions[state] is dim_zero_sum


def test_pass_count():
    # batch 1: 2 images, 1 fw, 0 bw; batch 2: 2 images at 9 fw / 1 bw; batch 3: per image [1, 3] fw
    # fw = (2 + 18 + 4) / 6 = 4, bw = (0 + 2 + 0) / 6 = 1/3
    metric = PassCount()
    sal = torch.zeros(2, 1, 4, 4)
    t = torch.zeros(2, dtype=torch.long)
    metric.update_batch(None, {}, Explanation(sal, t, forward_passes=1.0, backward_passes=0.0))
    metric.update_batch(None, {}, Explanation(sal, t, forward_passes=9, backward_passes=1))
    metric.update_batch(None, {}, Explanation(sal, t, forward_passes=torch.tensor([1.0, 3.0])))
    assert _values(metric) == pytest.approx({"fw": 4.0, "bw": 1 / 3})


def test_states_survive_inference_mode_reset():
    # Lightning resets metrics inside inference_mode; updates then happen under enable_grad.
    metric = ForegroundAttentionRate()
    with torch.inference_mode():
        metric.reset()
    sal, mask = torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    metric.update(sal, mask)
    assert torch.isfinite(metric.compute()["far"])


# -- a real 2-process DDP sync (gloo, CPU) --------------------------------------------------------
def _ddp_worker(rank: int, init_file: str, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        batch, expl = _batch()
        sl = slice(0, 2) if rank == 0 else slice(2, None)
        out = {}
        for name in ("ad_ic", "far", "pointing_game", "iou"):
            metric = metric_from_config(name)
            metric.update_batch(MeanModel(), *_half(batch, expl, sl))
            out.update(_values(metric))
        queue.put((rank, out))
    finally:
        dist.destroy_process_group()


def test_ddp_sync_equals_single_process(tmp_path):
    batch, expl = _batch()
    expected = {}
    for name in ("ad_ic", "far", "pointing_game", "iou"):
        metric = metric_from_config(name)
        metric.update_batch(MeanModel(), batch, expl)
        expected.update(_values(metric))
    # fork: the children inherit the imports (spawn re-imports torch, ~15 s on 2 cores)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_ddp_worker, args=(r, str(tmp_path / "init"), queue)) for r in range(2)
    ]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in (0, 1):
        assert results[rank] == pytest.approx(expected, abs=1e-5)


# -- configs ------------------------------------------------------------------------------------
def test_metric_configs_compose_and_instantiate():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+metrics=default"])
        names = list(cfg.metrics)
        # the order of the results table's columns
        assert names == ["ad_ic", "deletion_insertion", "iou", "pointing_game", "far", "passes"]
        for name in names:
            metric = instantiate(cfg.metrics[name], mean=[0.5] * 3, std=[0.5] * 3)
            assert metric.name == name and metric.mean == (0.5, 0.5, 0.5)
        # one file per metric, each a named entry; a subset composes the same way
        for path in sorted((CONF / "metrics").glob("*.yaml")):
            if path.stem != "default":
                sub = compose(config_name=None, overrides=[f"+metrics={path.stem}"])
                assert list(sub.metrics) == [path.stem]
        sub = compose(config_name=None, overrides=["+metrics=[far,iou]"])
        assert list(sub.metrics) == ["far", "iou"]
        assert instantiate(cfg.metrics.ad_ic).fractions == (1.0, 0.5, 0.15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("metric_device", ["cuda", "cpu"])
def test_cuda_matches_cpu(name, metric_device):
    # The batch and model on the GPU; the metric state on the GPU or left on the CPU.
    batch, expl = _batch(n=8, size=32)
    cpu = metric_from_config(name)
    cpu.update_batch(_model_for(cpu), batch, expl)
    gpu_batch = {k: v.cuda() for k, v in batch.items()}
    fw = expl.forward_passes.cuda()
    gpu_expl = Explanation(expl.saliency.cuda(), expl.target.cuda(), fw, expl.backward_passes)
    metric = metric_from_config(name).to(metric_device)
    metric.update_batch(_model_for(metric, "cuda"), gpu_batch, gpu_expl)
    assert _values(metric) == pytest.approx(_values(cpu), abs=1e-4)

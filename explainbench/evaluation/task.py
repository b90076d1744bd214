"""The explanation benchmark as a Lightning test loop: ``trainer.test(EvaluationTask(...))``.

Running the loop through a ``Trainer`` is what lets ``evaluate.py`` use Lightning's strategies
(``trainer=ddp`` over GPUs and nodes, ``ddp_spawn`` / ``ddp_sim`` on CPU) unchanged: each process
explains its own shard of the test split, the metrics reduce through their torchmetrics states,
and rank 0 alone draws the gallery and hands the results to the ``report`` callable (which
writes the files), inside the worker processes, so ``ddp_spawn`` behaves like ``ddp``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from .evaluator import ExplanationEvaluator


class ShardSampler(DistributedSampler):
    """Rank ``r`` of ``W`` reads one contiguous block of the dataset, in order, with no padding.

    Lightning's default ``DistributedSampler`` pads an uneven split by repeating images, which
    would count them twice in the metrics; this one gives the first ``n % W`` ranks one image
    more instead (7 images on 2 ranks: 0-3 and 4-6). Contiguous (not strided) blocks keep rank
    0's first images the split's first images. A ``DistributedSampler`` subclass, so Lightning
    keeps it rather than injecting its own. Safe at test time because no DDP wrapper syncs per
    batch there: ranks may run one batch more or less; they meet only in the final reduction.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        n = len(dataset)  # type: ignore[arg-type]
        share, extra = divmod(n, num_replicas)
        self.start = rank * share + min(rank, extra)
        self.num_samples = share + (rank < extra)
        self.total_size = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.start + self.num_samples))

    def __len__(self) -> int:
        return self.num_samples


class EvaluationTask(L.LightningModule):
    """A thin LightningModule around a trained method and the :class:`ExplanationEvaluator`.

    Args:
        method: the trained model (a submodule, so the Trainer puts it on the device).
        evaluator: explainers × metrics; its metrics reduce over processes in ``compute()``.
        datamodule: the test data (its test split, loader settings, mean / std).
        gallery_images: the first images of the test split drawn by rank 0 after the loop.
        report: called once, on global rank 0, with ``(task, results, gallery)`` (``gallery``:
            the first ``gallery_images`` samples as one batch on the device, or None); writes the
            files and logs. Must pickle (ddp_spawn): a module-level function or class instance.
    """

    def __init__(
        self,
        method: torch.nn.Module,
        evaluator: ExplanationEvaluator,
        datamodule: Any,
        gallery_images: int,
        report: Callable[[EvaluationTask, dict, dict | None], None],
    ) -> None:
        super().__init__()
        self.method = method
        self.evaluator = evaluator
        self.datamodule = datamodule
        self.gallery_images = gallery_images
        self.report = report
        self.results: dict[str, dict[str, float]] = {}
        self.curves: dict[str, dict[str, dict[str, list[float]]]] = {}  # curves.json
        # seconds summed over processes: the whole test loop (data, explainers, metrics, logging)
        # and the explainer calls alone; the difference is what the benchmark costs around them
        self.timing: dict[str, float] = {}
        self._loop_start = 0.0

    def test_dataloader(self) -> DataLoader:
        base = self.datamodule.test_dataloader()
        dataset, world = base.dataset, self.trainer.world_size
        if len(dataset) < world:
            # a rank with no batch would skip the loop and never join the final reduction
            raise ValueError(
                f"{len(dataset)} test images for {world} processes: every process needs one; "
                "use fewer trainer.devices or more images (data.subset)."
            )
        return DataLoader(
            dataset,
            batch_size=base.batch_size,
            sampler=ShardSampler(dataset, world, self.trainer.global_rank),
            num_workers=base.num_workers,
            pin_memory=base.pin_memory,
            persistent_workers=base.persistent_workers,
            collate_fn=base.collate_fn,
        )

    def on_test_start(self) -> None:
        self.evaluator.to(self.device).reset()

    def on_test_epoch_start(self) -> None:
        self._loop_start = time.perf_counter()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.evaluator.update(self.method, batch)

    def on_test_epoch_end(self) -> None:
        # ms_per_image: explainer seconds summed over ranks / images summed over ranks
        ev = self.evaluator
        loop = time.perf_counter() - self._loop_start
        names = list(ev.seconds)
        totals = torch.tensor(
            [ev.seconds[n] for n in names] + [float(ev.images), loop],
            dtype=torch.float64,
            device=self.device,
        )
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum").cpu()
        ev.seconds = dict(zip(names, totals[:-2].tolist(), strict=True))
        ev.images = int(totals[-2])
        self.timing = {
            "images": float(ev.images),
            "loop_seconds": float(totals[-1]),
            "explainer_seconds": float(totals[:-2].sum()),
            "processes": float(self.trainer.world_size),
        }
        self.results = ev.compute()  # torchmetrics syncs the metric states of every rank here
        self.curves = ev.compute_curves()  # so does compute_curve(): every rank calls it

    def on_test_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        self.report(self, self.results, self.gallery_batch())

    def gallery_batch(self) -> dict | None:
        """The first ``gallery_images`` samples of the test split (whatever the sharding)."""
        dataset = self.datamodule.dataset("test")
        k = min(self.gallery_images, len(dataset))
        if k <= 0:
            return None
        collate = self.datamodule.collate_fn or default_collate
        batch = collate([dataset[i] for i in range(k)])
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

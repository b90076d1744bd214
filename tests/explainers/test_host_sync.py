"""No host synchronisation inside the masking explainers' loops: on a GPU every ``.item()``,
``.cpu()``, ``.tolist()`` or ``bool(tensor)`` waits for the queued forwards, so one per chunk
serialises them. The calls are counted during a Score-CAM and a RISE explanation run in few
and in many chunks: the count must not grow with the number of chunks."""

from __future__ import annotations

import pytest
import torch

from explainbench.explainers.rise import RISE
from explainbench.explainers.scorecam import ScoreCAM

SYNCS = ("item", "cpu", "tolist", "__bool__")


@pytest.fixture
def sync_calls(monkeypatch):
    """Counts of each host-syncing Tensor method called while the fixture is active."""
    calls = dict.fromkeys(SYNCS, 0)
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def count_syncs(explainer, model, x, calls) -> dict[str, int]:
    for name in calls:
        calls[name] = 0
    explainer(model, x)
    return dict(calls)


@pytest.mark.parametrize(
    "make",
    [
        # 6 channels x 2 images = 12 masked inputs: 1 chunk of 12 vs 12 chunks of 1
        lambda bs: ScoreCAM(batch_size=bs, skip_constant=False),
        # skipping on: one more sync (which channels), still independent of the chunks
        lambda bs: ScoreCAM(batch_size=bs),
        # 24 masks: 1 chunk of 24 vs 24 chunks of 1
        lambda bs: RISE(n_masks=24, batch_size=bs, grid_size=4),
    ],
    ids=["scorecam", "scorecam_skip", "rise"],
)
def test_sync_count_does_not_grow_with_chunks(make, toy_backbone, make_images, sync_calls):
    x = make_images(batch=2, size=32)
    channels = toy_backbone.features(x).shape[1]
    assert channels == 6, "the chunk counts below assume the toy backbone's 6 channels"
    few = count_syncs(make(24), toy_backbone, x, sync_calls)
    many = count_syncs(make(1), toy_backbone, x, sync_calls)
    assert many == few, f"syncs grow with the number of chunks: {few} → {many}"
    # a handful per explanation (target check, pairs read once), not one per chunk
    assert sum(many.values()) <= 4, many

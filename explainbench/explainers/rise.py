"""RISE: Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018 (arXiv:1806.07421).

The model scores ``N`` randomly masked copies of the image; the saliency of a pixel is the
score-weighted average of the masks that kept it: ``S = Σ_i f_c(x ∘ M_i) · M_i / (N · p)``
(the Monte-Carlo estimate of ``E[f_c(x ∘ M) | M(u) = 1]``), min-max normalised per image.

Masks, as in the paper (Sec. 3.2): ``N`` binary ``s × s`` grids, each cell on with
probability ``p``; each grid is bilinearly upsampled to ``(s + 1) · C`` pixels per side
(``C = ⌈H / s⌉``, the cell size in pixels; the paper writes ⌊·⌋ but its code uses ⌈·⌉, the
only choice for which every crop fits) and an ``H × W`` window is cropped at a random offset
in ``[0, C)`` per axis, so the soft cell borders fall anywhere, not on a fixed lattice.

Masking. The mask multiplies the *normalised* input, as the authors' code does: a masked
pixel becomes 0 in the model's input space, i.e. the dataset-mean colour (grey), not black.
This is the same baseline as Score-CAM's zero mask, so both perturbation explainers remove
information the same way, and it needs no mean/std.

Cost and memory. ``N`` forward passes per image (plus one unmasked pass when the target is
None, to find the top-1 class). Nothing of size ``N × H × W`` (let alone ``B × N``) is ever
built: masks are rendered ``batch_size`` at a time on the model's device, each image is
multiplied by that chunk into one reused input buffer, and the chunk is folded into a running
``[B, H·W]`` weighted sum with one matrix product.

Reproducibility. The random draws (``N·s²`` cell states and ``2N`` offsets, a few hundred kB)
come from a CPU ``torch.Generator`` seeded with ``seed``, so a seed gives the same masks on
every device and for every ``batch_size``; only the rendering (upsampling and cropping, the
part that scales with the image) runs on the device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    Explanation,
    check_explainable,
    masked_input_buffer,
    normalize_per_image,
    outside_inference_mode,
    resolve_target,
    to_model_device,
)
from .compiled import CompiledLogits

SCORES = ("prob", "logit")


def cell_size(size: tuple[int, int], grid_size: int) -> tuple[int, int]:
    """Pixels per grid cell along each axis, ``⌈H / s⌉ × ⌈W / s⌉``."""
    return math.ceil(size[0] / grid_size), math.ceil(size[1] / grid_size)


def draw_grids(
    n_masks: int, grid_size: int, p: float, size: tuple[int, int], seed: int
) -> tuple[Tensor, Tensor]:
    """The random part of ``n_masks`` RISE masks, drawn on the CPU from ``seed``.

    Returns ``grids`` ``[N, s, s]`` float (1 = cell kept, each with probability ``p``) and
    ``shifts`` ``[N, 2]`` long, the crop offsets ``(dy, dx)`` with ``0 <= dy < C_H``,
    ``0 <= dx < C_W``. Draw order: the grids (``torch.rand(N, s, s) < p``), then ``dy``, then
    ``dx`` (``torch.randint``), from one generator.
    """
    gen = torch.Generator().manual_seed(seed)
    grids = (torch.rand(n_masks, grid_size, grid_size, generator=gen) < p).float()
    ch, cw = cell_size(size, grid_size)
    dy = torch.randint(0, ch, (n_masks,), generator=gen)
    dx = torch.randint(0, cw, (n_masks,), generator=gen)
    return grids, torch.stack([dy, dx], dim=1)


def render_masks(grids: Tensor, shifts: Tensor, size: tuple[int, int]) -> Tensor:
    """Soft masks ``[n, H, W]`` from grids ``[n, s, s]`` and offsets ``[n, 2]`` (same device).

    Bilinear upsampling with ``align_corners=False`` (pixel-centre convention, like the
    authors' ``skimage.transform.resize(order=1)``; at the outer half cell of the upsampled
    grid torch repeats the edge where skimage mirrors, a difference confined to the border).
    """
    n, s = grids.shape[0], grids.shape[-1]
    h, w = size
    ch, cw = cell_size(size, s)
    up = F.interpolate(grids[:, None], size=((s + 1) * ch, (s + 1) * cw), mode="bilinear",
                       align_corners=False)[:, 0]  # fmt: skip
    # Each mask has its own crop window: gather rows dy..dy+H-1 and columns dx..dx+W-1.
    rows = shifts[:, 0, None] + torch.arange(h, device=grids.device)  # [n, H]
    cols = shifts[:, 1, None] + torch.arange(w, device=grids.device)  # [n, W]
    index = torch.arange(n, device=grids.device)[:, None, None]
    return up[index, rows[:, :, None], cols[:, None, :]]


def rise_masks(
    n_masks: int,
    grid_size: int,
    p: float,
    size: tuple[int, int],
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Tensor:
    """All ``n_masks`` masks ``[N, H, W]`` at once (for inspection and tests; :class:`RISE`
    renders them chunk by chunk and never holds them all)."""
    grids, shifts = draw_grids(n_masks, grid_size, p, size, seed)
    return render_masks(grids.to(device), shifts.to(device), size)


class RISE:
    """RISE (Petsiuk et al., BMVC 2018). See the module docstring for masks, masking and cost.

    Args:
        n_masks: ``N``, masks per image (4000: the L-CAM paper's VGG-16 setting).
        grid_size: ``s``, the mask grid is ``s × s`` cells.
        p: probability that a cell is kept (not masked).
        batch_size: masks rendered per chunk, which is also the number of masked images per
            forward pass (each chunk is applied to one image at a time). Bounds memory: one
            ``[batch_size, C, H, W]`` input buffer and one ``[batch_size, H, W]`` mask chunk.
        seed: seed of the mask draws; the same seed gives the same masks (and maps) on every
            device and for every ``batch_size``.
        score: ``"prob"`` (default): the softmax probability of the target class, as in the
            paper and the authors' code; ``"logit"``: the raw target logit.
        channels_last: lay the masked batch out channels-last (faster convolutions with oneDNN
            on CPU and on tensor-core GPUs; the model itself is left untouched).
        compile: run the masked forwards through ``torch.compile``
            (:class:`~explainbench.explainers.compiled.CompiledLogits`): same maps to ~1e-6,
            faster once compiled (a few seconds per process). Smaller ``batch_size`` (8-16)
            suits it best on CPU.

    Needs only the logits ``model.head(model.features(x))``; ``check_explainable`` is still
    called so every explainer rejects a model without the split in the same way.

    ``extras["raw"]`` holds the unnormalised map ``Σ_i f_c(x ∘ M_i) M_i / (N p)`` ``[B,1,H,W]``.
    ``forward_passes`` is ``N`` per image, ``N + 1`` when the target had to be found.
    """

    def __init__(
        self,
        n_masks: int = 4000,
        grid_size: int = 7,
        p: float = 0.5,
        batch_size: int = 100,
        seed: int = 0,
        score: str = "prob",
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        if grid_size < 1:
            raise ValueError(f"grid_size must be >= 1, got {grid_size}")
        if not 0 < p <= 1:
            raise ValueError(f"p must be in (0, 1], got {p}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.n_masks = n_masks
        self.grid_size = grid_size
        self.p = p
        self.batch_size = batch_size
        self.seed = seed
        self.score = score
        self.channels_last = channels_last
        self._compiled = CompiledLogits() if compile else None

    def mask_chunks(
        self, size: tuple[int, int], device: torch.device, dtype: torch.dtype
    ) -> Iterator[Tensor]:
        """The ``N`` masks as ``[≤batch_size, H, W]`` chunks rendered on ``device``."""
        grids, shifts = draw_grids(self.n_masks, self.grid_size, self.p, size, self.seed)
        grids, shifts = grids.to(device, dtype), shifts.to(device)
        for start in range(0, self.n_masks, self.batch_size):
            stop = start + self.batch_size
            yield render_masks(grids[start:stop], shifts[start:stop], size)

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        check_explainable(model)
        x = to_model_device(model, x)
        batch, size = x.shape[0], (x.shape[-2], x.shape[-1])
        extra_forward = target is None
        with torch.inference_mode():
            if target is None:  # one unmasked pass finds the top-1 class
                target = resolve_target(model.head(model.features(x)), None)
            resolved = extra_forward
            raw = x.new_zeros(batch, size[0] * size[1])
            chunk = min(self.batch_size, self.n_masks)
            buffer = masked_input_buffer(x, chunk, self.channels_last)
            for masks in self.mask_chunks(size, x.device, x.dtype):
                n = masks.shape[0]
                scores = x.new_empty(batch, n)
                for b in range(batch):
                    # x[b] ∘ M_i for the whole chunk, written into the reused buffer.
                    torch.mul(x[b : b + 1], masks[:, None], out=buffer[:n])
                    if self._compiled:  # one shape for the compiled graph: the whole buffer
                        logits = self._compiled(model, buffer)[:n]
                    else:
                        logits = model.head(model.features(buffer[:n]))
                    if not resolved:
                        # A given target is checked against the class count of the first pass.
                        target = resolve_target(logits.new_empty(batch, logits.shape[1]), target)
                        resolved = True
                    scores[b] = self._score(logits, target[b])
                raw.addmm_(scores, masks.reshape(n, -1))  # running Σ_i score_i · M_i
            raw = (raw / (self.n_masks * self.p)).view(batch, 1, *size)
            saliency = normalize_per_image(raw)
        saliency, target, raw = outside_inference_mode(saliency, target, raw)
        forward_passes = float(self.n_masks + extra_forward)
        return Explanation(saliency, target, forward_passes=forward_passes, backward_passes=0.0,
                           extras={"raw": raw})  # fmt: skip

    def _score(self, logits: Tensor, target: Tensor) -> Tensor:
        """Target-class score of each masked input ``[n]``."""
        if self.score == "prob":
            logits = logits.softmax(dim=1)
        return logits[:, target]

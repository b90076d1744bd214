"""Score-CAM: Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
Neural Networks", CVPR Workshops 2020 (arXiv:1910.01279).

Each channel ``A_k`` of the explanation layer becomes a soft mask ``H_k`` (upsampled to the
input, min-max normalised); the model scores the masked input ``x ∘ H_k``; the map is
``ReLU(Σ_k α_k A_k)`` with ``α_k`` derived from those scores. That is ``K`` forward passes
per image, so this module is about doing them fast and in bounded memory: the (image,
channel) pairs of the whole batch are flattened and pushed through the model in chunks of
``batch_size`` masked images, written into one reused buffer under ``torch.inference_mode()``
(never a ``B×K×C×H×W`` tensor), in channels-last layout (faster convolutions on CPU), and
channels whose activation map is constant are not forwarded at all (their mask is all zeros,
so their masked input is the same all-zero image for every image: one shared forward).

Weightings (``weighting=``):

* ``"prob_increase"`` (default) — the paper's channel-wise Increase of Confidence
  (Definition 2): ``α_k = p_c(x ∘ H_k) − p_c(x_b)`` with ``p_c`` the softmax probability of
  the target class (as in the authors' code) and the baseline ``x_b`` the all-zero image in
  the model's normalised input space (the dataset-mean image), which is exactly what a zero
  mask produces. Constant channels therefore get ``α_k = 0`` exactly.
* ``"prob"`` — ``α_k = p_c(x ∘ H_k)``: the authors' released code (no baseline subtraction).
* ``"logit_softmax"`` — ``α = softmax_k(Y_c(x ∘ H_k))``: the paper's Algorithm 1 (the
  baseline logit is the same for every channel, so a softmax over channels removes it) and
  what the ``grad-cam`` package computes. With ``align_corners=True`` (the package upsamples
  masks with ``nn.UpsamplingBilinear2d``) this reproduces ``pytorch_grad_cam.ScoreCAM``.

All settings cost the same passes; the default is the one that follows the paper's
definition and does not depend on the scale of the logits.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    Explanation,
    features_and_target,
    masked_input_buffer,
    outside_inference_mode,
    upsample_to,
)
from .compiled import CompiledLogits
from .gradcam import weighted_cam

WEIGHTINGS = ("prob_increase", "prob", "logit_softmax")
# The mask normaliser's guard, as in the grad-cam package: masks equal theirs to the last bit.
_MASK_EPS = 1e-8


class ScoreCAM:
    """Score-CAM (Wang et al., CVPRW 2020). See the module docstring for the weightings.

    Args:
        batch_size: masked images per forward pass (pairs of image and channel, across the
            whole batch). Bounds memory: one ``[batch_size, C, H, W]`` buffer is reused.
            ``None`` (default) picks by device: on CPU 16, or 8 with ``compile`` (smaller
            batches keep a layer's activations in cache); 32 on GPUs. Measurements:
            docs/results/bench_explainers_cpu.md.
        weighting: ``"prob_increase"`` (default, paper), ``"prob"`` (authors' code) or
            ``"logit_softmax"`` (paper's Algorithm 1 / ``grad-cam`` package).
        align_corners: bilinear mode for upsampling the masks. ``False`` (default) matches the
            authors' code and the final map's upsampling; ``True`` matches the ``grad-cam``
            package.
        skip_constant: don't forward channels whose activation map is constant; they share
            one forward of the all-zero image instead. Exact for every weighting.
        channels_last: lay the masked batch out channels-last (faster on CPU with oneDNN and
            on tensor-core GPUs; the model itself is left untouched).
        compile: run the masked forwards through ``torch.compile``
            (:class:`~explainbench.explainers.compiled.CompiledLogits`): exact (maps within
            ~1e-6) and faster once compiled (a few seconds per process; speed-ups measured in
            docs/results/bench_explainers_cpu.md). Every chunk then has the
            full ``batch_size`` (the last one is padded) so one graph serves all.
        autocast_dtype: ``None`` (default: exact, the input's dtype) or ``"bfloat16"`` /
            ``"float16"``: run the masked and baseline forwards under ``torch.autocast``. Faster
            where bf16 is native (AVX512-BF16 or AMX CPUs, tensor-core GPUs; figures in
            docs/results/bench_explainers_cpu.md), but logits move by ~1e-2 and the maps by ~1e-3 (max abs), so they no longer match the
            float32 reference to 1e-4. float16 on CPUs without AMX-FP16 is slower, not faster.

    ``forward_passes`` counts, per image, the unmasked forward, the masked forwards actually
    run and the share of the baseline forward (``1 + K`` without skipping). ``extras`` holds
    ``cam`` (feature resolution), ``channel_weights`` ``[B,K]`` and ``skipped_channels`` ``[B]``.
    """

    def __init__(
        self,
        batch_size: int | None = None,
        weighting: str = "prob_increase",
        align_corners: bool = False,
        skip_constant: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        autocast_dtype: str | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.batch_size = batch_size
        self.weighting = weighting
        self.align_corners = align_corners
        self.skip_constant = skip_constant
        self.channels_last = channels_last
        if autocast_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(
                f"autocast_dtype must be None, 'bfloat16' or 'float16', got {autocast_dtype!r}"
            )
        self.autocast_dtype = autocast_dtype
        if compile and autocast_dtype is not None:
            raise ValueError("compile and autocast_dtype can't be combined: pick one")
        self._compiled = CompiledLogits() if compile else None

    def __call__(
        self, model: nn.Module, x: Tensor, target: Tensor | int | None = None
    ) -> Explanation:
        x, feats, target = features_and_target(model, x, target)
        with torch.inference_mode():
            scores, skipped, masked, baseline = self._scores(model, x, feats, target)
            weights = self._weights(scores, baseline, target)
            cam = weighted_cam(feats, weights)
            saliency = upsample_to(cam, x.shape[-2:])
        saliency, target, cam, weights = outside_inference_mode(saliency, target, cam, weights)
        batch = x.shape[0]
        forward_passes = 1.0 + (masked + (baseline is not None)) / batch
        extras = {"cam": cam, "channel_weights": weights, "skipped_channels": skipped.sum(1)}
        return Explanation(
            saliency, target, forward_passes=forward_passes, backward_passes=0.0, extras=extras
        )

    def chunk_size(self, device: torch.device) -> int:
        """Masked images per forward: ``batch_size``, or the device's default when None."""
        if self.batch_size is not None:
            return self.batch_size
        if device.type == "cpu":
            return 8 if self._compiled else 16
        return 32

    def _forward(self, model: nn.Module, x: Tensor) -> Tensor:
        """Logits of a masked (or baseline) batch, in float32 whatever the autocast dtype."""
        if self.autocast_dtype is None:
            return model.head(model.features(x))
        with torch.autocast(x.device.type, dtype=getattr(torch, self.autocast_dtype)):
            return model.head(model.features(x)).float()

    def _score(self, logits: Tensor, target: Tensor) -> Tensor:
        """The per-input target score: a probability, or the raw logit for ``logit_softmax``."""
        if self.weighting != "logit_softmax":
            logits = logits.softmax(dim=1)
        return logits.gather(1, target[:, None]).squeeze(1)

    def _weights(self, scores: Tensor, baseline: Tensor | None, target: Tensor) -> Tensor:
        if self.weighting == "logit_softmax":
            return scores.softmax(dim=1)
        if self.weighting == "prob":
            return scores
        return scores - self._score(baseline.expand(len(target), -1), target)[:, None]

    def _scores(
        self, model: nn.Module, x: Tensor, feats: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, int, Tensor | None]:
        """Target scores ``[B,K]`` of every masked input, the skipped mask ``[B,K]``, the number
        of masked forwards run and the baseline logits ``[1,R]`` (None if not needed)."""
        batch, channels = feats.shape[:2]
        flat = feats.flatten(2)
        if self.skip_constant:
            skipped = flat.amax(dim=2) == flat.amin(dim=2)
        else:
            skipped = torch.zeros(batch, channels, dtype=torch.bool, device=feats.device)
        baseline = None
        if self.weighting == "prob_increase" or skipped.any():
            # A zero mask gives the all-zero input whatever the image: one forward serves all.
            zeros = x.new_zeros((1, *x.shape[1:]))
            baseline = self._forward(model, zeros)
        scores = torch.empty(batch, channels, dtype=feats.dtype, device=feats.device)
        if baseline is not None:
            scores[:] = self._score(baseline.expand(batch, -1), target)[:, None]

        # (image, channel) pairs in row-major order: a chunk covers few images, each a run.
        pairs = (~skipped).nonzero()
        if len(pairs) == 0:
            return scores, skipped, 0, baseline
        # Compiled forwards take one shape: always the full buffer; in the last chunk the rows past
        # `count` still hold the previous chunk's images, and their logits are dropped.
        size_wanted = self.chunk_size(x.device)
        chunk = size_wanted if self._compiled else min(size_wanted, len(pairs))
        buffer = masked_input_buffer(x, chunk, self.channels_last)
        size = x.shape[-2:]
        # The image of each pair, read to the host once: each chunk's runs of one image are
        # found from it without a device sync per chunk (GPU forwards stay queued).
        pair_images = pairs[:, 0].tolist()
        for start in range(0, len(pairs), chunk):
            image, channel = pairs[start : start + chunk].unbind(1)
            count = len(image)
            masks = F.interpolate(
                feats[image, channel][:, None],
                size=size,
                mode="bilinear",
                align_corners=self.align_corners,
            )
            lo = masks.amin(dim=(2, 3), keepdim=True)
            hi = masks.amax(dim=(2, 3), keepdim=True)
            masks.sub_(lo).div_(hi - lo + _MASK_EPS)
            masked = buffer[:count]
            offset = 0
            for b, run in itertools.groupby(pair_images[start : start + chunk]):
                n = sum(1 for _ in run)
                torch.mul(x[b : b + 1], masks[offset : offset + n], out=masked[offset : offset + n])
                offset += n
            if self._compiled:
                logits = self._compiled(model, buffer)[:count]
            else:
                logits = self._forward(model, masked)
            scores[image, channel] = self._score(logits, target[image])
        return scores, skipped, len(pairs), baseline

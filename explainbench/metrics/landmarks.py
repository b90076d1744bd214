"""Landmark localisation error of part maps (SCOPS, Hung et al. CVPR 2019; the region-grouping
paper's Tables 2, 4 and 7).

Each part map ``Q^k`` gives a centre, the assignment-weighted mean pixel coordinate; a linear
regression from all K centres (standardised, with an intercept: the authors' StandardScaler +
LinearRegression) to each annotated landmark is fit on a fit split and evaluated on held-out
images. The error is the mean L2 distance over visible landmarks in % of

* ``interocular``: the distance between the two eye landmarks of the image (CelebA);
* ``bbox``: the object box (CUB, as the authors' code: centres and landmarks are first expressed
  in box coordinates, ``(x − x1)/w, (y − y1)/h``, and the regression runs on those);
* ``image``: the image size (coordinates divided by W and H).

The fit split: the evaluator feeds one split (the test split, for evaluate.py), so the metric
collects centres and landmarks (torchmetrics ``cat`` states, DDP-safe) and fits at ``compute()``:
images whose batch key ``fit_key`` (default ``landmark_fit``) is true form the fit split and the
others are evaluated (how a data module gives a separate fit split, e.g. CelebA's 5,379 fit
images of the SCOPS protocol); without that key, ``folds``-fold cross-fitting: image ``i`` is in
fold ``i mod folds`` and is predicted by the regression fit on the other folds, so every image is
evaluated once and never by a regression that saw it.

Works for any model that exposes part maps: ``explanation.extras["parts"]`` (the ``method``
explainer of region grouping) or ``model.part_maps(x)``; without either it warns once and
computes nothing (``NoSamplesError``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics.utilities import dim_zero_cat

from explainbench.explainers.base import Explanation
from explainbench.metrics.part_maps import PartMapMetric

NORMALIZERS = ("interocular", "bbox", "image")


def part_centres(parts: Tensor, image_size: Sequence[int]) -> Tensor:
    """``[B,K,2]`` (x, y) centre of each part map ``[B,K,h,w]``, in input-pixel coordinates of an
    ``image_size = (H, W)`` image (cell ``(i, j)`` is centred at ``((j + ½)·W/w, (i + ½)·H/h)``)."""
    parts = parts.detach().float()
    h, w = parts.shape[-2:]
    big_h, big_w = image_size
    ys = (torch.arange(h, device=parts.device, dtype=parts.dtype) + 0.5) * big_h / h
    xs = (torch.arange(w, device=parts.device, dtype=parts.dtype) + 0.5) * big_w / w
    mass = parts.sum((2, 3)).clamp_min(1e-8)
    x = (parts.sum(2) * xs).sum(2) / mass
    y = (parts.sum(3) * ys).sum(2) / mass
    return torch.stack([x, y], dim=2)


def fit_predict(x_fit: Tensor, y_fit: Tensor, x_eval: Tensor) -> Tensor:
    """Least squares ``y ≈ [standardise(x), 1] W`` on the fit rows, applied to ``x_eval``.

    Standardisation uses the fit rows' mean and std (a constant column keeps std 1); float64.
    """
    mean = x_fit.mean(0)
    std = x_fit.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))

    def design(x: Tensor) -> Tensor:
        return torch.cat([(x - mean) / std, torch.ones_like(x[:, :1])], dim=1)

    solution = torch.linalg.lstsq(design(x_fit), y_fit, driver="gelsd").solution
    return design(x_eval) @ solution


class LandmarkLocalization(PartMapMetric):
    """Normalised landmark error (%) of part-map centres regressed to annotated landmarks.

    Args:
        normalizer: ``"interocular"`` | ``"bbox"`` | ``"image"`` (see the module docstring).
        interocular: indices of the two landmarks whose distance normalises (CelebA: left eye 0,
            right eye 1).
        folds: cross-fitting folds when the data marks no fit split (at least 2).
        fit_key: batch key of a ``[B]`` bool marking fit-split images.

    Edge cases (each skipped and counted, never a made-up number):
        * an invisible landmark (``visible`` = 0, or NaN coordinates): not fitted, not scored;
          counted in :attr:`invisible`;
        * an image with no visible landmark, or without its normaliser (eyes not both visible
          or coinciding; an empty box): counted in :attr:`skipped`;
        * a landmark with fewer than 2 visible fit images in a fold: its held-out points there
          are counted in :attr:`unfitted` (their indices, once computed, in
          :attr:`unfitted_landmarks`).

    ``compute()`` → ``{"landmark_error": mean % over every evaluated (image, landmark)}``; the
    per-landmark errors are in :attr:`per_landmark` afterwards (NaN: never evaluated).
    """

    name = "landmarks"
    required_keys: tuple[str, ...] = ("landmarks",)
    higher_is_better = False

    def __init__(
        self,
        normalizer: str = "bbox",
        interocular: Sequence[int] = (0, 1),
        folds: int = 5,
        fit_key: str = "landmark_fit",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
        if int(folds) < 2:
            raise ValueError(
                f"folds must be >= 2 (fit on some images, evaluate on others), got {folds}"
            )
        self.normalizer = normalizer
        self.interocular = tuple(int(i) for i in interocular)
        if len(self.interocular) != 2:
            raise ValueError(f"interocular must name two landmark indices, got {self.interocular}")
        self.folds = int(folds)
        self.fit_key = fit_key
        self.required_keys = ("landmarks", "bbox") if normalizer == "bbox" else ("landmarks",)
        for state in ("centres", "coords", "visible", "scale", "fit"):
            self.add_state(state, default=[], dist_reduce_fx="cat")
        for state in ("invisible_count", "skipped_count"):
            self.add_state(state, torch.tensor(0.0), dist_reduce_fx="sum")
        self.per_landmark: Tensor | None = None
        self.unfitted_landmarks: list[int] = []
        self.unfitted = 0  # set by compute(), from the synchronised states

    # -- accumulation ---------------------------------------------------------------------------
    def update(
        self,
        parts: Tensor,
        landmarks: Tensor,
        image_size: Sequence[int],
        bbox: Tensor | None = None,
        fit: Tensor | None = None,
    ) -> None:
        """Collect one batch: part maps ``[B,K,h,w]``, ``landmarks [B,L,3]`` (x, y, visible) in
        input pixels of an ``image_size = (H, W)`` image, ``bbox [B,4]`` xyxy for ``bbox``."""
        centres = part_centres(parts, image_size)  # [B,K,2]
        landmarks = landmarks.detach().float().to(centres.device)
        coords = landmarks[..., :2]
        visible = (landmarks[..., 2] > 0.5) & torch.isfinite(coords).all(-1)
        coords = torch.where(visible[..., None], coords, torch.zeros_like(coords))
        b = coords.shape[0]
        scale = torch.ones(b, device=coords.device)
        usable = visible.any(1)
        if self.normalizer == "bbox":
            if bbox is None:
                raise ValueError("normalizer=bbox needs the batch's 'bbox'")
            box = bbox.detach().float().to(coords.device).view(-1, 4)
            origin, size = box[:, None, :2], (box[:, 2:] - box[:, :2])[:, None]
            usable &= torch.isfinite(box).all(1) & (size[:, 0] > 0).all(1)
            size = torch.where(usable[:, None, None], size, torch.ones_like(size))
            centres, coords = (centres - origin) / size, (coords - origin) / size
        elif self.normalizer == "image":
            size = torch.tensor(
                [image_size[1], image_size[0]], dtype=coords.dtype, device=coords.device
            )
            centres, coords = centres / size, coords / size
        else:
            left, right = self.interocular
            if max(left, right) >= coords.shape[1]:
                raise ValueError(
                    f"interocular landmarks {self.interocular} are outside the data's {coords.shape[1]} landmarks"
                )
            scale = (coords[:, left] - coords[:, right]).norm(dim=1)
            usable &= visible[:, left] & visible[:, right] & (scale > 1e-6)
        fit = (
            torch.zeros(b, dtype=torch.bool)
            if fit is None
            else fit.detach().to(torch.bool).view(-1).cpu()
        )
        keep = usable.cpu()
        self._add("skipped_count", (~keep).sum().float())
        self._add("invisible_count", (~visible[usable]).sum().float())
        if keep.any():
            rows = keep.to(centres.device)
            self.centres.append(centres[rows].flatten(1).double())
            self.coords.append(coords[rows].double())
            self.visible.append(visible[rows])
            self.scale.append(scale[rows].double())
            self.fit.append(fit[keep].to(centres.device))

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        self._require(batch)
        parts = self.part_maps(model, batch, explanation)
        if parts is None:
            return
        self.update(parts, batch["landmarks"], batch["image"].shape[-2:], bbox=batch.get("bbox"),
                    fit=batch.get(self.fit_key))  # fmt: skip

    # -- the regression -------------------------------------------------------------------------
    def _splits(self, fit: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(fit rows, evaluated rows) pairs: the marked fit split, else cross-fitting folds."""
        n = fit.numel()
        if fit.any():
            if fit.all():
                raise ValueError(
                    f"every image is marked '{self.fit_key}': no image is left to evaluate the landmark regression on"
                )
            return [(fit, ~fit)]
        fold = torch.arange(n) % min(self.folds, n)
        return [(fold != f, fold == f) for f in range(min(self.folds, n))]

    def compute(self) -> dict[str, Tensor]:
        if not self.centres:
            raise self._empty("images with visible landmarks")
        x = dim_zero_cat(self.centres).cpu()
        y = dim_zero_cat(self.coords).cpu()
        visible = dim_zero_cat(self.visible).cpu().bool()
        scale = dim_zero_cat(self.scale).cpu()
        fit = dim_zero_cat(self.fit).cpu().bool()
        if x.shape[0] < 2:
            raise self._empty(
                "pairs of images (the regression needs a fit image and a held-out one)"
            )
        num_landmarks = y.shape[1]
        errors = [[] for _ in range(num_landmarks)]
        unfitted, unfitted_landmarks = 0, set()
        for fit_rows, eval_rows in self._splits(fit):
            for k in range(num_landmarks):
                train, test = fit_rows & visible[:, k], eval_rows & visible[:, k]
                if not test.any():
                    continue
                if train.sum() < 2:
                    unfitted += int(test.sum())
                    unfitted_landmarks.add(k)
                    continue
                pred = fit_predict(x[train], y[train, k], x[test])
                errors[k].append((pred - y[test, k]).norm(dim=1) / scale[test])
        self.unfitted = unfitted
        self.unfitted_landmarks = sorted(unfitted_landmarks)
        if self.unfitted_landmarks:
            warnings.warn(
                f"Landmarks {self.unfitted_landmarks} had fewer than 2 visible fit images in a split: "
                f"{unfitted} of their points were not evaluated.",
                stacklevel=2,
            )
        per = [torch.cat(e) if e else torch.empty(0, dtype=torch.float64) for e in errors]
        self.per_landmark = torch.stack(
            [
                100 * e.mean() if e.numel() else torch.tensor(float("nan"), dtype=torch.float64)
                for e in per
            ]
        )
        every = torch.cat(per)
        if every.numel() == 0:
            raise self._empty("visible landmarks with a fitted regression")
        return {"landmark_error": (100 * every.mean()).float()}

    @property
    def invisible(self) -> int:
        """Invisible landmark points of the collected images (this process)."""
        return int(self.invisible_count.item())

    @property
    def skipped(self) -> int:
        """Images skipped: no visible landmark, or no normaliser (this process)."""
        return int(self.skipped_count.item())

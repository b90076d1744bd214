"""Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

An explanation that is faithful to the model must change when the model's weights do. For every
image, the explainer's map on the trained model is compared with its map on the same model whose
weights were re-initialised:

* **cascading**: the layers are randomised from the top down, cumulatively — step 1 randomises the
  head, step 2 the head and the last stage, ..., the last step the whole network;
* **independent**: one layer group at a time, every other group keeping its trained weights.

Two similarities per image, averaged over images: the Spearman rank correlation of the maps' pixel
values and the SSIM (Wang et al., 2004) of the maps min-max normalised to ``[0, 1]``. High values
mean the map survives the destruction of what the model learnt: the explainer is not explaining
the model (an edge detector scores 1); low values are what a faithful explainer shows, so
``higher_is_better = False``.

Choices where the paper is silent or differs (also in ``conf/metrics/randomisation.yaml``):

* **Layer granularity**: the groups are the backbone's *stages* (:func:`~explainbench.backbones.
  truncate.attach_stages`: ``layer1..layer4`` of a ResNet, the pooled stages of VGG / small_cnn,
  ...) plus one ``head`` group — every re-initialisable module outside the extractor (the
  backbone's classifier and a method's own modules). The paper's figures randomise per block for
  Inception v3; stages keep the key count and the number of extra explanations per batch small
  (``1 + 2·(stages)`` explainer calls, the head's independent step being the cascade's first).
* **Re-initialisation**: each module's own ``reset_parameters()`` (BatchNorm: weight 1, bias 0,
  running statistics reset), on a CPU copy seeded with ``seed``, so every rank and device draws
  the same weights; the draw is made once per model and reused for every batch. A parameter whose
  module has no ``reset_parameters()`` keeps its trained value (with a warning naming it).
* **Spearman without absolute value**: the explainers' maps are non-negative (in ``[0, 1]`` by the
  Explanation contract), where the paper's absolute-value variant gives the same numbers. Ties get
  their average rank (the usual Spearman); a constant map has no ranking: its correlation with a
  non-constant map is 0, with another constant map 1.
* **Explainers fitted to the model** (relevant features' μ-Lasso W): the fit is part of the
  explainer's state, made once on the trained model; on the randomised copies the same W is
  back-projected through the random weights (refitting per copy would cost a μ-Lasso per step).
  The copy names its source (:func:`trained_model`) so the explainer's fit check passes.
* **Target**: the randomised model is explained for the class the trained model's explanation
  explained (``explanation.target``), not for its own (random) prediction.
* **SSIM**: Gaussian window 11, σ = 1.5, K1 = 0.01, K2 = 0.03, data range 1, "valid" positions
  only (Wang's reference code; torchmetrics reflect-pads the borders instead); maps smaller than 11 pixels use the largest
  odd window that fits.

The trained model is never modified: a deep copy is made once per model (and refreshed from the
model's current weights every batch, so the check also works while a model trains).
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainbench.explainers.base import Explanation, normalize_per_image
from explainbench.metrics.base import ExplanationMetric, saliency_at

HEAD = "head"
RANDOMISED_FROM = (
    "randomised_from"  # attribute of the randomised copy: weakref to the trained model
)


def trained_model(model: nn.Module) -> nn.Module:
    """The trained model a randomised copy was made from, or ``model`` itself."""
    ref = getattr(model, RANDOMISED_FROM, None)
    return ref() if ref is not None and ref() is not None else model


# -- the two similarities -------------------------------------------------------------------------
def average_ranks(values: Tensor) -> Tensor:
    """Ranks ``0..n-1`` of each row of ``[B, n]`` ``values``, ties sharing their average rank
    (float64), as scipy's ``rankdata(method="average") - 1``."""
    ranks = torch.empty(values.shape, dtype=torch.float64, device=values.device)
    for row, out in zip(values, ranks, strict=True):
        sorted_values, order = torch.sort(row)
        starts_group = torch.ones_like(sorted_values, dtype=torch.bool)
        starts_group[1:] = sorted_values[1:] != sorted_values[:-1]
        group = torch.cumsum(starts_group.long(), 0) - 1
        counts = torch.bincount(group).double()
        first = torch.cumsum(counts, 0) - counts
        out[order] = (first + (counts - 1) / 2)[group]
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation ``[B]`` between the maps ``a`` and ``b`` (``[B, ...]``), pixel by
    pixel: the Pearson correlation of their average ranks. A constant map (no ranking) gives 0
    against a non-constant one and 1 against another constant one (both rank nothing alike)."""
    ra = average_ranks(a.flatten(1).double())
    rb = average_ranks(b.flatten(1).double())
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    cov = (ra * rb).sum(1)
    var_a, var_b = (ra * ra).sum(1), (rb * rb).sum(1)
    rho = cov / (var_a * var_b).sqrt().clamp_min(1e-300)
    both_constant = (var_a == 0) & (var_b == 0)
    return torch.where(both_constant, torch.ones_like(rho), rho).float()


def _gaussian_window(size: int, sigma: float, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(
    a: Tensor,
    b: Tensor,
    window: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean SSIM ``[B]`` of single-channel maps ``[B,1,H,W]`` (Wang et al., 2004).

    Local statistics under a Gaussian ``window`` (σ = ``sigma``) at every position where the
    window fits inside the map ("valid"); a map smaller than the window uses the largest odd
    window that fits."""
    a, b = a.double(), b.double()
    size = min(window, *a.shape[-2:])
    size -= 1 - size % 2  # odd
    w = _gaussian_window(size, sigma, a.device, a.dtype)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    var_a = F.conv2d(a * a, w) - mu_a**2
    var_b = F.conv2d(b * b, w) - mu_b**2
    cov = F.conv2d(a * b, w) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1).float()


# -- which layers, and their random weights --------------------------------------------------------
def _backbone_of(model: nn.Module):
    from explainbench.backbones.base import Backbone  # metrics import no backbone code at load

    backbone = model if isinstance(model, Backbone) else getattr(model, "backbone", None)
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"The randomisation check needs a model built on a Backbone (a Backbone or a method "
            f"with .backbone) to find its stages; got {type(model).__name__}."
        )
    return backbone


def _resettable(module: nn.Module, prefix: str, keys: set[str]) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of the modules under ``module`` that own state and can reset it."""
    found = []
    for name, sub in module.named_modules(prefix=prefix):
        owns = any(True for _ in sub.parameters(recurse=False)) or any(
            f"{name}.{b}" in keys for b, _ in sub.named_buffers(recurse=False)
        )
        if owns and callable(getattr(sub, "reset_parameters", None)):
            found.append((name, sub))
    return found


def layer_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The re-initialised layer groups of ``model`` from the top down: ``("head", [...])`` then the
    backbone's stages last to first, each with the qualified names of its resettable modules."""
    from explainbench.backbones.truncate import attach_stages

    backbone = _backbone_of(model)
    names = {id(m): n for n, m in model.named_modules()}
    extractor = backbone.extractor
    keys = set(model.state_dict())
    inside = {id(m) for m in extractor.modules()}
    head = [n for n, m in _resettable(model, "", keys) if n and id(m) not in inside]
    if callable(getattr(extractor, "stage_outputs", None)):
        stages = _named_stage_groups(extractor, names, keys)
    else:
        stages = _sliced_stage_groups(backbone, attach_stages(backbone), names, keys)
    groups = [(HEAD, head), *reversed(stages)]
    return [(g, mods) for g, mods in groups if mods]


def _named_stage_groups(extractor: nn.Module, names: dict, keys: set[str]) -> list:
    """Stages of an extractor that names them (``stage_outputs()``: attention_net's), bottom up;
    its modules outside every stage (the attention module) form one more group, ``rest``, just
    above the lowest stage (the attention acts on that stage's output)."""
    modules = dict(extractor.named_modules())
    stages = [(stage, modules[path]) for stage, path in extractor.stage_outputs().items()]
    covered = {id(m) for _, stage in stages for m in stage.modules()}
    rest = [
        n for n, m in _resettable(extractor, names[id(extractor)], keys) if id(m) not in covered
    ]
    groups = [(stage, [n for n, _ in _resettable(m, names[id(m)], keys)]) for stage, m in stages]
    return groups[:1] + [("rest", rest)] + groups[1:]


def _sliced_stage_groups(backbone, ends: dict[str, int], names: dict, keys: set[str]) -> list:
    """Stages as slices of the extractor's layers (``attach_stages``), bottom up."""
    extractor = backbone.extractor
    layers = extractor.layers if backbone.name == "googlenet" else extractor
    stages, start = [], 0
    for stage, end in ends.items():
        end = min(end, len(layers))  # a truncated backbone (region grouping) lacks later stages
        if end <= start:
            continue
        modules = [
            name
            for i in range(start, end)
            for name, _ in _resettable(layers[i], names[id(layers[i])], keys)
        ]
        stages.append((stage, modules))
        start = end
    return stages


def _state_keys(model: nn.Module, module_names: list[str]) -> list[str]:
    keys = set(model.state_dict())
    modules = dict(model.named_modules())
    out = []
    for name in module_names:
        local = [n for n, _ in modules[name].named_parameters(recurse=False)]
        local += [n for n, _ in modules[name].named_buffers(recurse=False)]
        out += [k for k in (f"{name}.{n}" for n in local) if k in keys]
    return out


def random_weights(
    model: nn.Module, groups: list[tuple[str, list[str]]], seed: int
) -> dict[str, dict[str, Tensor]]:
    """Group → ``{state key: re-initialised tensor}``, drawn on a CPU copy of ``model`` with a
    ``seed``-ed generator (the global RNG is left as it was), on ``model``'s device."""
    reference = copy.deepcopy(model).cpu()
    modules = dict(reference.named_modules())
    covered = set(_state_keys(reference, [m for _, names in groups for m in names]))
    uncovered = {n for n, _ in reference.named_parameters() if n not in covered}
    if uncovered:
        warnings.warn(
            f"Randomisation check: {len(uncovered)} parameter(s) have no reset_parameters() and keep "
            f"their trained values: {', '.join(sorted(uncovered)[:5])}"
            + (" ..." if len(uncovered) > 5 else ""),
            stacklevel=3,
        )
    state = model.state_dict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = {}
        for group, names in groups:  # top down: the draw of a group does not depend on the depth
            for name in names:
                modules[name].reset_parameters()
            ref_state = reference.state_dict()
            out[group] = {
                k: ref_state[k].detach().to(state[k].device, state[k].dtype).clone()
                for k in _state_keys(reference, names)
            }
    return out


class _Randomised:
    """A working copy of one model and the random weights of its layer groups."""

    def __init__(self, model: nn.Module, seed: int) -> None:
        self.groups = layer_groups(model)
        self.random = random_weights(model, self.groups, seed)
        self.copy = copy.deepcopy(model)
        # what the copy was made from: an explainer fitted to the trained model (relevant
        # features' W) checks its fit against that one and keeps it on the randomised weights
        object.__setattr__(self.copy, RANDOMISED_FROM, weakref.ref(model))
        self._state = self.copy.state_dict()  # tensors sharing the copy's storage

    @torch.no_grad()
    def set(self, model: nn.Module, randomised: list[str]) -> nn.Module:
        """The copy with ``model``'s current weights, the groups ``randomised`` re-initialised."""
        for key, value in model.state_dict().items():
            self._state[key].copy_(value)
        for group in randomised:
            for key, value in self.random[group].items():
                self._state[key].copy_(value)
        return self.copy


# -- the metric ------------------------------------------------------------------------------------
class ModelRandomisation(ExplanationMetric):
    """Similarity of each explainer's maps on the trained and on re-initialised models.

    Args:
        seed: seed of the re-initialisation (same random weights for every batch and rank).
        independent: also randomise one layer group at a time (``rand_indep_spearman``); ``False``
            halves the extra explanations.
        max_groups: size of the per-step states (fixed for DDP); a model with more layer groups
            fails with a clear error.
        max_images: check only the first this many images of each process (None: all); the
            check costs ``1 + 2·groups`` explanations per image, a subset keeps it affordable for
            the perturbation explainers (Score-CAM, RISE).

    ``compute()`` → ``rand_spearman`` and ``rand_ssim`` (cascade fully randomised, the headline),
    ``rand_spearman@<group>`` for each cascade step (``@head`` first, then the stages top down; the
    step names the group newly randomised), and ``rand_indep_spearman`` (mean over groups).

    Needs the explainer: the evaluator binds it (``needs_explainer``) with :meth:`bind_explainer`.
    """

    name = "randomisation"
    higher_is_better = False
    needs_explainer = True

    def __init__(
        self,
        seed: int = 0,
        independent: bool = True,
        max_groups: int = 16,
        max_images: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if max_images is not None and max_images < 1:
            raise ValueError(f"max_images must be >= 1 or None (all images), got {max_images}")
        self.max_images = max_images
        self.seed = int(seed)
        self.independent = bool(independent)
        self.max_groups = int(max_groups)
        n = self.max_groups
        self.add_state("cascade_spearman_sum", torch.zeros(n, dtype=torch.float64), "sum")
        self.add_state("cascade_ssim_sum", torch.zeros(n, dtype=torch.float64), "sum")
        self.add_state("indep_spearman_sum", torch.zeros(n, dtype=torch.float64), "sum")
        self.add_state("steps", torch.zeros(n, dtype=torch.float64), "sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), "sum")
        self.group_names: list[str] = []
        # plain attributes, not submodules: neither moves with .to() nor enters a state dict
        object.__setattr__(self, "_explainer", None)
        object.__setattr__(self, "_cache", None)

    def bind_explainer(self, explainer: Callable[..., Explanation]) -> None:
        """The explainer whose maps this metric instance checks (called again on randomised models)."""
        object.__setattr__(self, "_explainer", explainer)

    def _randomised(self, model: nn.Module) -> _Randomised:
        cached = self._cache
        if cached is None or cached[0]() is not model:
            object.__setattr__(self, "_cache", (weakref.ref(model), _Randomised(model, self.seed)))
        rnd = self._cache[1]
        if len(rnd.groups) > self.max_groups:
            raise ValueError(
                f"The model has {len(rnd.groups)} layer groups but the randomisation metric keeps "
                f"max_groups={self.max_groups}: set metrics.randomisation.max_groups={len(rnd.groups)}."
            )
        self.group_names = [g for g, _ in rnd.groups]
        return rnd

    def maps(
        self, model: nn.Module, x: Tensor, target: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Saliency ``[B,1,H,W]`` per cascade step, and per independent step (empty when off)."""
        rnd = self._randomised(model)
        names = [g for g, _ in rnd.groups]
        explain = self._explainer
        cascade = [
            explain(rnd.set(model, names[: k + 1]), x, target).saliency for k in range(len(names))
        ]
        indep = []
        if self.independent:
            indep = [cascade[0]]  # the head alone is the cascade's first step
            indep += [explain(rnd.set(model, [g]), x, target).saliency for g in names[1:]]
        return cascade, indep

    def update(self, trained: Tensor, cascade: list[Tensor], indep: list[Tensor]) -> None:
        """Accumulate from the trained maps ``[B,1,H,W]`` and the randomised ones per step."""
        n = trained.shape[0]
        size = trained.shape[-2:]
        trained = saliency_at(trained, size)
        rows = {"cascade_spearman_sum": [], "cascade_ssim_sum": [], "indep_spearman_sum": []}
        for sal in cascade:
            sal = saliency_at(sal, size).to(trained.device)
            rows["cascade_spearman_sum"].append(spearman(trained, sal).double().sum())
            rows["cascade_ssim_sum"].append(
                ssim(normalize_per_image(trained), normalize_per_image(sal)).double().sum()
            )
        for sal in indep:
            sal = saliency_at(sal, size).to(trained.device)
            rows["indep_spearman_sum"].append(spearman(trained, sal).double().sum())
        for state, values in rows.items():
            padded = torch.zeros(self.max_groups, dtype=torch.float64)
            if values:
                padded[: len(values)] = torch.stack(values).cpu()
            self._add(state, padded)
        steps = torch.zeros(self.max_groups, dtype=torch.float64)
        steps[: len(cascade)] = 1.0
        self._add("steps", steps * n)
        self._add("count", float(n))

    def update_batch(self, model: nn.Module, batch: dict, explanation: Explanation) -> None:
        if self._explainer is None:
            raise RuntimeError(
                "ModelRandomisation has no explainer to re-run on the randomised models: the "
                "evaluator binds it (metric.needs_explainer); call metric.bind_explainer(explainer)."
            )
        x, target, saliency = batch["image"], explanation.target, explanation.saliency
        if self.max_images is not None:
            n = max(0, self.max_images - int(self.count))
            if n == 0:
                return
            x, saliency = x[:n], saliency[:n]
            target = target[:n] if isinstance(target, Tensor) and target.ndim > 0 else target
        cascade, indep = self.maps(model, x, target)
        self.update(saliency, cascade, indep)

    def compute(self) -> dict[str, Tensor]:
        if self.count == 0:
            raise self._empty()
        n_steps = int((self.steps > 0).sum())
        names = self.group_names or [f"step{k + 1}" for k in range(n_steps)]
        cascade = (self.cascade_spearman_sum / self.count).float()
        out = {
            "rand_spearman": cascade[n_steps - 1],
            "rand_ssim": (self.cascade_ssim_sum[n_steps - 1] / self.count).float(),
        }
        for k in range(n_steps):
            out[f"rand_spearman@{names[k]}"] = cascade[k]
        if self.independent:
            out["rand_indep_spearman"] = (
                self.indep_spearman_sum[:n_steps].sum() / (n_steps * self.count)
            ).float()
        return out

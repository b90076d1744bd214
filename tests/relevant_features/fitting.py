"""Fitting relevant features for a model without a checkpoint (explainer contract tests)."""

from __future__ import annotations

from pathlib import Path

import torch

from explainbench.relevant_features.mu_lasso import solve_mu_lasso
from explainbench.relevant_features.responses import FilterResponses, select_layers
from explainbench.relevant_features.store import model_fingerprint, save_features


def fit_on_images(model, images: torch.Tensor, path: Path, mu: float = 10.0) -> Path:
    """W fitted on ``images`` labelled by the model's own predictions, saved to ``path``."""
    layers = select_layers(model, "all", images)
    responses = FilterResponses(layers)
    with torch.no_grad(), responses.capture(model):
        logits = model.head(model.features(images))
    num_classes = logits.shape[1]
    labels = torch.nn.functional.one_hot(logits.argmax(1), num_classes).float()
    result = solve_mu_lasso(responses.vector(), labels, mu)
    return save_features(
        path, W=result.W.float(), index=[list(p) for p in responses.index],
        layers=[la.name for la in layers], read_at=[la.read_at for la in layers],
        kinds=[la.kind for la in layers], selection="all", mu=mu, num_classes=num_classes,
        checkpoint=str(path.parent / "last.ckpt"), fingerprint=model_fingerprint(model),
    )  # fmt: skip

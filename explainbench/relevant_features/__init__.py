"""Relevant features by μ-Lasso (Oramas, Wang & Tuytelaars, "Visual Explanation by
Interpretation", ICLR 2019, Sec. 3.1): filter-wise responses of a trained model
(:mod:`.responses`), the μ-Lasso selecting a sparse set of (layer, filter) pairs per class
(:mod:`.mu_lasso`, :mod:`.projection`), and the stored result next to the checkpoint
(:mod:`.store`). The explanation that uses them is ``explainers/relevant_features.py``."""

from .mu_lasso import LassoResult, solve_mu_lasso
from .projection import project_l1_ball
from .responses import FilterResponses, collect_responses, select_layers
from .store import FEATURES_FILE, fit_command, load_features, save_features

__all__ = [
    "FEATURES_FILE",
    "FilterResponses",
    "LassoResult",
    "collect_responses",
    "fit_command",
    "load_features",
    "project_l1_ball",
    "save_features",
    "select_layers",
    "solve_mu_lasso",
]

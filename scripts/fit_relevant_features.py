"""Fit the relevant features of a trained checkpoint (Oramas et al., ICLR 2019, Sec. 3.1):
the command of ``explainbench/relevant_features/fit.py`` (``python -m
explainbench.relevant_features.fit``), kept here for the result scripts and the docs."""

from explainbench.relevant_features.fit import PAPER_MU, fit, main

__all__ = ["PAPER_MU", "fit", "main"]

if __name__ == "__main__":
    main()

"""Tests of explainbench.metrics."""

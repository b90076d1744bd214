"""explainbench."""

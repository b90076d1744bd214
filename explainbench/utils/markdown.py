"""Markdown tables, as the result files write them (evaluate's results.md, the merged and
the sweep tables)."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None
) -> list[str]:
    """The lines of a GitHub Markdown table. ``align``: per column ``"left"`` (``---``, also
    the default) or ``"right"`` (``---:``, for numbers). A ``|`` inside a cell is escaped."""
    align = align or ["left"] * len(header)
    rule = {"left": "---", "right": "---:"}

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "".join(rule[a] + "|" for a in align), *map(line, rows)]

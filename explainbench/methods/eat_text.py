"""EAT's textual explanation: the top-k attributes in a per-dataset sentence template.

Xu et al. (EAT, arXiv:2009.13862) explain a decision as e.g. "This bird has yellow throat,
grey underparts and all-purpose bill, so it is Common Yellowthroat." The template is a
``str.format`` string with the fields of :data:`TEMPLATE_FIELDS`; it is checked when the
method is built, not when the first sentence is written.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

TEMPLATE_FIELDS = ("attributes", "class_name")


def check_template(template: str) -> str:
    """Return ``template`` if it only uses :data:`TEMPLATE_FIELDS`; else a ``ValueError``
    naming the offending field and the valid ones."""
    valid = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as err:  # e.g. a lone "{"
        raise ValueError(
            f"EAT sentence template {template!r} is not a format string ({err}); "
            f"use the fields {valid}"
        ) from err
    for field in fields:
        if field not in TEMPLATE_FIELDS:
            shown = "{" + field + "}" if field else "{} (a positional field)"
            raise ValueError(
                f"EAT sentence template {template!r} uses the unknown field {shown}; "
                f"valid fields: {valid}"
            )
    return template


def readable_attribute(name: str) -> str:
    """A dataset attribute name as words: ``"has_throat_color::yellow"`` → ``"yellow throat
    color"`` (CUB), ``"centre: red"`` → ``"red centre"`` (an8flower), ``"natural_light"`` →
    ``"natural light"``."""
    for sep in ("::", ": "):
        if sep in name:
            group, _, value = name.partition(sep)
            name = f"{value} {group.removeprefix('has_')}"
            break
    return " ".join(name.replace("_", " ").split())


def join_words(items: Sequence[str]) -> str:
    """``["a"]`` → ``"a"``; ``["a", "b", "c"]`` → ``"a, b and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def render_sentence(template: str, attributes: Sequence[str], class_name: str) -> str:
    """The template filled with the attributes (in rank order, made readable) and the class."""
    return template.format(
        attributes=join_words([readable_attribute(a) for a in attributes]), class_name=class_name
    )

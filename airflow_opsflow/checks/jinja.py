"""Recognise Jinja in spec values, so parse-time validation can tell templating from mistakes."""

from __future__ import annotations

import re

_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def has_jinja(text: object) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text or "{#" in text)


PLACEHOLDER = "opsflow_jinja"


def with_placeholders(text: str) -> str:
    """Replace each Jinja expression by a placeholder (a valid identifier and string) so the rest of
    the spec can be validated before rendering."""
    return _JINJA.sub(PLACEHOLDER, text)


def caused_by_placeholder(inputs: list[object]) -> bool:
    """Whether a validation error may come from a placeholder rather than from the spec itself."""
    return any(PLACEHOLDER in repr(i) for i in inputs)

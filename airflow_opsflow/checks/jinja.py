"""Recognise Jinja in spec values, so parse-time validation can tell templating from mistakes."""

from __future__ import annotations

import re

_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def has_jinja(text: object) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text or "{#" in text)


def with_placeholders(text: str) -> str:
    """Replace each Jinja expression by ``x`` (a valid identifier and string) for a structural check."""
    return _JINJA.sub("x", text)

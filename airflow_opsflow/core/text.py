"""Shortening text for messages (alerts, reports, errors); standard library only, so the engines may use it."""

from __future__ import annotations


def cut(text: str, width: int, ellipsis: str = "…") -> str:
    """``text`` if it has at most ``width`` characters, else its start and ``ellipsis`` in ``width`` characters."""
    return text if len(text) <= width else text[: width - len(ellipsis)] + ellipsis

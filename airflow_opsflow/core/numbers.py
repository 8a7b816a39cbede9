"""Exact numbers: a driver's or a text's number as a Decimal, no float rounding. Standard library only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def to_decimal(value: Any) -> Decimal:
    """``value`` as an exact Decimal: a Decimal itself, an int exactly, a float by its shortest text
    (``0.1`` is ``Decimal('0.1')``, not the binary fraction), anything else by its text (spaces ignored).
    Raises ValueError for a bool or a text that is no number."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    try:
        return Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"{value!r} is not a number") from None

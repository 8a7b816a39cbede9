"""Reading a value as true or false: a flag given as text (``dry_run="{{ params.dry_run }}"``), a value a
query returned, a column cast to a boolean. Standard library only, so the engines may use it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off", ""})


def truth(value: Any) -> bool:
    """``value`` as a boolean: None is false, a bool itself, a number true unless zero, and anything else
    by its text, case and surrounding spaces ignored: true, t, yes, y, 1, on / false, f, no, n, 0, off or
    empty. Any other text raises ValueError rather than guess (a typo in ``dry_run`` must not send)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return value != 0
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, on/off, 1/0)")

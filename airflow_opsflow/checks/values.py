"""Numbers and literals as specs give them: no booleans posing as numbers, no NaN or infinity, no
integers too large for a database to compare.

YAML reads ``yes``/``no``/``on``/``off`` as booleans and pydantic turns ``True`` into ``1``, so a bare
``min: yes`` would silently become ``min: 1``; ``.nan``/``.inf`` compare false (or true) with
everything, and a 5,000-digit integer cannot even be printed into SQL. All of them are refused here,
with a message saying what to write instead.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

# The largest count a database returns (a signed 64-bit integer).
MAX_COUNT = 2**63 - 1
# Literals beyond DECIMAL(38)'s range: no SQL engine compares them exactly.
MAX_LITERAL = 10**38


def no_bool(value: Any) -> Any:
    """Refuse booleans where a number is expected (``True`` is not 1 in a spec)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r} (YAML reads yes/no/on/off/true/false "
                         "as booleans)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    if isinstance(value, int) and abs(value) > MAX_COUNT:
        raise ValueError(f"number {_int_text(value)} is out of range (at most {MAX_COUNT})")
    return value


Int = Annotated[int, BeforeValidator(no_bool)]
Float = Annotated[float, BeforeValidator(no_bool)]
# A number of rows or values: a non-negative integer a database can return.
Count = Annotated[int, BeforeValidator(no_bool), Field(ge=0, le=MAX_COUNT)]


def check_literal(value: Any, what: str, *, allow_empty: bool = False) -> Any:
    """A value compared with a column (``between`` bounds, ``accepted_values``): a finite number, a
    date, a timestamp or a non-empty string."""
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is a boolean: YAML reads yes/no/on/off/true/false as booleans; "
                         "quote it if you mean the text, or use an 'expression' check for a boolean column")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} {value!r} is not a finite number")
    if isinstance(value, int) and abs(value) >= MAX_LITERAL:
        raise ValueError(f"{what} {_int_text(value)} is out of range (at most 38 digits)")
    if isinstance(value, str):
        if not value.strip() and not allow_empty:
            raise ValueError(f"{what} must not be an empty string")
        if _non_finite_text(value):
            raise ValueError(f"{what} {value!r} is not a finite number")
    return value


def order_key(value: Any) -> tuple[str, Any]:
    """How a bound compares: ``("number", n)``, ``("time", naive UTC datetime)`` or ``("text", s)``
    (strings holding a number or an ISO date compare as such, as the database casts them)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number", value
    if isinstance(value, datetime):
        return "time", _naive_utc(value)
    if isinstance(value, date):
        return "time", datetime(value.year, value.month, value.day)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return "number", number
    try:
        return "time", _naive_utc(datetime.fromisoformat(text))
    except ValueError:
        return "text", text


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None)


def _non_finite_text(text: str) -> bool:
    return text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")


def _int_text(value: int) -> str:
    """An integer as text, abbreviated when long (``str()`` refuses integers over 4,300 digits)."""
    if abs(value) < 10**24:
        return str(value)
    digits = int(abs(value).bit_length() * math.log10(2)) + 1
    return f"{'-' if value < 0 else ''}<about {digits} digits>"

"""Names users give in specs (columns, tables): refused when they carry SQL syntax."""

from __future__ import annotations

import re

# Identifiers are always quoted by the compiler; these characters are refused outright so that a
# name carrying SQL ("amount; drop table x") fails validation instead of reaching the database.
_FORBIDDEN_IN_NAME = re.compile(r"[;'\"`\\\x00-\x1f]|--|/\*|\*/")


def check_identifier(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if _FORBIDDEN_IN_NAME.search(value):
        raise ValueError(f"{what} {value!r} is not a valid identifier (it contains SQL syntax)")
    return value

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
    if len(value) > 255:
        raise ValueError(f"{what} {value[:40]!r}... is too long for an identifier ({len(value)} characters)")
    if _FORBIDDEN_IN_NAME.search(value):
        raise ValueError(f"{what} {value!r} is not a valid identifier (it contains SQL syntax)")
    return value


def check_table_name(value: str, what: str = "table") -> str:
    """A table name: ``table``, ``schema.table`` or ``catalog.schema.table``, no part empty."""
    value = check_identifier(value, what)
    parts = value.split(".")
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise ValueError(f"{what} {value!r} is not a valid name (expected [catalog.][schema.]table, no empty part)")
    return value

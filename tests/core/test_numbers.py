"""Exact numbers shared by the sync's casts and the reconcile monitor (no float rounding)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from airflow_opsflow.core.numbers import to_decimal
from airflow_opsflow.sync.mapping import CASTS


@pytest.mark.parametrize("value,expected", [
    (Decimal("49.50"), "49.50"), (7, "7"), (10**30, str(10**30)), (0.1, "0.1"), (1e-7, "1E-7"),
    (" 12.340 ", "12.340"), ("-3", "-3"),
])
def test_exact(value: object, expected: str) -> None:
    assert str(to_decimal(value)) == expected


@pytest.mark.parametrize("value", [True, False, "twelve", "", None])
def test_not_a_number(value: object) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        to_decimal(value)


def test_the_casts_built_on_it() -> None:
    assert CASTS["decimal"]("49.50") == "49.50"
    assert CASTS["decimal"](Decimal("1.10")) == "1.10"
    assert CASTS["integer"]("42.0") == 42
    with pytest.raises(ValueError, match="True is not a number"):
        CASTS["decimal"](True)
    with pytest.raises(ValueError, match=r"'4\.5' is not a whole number"):
        CASTS["integer"]("4.5")
    assert CASTS["boolean"]("yes") is True and CASTS["boolean"](0) is False

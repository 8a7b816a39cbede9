"""One meaning of true and false: a sensor's first value, a sync's dry_run/full_resync, a boolean cast."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal

import pytest

from airflow_opsflow.core.truth import truth
from airflow_opsflow.flows.condition import condition_holds


@pytest.mark.parametrize("value", [True, 1, 2, -1, 0.5, Decimal("0.01"), "true", "True", " TRUE ", "t", "yes",
                                   "Y", "1", "on"])
def test_true(value: object) -> None:
    assert truth(value) is True


@pytest.mark.parametrize("value", [None, False, 0, 0.0, Decimal(0), "", "  ", "false", "False", "f", "no", "N", "0",
                                   "off", "OFF"])
def test_false(value: object) -> None:
    assert truth(value) is False


@pytest.mark.parametrize("value", ["ready", "ture", "None", "2", "0.0", date(2024, 5, 1), b"\x01"])
def test_anything_else_is_refused_rather_than_guessed(value: object) -> None:
    with pytest.raises(ValueError, match="is not a boolean"):
        truth(value)


@pytest.mark.parametrize("sql,holds", [
    ("SELECT 1", True), ("SELECT 0", False), ("SELECT NULL", False), ("SELECT 1 WHERE 0", False),
    ("SELECT 't'", True), ("SELECT 'off'", False), ("SELECT 'no'", False), ("SELECT ''", False),
])
def test_a_sensor_query_holds_when_its_first_value_is_true(sql: str, holds: bool) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        assert condition_holds(conn, "sqlite", sql=sql)[0] is holds
    finally:
        conn.close()


@pytest.mark.parametrize("sql", ["SELECT 'pending'", "SELECT date('2026-12-07')", "SELECT 2.5"])
def test_a_sensor_query_returning_any_other_value_holds(sql: str) -> None:
    # The sensor documents "truthy": a value that is there (a date from MAX(loaded_at), a name) holds.
    conn = sqlite3.connect(":memory:")
    try:
        assert condition_holds(conn, "sqlite", sql=sql)[0] is True
    finally:
        conn.close()

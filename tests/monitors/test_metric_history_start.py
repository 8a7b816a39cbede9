"""A metric's first run backfills only the buckets the table has data for: days before its first row are
no data (not zeros that would teach the model a level that never was), while a day without rows after the
table started is a real zero for a count. On SQLite and PostgreSQL, with a real state store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from airflow_opsflow.monitors.metric import Series
from airflow_opsflow.monitors.repo import MetricRepo
from tests.conftest import Database
from tests.monitors.orders import START, create_orders, orders_per_day

DAYS = 60  # the table's whole history: less than the default backfill (the 98-day training window)
DAILY = {"kind": "metric", "name": "daily_orders", "metric": "COUNT(*)", "time_column": "created_at",
         "seasonality": "day_of_week", "training": 14}  # a 98-day window


@pytest.fixture
def orders(db: Database) -> Iterator[str]:
    table = create_orders(db, days=DAYS)
    yield table
    db.execute(f"DROP TABLE {table}")


def run(db: Database, table: str, history: MetricRepo, check: dict[str, Any], day: float,
        timeout: timedelta | None = None) -> CheckResult:
    suite = load_suite({"table": table, "checks": [check]})
    at = (START + timedelta(days=day)).replace(tzinfo=UTC)
    (result,) = run_suite(db.conn, suite, db.dialect, history=history, history_key="dag/task", metrics_at=at,
                          statement_timeout=timeout)
    return result


def stored(history: MetricRepo, check: dict[str, Any]) -> dict[datetime, float]:
    series = Series(f"dag/task/{check['name']}", ())
    points = history.load([series], datetime(2100, 1, 1, tzinfo=UTC), 1000, "UTC").get(series.series_id, [])
    return {p.at.replace(tzinfo=None): p.value for p in points}


@pytest.mark.parametrize("backfill", [None, 80])
def test_days_before_the_first_row_are_no_data(db: Database, orders: str, history: MetricRepo,
                                               backfill: int | None) -> None:
    check = {**DAILY, **({"backfill": backfill} if backfill else {})}
    result = run(db, orders, history, check, day=DAYS + 0.1)
    points = stored(history, check)
    assert min(points) == START and len(points) == DAYS  # the table's 60 days, not 98 (or 80) with zeros
    assert 0 not in points.values()
    # A normal day is judged against the table's real level, not a band dragged down by invented zeros.
    assert result.status == "pass", result.message
    assert result.observed["value"] == orders_per_day(DAYS - 1)
    assert result.observed["low"] > orders_per_day(DAYS - 1) / 2


def test_a_day_without_rows_after_the_start_is_a_zero(db: Database, orders: str, history: MetricRepo) -> None:
    quiet = START + timedelta(days=20)
    db.execute(f"DELETE FROM {orders} WHERE created_at >= '{quiet:%Y-%m-%d} 00:00:00' "
               f"AND created_at < '{quiet + timedelta(days=1):%Y-%m-%d} 00:00:00'")
    run(db, orders, history, DAILY, day=DAYS + 0.1)
    points = stored(history, DAILY)
    assert len(points) == DAYS and points[quiet] == 0


def test_a_sum_backfills_without_nulls_or_zeros(db: Database, orders: str, history: MetricRepo) -> None:
    # Before the table's first row a SUM is NULL: no longer an error on the first run, and no invented 0.
    revenue = {**DAILY, "name": "revenue", "metric": "SUM(amount)"}
    result = run(db, orders, history, revenue, day=DAYS + 0.1)
    assert result.status == "pass", result.message
    assert len(stored(history, revenue)) == DAYS


def test_a_table_that_starts_later_than_the_judged_day(db: Database, orders: str, history: MetricRepo) -> None:
    early = run(db, orders, history, DAILY, day=-3)
    assert early.status == "skipped"
    assert early.message == "no value for Thu 2026-02-26 (the table's data starts 2026-03-02 00:00 UTC)"
    assert stored(history, DAILY) == {}
    db.execute(f"DELETE FROM {orders}")
    empty = run(db, orders, history, {**DAILY, "name": "empty"}, day=DAYS + 0.1)
    assert empty.status == "skipped" and "(the table has no rows yet)" in empty.message


def bound(sql: str, dialect: str) -> tuple[type[exp.Expr], str]:
    """The statement's one condition on the time column: its operator and the literal it compares with."""
    (cond,) = [c for c in sqlglot.parse_one(sql, read=dialect).find_all(exp.LT, exp.GTE)]
    # The raw column, no datetime() or cast around it: an index, BRIN or partition pruning can serve it.
    assert isinstance(cond.this, exp.Column) and cond.this.name == "created_at", sql
    assert isinstance(cond.expression, exp.Literal), sql
    return type(cond), cond.expression.this


def test_the_first_row_is_looked_for_within_the_backfill_window(db: Database, orders: str,
                                                                 history: MetricRepo) -> None:
    result = run(db, orders, history, DAILY, day=DAYS + 0.1)
    # The window: the 98 days of the training window up to the judged day (START + 59), in the column's form.
    start = START + timedelta(days=DAYS - 1 - 97)
    literal = f"{start:%Y-%m-%d} 00:00:00" + ("" if db.dialect == "sqlite" else "+00:00")
    older, earliest = result.sql[:2]
    assert bound(older, db.dialect) == (exp.LT, literal) and "LIMIT 1" in older.upper()
    assert bound(earliest, db.dialect) == (exp.GTE, literal) and "MIN(" in earliest.upper()
    assert min(stored(history, DAILY)) == START  # still the table's first day


def test_a_table_older_than_the_window_needs_no_minimum(db: Database, orders: str, history: MetricRepo) -> None:
    check = {**DAILY, "backfill": 20}
    result = run(db, orders, history, check, day=DAYS + 0.1)
    # Rows exist before the window's start: the one probe for them is enough, no MIN over the table.
    assert bound(result.sql[0], db.dialect)[0] is exp.LT
    assert not any("MIN(" in sql.upper() for sql in result.sql), result.sql
    points = stored(history, check)
    assert min(points) == START + timedelta(days=DAYS - 20) and len(points) == 20


def test_a_first_run_timeout_says_what_to_do(db: Database, orders: str, history: MetricRepo) -> None:
    if db.dialect != "postgres":
        pytest.skip("a statement timeout on a slow table needs a server (pg_sleep)")
    slow = f"{orders}_slow"
    db.execute(f"CREATE VIEW {slow} AS SELECT * FROM {orders} WHERE pg_sleep(0.5) IS NOT NULL")
    try:
        for _ in range(2):  # the history stays empty: the next run is a first run again, failing the same way
            result = run(db, slow, history, DAILY, day=DAYS + 0.1, timeout=timedelta(milliseconds=100))
            assert result.status == "error"
            assert "the first run (no history stored yet) could not find where the table's data starts" \
                   in result.message, result.message
            assert "statement timeout" in result.message
            assert "index 'created_at'" in result.message and "smaller 'backfill' (now 98 buckets)" in result.message
            assert stored(history, DAILY) == {}
    finally:
        db.conn.rollback()
        db.execute(f"DROP VIEW {slow}")

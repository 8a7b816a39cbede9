"""A metric's first run backfills only the buckets the table has data for: days before its first row are
no data (not zeros that would teach the model a level that never was), while a day without rows after the
table started is a real zero for a count. On SQLite and PostgreSQL, with a real state store."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.checks.results import CheckResult
from airflow_opsflow.checks.runner import run_suite
from airflow_opsflow.monitors.metric import Series
from airflow_opsflow.state.metrics import MetricRepo
from airflow_opsflow.state.store import StateStore
from tests.conftest import Database
from tests.monitors.orders import START, create_orders, orders_per_day

DAYS = 60  # the table's whole history: less than the default backfill (the 98-day training window)
DAILY = {"kind": "metric", "name": "daily_orders", "metric": "COUNT(*)", "time_column": "created_at",
         "seasonality": "day_of_week"}


@pytest.fixture
def orders(db: Database) -> Iterator[str]:
    table = create_orders(db, days=DAYS)
    yield table
    db.execute(f"DROP TABLE {table}")


@pytest.fixture
def history(db: Database, tmp_path: Any, pg_uri: str) -> Iterator[MetricRepo]:
    if db.dialect == "sqlite":
        store = StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite")
    else:
        import psycopg2

        store = StateStore(lambda: psycopg2.connect(pg_uri), "postgres", prefix=f"h{uuid.uuid4().hex[:6]}_")
    yield MetricRepo(store)
    store.close()


def run(db: Database, table: str, history: MetricRepo, check: dict[str, Any], day: float) -> CheckResult:
    suite = load_suite({"table": table, "checks": [check]})
    at = (START + timedelta(days=day)).replace(tzinfo=UTC)
    (result,) = run_suite(db.conn, suite, db.dialect, history=history, history_key="dag/task", metrics_at=at)
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

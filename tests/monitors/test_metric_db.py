"""Metric checks on real databases (SQLite and PostgreSQL) with the history in a real state store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.flows.check_suite import run_suite
from airflow_opsflow.monitors.repo import MetricRepo
from tests.conftest import Database
from tests.monitors.orders import DROP_DAY, START, create_orders, orders_per_day


@pytest.fixture
def orders(db: Database) -> Iterator[str]:
    table = create_orders(db)
    yield table
    db.execute(f"DROP TABLE {table}")


def run(db: Database, table: str, history: MetricRepo, checks: list[dict[str, Any]], day: float,
        sql: list[str] | None = None) -> dict[str, CheckResult]:
    suite = load_suite({"table": table, "checks": checks})
    at = (START + timedelta(days=day)).replace(tzinfo=UTC)
    results = run_suite(db.conn, suite, db.dialect, history=history, history_key="dag/task", metrics_at=at)
    return {r.name: r for r in results}


DAILY = {"kind": "metric", "name": "daily_orders", "metric": "COUNT(*)", "time_column": "created_at",
         "seasonality": "day_of_week", "training": 14}


def points(history: MetricRepo) -> int:
    with history.store.transaction() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {history.points}")
        return int(cur.fetchone()[0])


def test_first_run_backfills_later_runs_add_a_bucket(db: Database, orders: str, history: MetricRepo) -> None:
    first = run(db, orders, history, [DAILY], day=DROP_DAY - 1 + 0.1)["daily_orders"]
    assert first.status == "pass", first.message
    assert points(history) == 98  # the training window: 14 weeks of days
    assert len(first.sql) == 3  # where the table's data starts, then 98 buckets in queries of 50
    assert first.observed["value"] == orders_per_day(DROP_DAY - 2)  # the newest complete day
    assert first.observed["low"] < first.observed["value"] < first.observed["high"]

    drop = run(db, orders, history, [DAILY], day=DROP_DAY + 1.1)["daily_orders"]
    assert points(history) == 100  # the two days since, not the whole window again
    assert drop.status == "fail" and drop.violating_count == 1
    assert drop.observed["value"] == 20 and drop.observed["z"] < -3
    assert "below the expected" in drop.message and "Mon 2026-06-15" in drop.message

    retry = run(db, orders, history, [DAILY], day=DROP_DAY + 1.1)["daily_orders"]
    assert points(history) == 100
    assert retry.status == "fail" and retry.observed == drop.observed  # a retry judges the same way

    after = run(db, orders, history, [DAILY], day=DROP_DAY + 2.1)["daily_orders"]
    assert after.status == "pass"  # the outage was left out of training: the next day is normal again


def test_segments_are_series_of_their_own(db: Database, orders: str, history: MetricRepo) -> None:
    spec = {**DAILY, "name": "by_country", "segment_by": "country", "sample_limit": 5}
    result = run(db, orders, history, [spec], day=DROP_DAY + 1.1)["by_country"]
    assert result.status == "fail"
    assert result.observed["series"] == 2 and result.observed["anomalous"] == 2
    assert {s["country"] for s in result.samples} == {"DE", "FR"}
    assert all(s["value"] < s["low"] for s in result.samples)

    capped = run(db, orders, history, [{**spec, "name": "capped", "max_series": 1}], day=DROP_DAY + 1.1)["capped"]
    assert capped.status == "error" and "max_series=1" in capped.message


def test_time_zone_decides_which_day_a_row_belongs_to(db: Database, orders: str, history: MetricRepo) -> None:
    db.execute(f"DELETE FROM {orders}",
               f"INSERT INTO {orders} VALUES (1, '2026-03-09 22:30:00', 'DE', 1)",  # 23:30 in Berlin: the 9th
               f"INSERT INTO {orders} VALUES (2, '2026-03-09 23:30:00', 'DE', 1)")  # 00:30 in Berlin: the 10th
    spec = {**DAILY, "name": "berlin", "timezone": "Europe/Berlin", "seasonality": None, "backfill": 2}
    result = run(db, orders, history, [spec], day=9.5)["berlin"]  # 2026-03-11 12:00 UTC: the 10th is complete
    assert result.observed["value"] == 1 and "2026-03-10" in result.observed["bucket"]
    utc = run(db, orders, history, [{**spec, "name": "utc", "timezone": "UTC"}], day=9.5)["utc"]
    assert utc.observed["value"] == 0  # in UTC both rows fall on the 9th


def test_a_per_run_metric_waits_for_history(db: Database, orders: str, history: MetricRepo) -> None:
    spec = {"kind": "metric", "name": "revenue", "sql": f"SELECT SUM(amount) FROM {orders}", "min_training": 3,
            "training": 5, "trend": False}
    statuses = [run(db, orders, history, [spec], day=d)["revenue"].status for d in range(4)]
    assert statuses == ["skipped", "skipped", "skipped", "pass"]
    assert "insufficient history" in run(db, orders, history, [{**spec, "name": "other"}], day=0)["other"].message
    db.execute(f"UPDATE {orders} SET amount = amount * 3")
    assert run(db, orders, history, [spec], day=4)["revenue"].status == "fail"


@pytest.mark.parametrize(("spec", "message"), [
    ({"metric": "SUM(amount)", "where": "1 = 0"}, "COALESCE"),
    ({"metric": "MAX(country)"}, "not a number"),
    ({"metric": "amount + 1"}, "must aggregate"),
    ({"metric": "COUNT(*), SUM(amount)"}, "one aggregate expression"),
    ({"sql": "SELECT country, COUNT(*) FROM {t} GROUP BY country HAVING 1 = 0"}, "no rows"),
    ({"sql": "SELECT id FROM {t} WHERE id < 5"}, "no segment column"),
    ({"sql": "SELECT country, 1 FROM {t} WHERE id < 5"}, "twice"),
])
def test_bad_metrics_are_clear_errors(db: Database, orders: str, history: MetricRepo, spec: dict[str, Any],
                                      message: str) -> None:
    from airflow_opsflow.checks.loader import CheckSpecError

    spec = {k: v.format(t=orders) for k, v in spec.items()}
    try:
        result = run(db, orders, history, [{"kind": "metric", "name": "m", **spec}], day=50)["m"]
    except CheckSpecError as e:  # a metric that is no aggregate is refused when the spec is loaded
        assert "field 'metric'" in str(e) and message in str(e), str(e)
        return
    assert result.status == "error" and message in result.message, result.message


def test_without_a_state_store_a_metric_is_an_error(db: Database, orders: str) -> None:
    suite = load_suite({"table": orders, "checks": [DAILY]})
    (result,) = run_suite(db.conn, suite, db.dialect)
    assert result.status == "error" and "state_conn_id" in result.message


def test_a_state_database_lost_mid_run_is_a_named_check_error(sqlite_db: Database, pg_uri: str) -> None:
    """The metric history's connection is terminated between two runs: the check is an error naming the state
    database, not a raw driver exception out of the runner."""
    import psycopg2

    from airflow_opsflow.state.store import StateStore

    table = create_orders(sqlite_db)
    store = StateStore(lambda: psycopg2.connect(pg_uri), "postgres", prefix="lost_", label="connection 'ops_state'")
    history = MetricRepo(store)
    assert run(sqlite_db, table, history, [DAILY], day=60)["daily_orders"].status != "error"
    with psycopg2.connect(pg_uri) as admin, admin.cursor() as cur:  # the store keeps its connection: kill it
        cur.execute("SELECT pg_terminate_backend(%s)", (store._conn.get_backend_pid(),))
    result = run(sqlite_db, table, history, [DAILY], day=61)["daily_orders"]
    assert result.status == "error"
    assert "the state database (connection 'ops_state') lost the connection" in result.message
    store.close()

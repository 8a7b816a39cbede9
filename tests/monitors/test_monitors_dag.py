"""Metric and calendar-freshness checks in real DAG runs: history across runs, one alert per anomaly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.slack_server import FakeSlack

from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name
from tests.monitors.orders import DROP_DAY, START, create_orders

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
dags = load_module(DAGS / "monitors.py")


@pytest.fixture
def orders(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":  # a fresh state store: no history or incidents from earlier tests
        db.execute("DROP TABLE IF EXISTS opsflow_metric_points, opsflow_metric_series, opsflow_incidents, "
                   "opsflow_deliveries, opsflow_schema_version")
    table = create_orders(db)  # the runs below are in its time span: each is judged at its own time
    yield table
    db.execute(f"DROP TABLE {table}")


def on_day(day: float) -> pendulum.DateTime:
    return pendulum.instance((START + timedelta(days=day)).replace(tzinfo=UTC))


def test_an_anomaly_alerts_once_and_resolves(db: Database, orders: str, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": db.conn_id, "table": orders}
    first = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY - 1.1))
    assert first.task_states == {"daily_orders": "success"}
    results = results_by_name(first.xcom("daily_orders"))
    assert results["orders_per_day"]["status"] == "pass"
    assert results["orders_per_day"]["observed"]["bucket"] == "Fri 2026-06-12"
    assert results["orders_arrive"]["status"] == "pass"
    assert fake_slack.messages("#data-quality") == []

    drop = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 1.1))
    assert drop.task_states == {"daily_orders": "failed"}
    assert drop.tries["daily_orders"] == 1  # a data failure is not retried
    result = results_by_name(drop.xcom("daily_orders", key="results"))["orders_per_day"]
    assert result["observed"]["value"] < 40 and result["observed"]["bucket"] == "Mon 2026-06-15"  # Berlin days
    [alert] = fake_slack.messages("#data-quality")
    assert "orders_per_day" in (alert.text or "") and "below the expected" in (alert.text or "")

    again = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 1.1),
                    run_after=on_day(DROP_DAY + 1.1) + timedelta(minutes=1))  # a manual re-run, not a retry
    assert again.task_states == {"daily_orders": "failed"}
    assert len(fake_slack.messages("#data-quality")) == 1  # the incident is open: no second alert

    recovered = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 2.1))
    assert recovered.task_states == {"daily_orders": "success"}
    assert results_by_name(recovered.xcom("daily_orders"))["orders_per_day"]["observed"]["bucket"] == \
        "Tue 2026-06-16"
    thread = fake_slack.thread("#data-quality", alert.ts)
    assert (thread[-1].text or "").startswith(":white_check_mark: Resolved: orders_per_day")


def test_late_data_misses_the_business_day_deadline(db: Database, orders: str, fake_slack: FakeSlack) -> None:
    friday = pendulum.datetime(2026, 6, 19, tz="Europe/Berlin")
    db.execute(f"DELETE FROM {orders} WHERE created_at >= '{friday.in_timezone('UTC'):%Y-%m-%d %H:%M:%S}'")
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id, "table": orders},
                  logical_date=friday.add(hours=9))  # Friday 09:00 Berlin: nothing of Friday's by 06:00
    assert run.task_states == {"daily_orders": "failed"}
    result = results_by_name(run.xcom("daily_orders", key="results"))["orders_arrive"]
    assert result["status"] == "fail" and "06:00 Europe/Berlin deadline" in result["message"]
    [alert] = fake_slack.messages("#data-quality")
    assert "orders_arrive" in (alert.text or "")

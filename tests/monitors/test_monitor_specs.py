"""Monitor kinds and entity tracking in YAML specs: they load like the other kinds, and bad input is named
(check, field) at DAG parse time."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.checks.monitor_spec import MetricCheck, ReconcileCheck
from airflow_opsflow.checks.spec import FreshnessCheck, SqlCheck

YAML = """
tables:
  - table: orders
    checks:
      - kind: metric
        name: revenue_per_day
        metric: SUM(amount)
        time_column: created_at
        timezone: Europe/Berlin
        seasonality: day_of_week
        segment_by: [country]
        max_series: 20
        method: robust
        direction: drop
        min_relative_change: 5%
      - kind: freshness
        column: created_at
        deadline: 06:00
        calendar: {timezone: Europe/Berlin, business_days: [mon, tue, wed, thu, fri], holidays: [2026-12-25]}
  - checks:
      - kind: sql
        name: stuck_deliveries
        severity: warn
        sql: SELECT delivery_id, value_eur, shipped_at FROM deliveries WHERE status = 'in_transit'
        entity: {key: delivery_id, amount: value_eur, since: shipped_at, sla: 2d, escalate_above: 5000,
                 noun: stuck delivery}
      - kind: reconcile
        name: ledger_vs_settlements
        left: {conn_id: ledger, table: payments, label: ledger}
        right: {conn_id: warehouse, sql: "SELECT payment_id AS id, amount FROM settlements"}
        key: id
        compare: [{column: amount, tolerance: 0.01}]
        fail_above: 0.1%
"""


def test_a_yaml_suite_with_every_monitor_kind() -> None:
    suite = load_suite(YAML)
    metric, fresh = suite.tables[0].checks
    stuck, reconcile = suite.tables[1].checks
    assert isinstance(metric, MetricCheck) and metric.segment_by == ["country"] and metric.min_relative_change == 0.05
    assert isinstance(fresh, FreshnessCheck) and fresh.deadline == time(6) and fresh.business_calendar() is not None
    assert isinstance(stuck, SqlCheck) and stuck.entity is not None
    assert (stuck.entity.key, stuck.entity.sla, stuck.entity.plural_noun) == (["delivery_id"], timedelta(days=2),
                                                                             "stuck deliveries")
    assert isinstance(reconcile, ReconcileCheck) and reconcile.right.conn_id == "warehouse"
    assert load_suite(suite.model_dump(by_alias=True, exclude_defaults=True)) == suite  # round-trips


def test_a_metric_calendar_takes_its_zone_and_adds_holidays() -> None:
    suite = load_suite([{"kind": "metric", "name": "payments", "metric": "COUNT(*)", "time_column": "t",
                         "seasonality": "day_of_week", "calendar": {"timezone": "Europe/Berlin", "country": "DE"},
                         "events": ["last_business_day", {"name": "payday", "day_of_month": 25}]}], table="p")
    (check,) = suite.tables[0].checks
    assert isinstance(check, MetricCheck) and check.timezone == "Europe/Berlin"  # the calendar's zone
    assert [e.name for e in check.calendar_events()] == ["holiday", "last_business_day", "payday"]
    assert check.detection().training == 14 and check.detection().transform == "auto"


@pytest.mark.parametrize(("check", "message"), [
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "timezone": "Mars/Olympus"},
     "check #1 (metric): field 'timezone': unknown time zone 'Mars/Olympus'"),
    ({"kind": "freshness", "column": "t", "deadline": "06:00", "calendar": {"timezone": "Europe/Berlinn"}},
     "unknown time zone 'Europe/Berlinn'"),
    ({"kind": "metric", "metric": "COUNT(*)", "seasonality": "hour_of_day", "time_column": "t"},
     "hour_of_day"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "events": ["monthend"]},
     "field 'events.0': unknown event 'monthend': a bare name is one of month_end, last_business_day"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "events": [{"name": "payday"}]},
     "event 'payday' needs exactly one of day_of_month (1-31) and dates"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t",
      "events": [{"name": "payday", "day_of_month": 25, "dates": ["2026-01-01"]}]}, "exactly one of day_of_month"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "events": [{"name": "payday", "day_of_month": 32}]},
     "field 'events.0.day_of_month'"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "events": ["month_end", {"name": "month_end"}]},
     "events are named twice: month_end"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "timezone": "UTC",
      "calendar": {"timezone": "Europe/Berlin"}}, "calendar.timezone 'Europe/Berlin' differs from timezone 'UTC'"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "calendar": {"business_hours": "09:00-17:00"}},
     "calendar.business_hours does not apply to a metric check"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "bucket": "week", "events": ["month_end"]},
     "calendar events need hour or day buckets"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "calendar": {"country": "XX"}},
     "country 'XX' is not known to the holidays library"),
    ({"kind": "metric", "metric": "COUNT(*)", "time_column": "t", "transform": "boxcox"}, "field 'transform'"),
    ({"kind": "row_count", "entity": {"key": "id"}}, "'entity' needs violating rows to track"),
    ({"kind": "not_null", "column": "id", "entity": {"key": ["id", "ID"]}}, "entity columns must differ"),
    ({"kind": "not_null", "column": "id", "entity": {"key": "id", "sla": "soon"}}, "field 'entity.sla'"),
    ({"kind": "not_null", "column": "id", "entity": {"key": "id; drop table x"}}, "contains SQL syntax"),
    ({"kind": "reconcile", "left": {"table": "a"}, "right": {"table": "b", "sql": "select 1"}, "key": "id"},
     "give exactly one of 'table' and 'sql'"),
])
def test_bad_monitor_specs_are_named(check: dict[str, object], message: str) -> None:
    with pytest.raises(CheckSpecError) as e:
        load_suite([check], table="orders", context="dag 'ops', task 'monitor'")
    assert message in str(e.value) and "dag 'ops', task 'monitor'" in str(e.value)

"""A metric's message says where the value lies, in words that match the numbers it shows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.flows.check_suite import run_suite
from airflow_opsflow.monitors.detect import Verdict
from airflow_opsflow.monitors.metric import _sentence
from airflow_opsflow.monitors.repo import MetricRepo
from airflow_opsflow.state.store import StateStore

START = datetime(2026, 3, 2)  # a Monday


def test_a_value_just_outside_the_band_reads_as_outside() -> None:
    v = Verdict("anomalous", 217.46, expected=201.3, low=185.2, high=217.4, z=3.01)
    text = _sentence(v, "Mon 2026-06-15", "orders")  # not "217 ... above the expected 185 to 217"
    assert text.startswith("217.5 for Mon 2026-06-15, above the expected 185.2 to 217.4 (+3.0 sigma")
    below = Verdict("anomalous", 185.1, expected=201.3, low=185.14, high=217.4, z=-3.01)
    assert _sentence(below, "Mon", "orders").startswith("185.10 for Mon, below the expected 185.14 to 217.40")
    inside = Verdict("ok", 217.3, expected=201.3, low=185.2, high=217.4, z=2.9)
    assert _sentence(inside, "Mon", "orders") == "217 for Mon, within the expected 185 to 217"


def test_outside_the_band_but_not_alerted_says_why() -> None:
    spike = Verdict("ok", 218.0, expected=201.0, low=185.4, high=216.6, z=3.3, reason="only drops are watched")
    assert _sentence(spike, "Mon", "orders") == \
        "218 for Mon, above the expected 185 to 217 but not an anomaly (only drops are watched)"


def orders_table(conn: sqlite3.Connection, last: int) -> None:
    conn.execute("CREATE TABLE orders (created_at TIMESTAMP)")
    for day in range(63):
        n = 200 + (day * 37) % 11 - 5 if day < 62 else last  # a steady ~200 a day, then the judged day
        conn.executemany("INSERT INTO orders VALUES (?)",
                         [((START + timedelta(days=day, minutes=i)).isoformat(sep=" "),) for i in range(n)])
    conn.commit()


def judged(last: int, **rule: Any) -> str:
    conn = sqlite3.connect(":memory:")
    orders_table(conn, last)
    suite = load_suite({"table": "orders", "checks": [{"kind": "metric", "name": "orders", "metric": "COUNT(*)",
                                                      "time_column": "created_at", **rule}]})
    store = StateStore(lambda: sqlite3.connect(":memory:"), "sqlite")
    try:
        (r,) = run_suite(conn, suite, "sqlite", history=MetricRepo(store), history_key="t",
                         metrics_at=(START + timedelta(days=63, hours=1)).replace(tzinfo=UTC))
    finally:
        store.close()
    assert r.status == "pass", r.message
    return r.message


def test_a_real_run_outside_the_band_that_passes_says_so() -> None:
    spike = judged(230, direction="drop")
    assert spike.startswith("230 for Sun 2026-05-03, above the expected"), spike
    assert spike.endswith("but not an anomaly (only drops are watched)")
    small = judged(230, min_relative_change="20%")
    assert "above the expected" in small and "within" not in small
    assert "below the minimum change of 20%" in small and "(+15.0%" not in small

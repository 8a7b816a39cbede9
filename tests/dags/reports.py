"""Test DAGs: ReportOperator's failure modes (a failing source, too large, a destination down, empty, transform)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.notifications.reports import EmailReport, SlackReport
from airflow_opsflow.operators.report import ReportOperator

QUERY = "SELECT id, provider, status, amount FROM payments"
START = pendulum.datetime(2024, 1, 1, tz="UTC")
PARAMS = {"conn_id": Param("opsflow_sqlite", type="string"), "warehouse_conn_id": Param("opsflow_pg", type="string")}


def both() -> list[Any]:
    return [SlackReport(channel="#ops"), EmailReport(to="ops@example.com")]


def failed_by_provider(frames: dict[str, pd.DataFrame], context: Any) -> pd.DataFrame:
    df = frames["payments"]
    return df[df.status == "failed"].groupby("provider", as_index=False)["amount"].sum().nlargest(2, "amount")


def report(dag_id: str, **kwargs: Any) -> DAG:
    options: dict[str, Any] = {"queries": {"payments": QUERY}, "title": "Payments", "deliver": both()}
    options.update(kwargs)
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS) as dag:
        ReportOperator(task_id="report", conn_id="{{ params.conn_id }}", retry_delay=pendulum.duration(seconds=0),
                       **options)
    return dag


bad_source = report("report_bad_source", queries={
    "payments": QUERY, "settlements": {"sql": "SELECT * FROM no_such_settlements",
                                       "conn_id": "{{ params.warehouse_conn_id }}"}})
too_large = report("report_too_large", files=("csv", "xlsx"),
                   deliver=[SlackReport(channel="#ops"), EmailReport(to="ops@example.com", max_bytes=20_000)])
retried = report("report_retry", retries=1)
long = report("report_long", steps=[{"op": "sort", "by": ["id"]}])
empty = {mode: report(f"report_empty_{mode}", queries={"payments": QUERY + " WHERE amount > 1000000"},
                      on_empty=mode) for mode in ("send", "skip", "fail")}
transformed = report("report_transform", transform=failed_by_provider, deliver=[SlackReport(channel="#ops")])

"""Test DAGs: ReportOperator's failure modes (a failing source, too large, a destination down, empty, transform)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.report_deliveries import EmailReport, SlackReport

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



def awkward(dag_id: str, sql: str | dict[str, str]) -> DAG:
    """A report of one query's rows as they are, in both file formats."""
    return report(dag_id, queries={"payments": sql}, files=("csv", "xlsx"))


# Text Excel cannot hold: a control character (U+0001), a 2,000,000-character cell (the hex of a zero blob).
control_characters = awkward("report_control_characters",
                             "SELECT id, 'line' || char(1) || 'feed' AS note FROM payments WHERE id <= 3 ORDER BY id")
long_cell = awkward("report_long_cell", "SELECT 1 AS id, hex(zeroblob(1000000)) AS body UNION ALL SELECT 2, 'short'")
# A PostgreSQL time with a zone: Excel has no time zones, so the value is refused.
excel_refuses = awkward("report_excel_refuses", {"sql": "SELECT 1 AS id, TIME WITH TIME ZONE '10:00+02' AS opens",
                                                 "conn_id": "{{ params.warehouse_conn_id }}"})
# Sums of decimals in floating point: 0.1 + 0.2, and 3000.01 + 225.77 (3225.7799999999997 as a float).
float_sums = report("report_float_sums", queries={"payments": (
    "SELECT 'a' AS provider, 0.1 AS amount UNION ALL SELECT 'a', 0.2 "
    "UNION ALL SELECT 'b', 3000.01 UNION ALL SELECT 'b', 225.77")},
    steps=[{"op": "group", "by": ["provider"], "agg": {"amount": "sum"}}], files=("csv", "xlsx"))
unreachable = report("report_unreachable", queries={"payments": {"sql": QUERY, "conn_id": "opsflow_down"}}, retries=1)


def documented_example() -> DAG:
    """docs/reports.md's example as written there (its first Python block; connections ``ops_db`` and
    ``warehouse``), in a weekly DAG."""
    import airflow_opsflow  # this file is copied to a DAG folder when it runs: find the docs by the package

    text = (Path(airflow_opsflow.__file__).parents[1] / "docs" / "reports.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    with DAG("report_docs_example", schedule="0 7 * * 1", start_date=START, catchup=False) as dag:
        exec(compile(code, "docs/reports.md", "exec"), {})  # our own documentation
    return dag


documented = documented_example()

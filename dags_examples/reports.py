"""Scenarios 4, 5 and 7: reports people read, built from more than one database and delivered where they are.

* ``finance_monthly_report`` (the CFO's, on the 1st for the previous calendar month, or any
  ``period`` param): payments from the production database merged with the processor's settlements
  from the warehouse, revenue and what is still unsettled per payment provider,
  with a total row; an XLSX workbook (report and raw payments), a CSV and a bar chart, emailed to the CFO
  (finance-ops in copy) and posted to ``#finance-ops``.
* ``ops_daily_summary`` (the ops team's): yesterday's payments (a Berlin day) per provider and status as one
  table in ``#ops``, no files.

Periods are whole Berlin days before the run (``report_window``): ``last_30_days`` at 00:45 on 7 December
in Berlin (23:45 on the 6th in UTC) is 7 November to 6 December.

Connections: ``ops_db`` and ``warehouse`` (any SQL connections; DAG params), ``slack_api_default``,
``smtp_default``; the state database (``[opsflow] state_conn_id``) records deliveries so a retried task
does not send twice.
"""

from __future__ import annotations

from datetime import datetime

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.report import ReportOperator
from airflow_opsflow.report_deliveries import EmailReport, SlackReport


def report_window(end: datetime, period: str, tz: str = "Europe/Berlin") -> tuple[str, str, str, str]:
    """The period a report covers, in whole days of the business's time zone ``tz``, before ``end``: when the
    run is due (``dag_run.run_after``: set for scheduled and manual runs alike, where Airflow 3 leaves a
    manual run without a data interval), never the wall clock, so a retry reports on the same days.

    ``previous_month``: the calendar month before the one ``end`` falls in; ``last_N_days``: the N days before
    ``end``'s day (that day is not over: at 00:45 in Berlin, "the last 30 days" are the 30 days up to
    yesterday in Berlin, whatever day it is in UTC). Returns the bounds [since, until) as UTC text, as the
    sample tables store them, a label naming the first and last day, and the first day (for file names)."""
    local = pendulum.instance(end).in_timezone(tz)
    if period == "previous_month":
        until = local.start_of("month")
        since = until.subtract(months=1)
        label = since.format("MMMM YYYY")
    else:
        days = int(period.removeprefix("last_").removesuffix("_days"))
        until = local.start_of("day")
        since = until.subtract(days=days)  # calendar days: 00:00 local, also across a DST switch
        last = until.subtract(days=1)
        label = f"{since:%Y-%m-%d}" if days == 1 else f"{since:%Y-%m-%d} to {last:%Y-%m-%d}"
    utc = "%Y-%m-%d %H:%M:%S"
    return since.in_timezone("UTC").strftime(utc), until.in_timezone("UTC").strftime(utc), label, f"{since:%Y-%m-%d}"


PERIODS = ["previous_month", "last_1_days", "last_7_days", "last_30_days"]
LABEL = "{{ report_window(dag_run.run_after, params.period)[2] }}"

with DAG(
    dag_id="finance_monthly_report",
    schedule="0 7 1 * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Berlin"),
    catchup=False,
    params={"conn_id": Param("ops_db", type="string"), "warehouse_conn_id": Param("warehouse", type="string"),
            "period": Param("previous_month", enum=PERIODS)},
    user_defined_macros={"report_window": report_window},
    tags=["opsflow", "example", "reports", "finance"],
    doc_md=__doc__,
) as finance:
    ReportOperator(
        task_id="revenue_by_provider",
        conn_id="{{ params.conn_id }}",
        queries={
            "payments": "SELECT id AS payment_id, provider, status, amount FROM payments "
                        "WHERE created_at >= '{{ report_window(dag_run.run_after, params.period)[0] }}' "
                        "AND created_at < '{{ report_window(dag_run.run_after, params.period)[1] }}'",
            "settlements": {"sql": "SELECT payment_id, settled_amount FROM settlements",
                            "conn_id": "{{ params.warehouse_conn_id }}"},
        },
        steps=[
            {"op": "merge", "right": "settlements", "on": ["payment_id"], "how": "left", "into": "paid"},
            {"op": "filter", "query": "status == 'succeeded'"},
            {"op": "group", "by": ["provider"], "agg": {"payments": ["payment_id", "count"],
                                                        "revenue": ["amount", "sum"],
                                                        "settled": ["settled_amount", "sum"]}},
            {"op": "compute", "columns": {"unsettled": "revenue - settled"}},
            {"op": "sort", "by": ["revenue"], "ascending": False},
            {"op": "total"},
            {"op": "round", "decimals": 2},
        ],
        title=f"Revenue by payment provider, {LABEL}",
        description="Succeeded payments (production database) against the processor's settlements (warehouse).",
        files=("xlsx", "csv"),
        xlsx_sheets=["payments"],
        chart={"kind": "bar", "x": "provider", "y": ["revenue", "settled"], "title": "Revenue and settlements"},
        filename="revenue_by_provider_{{ report_window(dag_run.run_after, params.period)[3] }}",
        deliver=[EmailReport(to=["cfo@example.com"], cc=["finance-ops@example.com"]),
                 SlackReport(channel="#finance-ops")],
    )

with DAG(
    dag_id="ops_daily_summary",
    schedule="0 8 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Berlin"),
    catchup=False,
    params={"conn_id": Param("ops_db", type="string"), "period": Param("last_1_days", enum=PERIODS)},
    user_defined_macros={"report_window": report_window},
    tags=["opsflow", "example", "reports", "ops"],
    doc_md=__doc__,
) as daily:
    ReportOperator(
        task_id="payments_summary",
        conn_id="{{ params.conn_id }}",
        queries={"payments": "SELECT provider, status, amount FROM payments "
                             "WHERE created_at >= '{{ report_window(dag_run.run_after, params.period)[0] }}' "
                             "AND created_at < '{{ report_window(dag_run.run_after, params.period)[1] }}'"},
        steps=[
            {"op": "pivot", "index": ["provider"], "columns": "status", "values": "amount", "aggfunc": "count"},
            {"op": "total"},
        ],
        title=f"Payments per provider and status, {LABEL}",
        files=(),
        on_empty="send",
        deliver=[SlackReport(channel="#ops")],
    )

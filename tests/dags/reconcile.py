"""Test DAG: the ledger (one connection) reconciled against the processor's settlements (another)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator

with DAG("test_reconcile", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         params={"ledger_conn": Param("opsflow_sqlite", type="string"),
                 "processor_conn": Param("opsflow_pg", type="string"),
                 "settlements": Param("settlements", type="string")}) as dag:
    DataCheckOperator(
        task_id="reconcile",
        conn_id="{{ params.ledger_conn }}",
        checks=[{
            "kind": "reconcile",
            "name": "ledger_vs_processor",
            "left": {"table": "ledger"},
            "right": {"conn_id": "{{ params.processor_conn }}", "table": "{{ params.settlements }}",
                      "label": "processor"},
            "key": "payment_id",
            "compare": [{"column": "amount", "right_column": "settled_amount", "tolerance": 0.01}, "status"],
            "group_by": "currency",
            "owner": "finance-ops",
        }],
    )

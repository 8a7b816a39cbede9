"""Test DAGs: every check kind through a real DAG run, on whichever database `conn_id` names."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_opsflow.operators.data_check import DataCheckOperator

CONN = "{{ params.conn_id }}"
ARGS = {"start_date": pendulum.datetime(2024, 1, 1, tz="UTC"), "catchup": False,
        "params": {"conn_id": Param("opsflow_sqlite", type="string")}}

# One check of every kind (regex only where the dialect has it, see the *_regex DAG), all satisfied by
# the sample data after repair(); the test breaks the data and expects each one to catch it.
ALL_KINDS = [
    {"name": "rows", "kind": "row_count", "min": 1000},
    {"name": "amount_nn", "kind": "not_null", "column": "amount"},
    {"name": "id_unique", "kind": "unique", "column": "id"},
    {"name": "pay_key_unique", "kind": "unique", "columns": ["customer_id", "id"]},
    {"name": "status_known", "kind": "accepted_values", "column": "status",
     "values": ["succeeded", "failed", "refunded", "pending"]},
    {"name": "amount_range", "kind": "between", "column": "amount", "min": 0, "max": 1000},
    {"name": "created_range", "kind": "between", "column": "created_at", "min": "2000-01-01",
     "max": "2100-01-01"},
    {"name": "fresh", "kind": "freshness", "column": "created_at", "max_age": "2h"},
    {"name": "providers", "kind": "distinct_count", "column": "provider", "min": 1, "max": 3},
    {"name": "amount_positive", "kind": "expression", "expression": "amount > 0"},
    {"name": "customer_fk", "kind": "foreign_key", "column": "customer_id", "to_table": "customers",
     "to_column": "id"},
    {"name": "no_huge_refunds", "kind": "sql",
     "sql": "SELECT id FROM payments WHERE status = 'refunded' AND amount > 950"},
]

with DAG("test_check_kinds", schedule=None, **ARGS) as dag:
    DataCheckOperator(task_id="all_kinds", conn_id=CONN, table="payments", checks=ALL_KINDS)

with DAG("test_check_regex", schedule=None, **ARGS) as regex_dag:
    DataCheckOperator(task_id="regex", conn_id=CONN, table="customers", checks=[
        {"name": "email_format", "kind": "regex", "column": "email", "pattern": "^[^@ ]+@[^@ ]+$"},
    ])

with DAG("test_check_yaml", schedule=None, **ARGS) as yaml_dag:
    # A YAML file through template_ext, with a templated filter on the run's data interval.
    DataCheckOperator(task_id="from_yaml", conn_id=CONN, checks="specs/payments_window.yml")

with DAG("test_check_warn_only", schedule=None, **ARGS) as warn_dag:
    DataCheckOperator(task_id="warn_only", conn_id=CONN, table="payments", retries=2, checks=[
        {"name": "few_failed", "kind": "expression", "expression": "status <> 'failed'", "severity": "warn"},
    ])

with DAG("test_check_fail_no_retry", schedule=None, **ARGS) as fail_dag:
    DataCheckOperator(task_id="must_fail", conn_id=CONN, table="payments", retries=3,
                      retry_delay=pendulum.duration(seconds=0), checks=[
        {"name": "no_negative", "kind": "between", "column": "amount", "min": 0},
    ])

with DAG("test_check_missing_conn", schedule=None, **ARGS) as missing_conn_dag:
    DataCheckOperator(task_id="nowhere", conn_id="no_such_connection", table="payments",
                      checks=[{"kind": "row_count"}])

with DAG("test_check_unreachable", schedule=None, **ARGS) as unreachable_dag:
    # Retryable: a database that is down now may be up at the next try.
    DataCheckOperator(task_id="unreachable", conn_id=CONN, table="payments", retries=1,
                      retry_delay=pendulum.duration(seconds=0), checks=[{"kind": "row_count"}])

"""Bad specs fail when Airflow parses the DAG file, naming the DAG, task, check and field."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("airflow_db")

HEADER = """
import pendulum
from airflow.sdk import DAG
from airflow_opsflow.operators.data_check import DataCheckOperator
from airflow_opsflow.sensors.data_condition import DataConditionSensor
with DAG("payments_dag", schedule=None, start_date=pendulum.datetime(2024, 1, 1)):
"""


def import_errors(folder: Path, body: str, files: dict[str, str] | None = None) -> str:
    from airflow.dag_processing.dagbag import DagBag

    (folder / "bad_dag.py").write_text(HEADER + body)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    bag = DagBag(dag_folder=str(folder))
    return "\n".join(bag.import_errors.values())


@pytest.mark.parametrize("body,expected", [
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="payments", '
     'checks=[{"name": "x", "kind": "not_nul", "column": "a"}])',
     "invalid check spec in dag 'payments_dag', task 'chk':\n  - table 'payments', check 'x' (not_nul): "
     "field 'kind': unknown check kind 'not_nul'"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="payments", '
     'checks=[{"name": "amt", "kind": "between", "column": "amount", "min": 0, "fail_above": "lots"}])',
     "check 'amt' (between): field 'fail_above': expected a row count (e.g. 0) or a share (e.g. '0.1%')"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="payments", '
     'checks=[{"kind": "not_null", "column": "amount; drop table x"}])',
     "field 'column': column 'amount; drop table x' is not a valid identifier (it contains SQL syntax)"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="payments", checks=[], fail_on=["oops"])',
     "dag 'payments_dag', task 'chk': fail_on has unknown statuses ['oops']"),
    ('    DataConditionSensor(task_id="wait", conn_id="db", table="t", sql="select 1")',
     "task 'wait': give exactly one of sql, table or checks (got ['sql', 'table'])"),
])
def test_bad_inline_specs(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in import_errors(tmp_path, body)


def test_bad_yaml_file_is_caught_at_parse(tmp_path: Path) -> None:
    errors = import_errors(
        tmp_path,
        '    DataCheckOperator(task_id="from_file", conn_id="db", checks="payments.yml")',
        {"payments.yml": "table: payments\nwhere: \"day = '{{ ds }}'\"\nchecks:\n"
                         "  - name: fresh\n    kind: freshness\n    column: created_at\n    max_age: soon\n"},
    )
    assert "invalid check spec in dag 'payments_dag', task 'from_file'" in errors
    assert "check 'fresh' (freshness): field 'max_age': cannot read duration 'soon'" in errors


def test_good_templated_yaml_parses(tmp_path: Path) -> None:
    assert import_errors(
        tmp_path,
        '    DataCheckOperator(task_id="from_file", conn_id="db", checks="payments.yml")',
        {"payments.yml": "table: \"{{ params.table }}\"\nwhere: \"day = '{{ ds }}'\"\nchecks:\n"
                         "  - kind: not_null\n    column: amount\n"},
    ) == ""


def test_templated_value_that_only_renders_at_run_time_is_not_an_error(tmp_path: Path) -> None:
    assert import_errors(
        tmp_path,
        '    DataCheckOperator(task_id="from_file", conn_id="db", checks="rows.yml")',
        {"rows.yml": "table: payments\nchecks:\n  - kind: row_count\n    min: \"{{ params.min_rows }}\"\n"},
    ) == ""

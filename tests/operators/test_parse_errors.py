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


# -- issue 16, point 5: all of it at parse time ---------------------------------------------------------


@pytest.mark.parametrize("body,expected", [
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="p", checks=[{"kind": "row_count"}], '
     'statement_timeout="0.0001s")',
     "invalid check spec in dag 'payments_dag', task 'chk':\n  - field 'statement_timeout': statement timeout "
     "'0.0001s' is below 1 ms"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="p", checks=[{"kind": "row_count"}], '
     'statement_timeout=float("inf"))',
     "task 'chk':\n  - field 'statement_timeout': duration inf is too long"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="p", where="day = \'{{ ds\'", '
     'checks=[{"kind": "row_count"}])',
     "task 'chk':\n  - field 'where': broken Jinja template"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="p", '
     'checks=[{"name": "e", "kind": "expression", "expression": "{{ a"}])',
     "field 'checks[0].expression': broken Jinja template"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="p", '
     'checks=[{"name": "e", "kind": "expression", "expression": "1=1; DROP TABLE t"}])',
     "table 'p', check 'e' (expression): field 'expression': the condition must be a single SQL condition"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="a..b", checks=[{"kind": "row_count"}])',
     "field 'table': table 'a..b' is not a valid name"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", '
     'checks=[{"name": "kill", "kind": "sql", "sql": "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"}])',
     "check 'kill' (sql): field 'sql': calls refused function(s): pg_terminate_backend"),
    ('    DataCheckOperator(task_id="chk", conn_id="db", table="p", checks=[{"kind": "row_count"}], '
     'allow_functions="set_config")',
     "field 'allow_functions': expected a list of function names"),
    ('    DataConditionSensor(task_id="wait", conn_id="db", sql="SELECT dblink_exec(\'c\', \'DELETE FROM t\')")',
     "task 'wait':\n  - field 'sql': calls refused function(s): dblink_exec"),
    ('    DataConditionSensor(task_id="wait", conn_id="db", table="t", freshness_column="c", max_age=float("inf"))',
     "task 'wait':\n  - field 'max_age': duration inf is too long"),
    ('    DataConditionSensor(task_id="wait", conn_id="db", checks=[{"kind": "sql", "sql": "SELECT 1; SELECT 2"}])',
     "check 'sql' (sql): field 'sql': the query must be exactly one query"),
])
def test_bad_specs_fail_at_parse(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in import_errors(tmp_path, body)


@pytest.mark.parametrize("yaml_text,expected", [
    ("table: p\nchecks:\n  - name: f\n    kind: freshness\n    column: a\n    deadline: 25:00\n",
     "check 'f' (freshness): field 'deadline': deadline '25:00' is not a time of day"),
    ("table: p\nchecks:\n  - kind: row_count\n    min: 1\n    min: 2\n", "duplicate key 'min' (line 5"),
    ("table: p\nwhere: \"day = '{{ ds '\"\nchecks:\n  - kind: row_count\n", "field 'checks': broken Jinja template"),
    ("table: p\nchecks:\n  - name: b\n    kind: between\n    column: a\n    min: 5\n    max: 1\n",
     "check 'b' (between): min (5) is greater than max (1)"),
])
def test_bad_yaml_files_fail_at_parse(tmp_path: Path, yaml_text: str, expected: str) -> None:
    errors = import_errors(tmp_path, '    DataCheckOperator(task_id="from_file", conn_id="db", checks="c.yml")',
                           {"c.yml": yaml_text})
    assert "invalid check spec in dag 'payments_dag', task 'from_file'" in errors and expected in errors, errors


def test_missing_yaml_file_fails_at_parse(tmp_path: Path) -> None:
    errors = import_errors(tmp_path, '    DataCheckOperator(task_id="from_file", conn_id="db", '
                                     'checks="checks/missing.yml")')
    assert "invalid check spec in dag 'payments_dag', task 'from_file'" in errors
    assert "field 'checks': check file 'checks/missing.yml' not found (paths are relative to the DAG's folder" in errors
    assert str(tmp_path) in errors


def test_opt_out_and_templated_sql_parse(tmp_path: Path) -> None:
    assert import_errors(tmp_path, (
        '    DataCheckOperator(task_id="chk", conn_id="db", allow_functions=["set_config"], '
        'checks=[{"kind": "sql", "sql": "SELECT set_config(\'a\', \'b\', true) WHERE 1 = 0"}])\n'
        '    DataCheckOperator(task_id="templated", conn_id="db", table="{{ params.t }}", '
        'where="amount {{ params.op }} 0", checks=[{"kind": "expression", "expression": "{{ params.e }}"}])\n'
    )) == ""


def test_spec_error_at_run_time_fails_without_retry_and_before_any_query(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """A templated condition renders into two statements: the task fails once, with the spec error, and
    never opens the connection (nothing listens on it: a connection attempt would be a retryable error)."""
    import socket

    from airflow_opsflow_testing.dag_runner import run_dag

    from tests.helpers import DAGS, load_module

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_NOWHERE", f"postgresql://u:pw@127.0.0.1:{port}/db")
    run = run_dag(load_module(DAGS / "spec_errors.py").dag)
    out = capfd.readouterr()
    text = out.out + out.err
    assert run.task_states == {"bad_at_run": "failed"}
    assert run.tries["bad_at_run"] == 1  # not retried: a spec does not heal
    assert "invalid check spec in dag 'test_spec_error_at_run_time', task 'bad_at_run'" in text
    assert "field 'where': the condition must be a single SQL condition" in text
    assert "Connection refused" not in text and "cannot open connection" not in text

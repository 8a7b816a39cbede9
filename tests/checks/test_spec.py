"""Spec validation: every bad input names the check and the field (no Airflow, no database)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_opsflow.checks.durations import format_duration, parse_duration
from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.checks.spec import NotNullCheck, TableChecks, Tolerance

CTX = "dag 'ops', task 'check_payments'"


def _error(spec: object, **kw: object) -> str:
    with pytest.raises(CheckSpecError) as info:
        load_suite(spec, context=CTX, **kw)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith(f"invalid check spec in {CTX}:")
    return text


def test_dicts_objects_and_yaml_give_the_same_suite(tmp_path: Path) -> None:
    as_dict = {"table": "payments", "checks": [{"kind": "not_null", "column": "amount", "fail_above": "1%"}]}
    as_objects = TableChecks(table="payments", checks=[NotNullCheck(kind="not_null", column="amount",
                                                                    fail_above=Tolerance(share=0.01))])
    yaml_text = "table: payments\nchecks:\n  - kind: not_null\n    column: amount\n    fail_above: 1%\n"
    (tmp_path / "s.yml").write_text(yaml_text)
    suites = [load_suite(as_dict), load_suite(as_objects), load_suite(yaml_text),
              load_suite(str(tmp_path / "s.yml")), load_suite(as_dict["checks"], table="payments")]
    assert all(s == suites[0] for s in suites)
    check = suites[0].tables[0].checks[0]
    assert check.name == "not_null_amount"
    assert check.fail_tolerance() == Tolerance(share=0.01)


def test_unknown_kind_lists_the_kinds() -> None:
    text = _error({"table": "p", "checks": [{"name": "x", "kind": "not_nul", "column": "a"}]})
    assert "check 'x' (not_nul): field 'kind': unknown check kind 'not_nul'; expected one of: row_count" in text


def test_missing_kind() -> None:
    assert "field 'kind': missing 'kind'" in _error({"table": "p", "checks": [{"column": "a"}]})


def test_missing_and_wrong_typed_fields_are_named() -> None:
    text = _error({"table": "p", "checks": [
        {"name": "a", "kind": "not_null"},
        {"name": "b", "kind": "row_count", "min": "many"},
        {"name": "c", "kind": "accepted_values", "column": "s", "values": []},
        {"name": "d", "kind": "between", "column": "x"},
        {"name": "e", "kind": "not_null", "column": "x", "colour": "red"},
    ]})
    assert "table 'p', check 'a' (not_null): field 'column': Field required" in text
    assert "check 'b' (row_count): field 'min': Input should be a valid integer" in text
    assert "check 'c' (accepted_values): field 'values': List should have at least 1 item" in text
    assert "check 'd' (between): give at least one of 'min' and 'max'" in text
    assert "check 'e' (not_null): field 'colour': unknown field" in text


@pytest.mark.parametrize("field,spec", [
    ("column", {"kind": "not_null", "column": "amount; drop table x"}),
    ("column", {"kind": "not_null", "column": "amount -- x"}),
    ("columns", {"kind": "unique", "columns": ["id\"; delete from t; --"]}),
    ("to_table", {"kind": "foreign_key", "column": "a", "to_table": "t; drop table x", "to_column": "id"}),
    ("sample_columns", {"kind": "not_null", "column": "a", "sample_columns": ["a' or '1'='1"]}),
])
def test_identifiers_carrying_sql_are_refused(field: str, spec: dict[str, object]) -> None:
    text = _error({"table": "p", "checks": [spec]})
    assert f"field {field!r}" in text and "is not a valid identifier (it contains SQL syntax)" in text


def test_table_carrying_sql_is_refused() -> None:
    assert "table 'p; drop table x' is not a valid identifier" in _error(
        {"table": "p; drop table x", "checks": [{"kind": "row_count"}]})


def test_thresholds_validate() -> None:
    assert "fail_above is set on a check with severity 'warn'" in _error(
        {"table": "p", "checks": [{"kind": "not_null", "column": "a", "severity": "warn", "fail_above": 3}]})
    assert "share '120%' is above 100%" in _error(
        {"table": "p", "checks": [{"kind": "not_null", "column": "a", "fail_above": "120%"}]})
    assert "do not apply to row_count checks" in _error(
        {"table": "p", "checks": [{"kind": "row_count", "fail_above": 3}]})
    assert "thresholds must be row counts" in _error(
        {"checks": [{"kind": "sql", "sql": "select 1", "fail_above": "1%"}]})


def test_duplicate_names_and_missing_table() -> None:
    text = _error({"checks": [{"name": "a", "kind": "row_count"}, {"name": "a", "kind": "not_null",
                                                                    "column": "x"}]})
    assert "check 'a': the name is used twice" in text
    assert "check 'a' (row_count): no table given" in text


def test_operator_table_conflicting_with_spec() -> None:
    assert "table 'orders' given to the operator but the spec names 'payments'" in _error(
        {"table": "payments", "checks": [{"kind": "row_count"}]}, table="orders")


def test_operator_where_combines_with_spec_where() -> None:
    suite = load_suite({"table": "p", "where": "a > 1", "checks": [{"kind": "row_count"}]}, where="b < 2")
    assert suite.tables[0].where == "(a > 1) AND (b < 2)"


def test_yaml_errors_and_missing_files() -> None:
    assert "YAML error" in _error("table: p\nchecks: [unclosed\n")
    assert "check file 'nowhere.yml' not found" in _error("nowhere.yml")


@pytest.mark.parametrize("text,seconds", [
    ("2h", 7200), ("90m", 5400), ("1d 6h", 108000), ("PT2H30M", 9000), (45, 45), ("1.5 hours", 5400),
    (timedelta(minutes=5), 300), ("2 weeks", 1209600),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "soon", "2 fortnights", "h2", -5, 0, True, "2h soon"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(timedelta(hours=26, minutes=5, seconds=7)) == "1d 2h 5m"
    assert format_duration(timedelta(seconds=42)) == "42s"


def test_engine_imports_no_airflow() -> None:
    code = ("import sys; import airflow_opsflow.checks.runner, airflow_opsflow.checks.loader, "
            "airflow_opsflow.checks.report, airflow_opsflow.checks.condition, airflow_opsflow.monitors.metric, "
            "airflow_opsflow.monitors.reconcile, airflow_opsflow.incidents.entities, airflow_opsflow.state.entities, "
            "airflow_opsflow.state.metrics, airflow_opsflow.dbt.results; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

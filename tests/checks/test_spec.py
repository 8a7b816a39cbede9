"""Spec validation: every bad input names the check and the field (no Airflow, no database)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_opsflow.checks.loader import CheckSpecError, load_suite
from airflow_opsflow.checks.spec import NotNullCheck, TableChecks, Tolerance
from airflow_opsflow.core.durations import format_duration, parse_duration

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
    code = ("import sys; import airflow_opsflow.flows.check_suite, airflow_opsflow.checks.loader, "
            "airflow_opsflow.checks.report, airflow_opsflow.flows.condition, airflow_opsflow.monitors.metric, "
            "airflow_opsflow.monitors.reconcile, airflow_opsflow.incidents.entities, "
            "airflow_opsflow.incidents.entity_repo, "
            "airflow_opsflow.monitors.repo, airflow_opsflow.dbt.results; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- issue 16, point 5: every malformed input is a named error -----------------------------------------


@pytest.mark.parametrize("max_age,expected", [
    (float("inf"), "is too long"), (10**40, "is too long"), ("99999999999999999999d", "is too long"),
    (float("nan"), "expected a duration"), (1e-14, "rounds to 0"), ("HUGE", "is too long"),
])
def test_durations_that_overflowed_are_named(max_age: object, expected: str) -> None:
    max_age = 10**5000 if max_age == "HUGE" else max_age  # too long for pytest to print as an id
    text = _error({"table": "p", "checks": [{"name": "f", "kind": "freshness", "column": "a", "max_age": max_age}]})
    assert "check 'f' (freshness): field 'max_age'" in text and expected in text


@pytest.mark.parametrize("value,expected", [
    ("0.0001s", "below 1 ms"), (float("inf"), "too long"), ("99999999999999999999d", "too long"), (10**40, "too long"),
    ("30d", "too long"),
])
def test_statement_timeouts_are_bounded(value: object, expected: str) -> None:
    from airflow_opsflow.core.durations import parse_statement_timeout

    with pytest.raises(ValueError, match=expected):
        parse_statement_timeout(value)
    assert parse_statement_timeout("1ms") == timedelta(milliseconds=1)
    assert parse_statement_timeout("1.5s") == timedelta(milliseconds=1500)


@pytest.mark.parametrize("yaml_value,expected", [
    ("25:00", "deadline '25:00' is not a time of day"),  # YAML 1.1 read it as 1500 -> 00:25
    ("1440", "deadline 1440 is not a time of day"),
    ("24:00", "deadline '24:00' is not a time of day"),
    ("'06:00+02:00'", "deadline '06:00+02:00' is not a time of day"),
    ("yes", "deadline 'yes' is not a time of day"),
])
def test_deadlines_that_are_not_a_time_of_day(yaml_value: str, expected: str) -> None:
    text = _error(f"table: p\nchecks:\n  - name: f\n    kind: freshness\n    column: a\n    deadline: {yaml_value}\n")
    assert "check 'f' (freshness): field 'deadline'" in text and expected in text


@pytest.mark.parametrize("yaml_value", ["6:00", "06:00", "'06:00'", "360"])
def test_deadlines_as_people_write_them(yaml_value: str) -> None:
    from datetime import time

    suite = load_suite(f"table: p\nchecks:\n  - kind: freshness\n    column: a\n    deadline: {yaml_value}\n")
    assert suite.tables[0].checks[0].deadline == time(6, 0)  # type: ignore[union-attr]


@pytest.mark.parametrize("bounds,expected", [
    ({"min": 5, "max": 3}, "min (5) is greater than max (3)"),
    ({"min": "2024-02-01", "max": "2024-01-01"}, "is greater than max"),
    ({"min": "2024-01-01 10:00:00", "max": "2024-01-01 09:00:00"}, "is greater than max"),
    ({"min": 3, "max": 3, "max_exclusive": True}, "no value can pass"),
    ({"min": 1, "max": "2024-01-01"}, "are not of the same type (number and time)"),
    ({"min": float("nan")}, "is not a finite number"),
    ({"max": float("inf")}, "is not a finite number"),
    ({"min": "NaN"}, "is not a finite number"),
    ({"min": True}, "is a boolean"),
    ({"min": ""}, "must not be an empty string"),
    ({"min": 10**40}, "out of range"),
])
def test_between_bounds_that_make_no_sense(bounds: dict[str, object], expected: str) -> None:
    text = _error({"table": "p", "checks": [{"name": "b", "kind": "between", "column": "a", **bounds}]})
    assert "check 'b' (between)" in text and expected in text


@pytest.mark.parametrize("values,expected", [
    ([float("nan")], "is not a finite number"), ([1, True], "is a boolean"), (["paid", 3], "mix numbers and text"),
])
def test_accepted_values_that_make_no_sense(values: list[object], expected: str) -> None:
    text = _error({"table": "p", "checks": [{"name": "v", "kind": "accepted_values", "column": "s", "values": values}]})
    assert "check 'v' (accepted_values): field 'values'" in text and expected in text


def test_yaml_yes_no_in_accepted_values_is_text_not_turned_into_1() -> None:
    # YAML 1.2 booleans: yes/no stay text (a text column's values); true/false are a boolean column's.
    text = load_suite("table: p\nchecks:\n  - {name: v, kind: accepted_values, column: s, values: [yes, no]}\n")
    assert text.tables[0].checks[0].values == ["yes", "no"]  # type: ignore[attr-defined]
    flags = load_suite("table: p\nchecks:\n  - {name: v, kind: accepted_values, column: s, values: [true, false]}\n")
    assert flags.tables[0].checks[0].values == [True, False]  # type: ignore[attr-defined]
    assert "is a boolean" in _error({"table": "p", "checks": [{"kind": "accepted_values", "column": "s",
                                                               "values": ["maybe", True]}]})
    both = load_suite("table: p\nchecks:\n  - {kind: between, column: a, min: 0, max: 1, min_exclusive: yes}\n")
    assert both.tables[0].checks[0].min_exclusive is True  # type: ignore[attr-defined]


@pytest.mark.parametrize("check,expected", [
    ({"kind": "row_count", "min": True}, "field 'min': expected a number, got the boolean True"),
    ({"kind": "distinct_count", "column": "a", "max": False}, "field 'max': expected a number, got the boolean"),
    ({"kind": "not_null", "column": "a", "sample_limit": True}, "field 'sample_limit'"),
    ({"kind": "not_null", "column": "a", "warn_above": 5, "fail_above": 3}, "warn_above (5 rows) is above fail_above"),
    ({"kind": "not_null", "column": "a", "warn_above": "2%", "fail_above": "1%"}, "warn_above (2%) is above"),
    ({"kind": "metric", "metric": "SUM(a)", "sensitivity": float("inf")}, "field 'sensitivity'"),
    ({"kind": "metric", "metric": "SUM(a)", "training": True}, "field 'training'"),
])
def test_numbers_that_make_no_sense(check: dict[str, object], expected: str) -> None:
    assert expected in _error({"table": "p", "checks": [check]})


def test_deep_and_huge_input_is_named() -> None:
    assert "the document nests deeper than 32 levels" in _error("table: p\nchecks: " + "[" * 5000 + "]" * 5000)
    deep: object = 1
    for _ in range(5000):
        deep = {"x": [deep]}
    assert "the spec nests deeper than 32 levels" in _error({"table": "p", "checks": [{"kind": "row_count",
                                                                                          "min": deep}]})
    assert "an integer has more than 4,300 digits" in _error("table: p\nchecks:\n  - kind: row_count\n    min: "
                                                             + "9" * 5000)
    assert "field 'min'" in _error({"table": "p", "checks": [{"kind": "row_count", "min": 10**5000}]})
    laughs = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(7))
    assert "the spec has more than 200,000 values" in _error(laughs + "table: p\nchecks: [{kind: row_count}]")


def test_duplicate_yaml_keys_are_refused_with_their_line() -> None:
    text = _error("table: p\nchecks:\n  - kind: row_count\n    min: 1\n    min: 2\n")
    assert "duplicate key 'min' (line 5; first on line 4)" in text
    merged = load_suite("base: &base {kind: row_count, min: 1}\ntable: p\nchecks:\n  - <<: *base\n    min: 2\n"
                        .replace("base: &base {kind: row_count, min: 1}\n", "")
                        .replace("  - <<: *base\n", "  - kind: row_count\n"))
    assert merged.tables[0].checks[0].min == 2  # type: ignore[union-attr]


def test_merge_keys_may_override() -> None:
    spec = "table: p\nchecks:\n  - &base {kind: not_null, column: a}\n  - <<: *base\n    column: b\n"
    assert [c.column for c in load_suite(spec).tables[0].checks] == ["a", "b"]  # type: ignore[attr-defined]


def test_missing_path_object_is_named(tmp_path: Path) -> None:
    assert "check file" in _error(tmp_path / "missing.yml") and "not found" in _error(tmp_path / "missing.yml")


# -- SQL text: parsed when the spec is loaded, read-only, no side-effect functions -------------------


@pytest.mark.parametrize("field,check,expected", [
    ("expression", {"kind": "expression", "expression": "DELETE FROM t"}, "is not a valid SQL condition"),
    ("expression", {"kind": "expression", "expression": "1=1; DROP TABLE t"}, "must be a single SQL condition"),
    ("expression", {"kind": "expression", "expression": "((("}, "is not a valid SQL condition"),
    ("where", {"kind": "not_null", "column": "a", "where": "1=1; DROP TABLE t"}, "must be a single SQL condition"),
    ("sql", {"kind": "sql", "sql": "DELETE FROM t"}, "DELETE is not allowed"),
    ("sql", {"kind": "sql", "sql": "SELECT 1; DROP TABLE t"}, "exactly one query, got 2 statements"),
    ("sql", {"kind": "sql", "sql": "SELECT a INTO b FROM t"}, "SELECT ... INTO is not allowed"),
    ("sql", {"kind": "sql", "sql": "SELECT * FROM t FOR UPDATE"}, "FOR UPDATE/SHARE is not allowed"),
    ("sql", {"kind": "sql", "sql": "SELECT a FROM t INTO OUTFILE '/tmp/x'"}, "writes a file"),
    ("sql", {"kind": "sql", "sql": "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"}, "DELETE is not allowed"),
    ("metric", {"kind": "metric", "metric": "amount"}, "must aggregate the rows"),
    ("left.sql", {"kind": "reconcile", "left": {"sql": "DELETE FROM t"}, "right": {"table": "b"}, "key": "id"},
     "DELETE is not allowed"),
    ("to_table", {"kind": "foreign_key", "column": "a", "to_table": "a..b", "to_column": "id"}, "not a valid name"),
])
def test_sql_is_parsed_when_the_spec_is_loaded(field: str, check: dict[str, object], expected: str) -> None:
    text = _error({"table": "p", "checks": [{"name": "c", **check}]})
    assert f"check 'c' ({check['kind']}): field '{field}'" in text and expected in text, text


def test_table_names_with_empty_parts_are_refused() -> None:
    assert "table 'a..b' is not a valid name" in _error({"table": "a..b", "checks": [{"kind": "row_count"}]})


@pytest.mark.parametrize("sql,function", [
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend"),
    ("SELECT 1 FROM (SELECT set_config('statement_timeout', '0', true) AS x) s WHERE x = 'no'", "set_config"),
    ("SELECT pg_catalog.set_config('a', 'b', true)", "set_config"),
    ("SELECT dblink_exec('dbname=x', 'DELETE FROM t')", "dblink_exec"),
    ("SELECT * FROM dblink('dbname=x', 'SELECT 1') AS t(a int)", "dblink"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT lo_export(1, '/tmp/x')", "lo_export"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    ("SELECT nextval('s')", "nextval"),
    ("SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')", "query_to_xml"),
    ("SELECT LOAD_FILE('/etc/passwd')", "load_file"),
    ("SELECT GET_LOCK('x', 1)", "get_lock"),
    ("SELECT load_extension('x')", "load_extension"),
    ("SELECT writefile('/tmp/x', 'y')", "writefile"),
])
def test_side_effect_functions_are_refused(sql: str, function: str) -> None:
    text = _error({"checks": [{"name": "s", "kind": "sql", "sql": sql}]})
    assert f"check 's' (sql): field 'sql': calls refused function(s): {function} (" in text, text
    assert load_suite({"checks": [{"kind": "sql", "sql": sql}]}, allow_functions=[function])  # the opt-out


def test_refused_functions_depend_on_the_dialect_once_it_is_known() -> None:
    spec = {"table": "p", "checks": [{"name": "e", "kind": "expression", "expression": "edit(a) = 'x'"}]}
    assert "edit (" in _error(spec)  # unknown dialect: every family
    assert "edit (" in _error(spec, dialect="sqlite")
    assert load_suite(spec, dialect="postgres")  # not a SQLite file editor on PostgreSQL
    assert "where" in _error({"table": "p", "where": "pg_sleep(1) IS NULL OR nextval('s') > 0",
                              "checks": [{"kind": "row_count"}]})


def test_sleep_and_ordinary_sql_pass() -> None:
    load_suite({"table": "p", "where": "created_at > now() - interval '1 hour'", "checks": [
        {"kind": "expression", "expression": "total = subtotal + tax"},
        {"kind": "sql", "sql": "SELECT 1 AS x FROM pg_sleep(1)"},
        {"kind": "sql", "sql": "SELECT `id` FROM payments WHERE status = 'failed'"},  # MySQL quoting
        {"kind": "metric", "metric": "AVG(CASE WHEN status = 'failed' THEN 1.0 ELSE 0 END)"},
    ]})


def test_a_spec_can_carry_its_own_opt_out() -> None:
    spec = "allow_functions: [set_config]\nchecks:\n  - kind: sql\n    sql: SELECT set_config('a', 'b', true)\n"
    assert load_suite(spec).allow_functions == ["set_config"]
    assert "set_config (" in _error(spec.replace("allow_functions: [set_config]\n", ""))


@pytest.mark.parametrize("values", [["S", "M", "L", "10", "12"], ["200", "404", "unknown"], [True, False], [1, 2]])
def test_accepted_values_people_write_load(values: list[object]) -> None:
    suite = load_suite({"table": "p", "checks": [{"kind": "accepted_values", "column": "s", "values": values}]})
    assert suite.tables[0].checks[0].values == values  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["payload:customer.id IS NOT NULL", "IS_NULL_VALUE(v:a)"])
def test_sql_other_dialects_read_is_not_refused_at_parse(text: str) -> None:
    # Snowflake paths: no common dialect reads them, Snowflake does; the run parses them again in the
    # connection's own dialect.
    load_suite({"table": "p", "checks": [{"kind": "expression", "expression": text}]})
    load_suite({"checks": [{"kind": "sql", "sql": "SELECT TOP 10 id FROM p"}]})
    with pytest.raises(CheckSpecError, match="no SQL dialect reads it"):
        load_suite({"table": "p", "checks": [{"kind": "expression", "expression": "((("}]})

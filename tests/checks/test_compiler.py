"""The compiled plan: one scan per (table, filter), no COUNT(DISTINCT), quoted identifiers, and no way
for user text to smuggle a second statement (no database needed)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from airflow_opsflow.checks.compiler import compile_suite, sample_query
from airflow_opsflow.checks.loader import load_suite
from airflow_opsflow.core.dialects import UnsupportedDialectError, to_sqlglot_dialect

LINEITEM = {"table": "lineitem", "checks": [
    {"kind": "row_count", "min": 1001},
    *({"kind": "not_null", "column": c} for c in
      ("l_quantity", "l_extendedprice", "l_discount", "l_shipdate", "l_shipmode")),
    {"name": "q_min", "kind": "between", "column": "l_quantity", "min": 1},
    {"name": "q_max", "kind": "between", "column": "l_quantity", "max": 50},
    {"name": "p_pos", "kind": "between", "column": "l_extendedprice", "min": 0, "min_exclusive": True},
    {"name": "d_min", "kind": "between", "column": "l_discount", "min": 0},
    {"name": "d_max", "kind": "between", "column": "l_discount", "max": 0.1},
    {"kind": "distinct_count", "column": "l_shipmode", "max": 7},
    {"kind": "expression", "expression": "l_shipdate <= l_receiptdate"},
]}
DIALECTS = ["postgres", "sqlite", "mysql", "snowflake", "bigquery", "tsql", "duckdb", "oracle"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_thirteen_assertions_compile_to_two_parallel_friendly_queries(dialect: str) -> None:
    plan = compile_suite(load_suite(LINEITEM), dialect)
    assert plan.errors == {}
    assert len(plan.queries) == 2  # one aggregate scan + one GROUP BY for the distinct count
    scan, keyed = plan.queries
    assert len(scan.checks) == 12 and keyed.checks == ["distinct_count_l_shipmode"]
    # Per-row work: only the expression needs a CASE per row; bounds come from MIN/MAX.
    assert scan.sql.count("COUNT(CASE") == 1
    for q in plan.queries:
        tree = sqlglot.parse_one(q.sql, read=dialect)  # valid in its dialect
        assert tree.find(exp.Distinct) is None  # COUNT(DISTINCT) would forbid a parallel scan


def test_checks_on_other_filters_or_tables_get_their_own_scan() -> None:
    suite = load_suite({"tables": [
        {"table": "payments", "where": "created_at > '2024-01-01'", "checks": [
            {"kind": "not_null", "column": "a"}, {"kind": "not_null", "column": "b"},
            {"kind": "not_null", "column": "c", "where": "status = 'ok'"}]},
        {"table": "invoices", "checks": [{"kind": "row_count"}, {"kind": "unique", "column": "n"},
                                         {"kind": "distinct_count", "column": "n", "min": 1}]},
    ]})
    plan = compile_suite(suite, "postgres")
    assert [sorted(q.checks) for q in plan.queries] == [
        ["not_null_a", "not_null_b"], ["not_null_c"], ["row_count"], ["distinct_count_n", "unique_n"]]
    assert "WHERE created_at > '2024-01-01' AND status = 'ok'" in plan.queries[1].sql


def test_identifiers_are_quoted_and_keywords_survive() -> None:
    suite = load_suite({"table": "public.order", "checks": [{"kind": "not_null", "column": "select"}]})
    assert compile_suite(suite, "postgres").queries[0].sql == \
        'SELECT COUNT(*) AS n_rows, COUNT("select") AS c0_nonnull FROM public."order"'
    assert "`select`" in compile_suite(suite, "mysql").queries[0].sql
    assert "[select]" in compile_suite(suite, "tsql").queries[0].sql


@pytest.fixture
def compiler_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader refuses such SQL already (tests/checks/test_spec.py); skip that layer to test this one."""
    monkeypatch.setattr("airflow_opsflow.checks.loader.verify_sql", lambda *args, **kwargs: None)


@pytest.mark.usefixtures("compiler_only")
@pytest.mark.parametrize("expression", [
    "amount > 0; DROP TABLE customers",
    "amount > 0) OR (1 = 1",
    "1 = 1 UNION SELECT password FROM users",
    "1 = 1 GROUP BY amount",
    "DROP TABLE customers",
])
def test_expressions_cannot_smuggle_statements(expression: str) -> None:
    suite = load_suite({"table": "p", "checks": [{"name": "evil", "kind": "expression", "expression": expression},
                                                 {"name": "fine", "kind": "row_count"}]})
    plan = compile_suite(suite, "postgres")
    assert "the 'expression'" in plan.errors["evil"]
    assert [q.checks for q in plan.queries] == [["fine"]]
    assert "DROP" not in " ".join(q.sql for q in plan.queries)


@pytest.mark.usefixtures("compiler_only")
def test_where_and_sql_are_checked_too() -> None:
    suite = load_suite({"table": "p", "where": "a > 1; DELETE FROM p", "checks": [{"kind": "row_count"}]})
    assert "the table's 'where'" in compile_suite(suite, "postgres").errors["row_count"]
    for sql, msg in [("SELECT 1; DROP TABLE p", "exactly one query, got 2 statements"),
                     ("DELETE FROM p", "must be a SELECT query"),
                     ("SELECT * INTO x FROM p", "must be a SELECT query")]:
        plan = compile_suite(load_suite({"checks": [{"kind": "sql", "sql": sql}]}), "postgres")
        assert msg in plan.errors["sql"], sql
    ok = compile_suite(load_suite({"checks": [{"kind": "sql", "sql": "WITH f AS (SELECT 1 AS x) SELECT x FROM f"}]}),
                       "postgres")
    assert ok.errors == {}


def test_comments_are_dropped() -> None:
    suite = load_suite({"table": "p", "checks": [{"kind": "expression", "expression": "a > 0 /* x */ -- y"}]})
    sql = compile_suite(suite, "postgres").queries[0].sql
    assert "/*" not in sql and "--" not in sql


def test_regex_per_dialect() -> None:
    suite = load_suite({"table": "p", "checks": [{"kind": "regex", "column": "e", "pattern": "^a"}]})
    assert "~ '^a'" in compile_suite(suite, "postgres").queries[0].sql
    assert "REGEXP_LIKE(`e`, '^a')" in compile_suite(suite, "mysql").queries[0].sql
    assert "no regular-expression support" in compile_suite(suite, "sqlite").errors["regex_e"]


def test_unknown_columns_are_reported_with_the_real_ones() -> None:
    suite = load_suite({"table": "p", "checks": [
        {"name": "a", "kind": "not_null", "column": "AMOUNT"},
        {"name": "b", "kind": "not_null", "column": "amout"},
        {"name": "c", "kind": "expression", "expression": "amout > 0"}]})
    plan = compile_suite(suite, "postgres", lambda t: ["id", "amount"])
    assert plan.bound["a"].columns == ["amount"]  # case-insensitive resolution
    assert plan.errors["b"] == "column 'amout' not found in table 'p' (columns: id, amount)"
    assert plan.errors["c"] == plan.errors["b"]


def test_samples_select_only_the_named_columns() -> None:
    suite = load_suite({"table": "p", "sample_columns": ["id"], "checks": [
        {"kind": "not_null", "column": "amount", "sample_limit": 3},
        {"kind": "row_count"}]})
    plan = compile_suite(suite, "postgres")
    assert sample_query(plan.bound["not_null_amount"], "postgres") == \
        'SELECT "id", "amount" FROM p WHERE "amount" IS NULL LIMIT 3'
    assert sample_query(plan.bound["row_count"], "postgres") is None
    assert "SELECT TOP 3" in (sample_query(plan.bound["not_null_amount"], "tsql") or "")


def test_dialect_names() -> None:
    assert [to_sqlglot_dialect(n) for n in ("postgresql", "postgres", "mariadb", "mssql", "sqlite",
                                             "google_cloud_platform", "duckdb")] == \
        ["postgres", "postgres", "mysql", "tsql", "sqlite", "bigquery", "duckdb"]
    with pytest.raises(UnsupportedDialectError, match="pass dialect="):
        to_sqlglot_dialect("http")

"""The 13-assertion suite, once per dialect: opsflow spec, common-sql mappings and hand-written SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

Check = dict[str, Any]  # {"name": str, "passed": bool, "observed": str}; what every contender reports
SUITE_SIZE = 13

OPSFLOW_SUITE: dict[str, Any] = {
    "table": "lineitem",
    "checks": [
        {"name": "rows", "kind": "row_count", "min": 1001},
        {"name": "qty_nn", "kind": "not_null", "column": "l_quantity"},
        {"name": "price_nn", "kind": "not_null", "column": "l_extendedprice"},
        {"name": "disc_nn", "kind": "not_null", "column": "l_discount"},
        {"name": "ship_nn", "kind": "not_null", "column": "l_shipdate"},
        {"name": "mode_nn", "kind": "not_null", "column": "l_shipmode"},
        {"name": "qty_min", "kind": "between", "column": "l_quantity", "min": 1},
        {"name": "qty_max", "kind": "between", "column": "l_quantity", "max": 50},
        {
            "name": "price_pos",
            "kind": "between",
            "column": "l_extendedprice",
            "min": 0,
            "min_exclusive": True,
        },
        {"name": "disc_min", "kind": "between", "column": "l_discount", "min": 0},
        {"name": "disc_max", "kind": "between", "column": "l_discount", "max": 0.1},
        {"name": "modes", "kind": "distinct_count", "column": "l_shipmode", "max": 7},
        {"name": "ship_before_receipt", "kind": "expression", "expression": "l_shipdate <= l_receiptdate"},
    ],
}

# apache-airflow-providers-common-sql: 11 assertions as column checks, 2 as table checks.
COMMON_SQL_COLUMN_MAPPING: dict[str, dict[str, Any]] = {
    "l_quantity": {"null_check": {"equal_to": 0}, "min": {"geq_to": 1}, "max": {"leq_to": 50}},
    "l_extendedprice": {"null_check": {"equal_to": 0}, "min": {"greater_than": 0}},
    "l_discount": {"null_check": {"equal_to": 0}, "min": {"geq_to": 0}, "max": {"leq_to": 0.1}},
    "l_shipdate": {"null_check": {"equal_to": 0}},
    "l_shipmode": {"null_check": {"equal_to": 0}, "distinct_check": {"leq_to": 7}},
}
COMMON_SQL_TABLE_CHECKS: dict[str, dict[str, Any]] = {
    "row_count": {"check_statement": "COUNT(*) > 1000"},
    "ship_before_receipt": {"check_statement": "l_shipdate <= l_receiptdate"},
}

# Hand-written SQL: count(*) - count(col) is the cheapest null count; FILTER avoids a CASE per row.
AGGREGATES = """
    count(*) AS row_count,
    count(*) - count(l_quantity) AS qty_nulls,
    count(*) - count(l_extendedprice) AS price_nulls,
    count(*) - count(l_discount) AS disc_nulls,
    count(*) - count(l_shipdate) AS ship_nulls,
    count(*) - count(l_shipmode) AS mode_nulls,
    min(l_quantity) AS qty_min,
    max(l_quantity) AS qty_max,
    min(l_extendedprice) AS price_min,
    min(l_discount) AS disc_min,
    max(l_discount) AS disc_max,
    count(*) FILTER (WHERE l_shipdate > l_receiptdate) AS ship_after_receipt"""
SINGLE_QUERY = f"SELECT {AGGREGATES},\n    count(DISTINCT l_shipmode) AS modes\nFROM lineitem"
# The tuned plan: the distinct count leaves the parallel aggregate (COUNT(DISTINCT) forbids a parallel
# plan and sorts 6M rows) and becomes a hash GROUP BY over 7 groups.
TUNED_AGGREGATES = f"SELECT {AGGREGATES}\nFROM lineitem"
TUNED_DISTINCT = "SELECT count(*) AS modes FROM (SELECT l_shipmode FROM lineitem GROUP BY 1) s"


def evaluate(values: dict[str, Any]) -> list[Check]:
    """Judge the hand-written queries' aggregates against the suite."""
    verdicts = [
        ("rows", values["row_count"] > 1000),
        ("qty_nn", values["qty_nulls"] == 0),
        ("price_nn", values["price_nulls"] == 0),
        ("disc_nn", values["disc_nulls"] == 0),
        ("ship_nn", values["ship_nulls"] == 0),
        ("mode_nn", values["mode_nulls"] == 0),
        ("qty_min", values["qty_min"] >= 1),
        ("qty_max", values["qty_max"] <= 50),
        ("price_pos", values["price_min"] > 0),
        ("disc_min", values["disc_min"] >= 0),
        ("disc_max", values["disc_max"] <= Decimal("0.1")),
        ("modes", values["modes"] <= 7),
        ("ship_before_receipt", values["ship_after_receipt"] == 0),
    ]
    observed = {
        "rows": "row_count",
        "qty_nn": "qty_nulls",
        "price_nn": "price_nulls",
        "disc_nn": "disc_nulls",
        "ship_nn": "ship_nulls",
        "mode_nn": "mode_nulls",
        "qty_min": "qty_min",
        "qty_max": "qty_max",
        "price_pos": "price_min",
        "disc_min": "disc_min",
        "disc_max": "disc_max",
        "modes": "modes",
        "ship_before_receipt": "ship_after_receipt",
    }
    return [{"name": name, "passed": bool(ok), "observed": str(values[observed[name]])} for name, ok in verdicts]

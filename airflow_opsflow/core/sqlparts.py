"""Safe SQL fragments: identifiers, literals and user-written conditions, built with sqlglot.

Identifiers are never pasted: table names are split and rebuilt as identifiers (quoted when they need
it), column names are resolved against the table's real columns and always quoted. User-written
conditions (``where``, ``expression``) and queries (``sql`` checks) are parsed in the connection's
dialect, must be exactly one condition or one query, and are re-generated from the syntax tree without
comments, so nothing but that one expression reaches the database.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError

_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Words some engine reserves: a table part spelled like one is quoted (sqlglot's per-dialect lists are
# partial, e.g. PostgreSQL's is empty, so take the union of its fullest ones and the SQL standard's).
_RESERVED_EXTRA = {
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "authorization", "between", "both",
    "case", "cast", "check", "collate", "column", "constraint", "create", "cross", "current_date",
    "current_time", "current_timestamp", "current_user", "default", "delete", "desc", "distinct", "do",
    "else", "end", "except", "false", "fetch", "for", "foreign", "from", "full", "grant", "group", "having",
    "in", "inner", "insert", "intersect", "into", "is", "join", "leading", "left", "like", "limit", "natural",
    "not", "null", "offset", "on", "only", "or", "order", "outer", "placing", "primary", "references",
    "returning", "right", "select", "session_user", "some", "symmetric", "table", "then", "to", "trailing",
    "true", "union", "unique", "update", "user", "using", "values", "variadic", "when", "where", "window",
    "with",
}


def _reserved() -> frozenset[str]:
    words = set(_RESERVED_EXTRA)
    for name in ("mysql", "bigquery"):
        words |= {w.lower() for w in Dialect.get_or_raise(name).generator_class.RESERVED_KEYWORDS}
    return frozenset(words)


RESERVED = _reserved()


class SqlFragmentError(ValueError):
    pass


def table_ref(name: str, dialect: str) -> exp.Table:
    """``schema.table`` -> a Table. Plain names stay unquoted so the database folds their case as in
    hand-written SQL (``payments`` finds Snowflake's PAYMENTS); keywords and other names are quoted."""
    parts = name.split(".")
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise SqlFragmentError(f"table {name!r} is not a valid name (expected [catalog.][schema.]table)")
    idents = [
        exp.to_identifier(p.strip(), quoted=not _SAFE.match(p.strip()) or p.strip().lower() in RESERVED)
        for p in parts
    ]
    while len(idents) < 3:
        idents.insert(0, None)  # type: ignore[arg-type]
    catalog, db, this = idents
    return exp.Table(this=this, db=db, catalog=catalog)


def column(name: str) -> exp.Column:
    """A quoted column (names come resolved from the table's real columns, so case is exact)."""
    return exp.column(exp.to_identifier(name, quoted=True))


def literal(value: Any) -> exp.Expr:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float, Decimal)):
        return exp.Literal.number(value)
    if isinstance(value, (datetime, date)):
        return exp.Literal.string(value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat())
    return exp.Literal.string(str(value))


def condition(text: str, dialect: str, what: str) -> exp.Expr:
    """Parse one boolean condition (``amount >= 0``); refuse statements and multiple expressions."""
    try:
        parsed = sqlglot.parse_one(f"SELECT 1 WHERE {text}", read=dialect)
    except SqlglotError as e:
        raise SqlFragmentError(f"{what} is not a valid SQL condition: {text!r} ({_first_line(e)})") from None
    extra = [k for k, v in parsed.args.items() if v and k not in ("expressions", "where")]
    where = parsed.args.get("where") if isinstance(parsed, exp.Select) else None
    if where is None or extra:
        raise SqlFragmentError(f"{what} must be a single SQL condition, got {text!r}")
    return _strip_comments(where.this)


def query(text: str, dialect: str, what: str) -> exp.Query:
    """Parse exactly one read-only query (SELECT/UNION/WITH ... SELECT)."""
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except SqlglotError as e:
        raise SqlFragmentError(f"{what} is not valid SQL ({_first_line(e)})") from None
    if len(statements) != 1:
        raise SqlFragmentError(f"{what} must be exactly one query, got {len(statements)} statements")
    stmt = statements[0]
    if not isinstance(stmt, exp.Query) or stmt.find(exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Into):
        raise SqlFragmentError(f"{what} must be a SELECT query, got {stmt.key.upper()}")
    return _strip_comments(stmt)  # type: ignore[return-value]


def referenced_columns(node: exp.Expr) -> set[str]:
    """Unqualified column names of a condition, outside subqueries (those may name other tables)."""
    names = set()
    for col in node.find_all(exp.Column):
        if not col.table and col.find_ancestor(exp.Subquery, exp.Select) is None:
            names.add(col.name)
    return names


def aggregate(text: str, dialect: str) -> exp.Expr:
    """Parse a metric: one expression holding an aggregate (``SUM(amount)``), no subquery, no alias."""
    try:
        parsed = sqlglot.parse_one(f"SELECT {text}", read=dialect)
    except SqlglotError as e:
        raise SqlFragmentError(f"not a valid SQL expression: {text!r} ({_first_line(e)})") from None
    select_list = parsed.expressions if isinstance(parsed, exp.Select) else []
    extra = [k for k, v in parsed.args.items() if v and k != "expressions"]
    if len(select_list) != 1 or extra:
        raise SqlFragmentError(f"must be one aggregate expression such as COUNT(*) or SUM(amount), got {text!r}")
    expr = select_list[0]
    if isinstance(expr, exp.Alias):
        expr = expr.this
    if expr.find(exp.AggFunc) is None:
        raise SqlFragmentError(f"must aggregate the rows (COUNT, SUM, AVG, MIN, MAX...), got {text!r}")
    if expr.find(exp.Subquery, exp.Select) is not None:
        raise SqlFragmentError(f"must not contain a subquery, got {text!r}: use 'sql' instead")
    return _strip_comments(expr)


def _strip_comments(node: exp.Expr) -> exp.Expr:
    node = node.copy()
    for n in node.walk():
        n.comments = None
    return node


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0][:200]

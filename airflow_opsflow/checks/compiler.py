"""Compile a suite into as few queries as possible.

* Every aggregate check on the same (table, filter) becomes a column of one ``SELECT ... FROM table``:
  one scan, whatever the number of checks. Only COUNT/SUM/MIN/MAX over CASE expressions are used, which
  every engine can run as a parallel scan (no ``COUNT(DISTINCT)``: it forces PostgreSQL onto one core).
* ``unique`` and ``distinct_count`` checks on the same key columns and filter share one
  ``GROUP BY key`` sub-query, the parallel-friendly way to count distinct values.
* ``foreign_key`` checks are one hash anti-join each.
* A ``sql`` check's query runs once: one statement returns its row count (a window over the whole result)
  with the first rows as samples, or, with ``entity``, its violating entities: whatever the query costs or
  does, it happens once.

Each query returns one row; ``PlannedQuery.outputs`` says which column holds which metric of which
check, so a query can be re-run for one check alone when the batch fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from airflow_opsflow.checks.monitor_spec import MetricCheck, ReconcileCheck
from airflow_opsflow.checks.sample_policy import default_key, looks_personal
from airflow_opsflow.checks.spec import (
    AcceptedValuesCheck,
    BetweenCheck,
    CheckBase,
    DistinctCountCheck,
    ExpressionCheck,
    ForeignKeyCheck,
    FreshnessCheck,
    NotNullCheck,
    OnEmpty,
    RegexCheck,
    SqlCheck,
    Suite,
    TableChecks,
    UniqueCheck,
)
from airflow_opsflow.core import sqlparts
from airflow_opsflow.core.dialects import REGEX_DIALECTS

ROWS = "n_rows"  # aliases avoid reserved words (rows, distinct) in every dialect
BREACHED = "breached"  # 1 when MIN/MAX show some row out of bounds: count the violations then
SQL_TOTAL = "opsflow_violations"  # a sql check's row count, first column of its one statement
ColumnResolver = Callable[[str], list[str]]


class CompileError(ValueError):
    pass


@dataclass
class BoundCheck:
    """A check with its table, filter and columns resolved for one dialect."""

    check: CheckBase
    table_name: str | None
    table: exp.Table | None
    filter: exp.Expr | None
    columns: list[str]  # resolved names of check.columns()
    sample_columns: list[str]
    sample_limit: int
    on_empty: OnEmpty
    condition: exp.Expr | None = None  # parsed `expression` / `sql` query
    hidden_columns: list[str] = field(default_factory=list)  # a sql check's columns kept out of samples
    sample_exprs: list[exp.Expr] = field(default_factory=list)  # a sql check's default sample columns
    where_sql: str | None = None  # the filter as sent, for reports
    entity_columns: list[str] = field(default_factory=list)  # resolved entity key, amount, since

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def source(self) -> exp.Table:
        """The checked table (every kind but ``sql`` has one)."""
        assert self.table is not None, f"check {self.name!r} has no table"
        return self.table

    @property
    def kind(self) -> str:
        return self.check.kind  # type: ignore[attr-defined]


@dataclass
class PlannedQuery:
    sql: str
    table: str | None
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # check -> metric role -> column
    rows: bool = False  # a sql check's statement: every row after the first column is a sample/entity

    @property
    def checks(self) -> list[str]:
        return list(self.outputs)


@dataclass
class Plan:
    dialect: str
    bound: dict[str, BoundCheck]
    queries: list[PlannedQuery]
    errors: dict[str, str]  # checks that could not be compiled


def compile_suite(suite: Suite, dialect: str, resolve: ColumnResolver | None = None) -> Plan:
    """Bind every check, then batch them into queries. Checks that cannot compile are reported in
    ``Plan.errors`` and do not stop the others."""
    bound: dict[str, BoundCheck] = {}
    errors: dict[str, str] = {}
    for group, check in suite.all_checks():
        try:
            bound[check.name] = _bind(group, check, dialect, resolve)
        except (CompileError, sqlparts.SqlFragmentError) as e:
            errors[check.name] = str(e)
    return Plan(dialect, bound, batch(list(bound.values()), dialect), errors)


def batch(checks: list[BoundCheck], dialect: str) -> list[PlannedQuery]:
    """Group bound checks into queries: one per (table, filter) scan, one per key set, one per other."""
    scans: dict[tuple[str, str], list[BoundCheck]] = {}
    keyed: dict[tuple[str, str, tuple[str, ...]], list[BoundCheck]] = {}
    queries: list[PlannedQuery] = []
    for b in checks:
        scope = (b.table.sql(dialect) if b.table else "", b.filter.sql(dialect) if b.filter else "")
        if isinstance(b.check, (MetricCheck, ReconcileCheck)):
            continue  # judged against its history by airflow_opsflow.monitors.metric, not batched
        if isinstance(b.check, (UniqueCheck, DistinctCountCheck)):
            keyed.setdefault((*scope, tuple(b.columns)), []).append(b)
        elif isinstance(b.check, ForeignKeyCheck):
            queries.append(_foreign_key_query(b, dialect))
        elif isinstance(b.check, SqlCheck):
            queries.append(_sql_check_query(b, dialect))
        else:
            scans.setdefault(scope, []).append(b)
    return [*(_scan_query(g, dialect) for g in scans.values()),
            *(_keyed_query(g, dialect) for g in keyed.values()), *queries]


# -- binding ---------------------------------------------------------------------------------------


def _bind(group: TableChecks, check: CheckBase, dialect: str, resolve: ColumnResolver | None) -> BoundCheck:
    if isinstance(check, RegexCheck) and dialect not in REGEX_DIALECTS:
        raise CompileError(f"the {dialect} dialect has no regular-expression support: "
                           f"use an 'expression' with LIKE, or a 'sql' check")
    if isinstance(check, ReconcileCheck):  # reads its own two sides (airflow_opsflow.monitors.reconcile)
        return BoundCheck(check, None, None, None, [], [], _limit(group, check), "pass")
    if isinstance(check, MetricCheck) and check.sql is not None:
        q = sqlparts.query(check.sql, dialect, "the metric's 'sql' query")
        return BoundCheck(check, group.table, None, None, [], [], 0, "pass", q)
    if isinstance(check, SqlCheck):
        q = sqlparts.query(check.sql, dialect, "the 'sql' query")
        shown: list[exp.Expr] = []
        hidden: list[str] = []
        outputs = [_output_name(e) for e in q.selects]
        names = [o.name.lower() for o in outputs if o is not None]
        if check.sample_columns is None and check.entity is None and all(outputs) and len(set(names)) == len(names):
            # Known output columns: the statement carries only those a sample may show (see sample_policy),
            # which keeps what its window buffers narrow. Identifiers as written: the database folds them.
            for ident in outputs:
                assert ident is not None
                (hidden.append(ident.name) if looks_personal(ident.name) else
                 shown.append(exp.Column(this=ident.copy())))
        b = BoundCheck(check, group.table, None, None, [], check.sample_columns or [], _limit(group, check), "pass",
                       q, hidden_columns=hidden, entity_columns=check.entity.columns() if check.entity else [])
        b.sample_exprs = shown
        return b
    assert group.table is not None
    table = sqlparts.table_ref(group.table, dialect)
    real = resolve(group.table) if resolve else None
    filters = [sqlparts.condition(w, dialect, f"{label} 'where'")
               for w, label in ((group.where, "the table's"), (check.where, "the check's")) if w]
    cond = None
    if isinstance(check, ExpressionCheck):
        cond = sqlparts.condition(check.expression, dialect, "the 'expression'")
    for f in [*filters, *([cond] if cond is not None else [])]:
        for name in sqlparts.referenced_columns(f):
            _resolve(name, real, group.table)
    columns = [_resolve(c, real, group.table) for c in check.columns()]
    if isinstance(check, ForeignKeyCheck):
        ref_real = resolve(check.to_table) if resolve else None
        for c in check.to_columns:
            _resolve(c, ref_real, check.to_table)
    samples = check.sample_columns
    if samples is None:  # see sample_policy: a key to find the row, then the check's own columns
        own = columns + sorted(sqlparts.referenced_columns(cond) if cond is not None else [])
        key = group.sample_columns or ([k] if real and (k := default_key(real, group.table)) else [])
        samples = list(dict.fromkeys([*key, *own]))
    return BoundCheck(
        check=check,
        table_name=group.table,
        table=table,
        filter=exp.and_(*filters) if filters else None,
        columns=columns,
        sample_columns=[_resolve(c, real, group.table) for c in samples],
        sample_limit=_limit(group, check),
        on_empty=check.on_empty or group.on_empty,
        condition=cond,
        where_sql=exp.and_(*filters).sql(dialect, comments=False) if filters else None,
        entity_columns=[_resolve(c, real, group.table) for c in check.entity.columns()] if check.entity else [],
    )


def _limit(group: TableChecks, check: CheckBase) -> int:
    return check.sample_limit if check.sample_limit is not None else group.sample_limit


def _resolve(name: str, real: list[str] | None, table: str) -> str:
    """The table's own spelling of ``name``: exact match first, then the one case-insensitive match."""
    if real is None or name in real:
        return name
    matches = [c for c in real if c.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(real[:30]) + (" ..." if len(real) > 30 else "")
    raise CompileError(f"column {name!r} not found in table {table!r} (columns: {shown})")


# -- predicates and metrics ------------------------------------------------------------------------


def violation(b: BoundCheck) -> exp.Expr | None:
    """The condition a violating row satisfies, for row-level checks on the table itself."""
    c = b.check
    col = sqlparts.column(b.columns[0]) if b.columns else None
    if isinstance(c, NotNullCheck):
        return exp.Is(this=col, expression=exp.null())
    if isinstance(c, AcceptedValuesCheck):
        in_list = exp.In(this=col, expressions=[sqlparts.literal(v) for v in c.values])
        return exp.and_(exp.not_(exp.Is(this=col, expression=exp.null())), exp.not_(in_list))
    if isinstance(c, BetweenCheck):
        parts: list[exp.Expr] = []
        if c.min is not None:
            lo = sqlparts.literal(c.min)
            parts.append(exp.LTE(this=col, expression=lo) if c.min_exclusive else exp.LT(this=col, expression=lo))
        if c.max is not None:
            hi = sqlparts.literal(c.max)
            parts.append(exp.GTE(this=col, expression=hi) if c.max_exclusive else exp.GT(this=col, expression=hi))
        return exp.or_(*parts)
    if isinstance(c, RegexCheck):
        match = exp.RegexpLike(this=col, expression=exp.Literal.string(c.pattern))
        return exp.and_(exp.not_(exp.Is(this=col, expression=exp.null())), exp.not_(match))
    if isinstance(c, ExpressionCheck):
        assert b.condition is not None
        return exp.not_(exp.paren(b.condition.copy()))
    return None


def _count_if(cond: exp.Expr) -> exp.Expr:
    # COUNT(CASE ...) rather than FILTER or SUM(bool): portable to every dialect, NULL-safe.
    return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))


def _metrics(b: BoundCheck) -> dict[str, exp.Expr]:
    c = b.check
    col = sqlparts.column(b.columns[0]) if b.columns else None
    if isinstance(c, NotNullCheck):
        return {"nonnull": exp.Count(this=col)}
    if isinstance(c, FreshnessCheck):
        return {"max": exp.Max(this=col)}
    if isinstance(c, BetweenCheck):
        # MIN/MAX decide whether any row is out of bounds at no per-row cost; the violating rows are
        # counted in a follow-up query only when they are (see violation_count_query).
        assert col is not None
        lo, hi = exp.Min(this=col), exp.Max(this=col.copy())
        breach: list[exp.Expr] = []
        if c.min is not None:
            bound = sqlparts.literal(c.min)
            breach.append(exp.LTE(this=lo.copy(), expression=bound) if c.min_exclusive
                          else exp.LT(this=lo.copy(), expression=bound))
        if c.max is not None:
            bound = sqlparts.literal(c.max)
            breach.append(exp.GTE(this=hi.copy(), expression=bound) if c.max_exclusive
                          else exp.GT(this=hi.copy(), expression=bound))
        flag = exp.Case(ifs=[exp.If(this=exp.or_(*breach), true=exp.Literal.number(1))],
                        default=exp.Literal.number(0))
        return {"min": lo, "max": hi, BREACHED: flag}
    pred = violation(b)
    return {"violations": _count_if(pred)} if pred is not None else {}


def _select(columns: dict[str, exp.Expr]) -> exp.Select:
    return exp.select(*(e.as_(alias) for alias, e in columns.items()))


def _scan_query(group: list[BoundCheck], dialect: str) -> PlannedQuery:
    first = group[0]
    cols: dict[str, exp.Expr] = {ROWS: exp.Count(this=exp.Star())}
    seen: dict[str, str] = {}  # aggregate SQL -> alias: checks sharing MIN(x) or COUNT(x) share the column
    outputs: dict[str, dict[str, str]] = {}
    for i, b in enumerate(group):
        outputs[b.name] = {ROWS: ROWS}
        for role, e in _metrics(b).items():
            alias = seen.setdefault(e.sql(dialect), f"c{i}_{role}")
            cols.setdefault(alias, e)
            outputs[b.name][role] = alias
    q = _select(cols).from_(first.source)
    if first.filter is not None:
        q = q.where(first.filter.copy())
    return PlannedQuery(q.sql(dialect, comments=False), first.table_name, outputs)


def violation_count_query(group: list[BoundCheck], dialect: str) -> PlannedQuery:
    """Count the violating rows of checks that share a scan (table and filter), in one query."""
    first = group[0]
    cols: dict[str, exp.Expr] = {ROWS: exp.Count(this=exp.Star())}
    outputs: dict[str, dict[str, str]] = {}
    for i, b in enumerate(group):
        pred = violation(b)
        assert pred is not None
        cols[f"c{i}_violations"] = _count_if(pred)
        outputs[b.name] = {"violations": f"c{i}_violations"}
    q = _select(cols).from_(first.source)
    if first.filter is not None:
        q = q.where(first.filter.copy())
    return PlannedQuery(q.sql(dialect, comments=False), first.table_name, outputs)


def _keyed_query(group: list[BoundCheck], dialect: str) -> PlannedQuery:
    """``SELECT ... FROM (SELECT key, COUNT(*) n FROM t GROUP BY key) g``: distinct and duplicate
    counts without COUNT(DISTINCT), so the inner aggregate runs as a parallel scan."""
    first = group[0]
    keys = [sqlparts.column(c) for c in first.columns]
    inner = exp.select(*keys, exp.Count(this=exp.Star()).as_("n")).from_(first.source)
    if first.filter is not None:
        inner = inner.where(first.filter.copy())
    inner = inner.group_by(*[k.copy() for k in keys])
    complete = exp.and_(*[exp.not_(exp.Is(this=k.copy(), expression=exp.null())) for k in keys])
    dup = exp.and_(complete.copy(), exp.GT(this=exp.column("n"), expression=exp.Literal.number(1)))
    cols = {
        ROWS: exp.Sum(this=exp.column("n")),
        "n_distinct": _count_if(complete),
        "dup_keys": _count_if(dup),
        "dup_rows": exp.Sum(this=exp.Case(ifs=[exp.If(this=dup.copy(), true=exp.column("n"))],
                                          default=exp.Literal.number(0))),
    }
    q = _select(cols).from_(inner.subquery("g"))
    outputs = {b.name: {r: r for r in cols} for b in group}
    return PlannedQuery(q.sql(dialect, comments=False), first.table_name, outputs)


def _foreign_key_join(b: BoundCheck, dialect: str) -> tuple[exp.Select, exp.Expr]:
    """``FROM t LEFT JOIN (SELECT DISTINCT ref cols) r ON ...``; returns it with the orphan condition."""
    c = b.check
    assert isinstance(c, ForeignKeyCheck)
    ref = exp.select(*[sqlparts.column(rc).as_(f"ref{i}") for i, rc in enumerate(c.to_columns)]).distinct()
    ref = ref.from_(sqlparts.table_ref(c.to_table, dialect)).where(
        exp.and_(*[exp.not_(exp.Is(this=sqlparts.column(rc), expression=exp.null())) for rc in c.to_columns]))
    on = exp.and_(*[exp.EQ(this=sqlparts.column(col), expression=exp.column(f"ref{i}", table="opsflow_ref"))
                    for i, col in enumerate(b.columns)])
    complete = [exp.not_(exp.Is(this=sqlparts.column(col), expression=exp.null())) for col in b.columns]
    q = exp.select().from_(b.source).join(ref.subquery("opsflow_ref"), on=on, join_type="left")
    q = q.where(exp.and_(*complete, *([b.filter.copy()] if b.filter is not None else [])))
    orphan = exp.Is(this=exp.column("ref0", table="opsflow_ref"), expression=exp.null())
    return q, orphan


def _foreign_key_query(b: BoundCheck, dialect: str) -> PlannedQuery:
    q, orphan = _foreign_key_join(b, dialect)
    q = q.select(exp.Count(this=exp.Star()).as_(ROWS), _count_if(orphan).as_("violations"))
    return PlannedQuery(q.sql(dialect, comments=False), b.table_name,
                        {b.name: {ROWS: ROWS, "violations": "violations"}})


def _sql_check_query(b: BoundCheck, dialect: str) -> PlannedQuery:
    """The check's one statement: ``COUNT(*) OVER ()`` beside its first rows (at most ``sample_limit``,
    at least one to carry the count), or beside its entities when it tracks them."""
    assert isinstance(b.condition, exp.Query)
    if b.check.entity is not None:
        q = _entities(b, exp.select().from_(b.condition.copy().subquery("opsflow_q")), b.entity_columns,
                      b.check.entity.max_entities + 1, total=True)
    else:
        picked: list[exp.Expr] = ([sqlparts.column(s) for s in b.sample_columns] or [e.copy() for e in b.sample_exprs]
                  or [exp.Column(this=exp.Star(), table=exp.to_identifier("opsflow_q"))])
        total = exp.Window(this=exp.Count(this=exp.Star())).as_(SQL_TOTAL)
        q = exp.select(total, *picked).from_(b.condition.copy().subquery("opsflow_q")).limit(max(b.sample_limit, 1))
    return PlannedQuery(q.sql(dialect, comments=False), b.table_name, {b.name: {"violations": SQL_TOTAL}}, rows=True)


def _output_name(e: exp.Expr) -> exp.Identifier | None:
    """The identifier a select-list item is known by (``email``, ``x AS e``), or None (``*``, ``a + 1``)."""
    if isinstance(e, exp.Alias):
        alias = e.args.get("alias")
        return alias if isinstance(alias, exp.Identifier) else None
    if isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier):
        return e.this
    return None


def sample_query(b: BoundCheck, dialect: str) -> str | None:
    """A query for up to ``sample_limit`` violating rows, or None when the kind has no rows to show."""
    if b.sample_limit <= 0:
        return None
    q = _violating_rows(b, dialect, [sqlparts.column(s) for s in b.sample_columns])
    return None if q is None else q.limit(b.sample_limit).sql(dialect, comments=False)


def entity_query(b: BoundCheck, dialect: str, limit: int) -> str:
    """One row per violating entity (key, total amount, earliest since), at most ``limit``, in key order
    (so that a list cut at the limit is the same list on every run). Rows with a NULL key are no entity."""
    cols: list[exp.Expr] = [sqlparts.column(c) for c in b.entity_columns]
    inner = _violating_rows(b, dialect, cols)
    assert inner is not None, f"check {b.name!r} has no violating rows to track"
    q = _entities(b, exp.select().from_(inner.subquery("opsflow_violations")), b.entity_columns, limit)
    return q.sql(dialect, comments=False)


def _entities(b: BoundCheck, source: exp.Select, columns: list[str], limit: int, total: bool = False) -> exp.Select:
    """Group ``source``'s rows by the entity key (total amount, earliest since) in key order. Without
    ``total``, rows with a NULL key are left out; with it, the first column counts every row (window over
    the groups) and the NULL-key groups come last, to be dropped by the reader."""
    rule = b.check.entity
    assert rule is not None
    n = len(rule.key)
    keys = [sqlparts.column(c) for c in columns[:n]]
    rest = columns[n:]
    picked: list[exp.Expr] = [k.copy() for k in keys]
    if rule.amount:
        picked.append(exp.Sum(this=sqlparts.column(rest.pop(0))).as_("opsflow_amount"))
    if rule.since:
        picked.append(exp.Min(this=sqlparts.column(rest.pop(0))).as_("opsflow_since"))
    complete = exp.and_(*[exp.not_(exp.Is(this=k.copy(), expression=exp.null())) for k in keys])
    order: list[exp.Expr] = [k.copy() for k in keys]
    if total:
        rows = exp.Window(this=exp.Sum(this=exp.Count(this=exp.Star()))).as_(SQL_TOTAL)
        q = source.select(rows, *picked)
        order.insert(0, exp.Case(ifs=[exp.If(this=complete, true=exp.Literal.number(0))],
                                 default=exp.Literal.number(1)))
    else:
        q = source.select(*picked).where(complete)
    return q.group_by(*[k.copy() for k in keys]).order_by(*order).limit(limit)


def _violating_rows(b: BoundCheck, dialect: str, picked: list[exp.Expr]) -> exp.Select | None:
    c = b.check
    if isinstance(c, SqlCheck):
        assert isinstance(b.condition, exp.Query)
        return exp.select(*(picked or [exp.Star()])).from_(b.condition.copy().subquery("opsflow_q"))
    if isinstance(c, UniqueCheck):
        keys = [sqlparts.column(k) for k in b.columns]
        q = exp.select(*keys, exp.Count(this=exp.Star()).as_("occurrences")).from_(b.source)
        complete = [exp.not_(exp.Is(this=k.copy(), expression=exp.null())) for k in keys]
        q = q.where(exp.and_(*complete, *([b.filter.copy()] if b.filter is not None else [])))
        q = q.group_by(*[k.copy() for k in keys]).having(
            exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
        return q.order_by(exp.Ordered(this=exp.Count(this=exp.Star()), desc=True))
    if isinstance(c, ForeignKeyCheck):
        q, orphan = _foreign_key_join(b, dialect)
        return q.select(*picked).where(orphan)
    pred = violation(b)
    if pred is None or not picked:
        return None
    q = exp.select(*picked).from_(b.source).where(pred)
    if b.filter is not None:
        q = q.where(b.filter.copy())
    return q

"""Reconcile two keyed datasets, possibly on two databases, in one streamed merge.

Each side is read once, ordered by the key, through a server-side cursor (memory stays flat on
millions of keys) and merged like a sort-merge join: keys on one side only, duplicated keys, NULL keys
and keys whose compared values differ beyond their tolerance are counted and sampled; counts and sums
per group are added up on the way, over every row read (duplicates and NULL keys too, as a ``GROUP BY``
of each side would count them). Text keys are ordered byte-wise in SQL (``COLLATE "C"`` on
PostgreSQL, ``BINARY`` on MySQL), which is how Python compares them; a side that still arrives out of
order (an engine with another collation) stops the check with an error rather than mis-reporting.

A side on an API (HubSpot, Salesforce, Zendesk) is first staged: its records are streamed page by page
into a throwaway SQLite file (:mod:`airflow_opsflow.core.staging`), which is then read like any table and
removed after the check. The shell hands over the API's client (``api``: system and connection -> client).

With ``entity``, the merge also collects the violating keys (in key order, at most ``max_entities + 1``, so
memory stays bounded) for :mod:`airflow_opsflow.incidents.entities` to track across runs: see
:func:`reconcile`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlglot import exp

from airflow_opsflow.checks.monitor_spec import CompareColumn, ReconcileCheck, ReconcileSide
from airflow_opsflow.core import sqlparts
from airflow_opsflow.core.api_source import ApiError
from airflow_opsflow.core.numbers import to_decimal
from airflow_opsflow.core.results import CheckResult, Status, json_safe
from airflow_opsflow.core.sql_source import SourceError, SqlSource
from airflow_opsflow.core.staging import StagedTable, stage

Connect = Callable[[str | None], tuple[Callable[[], Any], str]]  # conn_id -> (connection factory, dialect)
# (system: hubspot | salesforce | zendesk, conn_id) -> the client an API source of that system calls
# (see airflow_opsflow.core.api_source and airflow_opsflow.hooks.api_clients)
ApiClients = Callable[[str, str | None], Any]
MAX_GROUPS = 10_000
_SRC = "opsflow_side"


class ReconcileError(ValueError):
    """The reconciliation cannot run (the check's result is ``error``)."""


@dataclass
class _Side:
    spec: ReconcileSide
    label: str
    dialect: str
    source: SqlSource
    staged: StagedTable | None = None
    columns: list[str] = field(default_factory=list)  # resolved: key..., compare..., group..., entity extras
    entity_at: list[int | None] = field(default_factory=list)  # where entity.amount/since are in a row
    rows: int = 0
    null_keys: int = 0
    duplicates: int = 0


@dataclass
class _Tally:
    only_left: int = 0
    only_right: int = 0
    mismatched: int = 0
    duplicates: int = 0
    matched: int = 0
    columns_off: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)  # group -> [count, sums...] x 2
    entities: list[tuple[Any, ...]] = field(default_factory=list)  # (entity key..., amount?, since?)
    last_entity: tuple[Any, ...] | None = None


@dataclass
class Reconciliation:
    """A reconcile check's result and, for a check with ``entity``, its violating keys.

    :param entities: one row per violating key, in key order: the ``entity.key`` values, then the
        ``amount`` and ``since`` values when the rule names them (what a ``sql`` check's entity rows
        hold); at most ``max_entities + 1`` rows, so more than ``max_entities`` means the list was cut.
        None without ``entity``.
    """

    result: CheckResult
    entities: list[tuple[Any, ...]] | None = None


def run_reconcile(c: ReconcileCheck, connect: Connect, fetch_size: int = 10_000, api: ApiClients | None = None,
                  staging_dir: str | None = None) -> CheckResult:
    """Reconcile ``c.left`` against ``c.right``; raise :class:`ReconcileError` when it cannot run.

    :param api: opens the client of an API side (needed only when a side is one).
    :param staging_dir: where API sides are staged (default: the system's temporary directory).
    """
    return reconcile(c, connect, fetch_size, api, staging_dir).result


def reconcile(c: ReconcileCheck, connect: Connect, fetch_size: int = 10_000, api: ApiClients | None = None,
              staging_dir: str | None = None) -> Reconciliation:
    """:func:`run_reconcile`, with the violating keys a check with ``entity`` tracks."""
    started = time.perf_counter()
    sides: list[_Side] = []
    staged: list[StagedTable] = []
    sql: list[str] = []
    try:
        for spec, default in ((c.left, "left"), (c.right, "right")):
            if spec.api is not None:
                table = _stage(c, spec, default, api, staging_dir)
                staged.append(table)
                factory, dialect = table.connect, "sqlite"
            else:
                table = None
                factory, dialect = connect(spec.conn_id)
            source = SqlSource(factory, dialect, fetch_size=fetch_size, exact_text=False)
            side = _Side(spec, spec.name(default), dialect, source, table)
            source.__enter__()
            sides.append(side)
        for side, on_right in zip(sides, (False, True), strict=True):
            sql.append(_query(c, side, on_right))
        left, right = sides
        tally = _merge(c, left, _rows(left, sql[0]), right, _rows(right, sql[1]))
    except SourceError as e:
        raise ReconcileError(str(e)) from e
    finally:
        for side in sides:
            side.source.__exit__(None, None, None)
        for table in staged:
            table.remove()
    result = _result(c, left, right, tally)
    result.sql = sql
    result.duration_s = round(time.perf_counter() - started, 4)
    return Reconciliation(result, tally.entities if c.entity is not None else None)


def _stage(c: ReconcileCheck, spec: ReconcileSide, role: str, api: ApiClients | None,
           staging_dir: str | None) -> StagedTable:
    """An API side's records, staged in a SQLite file (removed by the caller)."""
    system, source_spec = spec.system, spec.api
    assert system is not None and source_spec is not None
    where = f"check {c.name!r}, {role} side ({spec.name(role)}, connection {spec.conn_id!r})"
    if api is None:
        raise ReconcileError(f"{where}: a {source_spec.describe()} side needs the Airflow connection: run the check "
                             "through DataCheckOperator (or pass api= to run_suite)")
    try:
        source = source_spec.source(api(system, spec.conn_id))
        return stage(source, staging_dir)
    except ApiError as e:
        raise ReconcileError(f"{where}: reading {source_spec.describe()} failed: {e}") from e


# -- reading ---------------------------------------------------------------------------------------


def _source(side: _Side) -> exp.Expr:
    spec = side.spec
    if spec.sql is not None:
        try:
            q = sqlparts.query(spec.sql, side.dialect, f"the {side.label} query")
        except sqlparts.SqlFragmentError as e:
            raise ReconcileError(str(e)) from None
        return q.subquery(_SRC)
    if side.staged is not None:
        return sqlparts.table_ref(side.staged.table, side.dialect)
    assert spec.table is not None
    return sqlparts.table_ref(spec.table, side.dialect)


def _query(c: ReconcileCheck, side: _Side, on_right: bool) -> str:
    """``SELECT key, compare, group FROM source [WHERE] ORDER BY key`` with byte-wise text keys."""
    src = _source(side)
    probe = exp.select("*").from_(src.copy()).limit(0)
    names, _ = side.source.query(probe.sql(side.dialect), f"reading the columns of {side.label}")
    wanted = [*c.key, *[(cc.right if on_right else cc.column) for cc in c.compare], *c.group_by]
    side.columns = [_resolve(n, names, side.label) for n in wanted]
    keys = side.columns[: len(c.key)]
    side.entity_at = _entity_columns(c, side, names, on_right)
    q = exp.select(*[sqlparts.column(n) for n in side.columns]).from_(src)
    if side.spec.where:
        try:
            q = q.where(sqlparts.condition(side.spec.where, side.dialect, f"{side.label}'s 'where'"))
        except sqlparts.SqlFragmentError as e:
            raise ReconcileError(str(e)) from None
    # Rows with a NULL key come first or last depending on the engine; the merge counts and skips them.
    q = q.order_by(*[_bytewise(sqlparts.column(k), side.dialect, text) for k, text in
                     zip(keys, _text_keys(side, src, keys), strict=True)])
    return q.sql(side.dialect, comments=False)


def _entity_columns(c: ReconcileCheck, side: _Side, names: list[str], on_right: bool) -> list[int | None]:
    """Where ``entity.amount`` and ``entity.since`` are in the side's rows (columns not read already are
    appended to ``side.columns``); None where the side does not give it. The left side must have them; the
    right one gives them only to keys only it has (``expect: match``), when it has a column of that name."""
    rule = c.entity
    if rule is None:
        return []
    at: list[int | None] = []
    for name, what in ((rule.amount, "amount"), (rule.since, "since")):
        if name is None:
            continue
        if on_right:
            # The right's name of a compared column, else the same name; no such column: no value.
            name = next((cc.right for cc in c.compare if cc.column.lower() == name.lower()), name)
            found = [n for n in names if n == name] or [n for n in names if n.lower() == name.lower()]
            if c.expect != "match" or len(found) != 1:
                at.append(None)
                continue
            real = found[0]
        else:
            try:
                real = _resolve(name, names, side.label)
            except ReconcileError as e:
                raise ReconcileError(f"entity.{what}: {e}") from None
        if real not in side.columns:
            side.columns.append(real)
        at.append(side.columns.index(real))
    return at


def _text_keys(side: _Side, src: exp.Expr, keys: list[str]) -> list[bool]:
    """Which key columns hold text (they get a byte-wise order), from one row."""
    q = exp.select(*[sqlparts.column(k) for k in keys]).from_(src.copy()).where(
        exp.and_(*[exp.not_(exp.Is(this=sqlparts.column(k), expression=exp.null())) for k in keys])).limit(1)
    _, rows = side.source.query(q.sql(side.dialect), f"probing the key of {side.label}")
    return [isinstance(v, str) for v in rows[0]] if rows else [False] * len(keys)


def _bytewise(col: exp.Expr, dialect: str, text: bool) -> exp.Expr:
    if not text:
        return col
    if dialect == "postgres":
        return exp.Collate(this=col, expression=exp.Identifier(this="C", quoted=True))
    if dialect == "mysql":
        return exp.Cast(this=col, to=exp.DataType.build("BINARY"))
    return col  # SQLite compares text byte-wise by default; others are checked while merging


def _resolve(name: str, names: list[str], label: str) -> str:
    if name in names:
        return name
    matches = [n for n in names if n.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    raise ReconcileError(f"column {name!r} not found on {label} (columns: {', '.join(names[:30])})")


def _rows(side: _Side, sql: str) -> Iterator[tuple[Any, ...]]:
    for _, chunk in side.source.stream(sql, f"reading {side.label}"):
        side.rows += len(chunk)
        yield from chunk


# -- merging ---------------------------------------------------------------------------------------


def _merge(c: ReconcileCheck, left: _Side, lrows: Iterator[tuple[Any, ...]], right: _Side,
           rrows: Iterator[tuple[Any, ...]]) -> _Tally:
    n = len(c.key)
    t = _Tally()
    order = [[k.lower() for k in c.key].index(k.lower()) for k in c.entity.key] if c.entity else []
    kinds: list[list[str] | None] = [None, None]

    def entity(key: tuple[Any, ...], row: tuple[Any, ...], side: _Side) -> None:
        """A violating key becomes an entity (once: a key's duplicates come right after it)."""
        rule = c.entity
        if rule is None or key == t.last_entity or len(t.entities) > rule.max_entities:
            return
        t.last_entity = key
        t.entities.append((*(_entity_key(key[i]) for i in order),
                           *(row[i] if i is not None else None for i in side.entity_at)))
    last: list[tuple[Any, ...] | None] = [None, None]

    def advance(it: Iterator[tuple[Any, ...]], i: int, side: _Side) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
        """The next row with a new, non-NULL key (NULL and repeated keys are counted on the way)."""
        for row in it:
            key = tuple(row[:n])
            if any(v is None for v in key):
                side.null_keys += 1
                if _violates(c, "null", i):
                    _sample(c, t, key, f"NULL key on {side.label}")
                _group(c, t, row, i)  # not compared, but a row of its group all the same
                continue
            if kinds[i] is None:
                kinds[i] = [_kind(v) for v in key]
                _same_key_types(c, left, kinds[0], right, kinds[1])
            previous = last[i]
            if previous is not None:
                try:
                    out_of_order = key < previous
                except TypeError:
                    out_of_order = True
                if out_of_order:
                    raise ReconcileError(
                        f"{side.label} is not in key order as compared here ({previous!r} came before {key!r}): "
                        "its database sorts the key differently; cast the key in a 'sql' query to a type that "
                        "sorts alike on both sides")
                if key == previous:
                    t.duplicates += 1
                    side.duplicates += 1
                    if _violates(c, "duplicate", i):
                        _sample(c, t, key, f"key twice on {side.label}")
                        entity(key, row, side)
                    _group(c, t, row, i)
                    continue
            last[i] = key
            return key, row
        return None

    a, b = advance(lrows, 0, left), advance(rrows, 1, right)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            t.only_left += 1
            if _violates(c, "only", 0):
                _sample(c, t, a[0], f"only on {left.label}")
                entity(a[0], a[1], left)
            _group(c, t, a[1], 0)
            a = advance(lrows, 0, left)
        elif a is None or b[0] < a[0]:
            t.only_right += 1
            if _violates(c, "only", 1):
                _sample(c, t, b[0], f"only on {right.label}")
                entity(b[0], b[1], right)
            _group(c, t, b[1], 1)
            b = advance(rrows, 1, right)
        else:
            off = [(cc, a[1][n + j], b[1][n + j]) for j, cc in enumerate(c.compare)
                   if not _equal(a[1][n + j], b[1][n + j], cc)]
            if off:
                t.mismatched += 1
                for cc, _, _ in off:
                    t.columns_off[cc.column] = t.columns_off.get(cc.column, 0) + 1
                _sample(c, t, a[0], "; ".join(f"{cc.column}: {_show(x)} vs {_show(y)}" for cc, x, y in off))
                entity(a[0], a[1], left)
            else:
                t.matched += 1
                if c.expect == "disjoint":
                    _sample(c, t, a[0], f"on both {left.label} and {right.label}")
                    entity(a[0], a[1], left)
            _group(c, t, a[1], 0)
            _group(c, t, b[1], 1)
            a, b = advance(lrows, 0, left), advance(rrows, 1, right)
    return t


def _violates(c: ReconcileCheck, what: str, side: int) -> bool:
    """Whether a row that is ``only`` on ``side``, a ``duplicate`` or has a ``null`` key is a violation."""
    if c.expect == "disjoint":
        return False  # only keys on both sides are
    if c.expect == "left_in_right":
        return side == 0  # the right side may hold more, twice or without a key
    return True


def _entity_key(value: Any) -> Any:
    """A key value as the entity's stored key has it: 7, 7.0 and Decimal(7) are one key whichever side's
    driver returned it (see key_text in airflow_opsflow.incidents.entities)."""
    number = _numeric(value)
    if number is not None and number.is_finite() and number == number.to_integral_value():
        return int(number)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (dt.date, dt.datetime)):
        return "date"
    return type(value).__name__


def _same_key_types(c: ReconcileCheck, left: _Side, lk: list[str] | None, right: _Side,
                    rk: list[str] | None) -> None:
    if lk is None or rk is None:
        return
    for name, x, y in zip(c.key, lk, rk, strict=True):
        if x != y:
            raise ReconcileError(f"key column {name!r} holds {x} values on {left.label} but {y} values on "
                                 f"{right.label}: cast one side in a 'sql' query (e.g. CAST({name} AS VARCHAR))")


def _numeric(value: Any) -> Decimal | None:
    """A number the driver returned (int, float, Decimal) as an exact Decimal; None for anything else (a
    bool, a text even when it reads as a number: values that are not numbers compare as text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    return to_decimal(value)


def _equal(x: Any, y: Any, cc: CompareColumn) -> bool:
    if x is None or y is None:
        return x is None and y is None
    nx, ny = _numeric(x), _numeric(y)
    if nx is not None and ny is not None:
        absolute, relative = cc.tolerance
        diff = abs(nx - ny)
        return diff <= Decimal(repr(absolute)) or diff <= Decimal(repr(relative)) * max(abs(nx), abs(ny))
    return _text(x) == _text(y)


def _text(value: Any) -> str:
    """Compare dates and timestamps by their ISO text whichever driver returned them (SQLite gives text)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, str) and len(value) >= 19 and value[10:11] in ("T", " ") and value[:4].isdigit():
        try:
            return _text(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _show(value: Any) -> str:
    if value is None:
        return "NULL"
    return str(value) if isinstance(value, Decimal) else str(json_safe(value))  # 49.50 stays 49.50


def _sample(c: ReconcileCheck, t: _Tally, key: tuple[Any, ...], difference: str) -> None:
    limit = c.sample_limit if c.sample_limit is not None else 10
    if len(t.samples) < limit:
        t.samples.append({**dict(zip(c.key, json_safe(list(key)), strict=True)), "difference": difference})


def _group(c: ReconcileCheck, t: _Tally, row: tuple[Any, ...], side: int) -> None:
    if not c.group_by:
        return
    n, m = len(c.key), len(c.compare)
    group = tuple(_text(v) if v is not None else None for v in row[n + m: n + m + len(c.group_by)])
    totals = t.groups.get(group)
    if totals is None:
        if len(t.groups) >= MAX_GROUPS:
            raise ReconcileError(f"more than {MAX_GROUPS} groups in group_by {', '.join(c.group_by)}: group by fewer "
                                 "values")
        totals = t.groups[group] = [[0] + [Decimal(0)] * m, [0] + [Decimal(0)] * m]
    mine = totals[side]
    mine[0] += 1
    for j in range(m):
        value = _numeric(row[n + j])
        if value is not None:
            mine[1 + j] += value


# -- the result ------------------------------------------------------------------------------------


def _off(x: Decimal, y: Decimal, tolerance: tuple[float, float]) -> bool:
    absolute, relative = tolerance
    diff = abs(x - y)
    return diff > Decimal(repr(absolute)) and diff > Decimal(repr(relative)) * max(abs(x), abs(y))


def _groups_off(c: ReconcileCheck, t: _Tally, left: _Side, right: _Side) -> list[dict[str, Any]]:
    out = []
    sums = [cc for cc in c.compare]
    for group, (lt, rt) in sorted(t.groups.items(), key=lambda kv: [str(v) for v in kv[0]]):
        row: dict[str, Any] = dict(zip(c.group_by, group, strict=True))
        bad = _off(Decimal(lt[0]), Decimal(rt[0]), c.group_tolerance)
        row.update({f"{left.label} rows": lt[0], f"{right.label} rows": rt[0]})
        for j, cc in enumerate(sums):
            if lt[1 + j] or rt[1 + j]:
                row.update({f"{left.label} {cc.column}": json_safe(lt[1 + j]),
                            f"{right.label} {cc.column}": json_safe(rt[1 + j])})
                bad = bad or _off(lt[1 + j], rt[1 + j], c.group_tolerance)
        if bad:
            out.append(row)
    return out


def _result(c: ReconcileCheck, left: _Side, right: _Side, t: _Tally) -> CheckResult:
    violated: Status = "fail" if c.severity == "error" else "warn"
    keys = t.matched + t.mismatched + t.only_left + t.only_right
    checked, violations, parts = _violations(c, left, right, t, keys)
    groups_off = _groups_off(c, t, left, right)
    r = CheckResult(name=c.name, kind="reconcile", table=f"{left.label} vs {right.label}", status="pass",
                    severity=c.severity, description=c.description, owner=c.owner,
                    expected=_expectation(c, left, right), rows_checked=checked, violating_count=violations,
                    violating_share=violations / checked if checked else None, samples=t.samples)
    r.observed = {f"{left.label} rows": left.rows, f"{right.label} rows": right.rows, "matched": t.matched,
                  f"only on {left.label}": t.only_left, f"only on {right.label}": t.only_right,
                  "mismatched": t.mismatched}
    if t.duplicates:
        r.observed["duplicate keys"] = t.duplicates
    if left.null_keys or right.null_keys:
        r.observed["NULL keys"] = left.null_keys + right.null_keys
        r.observed.update({f"NULL keys on {s.label}": s.null_keys for s in (left, right) if s.null_keys})
    if c.group_by:
        r.observed["groups"] = len(t.groups)
        r.observed["groups off"] = groups_off[:20]
    for side in (left, right):
        if side.staged is not None:
            st = side.staged
            r.observed[f"{side.label} staged"] = {"records": st.rows, "pages": st.pages, "requests": st.requests}
    empty = (checked == 0 and not left.null_keys) if c.expect == "left_in_right" else (
        keys == 0 and not (left.null_keys or right.null_keys))
    if empty:
        policy = c.on_empty or "fail"
        r.status = violated if policy == "fail" else ("warn" if policy == "warn" else "pass")
        what = f"{left.label} is empty" if c.expect == "left_in_right" else "both sides are empty"
        r.message = f"{what}: nothing to reconcile" + ("" if policy == "pass" else
                                                      " (on_empty: set to 'pass' if expected)")
        return r
    r.status, r.threshold = c.judge_violations(violations, checked)
    if groups_off:
        first = ", ".join(f"{k}={v}" for k, v in groups_off[0].items())
        parts.append(f"{len(groups_off)} of {len(t.groups)} groups off (first: {first})")
        if r.status == "pass":
            r.status = violated
    if parts:
        r.message = f"{checked} keys: " + "; ".join(parts)
    elif c.expect == "disjoint":
        r.message = f"{checked} keys: none on both {left.label} and {right.label}"
    else:
        r.message = f"{checked} keys agree"
    if parts and r.status == "pass":
        r.message += f" (within tolerance: {r.threshold})"
    if c.expect == "left_in_right" and (t.only_right or right.null_keys):
        r.message += f"; {t.only_right + right.null_keys} more on {right.label} (expected)"
    return r


def _violations(c: ReconcileCheck, left: _Side, right: _Side, t: _Tally,
                keys: int) -> tuple[int, int, list[str]]:
    """The keys checked, the violations among them and their description, as ``expect`` counts them."""
    parts: list[str] = []
    if c.expect == "disjoint":
        both = t.matched + t.mismatched
        if both:
            parts.append(f"{both} on both {left.label} and {right.label}")
        return keys, both, parts
    subset = c.expect == "left_in_right"
    if t.only_left:
        parts.append(f"{t.only_left} only on {left.label}")
    if t.only_right and not subset:
        parts.append(f"{t.only_right} only on {right.label}")
    if t.mismatched:
        cols = ", ".join(f"{k} {v}" for k, v in sorted(t.columns_off.items(), key=lambda kv: -kv[1]))
        parts.append(f"{t.mismatched} mismatched ({cols})")
    duplicates = left.duplicates if subset else t.duplicates
    if duplicates:
        parts.append(f"{duplicates} duplicate keys")
    nulls = [s for s in ((left,) if subset else (left, right)) if s.null_keys]
    if nulls:
        where = ", ".join(f"{s.null_keys} on {s.label}" for s in nulls)
        parts.append(f"{sum(s.null_keys for s in nulls)} rows with a NULL key, not compared ({where})")
    violations = t.only_left + t.mismatched + duplicates + sum(s.null_keys for s in nulls)
    if subset:
        return t.matched + t.mismatched + t.only_left, violations, parts
    return keys, violations + t.only_right, parts


def _expectation(c: ReconcileCheck, left: _Side, right: _Side) -> str:
    compared = ", ".join(cc.column + (f" ±{_tolerance(cc.tolerance)}" if any(cc.tolerance) else "")
                         for cc in c.compare)
    key = ", ".join(c.key)
    if c.expect == "disjoint":
        return f"no {key} on both {left.label} and {right.label}"
    text = (f"every {key} of {left.label} also on {right.label}" if c.expect == "left_in_right" else
            f"every {key} on both {left.label} and {right.label}")
    if compared:
        text += f", with equal {compared}"
    if c.group_by:
        text += f"; counts and sums per {', '.join(c.group_by)}" + (
            f" within {_tolerance(c.group_tolerance)}" if any(c.group_tolerance) else " equal")
    return text


def _tolerance(t: tuple[float, float]) -> str:
    return f"{t[0]:g}" if t[0] else f"{t[1] * 100:g}%"


"""Run one metric check: compute the buckets the history lacks, judge the newest, keep every point.

Data flows one way: the spec and the history's newest bucket give the buckets to compute; one
``UNION ALL`` query per 50 buckets computes them (each part a range scan on the time column); every
new point is judged against the points before it, oldest first, so a backfilled outage is flagged and
left out of training like a live one; the points are saved; the newest bucket's verdicts become the
check result.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlglot import exp

from airflow_opsflow.checks.monitor_spec import MetricCheck
from airflow_opsflow.checks.session import QueryError
from airflow_opsflow.core import sqlparts
from airflow_opsflow.core.calendar import events_on
from airflow_opsflow.core.results import CheckResult, Status, json_safe
from airflow_opsflow.monitors import buckets
from airflow_opsflow.monitors.detect import Detection, Point, Verdict, judge

Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]
BUCKETS_PER_QUERY = 50
HISTORY_WINDOWS = 4  # training windows of history read per series (flagged points do not train)
# With calendar events, a year is read (and backfilled on a first run): holidays and month ends recur
# yearly and monthly; hours get a quarter (a year of hours per series is too much to read every run).
EVENT_HISTORY = {"day": 400, "hour": 24 * 92}
_BUCKET, _VALUE = "opsflow_bucket", "opsflow_value"


class MetricError(ValueError):
    """The metric cannot be computed or judged (the check's result is ``error``)."""


@dataclass(frozen=True)
class Series:
    """One series of a metric: the check's history key and a segment (empty without ``segment_by``)."""

    key: str
    segment: tuple[Any, ...]

    @property
    def series_id(self) -> str:
        text = self.key + "\x1f" + json.dumps(json_safe(list(self.segment)))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def label(self, names: list[str]) -> dict[str, Any]:
        return dict(zip(names, json_safe(list(self.segment)), strict=True))


class History(Protocol):
    """Where metric points live (the state store: :class:`airflow_opsflow.monitors.repo.MetricRepo`)."""

    def newest(self, key: str) -> datetime | None:
        """The newest bucket stored for any series of ``key`` (aware, UTC)."""

    def load(self, series: list[Series], before: datetime, limit: int, zone: str) -> dict[str, list[Point]]:
        """Up to ``limit`` points before ``before`` per series id, oldest first, ``at`` in ``zone``."""

    def save(self, key: str, points: list[tuple[Series, Point]]) -> None:
        """Insert or replace points (a retried run writes the same buckets again)."""

    def marks_of(self, key: str) -> list[Any]:
        """People's marks on ``key``'s points (``series_id``, ``bucket``, ``marked_by``)."""


@dataclass
class Bound:
    """What the runner resolved for the check: the table, its filter and the columns' real names."""

    check: MetricCheck
    table: exp.Table | None
    filter: exp.Expr | None
    time_column: str | None
    segments: list[str]
    query: exp.Query | None = None  # the parsed ``sql``


def run_metric(b: Bound, history: History, key: str, now: datetime, query: Query, dialect: str) -> CheckResult:
    """Compute, judge and store; return the check's result (errors raise :class:`MetricError`)."""
    c, d = b.check, b.check.detection()
    zone = c.timezone
    calendar, declared = c.business_calendar(), c.calendar_events()

    def events(at: datetime) -> frozenset[str]:
        return events_on(at.astimezone(calendar.zone).date(), calendar, declared) if declared else frozenset()

    reach = max(d.window, EVENT_HISTORY.get(c.bucket, 0)) if declared else d.window
    no_data = "no series had a value"
    if b.time_column:
        latest = buckets.latest_complete(now, c.bucket, zone)
        newest = history.newest(key)
        first = buckets.step(latest, c.bucket, zone, -((c.backfill or reach) - 1))
        if newest is not None:  # compute only what is missing (a paused DAG's gap too), capped by backfill
            after = buckets.step(buckets.floor(newest, c.bucket, zone), c.bucket, zone, 1)
            first = max(first, after, key=datetime.timestamp)
        wanted = buckets.between(min(first, latest, key=datetime.timestamp), latest, c.bucket, zone)
        sql: list[str] = []
        if newest is None:  # a first run: buckets before the table's first row are no data, not zeros
            starts, sql = _first_row(b, first, query, dialect)
            cut = buckets.floor(starts, c.bucket, zone).timestamp() if starts else math.inf
            wanted = [at for at in wanted if at.timestamp() >= cut]
            if cut > latest.timestamp():
                no_data = ("the table has no rows yet" if starts is None else
                           f"the table's data starts {starts.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}")
        values, computed = _bucketed(b, wanted, query, dialect)
        sql += computed
    else:
        latest = now.astimezone(ZoneInfo(zone))
        values, sql = _per_run(b, latest, query, dialect)
    names = b.segments  # a 'sql' metric's are its leading columns, known once it ran
    newest_series = {s for s, at in values if at.timestamp() == latest.timestamp()}
    if len(newest_series) > c.max_series:
        raise MetricError(f"{len(newest_series)} series in the newest bucket, more than max_series={c.max_series} "
                          f"(segment_by {', '.join(names)}): raise max_series or segment by fewer values")
    by_series: dict[Series, list[tuple[datetime, float]]] = {}
    for (segment, at), value in sorted(values.items(), key=lambda kv: kv[0][1].timestamp()):
        by_series.setdefault(Series(key, segment), []).append((at, value))
    earliest = min((at for pts in by_series.values() for at, _ in pts), default=latest, key=datetime.timestamp)
    past = history.load(list(by_series), earliest, max(HISTORY_WINDOWS * d.window, reach), zone)
    judged: dict[Series, Verdict] = {}
    stored: list[tuple[Series, Point]] = []
    # A bucket judged again (a re-run of a day) that a person marked expected keeps their word for it.
    marked = {(m.series_id, m.bucket.timestamp()): m.marked_by for m in history.marks_of(key)
              if m.mark == "expected"}
    for series, points in by_series.items():
        # Events are read from today's calendar, for old points too: a date added to it relabels history.
        seen = [replace(p, events=events(p.at)) if declared else p for p in past.get(series.series_id, [])]
        for at, value in points:
            verdict = judge(seen, at, value, d, events(at))
            who = marked.get((series.series_id, at.timestamp()))
            if who is not None and verdict.anomalous:
                verdict = replace(verdict, status="ok", reason=f"marked expected by {who}")
            point = Point(at, value, verdict.z, verdict.anomalous, verdict.new_level, verdict.recovered,
                          events=verdict.events)
            seen.append(point)
            stored.append((series, point))
            if at.timestamp() == latest.timestamp():
                judged[series] = verdict
    history.save(key, stored)
    result = _result(b, d, judged, names, latest, no_data)
    result.sql = sql
    return result


# -- computing the values ------------------------------------------------------------------------


def _bucketed(b: Bound, wanted: list[datetime], query: Query,
              dialect: str) -> tuple[dict[tuple[tuple[Any, ...], datetime], float], list[str]]:
    c = b.check
    assert b.table is not None and b.time_column is not None and c.metric is not None
    metric = _aggregate(c.metric, dialect)
    time_col: exp.Expr = sqlparts.column(b.time_column)
    if dialect == "sqlite":  # text timestamps: compare them normalised ('T' or ' ', with or without seconds)
        time_col = exp.Anonymous(this="datetime", expressions=[time_col])
    seg_cols = [sqlparts.column(s) for s in b.segments]
    values: dict[tuple[tuple[Any, ...], datetime], float] = {}
    by_text = {at.astimezone(UTC).isoformat(): at for at in wanted}
    sql_run: list[str] = []
    for i in range(0, len(wanted), BUCKETS_PER_QUERY):
        parts = []
        for at in wanted[i:i + BUCKETS_PER_QUERY]:
            end = buckets.step(at, c.bucket, c.timezone)
            in_bucket = exp.and_(
                exp.GTE(this=time_col.copy(), expression=exp.Literal.string(
                    buckets.sql_literal(at, c.column_timezone, dialect))),
                exp.LT(this=time_col.copy(), expression=exp.Literal.string(
                    buckets.sql_literal(end, c.column_timezone, dialect))))
            cond = exp.and_(b.filter.copy(), in_bucket) if b.filter is not None else in_bucket
            part = exp.select(exp.Literal.string(at.astimezone(UTC).isoformat()).as_(_BUCKET),
                              *[s.copy() for s in seg_cols], metric.copy().as_(_VALUE)).from_(b.table.copy())
            part = part.where(cond)
            if seg_cols:
                part = part.group_by(*[s.copy() for s in seg_cols])
            parts.append(part)
        union: exp.Query = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        sql = union.sql(dialect, comments=False)
        sql_run.append(sql)
        _, rows = query(sql)
        for row in rows:
            at = by_text[str(row[0])]
            segment = tuple(row[1:-1])
            value = _metric_value(row[-1], b, at)
            if value is not None:
                values[(segment, at)] = value
    return values, sql_run


def _first_row(b: Bound, window: datetime, query: Query, dialect: str) -> tuple[datetime | None, list[str]]:
    """When the table's data starts, as far as the backfill (from ``window``) can see: ``window`` if any row
    is older, else its earliest time (whatever the check's filter: after it, a bucket without rows is a
    real zero); None for an empty table.

    Both queries compare the raw time column with a bound (no function around it), so an index, a BRIN
    index or partition pruning applies; a table's unbounded MIN would scan a big one on each first run.
    The older-rows probe goes first: on a table older than the window it stops at its first row, and no
    minimum is asked at all."""
    assert b.table is not None and b.time_column is not None
    start = exp.Literal.string(buckets.sql_literal(window, b.check.column_timezone, dialect))
    older = (exp.select(exp.Literal.number(1)).from_(b.table.copy())
             .where(exp.LT(this=sqlparts.column(b.time_column), expression=start.copy())).limit(1))
    sql = [older.sql(dialect, comments=False)]
    if _ask(b, window, sql[0], query):
        return window, sql
    earliest = (exp.select(exp.Min(this=sqlparts.column(b.time_column))).from_(b.table.copy())
                .where(exp.GTE(this=sqlparts.column(b.time_column), expression=start)))
    sql.append(earliest.sql(dialect, comments=False))
    rows = _ask(b, window, sql[1], query)
    value = rows[0][0] if rows and rows[0] else None
    if value is None:
        return None, sql
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise MetricError(f"time_column {b.time_column!r} does not hold timestamps (got {value!r})") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if not isinstance(value, datetime):
        raise MetricError(f"time_column {b.time_column!r} does not hold timestamps (got {value!r})")
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(b.check.column_timezone))
    return value, sql


def _ask(b: Bound, window: datetime, sql: str, query: Query) -> list[tuple[Any, ...]]:
    """Run a first-run query; a failure says what it was for and what to do, as it repeats on every run
    until one succeeds (the history stays empty, so each run is a first run again)."""
    try:
        return query(sql)[1]
    except QueryError as e:
        raise MetricError(
            f"the first run (no history stored yet) could not find where the table's data starts within the "
            f"backfill window (rows with time_column {b.time_column!r} from {window.isoformat()} on): {e}. Every "
            f"run fails here until this succeeds once: index {b.time_column!r} (or partition by it), or set a "
            f"smaller 'backfill' (now {b.check.backfill or b.check.detection().window} buckets), or raise the "
            f"statement timeout") from e


def _per_run(b: Bound, at: datetime, query: Query,
             dialect: str) -> tuple[dict[tuple[tuple[Any, ...], datetime], float], list[str]]:
    c = b.check
    if b.query is not None:
        sql = b.query.sql(dialect, comments=False)
    else:
        assert b.table is not None and c.metric is not None
        seg_cols = [sqlparts.column(s) for s in b.segments]
        q = exp.select(*seg_cols, _aggregate(c.metric, dialect).as_(_VALUE)).from_(b.table.copy())
        if b.filter is not None:
            q = q.where(b.filter.copy())
        if seg_cols:
            q = q.group_by(*[s.copy() for s in seg_cols])
        sql = q.sql(dialect, comments=False)
    names, rows = query(sql)
    if not rows:
        raise MetricError("the metric query returned no rows" + ("" if b.segments or len(names) > 1 else
                          " (a metric query returns one row, or one per segment)"))
    if len(names) == 1 and len(rows) > 1:
        raise MetricError(f"the metric query returned {len(rows)} rows but no segment column: return one row, "
                          "or put segment columns before the value")
    values: dict[tuple[tuple[Any, ...], datetime], float] = {}
    for row in rows:
        segment = tuple(row[:-1])
        if (segment, at) in values:
            raise MetricError(f"the metric query returned segment {json_safe(list(segment))} twice")
        value = _metric_value(row[-1], b, at)
        if value is not None:
            values[(segment, at)] = value
    if b.query is not None:
        b.segments = list(names[:-1])
    return values, [sql]


def _aggregate(text: str, dialect: str) -> exp.Expr:
    """Parse the metric expression: one expression holding an aggregate, nothing else."""
    try:
        return sqlparts.aggregate(text, dialect)
    except sqlparts.SqlFragmentError as e:
        raise MetricError(f"'metric' {e}") from None


def _metric_value(value: Any, b: Bound, at: datetime) -> float | None:
    """The metric a query returned as a finite float; None for a segment without a value in this bucket."""
    if value is None:
        if b.segments:
            return None  # a segment without a value in this bucket: no point
        where = f"the bucket starting {at.isoformat()}" if b.time_column else "this run"
        raise MetricError(f"the metric is NULL for {where} (no rows?): wrap it in COALESCE(..., 0) if no rows "
                          "means zero")
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise MetricError(f"the metric is not a number: got {value!r} ({type(value).__name__})") from None
    if not math.isfinite(number):
        raise MetricError(f"the metric is not a finite number: {value!r}")
    return number


# -- the result ----------------------------------------------------------------------------------


def _result(b: Bound, d: Detection, judged: dict[Series, Verdict], names: list[str], at: datetime,
            no_data: str) -> CheckResult:
    c = b.check
    violated: Status = "fail" if c.severity == "error" else "warn"
    r = CheckResult(name=c.name, kind="metric", table=b.table.sql() if b.table is not None else None,
                    status="pass", severity=c.severity, description=c.description, owner=c.owner,
                    expected=describe(c, d))
    when = _when(at, c)
    days = sorted({e for v in judged.values() for e in v.events})
    if days:  # a calendar event: "Fri 2026-05-29 (month_end)"
        when += f" ({', '.join(days)})"
    if not judged:
        r.status, r.message = "skipped", f"no value for {when} ({no_data})"
        return r
    anomalous = {s: v for s, v in judged.items() if v.anomalous}
    unknown = [s for s, v in judged.items() if v.status == "insufficient"]
    r.rows_checked = len(judged)
    if not names:  # one series
        (v,) = judged.values()
        r.observed = _observed(v, when)
        if v.status == "insufficient":
            r.status = "skipped"
            what = "" if v.unlearnt_event else "insufficient history, "
            r.message = f"{_fmt(v.value)} for {when}: {what}no verdict yet ({v.reason})"
            return r
        r.message = _sentence(v, when, c.name)
        if v.anomalous:
            r.status, r.violating_count = violated, 1
        else:
            r.violating_count = 0
        return r
    r.violating_count = len(anomalous)
    r.violating_share = len(anomalous) / len(judged)
    r.observed = {"series": len(judged), "anomalous": len(anomalous), "no_verdict": len(unknown), "bucket": when}
    ranked = sorted(anomalous.items(), key=lambda kv: -abs(kv[1].z or 0))
    r.samples = [{**s.label(names), **_observed(v, when)} for s, v in ranked[: max(c.sample_limit or 10, 1)]]
    if anomalous:
        r.status = violated
        worst_series, worst = ranked[0]
        label = ", ".join(f"{k}={v}" for k, v in worst_series.label(names).items())
        r.message = (f"{len(anomalous)} of {len(judged)} series anomalous for {when}; the furthest: {label}: "
                     + _sentence(worst, when, c.name, with_when=False))
    elif len(unknown) == len(judged):
        r.status = "skipped"
        r.message = f"insufficient history for all {len(judged)} series, no verdict yet"
    else:
        r.message = f"{len(judged) - len(unknown)} series within their bands for {when}" + (
            f"; {len(unknown)} without enough history yet" if unknown else "")
    return r


def describe(c: MetricCheck, d: Detection) -> str:
    parts = [f"{'median/MAD' if d.method == 'robust' else 'mean/stddev'} band of {d.sensitivity:g} sigma"]
    if d.seasonality:
        parts.append(d.seasonality.replace("_", "-") + " seasonality"
                     + (" (noise per season)" if d.season_noise else ""))
    if d.transform != "none":
        parts.append("noise scale chosen from the data" if d.transform == "auto" else f"on the {d.transform} scale")
    declared = c.calendar_events()
    if declared:
        parts.append(f"calendar {c.business_calendar().describe()}, learning " + ", ".join(e.name for e in declared))
    if d.direction != "both":
        parts.append(f"{d.direction}s only")
    if d.min_change or d.min_relative_change:
        floors = [f"{d.min_change:g}" if d.min_change else "", f"{d.min_relative_change:.0%}"
                  if d.min_relative_change else ""]
        parts.append("changes of at least " + " and ".join(f for f in floors if f))
    return ", ".join(parts)


def _when(at: datetime, c: MetricCheck) -> str:
    local = at.astimezone(ZoneInfo(c.timezone))
    if not c.time_column:
        return f"the run at {local:%Y-%m-%d %H:%M} {c.timezone}"
    fmt = {"hour": "%a %Y-%m-%d %H:00", "day": "%a %Y-%m-%d", "week": "the week of %Y-%m-%d", "month": "%B %Y"}
    return local.strftime(fmt[c.bucket])


def _observed(v: Verdict, when: str) -> dict[str, Any]:
    out: dict[str, Any] = {"value": _round(v.value), "bucket": when}
    if v.expected is not None:
        out.update(expected=_round(v.expected), low=_round(v.low), high=_round(v.high),
                   z=round(v.z or 0.0, 2))
    if v.new_level:
        out["new_level"] = True
    if v.recovered:
        out["recovered"] = True
    if v.events:
        out["events"] = sorted(v.events)
    if v.transform != "none" and v.expected is not None:
        out["scale"] = v.transform
    return out


def _sentence(v: Verdict, when: str, name: str, with_when: bool = True) -> str:
    at = f" for {when}" if with_when else ""
    value, low, high = _shown(v.value, v.low, v.high)
    band = f"{low} to {high}"
    change = v.value - (v.expected or 0)
    rel = f", {change / v.expected:+.0%}" if v.expected else ""
    scale = f" on the {v.transform} scale" if v.transform != "none" else ""
    # Where the value lies, from the real numbers (not from the verdict: a value outside the band can
    # pass, on a side nobody watches or below the minimum change).
    side = ("above" if v.high is not None and v.value > v.high else
            "below" if v.low is not None and v.value < v.low else None)
    if v.anomalous:
        return f"{value}{at}, {side or ('above' if change > 0 else 'below')} the expected {band} " \
               f"({v.z:+.1f} sigma{scale}{rel})"
    if v.new_level:
        return f"{value}{at}: the metric has settled at a new level ({v.reason}); now expected {band}"
    if v.recovered:
        return f"{value}{at}, within the expected {band}: {v.reason}"
    if side:
        return f"{value}{at}, {side} the expected {band} but not an anomaly ({v.reason or 'within tolerance'})"
    note = f" ({v.reason})" if v.reason else ""
    return f"{value}{at}, within the expected {band}{note}"


def _shown(value: float, low: float | None, high: float | None) -> tuple[str, str, str]:
    """The value and its band as text, with enough decimals that a value outside the band also reads as
    outside it (217.6 above a band ending at 217.4 is not shown as "218 ... to 217" nor "217 ... to 217")."""
    numbers = (value, low, high)
    texts = [_fmt(x) for x in numbers]
    decimals = 0
    while decimals < 6 and ((high is not None and value > high and _parse(texts[0]) <= _parse(texts[2]))
                            or (low is not None and value < low and _parse(texts[0]) >= _parse(texts[1]))):
        decimals += 1
        texts = ["?" if x is None else f"{x:,.{decimals}f}" for x in numbers]
    return texts[0], texts[1], texts[2]


def _parse(text: str) -> float:
    return math.nan if text == "?" else float(text.replace(",", ""))


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.4g}"

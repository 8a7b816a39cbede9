"""Turn the metrics a query returned into a verdict for each check.

Empty data never passes silently: a row-level or distinct-count check with no rows to look at gets its
``on_empty`` status (``fail`` by default), and ``freshness`` on an empty table always fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from airflow_opsflow.checks.compiler import ROWS, BoundCheck
from airflow_opsflow.checks.spec import (
    AcceptedValuesCheck,
    BetweenCheck,
    DistinctCountCheck,
    ExpressionCheck,
    ForeignKeyCheck,
    FreshnessCheck,
    NotNullCheck,
    RegexCheck,
    RowCountCheck,
    SqlCheck,
    UniqueCheck,
)
from airflow_opsflow.core.calendar import BusinessCalendar
from airflow_opsflow.core.durations import format_duration
from airflow_opsflow.core.results import CheckResult, Status, json_safe


def evaluate(b: BoundCheck, m: dict[str, Any], now: datetime | None = None) -> CheckResult:
    """Build the result of ``b`` from its metrics ``m`` (metric role -> value)."""
    c = b.check
    r = CheckResult(name=b.name, kind=b.kind, table=b.table_name, status="pass", severity=c.severity,
                    description=c.description, owner=c.owner, where=b.where_sql,
                    column=", ".join(c.columns()) or None)
    violated: Status = "fail" if c.severity == "error" else "warn"
    rows = _int(m.get(ROWS))
    r.rows_checked = rows
    r.expected = expectation(b)

    if isinstance(c, RowCountCheck):
        r.observed = rows
        lo = c.min if c.min is not None or c.max is not None else 1
        if (lo is not None and rows < lo) or (c.max is not None and rows > c.max):
            r.status, r.message = violated, f"{rows} rows, expected {r.expected}"
        return r
    if isinstance(c, FreshnessCheck):
        return _freshness(r, c, m.get("max"), violated, now)
    if rows == 0 and not isinstance(c, SqlCheck):
        policy = b.on_empty
        r.status = violated if policy == "fail" else ("warn" if policy == "warn" else "pass")
        r.message = "no rows to check" + ("" if policy == "pass" else " (on_empty: set to 'pass' if expected)")
        return r
    if isinstance(c, DistinctCountCheck):
        n = _int(m.get("n_distinct"))
        r.observed = n
        if (c.min is not None and n < c.min) or (c.max is not None and n > c.max):
            r.status, r.message = violated, f"{n} distinct values, expected {r.expected}"
        return r

    if isinstance(c, NotNullCheck):
        violations = rows - _int(m.get("nonnull"))
    elif isinstance(c, UniqueCheck):
        violations = _int(m.get("dup_rows"))
        r.observed = {"duplicate_keys": _int(m.get("dup_keys")), "duplicate_rows": violations}
    else:
        violations = _int(m.get("violations"))
    if isinstance(c, BetweenCheck):
        r.observed = {"min": json_safe(m.get("min")), "max": json_safe(m.get("max"))}
    elif r.observed is None:
        r.observed = violations
    r.violating_count = violations
    r.violating_share = violations / rows if rows else None
    r.rows_checked = None if isinstance(c, SqlCheck) else rows
    total = rows or 0

    r.status, r.threshold = c.judge_violations(violations, total)
    if violations:
        share = f" ({r.violating_share:.2%} of {rows})" if r.violating_share is not None else ""
        r.message = f"{violations} violating rows{share}" + (
            "" if r.status != "pass" else f", within tolerance ({r.threshold})")
    return r


def expectation(b: BoundCheck) -> str:
    """The rule in words, for reports and alerts."""
    c = b.check
    if isinstance(c, RowCountCheck):
        if c.min is None and c.max is None:
            return "at least 1 row"
        return _range(c.min, c.max, "rows")
    if isinstance(c, NotNullCheck):
        return "no NULL values"
    if isinstance(c, UniqueCheck):
        return "unique " + ", ".join(c.columns_)
    if isinstance(c, AcceptedValuesCheck):
        shown = ", ".join(map(str, c.values[:8])) + (" ..." if len(c.values) > 8 else "")
        return f"one of: {shown}"
    if isinstance(c, BetweenCheck):
        lo = f"{'>' if c.min_exclusive else '>='} {c.min}" if c.min is not None else ""
        hi = f"{'<' if c.max_exclusive else '<='} {c.max}" if c.max is not None else ""
        return " and ".join(p for p in (lo, hi) if p)
    if isinstance(c, RegexCheck):
        return f"matches /{c.pattern}/"
    if isinstance(c, FreshnessCheck):
        return freshness_rule(c)
    if isinstance(c, DistinctCountCheck):
        return _range(c.min, c.max, "distinct values")
    if isinstance(c, ExpressionCheck):
        return f"every row satisfies {c.expression}"
    if isinstance(c, ForeignKeyCheck):
        return f"every value exists in {c.to_table}({', '.join(c.to_columns)})"
    if isinstance(c, SqlCheck):
        return "the query returns no rows"
    return ""


def _range(lo: int | None, hi: int | None, unit: str) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi} {unit}"
    return f">= {lo} {unit}" if lo is not None else f"<= {hi} {unit}"


def freshness_rule(c: FreshnessCheck) -> str:
    cal = c.business_calendar()
    rules = []
    if c.max_age is not None:
        rules.append(f"newest row at most {format_duration(c.max_age)} old"
                     + (f" in business time ({cal.describe()})" if cal else ""))
    if c.deadline is not None:
        what = "that day's data" if c.expect == "same_day" else "the previous business day's data"
        rules.append(f"{what} by {c.deadline:%H:%M} on business days ({(cal or BusinessCalendar()).describe()})")
    return "; ".join(rules)


def _freshness(r: CheckResult, c: FreshnessCheck, newest: Any, violated: Status,
               now: datetime | None) -> CheckResult:
    if newest is None:
        r.status, r.message = violated, "no rows: the table's freshness cannot be established"
        return r
    ts = _timestamp(newest, c.timezone)
    if ts is None:
        r.status, r.message = "error", f"column {c.column!r} does not hold timestamps (got {newest!r})"
        return r
    now = now or datetime.now(UTC)
    cal = c.business_calendar()
    age = now - ts
    r.observed = {"newest": ts.isoformat(), "age_s": round(age.total_seconds(), 1)}
    problems = []
    if c.max_age is not None:
        counted = cal.business_time(ts, now) if cal else age
        if cal:
            r.observed["business_age_s"] = round(counted.total_seconds(), 1)
        if counted > c.max_age:
            kind = " of business time" if cal else ""
            problems.append(f"newest row is {format_duration(counted)}{kind} old (max {format_duration(c.max_age)})")
    if c.deadline is not None:
        cal = cal or BusinessCalendar()
        day, due = cal.last_deadline(now, c.deadline)
        wanted = day if c.expect == "same_day" else cal.previous_business_day(day)
        required = cal.start_of(wanted)
        r.observed.update(deadline=due.isoformat(), required_from=required.isoformat())
        if ts < required:
            local = ts.astimezone(cal.zone)
            problems.append(f"no data for {wanted:%a %Y-%m-%d} by its {c.deadline:%H:%M} {cal.timezone} deadline: "
                            f"newest row is from {local:%a %Y-%m-%d %H:%M}, {format_duration(age)} ago")
    if problems:
        r.status, r.message = violated, "; ".join(problems)
    return r


def _timestamp(value: Any, tz: str) -> datetime | None:
    from datetime import date

    if isinstance(value, str):  # SQLite and friends return text
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def _int(value: Any) -> int:
    return int(value or 0)

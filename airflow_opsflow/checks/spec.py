"""Typed check specifications.

A suite is a list of table groups, each with an optional row filter and its checks. Specs are plain
pydantic models so that they validate the same way from Python dicts, objects and YAML, and every
error names the check and the field at fault (see :mod:`airflow_opsflow.checks.loader`).
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_opsflow.checks.monitor_spec import CalendarSpec, MetricCheck, ReconcileCheck, check_zone
from airflow_opsflow.checks.spec_base import (
    CheckBase,
    OnEmpty,
    Scalar,
    Severity,
    Tolerance,
    check_identifier,
)
from airflow_opsflow.checks.values import Count, Int, check_literal, order_key
from airflow_opsflow.core.calendar import BusinessCalendar
from airflow_opsflow.core.durations import parse_duration
from airflow_opsflow.core.identifiers import check_table_name

__all__ = ["CheckBase", "OnEmpty", "Scalar", "Severity", "Tolerance", "check_identifier"]


class _ColumnCheck(CheckBase):
    column: str

    @field_validator("column")
    @classmethod
    def _column(cls, v: str) -> str:
        return check_identifier(v, "column")

    def columns(self) -> list[str]:
        return [self.column]

    def default_name(self) -> str:
        return f"{self.kind}_{self.column}"  # type: ignore[attr-defined]


class _CountRange(CheckBase):
    """A count (rows, distinct values) within ``min``..``max``: a table-level verdict, no row thresholds."""

    min: Count | None = None
    max: Count | None = None

    @property
    def row_level(self) -> bool:
        return False

    @model_validator(mode="after")
    def _bounds(self) -> _CountRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class RowCountCheck(_CountRange):
    """The number of rows (after filters) lies within ``min``..``max`` (default: at least 1)."""

    kind: Literal["row_count"]


class NotNullCheck(_ColumnCheck):
    """``column`` is never NULL."""

    kind: Literal["not_null"]


class UniqueCheck(CheckBase):
    """No two rows share a value of ``columns`` (rows with a NULL in the key are ignored)."""

    kind: Literal["unique"]
    columns_: list[str] = Field(alias="columns", min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _single_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and "column" in data:
            data = dict(data)
            if "columns" in data:
                raise ValueError("give either 'column' or 'columns', not both")
            data["columns"] = [data.pop("column")]
        return data

    @field_validator("columns_")
    @classmethod
    def _cols(cls, v: list[str]) -> list[str]:
        return [check_identifier(c, "column") for c in v]

    def columns(self) -> list[str]:
        return list(self.columns_)

    @property
    def tracks_rows(self) -> bool:
        return False  # its violations are groups of rows, not rows

    def default_name(self) -> str:
        return "unique_" + "_".join(self.columns_)


class AcceptedValuesCheck(_ColumnCheck):
    """Every non-NULL ``column`` value is one of ``values``."""

    kind: Literal["accepted_values"]
    values: list[bool | Scalar] = Field(min_length=1, max_length=10_000)

    @field_validator("values", mode="before")
    @classmethod
    def _literals(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        flags = [value for value in v if isinstance(value, bool)]
        if flags and len(flags) == len(v):
            return v  # a boolean column: [true, false]
        for value in v:  # a boolean among other values is YAML's yes/no trap: check_literal says so
            check_literal(value, "accepted value", allow_empty=True)
        # Only real numbers beside text are a mix ("10" and "S" are both text: sizes, HTTP codes as text).
        if any(isinstance(x, (int, float)) for x in v) and any(isinstance(x, str) for x in v):
            raise ValueError("values mix numbers and text: a column holds one or the other (quote the numbers "
                             "if the column is text)")
        return v


class BetweenCheck(_ColumnCheck):
    """Every non-NULL ``column`` value lies within ``min``..``max`` (numbers, dates or timestamps)."""

    kind: Literal["between"]
    min: Scalar | None = None
    max: Scalar | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False

    @field_validator("min", "max", mode="before")
    @classmethod
    def _literal(cls, v: Any) -> Any:
        return None if v is None else check_literal(v, "a bound")

    @model_validator(mode="after")
    def _bounds(self) -> BetweenCheck:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of 'min' and 'max'")
        if self.min is not None and self.max is not None:
            (lo_kind, lo), (hi_kind, hi) = order_key(self.min), order_key(self.max)
            if lo_kind != hi_kind:
                raise ValueError(f"min ({self.min!r}) and max ({self.max!r}) are not of the same type "
                                 f"({lo_kind} and {hi_kind})")
            if lo_kind != "text":  # text order depends on the database's collation
                if lo > hi:
                    raise ValueError(f"min ({self.min}) is greater than max ({self.max}): no value can pass")
                if lo == hi and (self.min_exclusive or self.max_exclusive):
                    raise ValueError(f"min and max are both {self.min} and a bound is exclusive: no value can pass")
        return self


class RegexCheck(_ColumnCheck):
    """Every non-NULL ``column`` value matches ``pattern`` (a POSIX/database regular expression)."""

    kind: Literal["regex"]
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"invalid regular expression {v!r}: {e}") from None
        return v


class FreshnessCheck(_ColumnCheck):
    """The newest ``column`` timestamp is recent enough (fails on empty data).

    Two rules, alone or together:

    * ``max_age``: the newest row is at most this old; with a ``calendar``, only business time counts
      (Friday 18:00 to Monday 09:00 is 15 business hours of Mon-Fri days, not 63; with the calendar's
      ``business_hours: "09:00-18:00"``, 0);
    * ``deadline``: by this local time on every business day of the ``calendar``, that day's data is
      there: the newest row is from that day (``expect: previous_business_day``: from the business day
      before, for loads that deliver yesterday's data). Until the next deadline passes, the last one
      still applies, so a weekend or holiday keeps asking for the last business day's data.

    :param max_age: ``"2h"``, ``"90m"``, ``"1d 6h"``, ISO 8601 ``"PT2H"`` or seconds.
    :param deadline: ``"06:00"``: a local time in the calendar's zone.
    :param expect: ``same_day`` (default) or ``previous_business_day``: what the deadline asks for.
    :param calendar: business days, time zone and holidays (default Monday-Friday, UTC).
    :param timezone: zone of naive timestamps in the column (default UTC).
    """

    kind: Literal["freshness"]
    max_age: timedelta | None = None
    deadline: time | None = None
    expect: Literal["same_day", "previous_business_day"] = "same_day"
    calendar: CalendarSpec | None = None
    timezone: str = "UTC"

    @property
    def row_level(self) -> bool:
        return False

    @field_validator("max_age", mode="before")
    @classmethod
    def _age(cls, v: Any) -> timedelta | None:
        return None if v is None else parse_duration(v)

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, v: Any) -> Any:
        return None if v is None else parse_deadline(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_zone(v)

    @model_validator(mode="after")
    def _a_rule(self) -> FreshnessCheck:
        if self.max_age is None and self.deadline is None:
            raise ValueError("give max_age (e.g. '2h'), a deadline (e.g. '06:00'), or both")
        if self.expect != "same_day" and self.deadline is None:
            raise ValueError("'expect' applies to a deadline: give deadline too")
        return self

    def business_calendar(self) -> BusinessCalendar | None:
        return self.calendar.build() if self.calendar else None


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_CLOCK_HINT = "write a local time from '00:00' to '23:59', quoted in YAML: deadline: \"06:00\""


def parse_deadline(value: Any) -> time:
    """A deadline: ``"06:00"``, ``"6:00"``, ``"06:00:30"``, a naive ``datetime.time``, or minutes after
    midnight (0..1439: how YAML 1.1 reads an unquoted ``6:00``)."""
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError(f"deadline {value} has a UTC offset: a deadline is a local time in the calendar's "
                             "time zone (set calendar.timezone instead)")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < 1440:
            return time(value // 60, value % 60)
        raise ValueError(f"deadline {value if abs(value) < 10**9 else '<a huge number>'} is not a time of day "
                         f"(as minutes after midnight it must be 0 to 1439; YAML 1.1 reads an unquoted 25:00 as "
                         f"1500): {_CLOCK_HINT}")
    if isinstance(value, str):
        m = _CLOCK.match(value.strip())
        if m:
            hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            if hour <= 23 and minute <= 59 and second <= 59:
                return time(hour, minute, second)
            raise ValueError(f"deadline {value!r} is not a time of day: {_CLOCK_HINT}")
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ValueError(f"deadline {shown} is not a time of day: {_CLOCK_HINT}")


class DistinctCountCheck(_CountRange, _ColumnCheck):
    """The number of distinct non-NULL ``column`` values lies within ``min``..``max``."""

    kind: Literal["distinct_count"]

    @model_validator(mode="after")
    def _one_bound(self) -> DistinctCountCheck:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of 'min' and 'max'")
        return self


class ExpressionCheck(CheckBase):
    """Every row satisfies ``expression``, a SQL predicate (rows where it is NULL count as passing,
    as in a SQL CHECK constraint; combine with ``not_null`` where that matters)."""

    kind: Literal["expression"]
    expression: str = Field(min_length=1)

    def default_name(self) -> str:
        return "expression_" + re.sub(r"\W+", "_", self.expression).strip("_")[:40]


class ForeignKeyCheck(CheckBase):
    """Every non-NULL value of ``columns`` exists in ``to_columns`` of ``to_table``."""

    kind: Literal["foreign_key"]
    columns_: list[str] = Field(alias="columns", min_length=1)
    to_table: str
    to_columns: list[str] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for one, many in (("column", "columns"), ("to_column", "to_columns")):
                if one in data:
                    if many in data:
                        raise ValueError(f"give either '{one}' or '{many}', not both")
                    data[many] = [data.pop(one)]
        return data

    @field_validator("columns_", "to_columns")
    @classmethod
    def _cols(cls, v: list[str]) -> list[str]:
        return [check_identifier(c, "column") for c in v]

    @field_validator("to_table")
    @classmethod
    def _table(cls, v: str) -> str:
        return check_table_name(v, "to_table")

    @model_validator(mode="after")
    def _arity(self) -> ForeignKeyCheck:
        if len(self.columns_) != len(self.to_columns):
            raise ValueError(
                f"columns ({len(self.columns_)}) and to_columns ({len(self.to_columns)}) differ in length"
            )
        return self

    def columns(self) -> list[str]:
        return list(self.columns_)

    def default_name(self) -> str:
        return "foreign_key_" + "_".join(self.columns_)


class SqlCheck(CheckBase):
    """A query whose returned rows are the violations (e.g. payments failed in the last hour).

    The table's ``where`` does not apply: the query says what it selects.
    """

    kind: Literal["sql"]
    sql: str = Field(min_length=1)

    def default_name(self) -> str:
        return "sql"

    @model_validator(mode="after")
    def _count_only(self) -> SqlCheck:
        if any(t is not None and t.share is not None for t in (self.fail_above, self.warn_above)):
            raise ValueError("a 'sql' check has no row total, so its thresholds must be row counts, not shares")
        return self


Check = Annotated[
    RowCountCheck
    | NotNullCheck
    | UniqueCheck
    | AcceptedValuesCheck
    | BetweenCheck
    | RegexCheck
    | FreshnessCheck
    | DistinctCountCheck
    | ExpressionCheck
    | ForeignKeyCheck
    | SqlCheck
    | MetricCheck
    | ReconcileCheck,
    Field(discriminator="kind"),
]
CHECK_KINDS = (
    "row_count", "not_null", "unique", "accepted_values", "between", "regex",
    "freshness", "distinct_count", "expression", "foreign_key", "sql", "metric", "reconcile",
)  # fmt: skip


class TableChecks(BaseModel):
    """Checks on one table.

    :param table: ``name`` or ``schema.name`` (optional when every check is a ``sql`` check or a ``sql``
        metric).
    :param where: a SQL condition applied to every check of this table (e.g. the run's data interval).
    :param sample_columns: columns added to every violating-row sample (e.g. the primary key).
    :param sample_limit: violating rows fetched per failed check (default 10).
    :param on_empty: default ``on_empty`` of this table's checks (default ``fail``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = None
    where: str | None = None
    sample_columns: list[str] = Field(default_factory=list)
    sample_limit: Int = Field(default=10, ge=0, le=1000)
    on_empty: OnEmpty = "fail"
    checks: list[Check] = Field(min_length=1, max_length=10_000)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        return None if v is None else check_table_name(v, "table")

    @field_validator("sample_columns")
    @classmethod
    def _samples(cls, v: list[str]) -> list[str]:
        return [check_identifier(c, "sample column") for c in v]


class Suite(BaseModel):
    """A validated suite: table groups whose checks have unique, non-empty names.

    :param allow_functions: functions its SQL may call although :mod:`~airflow_opsflow.checks.sql_safety`
        refuses them (as the operators' ``allow_functions``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: list[TableChecks] = Field(min_length=1)
    allow_functions: list[str] = Field(default_factory=list, max_length=100)

    def all_checks(self) -> list[tuple[TableChecks, CheckBase]]:
        return [(t, c) for t in self.tables for c in t.checks]

"""Monitor check kinds: metrics judged against their own history (see :mod:`airflow_opsflow.monitors`)."""

from __future__ import annotations

import math
import re
from datetime import date, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_opsflow.checks.api_spec import (
    DEFAULT_CONN,
    ApiSpec,
    HubSpotSource,
    SalesforceSource,
    ZendeskSource,
    soql_parts,
    with_system_connection,
)
from airflow_opsflow.checks.detection import Detection, Transform
from airflow_opsflow.checks.spec_base import CheckBase, check_identifier
from airflow_opsflow.checks.values import Float, Int
from airflow_opsflow.core.calendar import NAMED_RULES, WEEKDAYS, BusinessCalendar, CalendarEvent
from airflow_opsflow.core.identifiers import check_table_name
from airflow_opsflow.core.jinja import PLACEHOLDER

Bucket = Literal["hour", "day", "week", "month"]
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
# Which seasonalities each bucket size can show.
_SEASONS_OF = {"hour": ("hour_of_day", "hour_of_week", "day_of_week"), "day": ("day_of_week",),
               "week": (), "month": ()}


def check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except Exception:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')") from None
    return value


class CalendarSpec(BaseModel):
    """Business days for freshness rules.

    :param timezone: an IANA zone; days start at its midnight (default UTC).
    :param business_days: weekday names (``mon`` ... ``sun``) or numbers (Monday = 0); default Monday-Friday.
    :param holidays: dates (``2026-12-25``) that are not business days, beside the country's.
    :param business_hours: ``"09:00-18:00"``: only these local hours of business days are business time
        (``max_age``); default: the whole day.
    :param country: take public holidays from the ``holidays`` library for this country (``DE``).
    :param subdivision: and this subdivision of it (``BE``: Berlin; regional holidays differ).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    business_days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    holidays: list[date] = Field(default_factory=list)
    business_hours: str | None = None
    country: str | None = None
    subdivision: str | None = None

    @model_validator(mode="after")
    def _country(self) -> CalendarSpec:
        if self.subdivision is not None and self.country is None:
            raise ValueError("'subdivision' needs 'country' (e.g. country: DE, subdivision: BE)")
        if self.country is not None:
            import holidays  # only for calendars that name a country

            supported = holidays.list_supported_countries()
            if self.country not in supported:
                raise ValueError(f"country {self.country!r} is not known to the holidays library: use an ISO 3166 "
                                 "code such as DE, FR, US, GB")
            if self.subdivision is not None and self.subdivision not in supported[self.country]:
                raise ValueError(f"{self.country} has no subdivision {self.subdivision!r}; it has: "
                                 f"{', '.join(supported[self.country])}")
        return self

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_zone(v)

    @field_validator("business_days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for day in v:
            if isinstance(day, str):
                name = day.strip().lower()[:3]
                if name not in WEEKDAYS:
                    raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
                out.append(WEEKDAYS.index(name))
            elif isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
                out.append(day)
            else:
                raise ValueError(f"a weekday is a name (mon) or a number 0-6 (Monday = 0), got {day!r}")
        return out

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, v: str | None) -> str | None:
        if v is not None:
            _business_hours(v)
        return v

    def build(self) -> BusinessCalendar:
        hours = _business_hours(self.business_hours) if self.business_hours else None
        return BusinessCalendar(self.timezone, frozenset(self.business_days), frozenset(self.holidays), hours,
                                self.country, self.subdivision)


_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _business_hours(text: str) -> tuple[time, time | None]:
    """``"09:00-18:00"`` -> (09:00, 18:00); an end of ``24:00`` is the day's end (None)."""
    m = _HOURS.match(text)
    h1, m1, h2, m2 = (int(g) for g in m.groups()) if m else (-1, 0, 0, 0)
    if not m or h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"business hours are 'HH:MM-HH:MM' in 24-hour local time (e.g. '09:00-18:00'), got {text!r}")
    start, end = time(h1, m1), (None if h2 == 24 else time(h2, m2))
    if end is not None and end <= start:
        raise ValueError(f"business hours {text!r} end before they start (hours across midnight are not supported)")
    return start, end


_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class EventSpec(BaseModel):
    """A recurring day a metric check learns as its own effect: a named rule (``month_end``,
    ``last_business_day``, ``first_business_day``, ``holiday``) given as a bare string, or a mapping with
    a ``name`` and either ``day_of_month`` (1-31; the month's last day when it is shorter) or ``dates``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    day_of_month: Int | None = Field(default=None, ge=1, le=31)
    dates: list[date] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in (*NAMED_RULES, "holiday"):
                known = ", ".join((*NAMED_RULES, "holiday"))
                raise ValueError(f"unknown event {data!r}: a bare name is one of {known}; give others as "
                                 "{name: ..., day_of_month: N} or {name: ..., dates: [...]}")
            return {"name": data}
        return data

    @model_validator(mode="after")
    def _rule(self) -> EventSpec:
        if not _EVENT_NAME.match(self.name):
            raise ValueError(f"event name {self.name!r} must be lower-case letters, digits and _ (e.g. payday)")
        given = (self.day_of_month is not None) + (self.dates is not None)
        if self.name in (*NAMED_RULES, "holiday"):
            if given:
                raise ValueError(f"{self.name!r} is a named rule: it takes no day_of_month or dates (name your "
                                 "own event otherwise)")
        elif given != 1:
            raise ValueError(f"event {self.name!r} needs exactly one of day_of_month (1-31) and dates")
        if self.dates is not None and not self.dates:
            raise ValueError(f"event {self.name!r} has an empty list of dates")
        return self

    def build(self) -> CalendarEvent:
        if self.day_of_month is not None:
            return CalendarEvent(self.name, "day_of_month", day=self.day_of_month)
        if self.dates is not None:
            return CalendarEvent(self.name, "dates", dates=frozenset(self.dates))
        return CalendarEvent(self.name, self.name)  # type: ignore[arg-type]  # a named rule (checked above)


class MetricCheck(CheckBase):
    """A business metric judged against its own history: anomalous when it leaves the band its past
    values predict (trend, seasonality and noise learnt from the state store).

    The metric is ``metric``, an aggregate SQL expression over the table (``COUNT(*)``,
    ``SUM(amount)``, ``AVG(CASE WHEN status = 'failed' THEN 1.0 ELSE 0 END)``), or ``sql``, a query
    returning one row whose last column is the value (or one row per segment: segment columns first).

    :param metric: an aggregate SQL expression over the table (with ``where`` filters applied).
    :param sql: a query returning the value (per-run metrics only; its leading columns are segments).
    :param time_column: bucket the metric by this timestamp column: each run computes the buckets it has
        not seen (the past ``backfill`` on the first run) and judges the newest complete one. Without it,
        the metric is computed once per run and stamped with the run's time.
    :param bucket: ``hour``, ``day`` (default), ``week`` or ``month``, in ``timezone``.
    :param timezone: the business's time zone: bucket boundaries and seasons (default UTC).
    :param column_timezone: the zone of naive timestamps in ``time_column`` (default UTC).
    :param segment_by: columns splitting the metric into series (per country, per provider...).
    :param max_series: more series than this in one bucket is an error, not a silent truncation.
    :param backfill: buckets computed from the source on the first run (default: the training window).
    :param history_key: names the history in the state store (default: the DAG, task and check name);
        set it to keep the history when renaming them.
    :param calendar: the business calendar (as freshness checks take it): its public and listed holidays
        on business weekdays are the ``holiday`` event, learnt like the ``events`` (its time zone is the
        check's ``timezone`` unless one of them is left out).
    :param events: recurring days with an effect of their own: ``month_end``, ``last_business_day``,
        ``first_business_day``, ``holiday``, ``{name: payday, day_of_month: 25}`` or ``{name: campaign,
        dates: [...]}``. Each is learnt from its earlier occurrences (``min_event_history``, default 2);
        until then a bucket on it gets no verdict (``skipped``, saying why).

    The detection fields ``method``, ``sensitivity``, ``training``, ``min_training``, ``seasonality``,
    ``direction``, ``min_change``, ``min_relative_change``, ``trend``, ``adapt_after``, ``transform``,
    ``season_noise`` and ``min_event_history`` are those of
    :class:`airflow_opsflow.checks.detection.Detection` (``min_relative_change`` also takes ``"5%"``).
    """

    kind: Literal["metric"]
    metric: str | None = None
    sql: str | None = None
    time_column: str | None = None
    bucket: Bucket = "day"
    timezone: str = "UTC"
    column_timezone: str = "UTC"
    segment_by: list[str] = Field(default_factory=list)
    max_series: Int = Field(default=50, ge=1, le=10_000)
    backfill: Int | None = Field(default=None, ge=1, le=5_000)
    history_key: str | None = None
    method: Literal["robust", "zscore"] = "zscore"
    sensitivity: Float = Field(default=3.0, gt=0)
    training: Int = Field(default=14, ge=2, le=1000)
    min_training: Int = Field(default=7, ge=2, le=1000)
    seasonality: Literal["day_of_week", "hour_of_day", "hour_of_week"] | None = None
    direction: Literal["both", "spike", "drop"] = "both"
    min_change: Float = Field(default=0.0, ge=0)
    min_relative_change: Float = Field(default=0.0, ge=0)
    trend: bool = True
    adapt_after: Int | None = Field(default=3, ge=2, le=100_000)
    transform: Transform = "auto"
    season_noise: bool = True
    min_event_history: Int = Field(default=2, ge=1, le=100)
    calendar: CalendarSpec | None = None
    events: list[EventSpec] = Field(default_factory=list)

    @property
    def row_level(self) -> bool:
        return False

    @model_validator(mode="before")
    @classmethod
    def _calendar_zone(cls, data: Any) -> Any:
        """A calendar's time zone is the business's: the check's buckets take it unless they name one."""
        if isinstance(data, dict) and "timezone" not in data:
            cal = data.get("calendar")
            zone = cal.get("timezone") if isinstance(cal, dict) else getattr(cal, "timezone", None)
            if zone is not None and (not isinstance(cal, CalendarSpec) or "timezone" in cal.model_fields_set):
                data = {**data, "timezone": zone}
        return data

    def business_calendar(self) -> BusinessCalendar:
        """The calendar events are read on, in the check's time zone."""
        cal = self.calendar.build() if self.calendar else BusinessCalendar()
        return BusinessCalendar(self.timezone, cal.business_days, cal.holidays, cal.hours, cal.country,
                                cal.subdivision)

    def calendar_events(self) -> list[CalendarEvent]:
        """The events to learn: the declared ones, and holidays when the calendar has any."""
        events = [e.build() for e in self.events]
        if self.calendar and (self.calendar.country or self.calendar.holidays) and \
                not any(e.name == "holiday" for e in events):
            events.insert(0, CalendarEvent("holiday", "holiday"))
        return events

    @field_validator("time_column")
    @classmethod
    def _time_column(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v, "time_column")

    @field_validator("segment_by", mode="before")
    @classmethod
    def _segments(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("segment_by")
    @classmethod
    def _segment_names(cls, v: list[str]) -> list[str]:
        return [check_identifier(c, "segment column") for c in v]

    @field_validator("timezone", "column_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_zone(v)

    @field_validator("min_relative_change", mode="before")
    @classmethod
    def _share(cls, v: Any) -> Any:
        if isinstance(v, str):
            m = _SHARE.match(v)
            if not m:
                raise ValueError(f"expected a fraction (0.05) or a share ('5%'), got {v!r}")
            return float(m.group(1)) / 100
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MetricCheck:
        if (self.metric is None) == (self.sql is None):
            raise ValueError("give exactly one of 'metric' (an aggregate expression) and 'sql' (a query)")
        if self.sql is not None and (self.time_column or self.segment_by):
            raise ValueError("a 'sql' metric is computed per run: its segments are the query's leading columns, "
                             "and it cannot have time_column or segment_by (use 'metric' on a table for buckets)")
        if self.time_column and self.seasonality and self.seasonality not in _SEASONS_OF[self.bucket]:
            raise ValueError(f"seasonality {self.seasonality!r} cannot be seen in {self.bucket} buckets "
                             f"(possible: {', '.join(_SEASONS_OF[self.bucket]) or 'none'})")
        if self.where and self.sql is not None:
            raise ValueError("'where' does not apply to a 'sql' metric: put the condition in the query")
        if (self.calendar is not None and "timezone" in self.calendar.model_fields_set
                and self.calendar.timezone != self.timezone):
            raise ValueError(f"calendar.timezone {self.calendar.timezone!r} differs from timezone "
                             f"{self.timezone!r}: buckets and calendar days must start at the same midnight "
                             "(give one of them)")
        if self.calendar is not None and self.calendar.business_hours:
            raise ValueError("calendar.business_hours does not apply to a metric check (days are buckets; use "
                             "seasonality: hour_of_week for hours)")
        if (self.events or self.calendar) and self.time_column and self.bucket not in ("hour", "day"):
            raise ValueError(f"calendar events need hour or day buckets, not {self.bucket} buckets (a "
                             f"{self.bucket} holds many days)")
        names = [e.name for e in self.events]
        if len(set(names)) != len(names):
            raise ValueError(f"events are named twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
        self.detection()  # its own consistency rules (training >= min_training...)
        return self

    def detection(self) -> Detection:
        return Detection(method=self.method, sensitivity=self.sensitivity, training=self.training,
                         min_training=self.min_training, seasonality=self.seasonality, direction=self.direction,
                         min_change=self.min_change, min_relative_change=self.min_relative_change,
                         trend=self.trend, adapt_after=self.adapt_after, transform=self.transform,
                         season_noise=self.season_noise, min_event_history=self.min_event_history)

    def columns(self) -> list[str]:
        return [*([self.time_column] if self.time_column else []), *self.segment_by]

    def default_name(self) -> str:
        return "metric"


def parse_value_tolerance(value: Any) -> tuple[float, float]:
    """``0.01`` (absolute) or ``"0.5%"`` (relative to the larger value) -> (absolute, relative)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number (0.01) or a share ('0.5%'), got {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, int) and value > 10**38:
            raise ValueError("a tolerance must be at most 1e38")
        if not math.isfinite(value):
            raise ValueError(f"a tolerance must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError("a tolerance must be >= 0")
        return float(value), 0.0
    if isinstance(value, str) and len(value) <= 40:
        m = _SHARE.match(value)
        if m:
            return 0.0, float(m.group(1)) / 100
        try:
            return parse_value_tolerance(float(value))
        except ValueError:
            pass
    raise ValueError(f"expected a number (0.01) or a share ('0.5%'), got {value!r}")


class ReconcileSide(BaseModel):
    """One side of a reconciliation: a table or a query on a database, or records of a CRM or support API.

    Exactly one of ``table``, ``sql``, ``hubspot``, ``salesforce`` and ``zendesk``. An API side is read page
    by page into a throwaway SQLite database (typed from the values, removed after the check) and then
    reconciled like a table there: ``where`` is SQLite SQL on its columns.

    :param conn_id: the Airflow connection (default: the operator's ``conn_id``; for an API side, the
        system's default connection: ``hubspot_default``, ``salesforce_default``, ``zendesk_default``).
    :param table: the table (``schema.name``), or
    :param sql: a query (its columns are what the check compares), or
    :param hubspot: HubSpot objects: ``{object: companies, properties: [domain, tier], filters: [...]}``
        (see :class:`~airflow_opsflow.checks.api_spec.HubSpotSource`), or
    :param salesforce: a SOQL query: ``{soql: "SELECT Id, Tier__c FROM Account"}``
        (:class:`~airflow_opsflow.checks.api_spec.SalesforceSource`), or
    :param zendesk: an incremental export: ``{export: organizations|users|tickets, start_time: ...}``
        (:class:`~airflow_opsflow.checks.api_spec.ZendeskSource`).
    :param where: a condition on ``table`` or on the API's records (e.g. the day being reconciled).
    :param label: how reports name this side (default: the table, the API's object, or ``conn_id``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    conn_id: str | None = None
    table: str | None = None
    sql: str | None = None
    hubspot: HubSpotSource | None = None
    salesforce: SalesforceSource | None = None
    zendesk: ZendeskSource | None = None
    where: str | None = None
    label: str | None = None

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        return None if v is None else check_table_name(v, "table")

    @model_validator(mode="before")
    @classmethod
    def _system_connection(cls, data: Any) -> Any:
        return with_system_connection(data)

    @model_validator(mode="after")
    def _one_source(self) -> ReconcileSide:
        given = [n for n in ("table", "sql", *DEFAULT_CONN) if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'table' and 'sql' (or an API: 'hubspot', 'salesforce', "
                             "'zendesk')" + (f"; got {', '.join(given)}" if given else ""))
        if self.where and self.sql:
            raise ValueError("'where' applies to a table: put the condition in the 'sql' query")
        return self

    @property
    def api(self) -> ApiSpec | None:
        """The API this side reads, if any."""
        return self.hubspot or self.salesforce or self.zendesk

    @property
    def system(self) -> str | None:
        """``hubspot``, ``salesforce`` or ``zendesk`` for an API side."""
        return next((n for n in DEFAULT_CONN if getattr(self, n) is not None), None)

    def name(self, default: str) -> str:
        api = self.api
        return self.label or self.table or (api.describe() if api is not None else None) or self.conn_id or default


class CompareColumn(BaseModel):
    """A column compared key by key.

    :param column: its name on the left (and on the right unless ``right_column``).
    :param right_column: its name on the right.
    :param tolerance: numbers within this are equal: ``0.01`` (absolute) or ``"0.5%"`` (relative).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    right_column: str | None = None
    tolerance: tuple[float, float] = (0.0, 0.0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @field_validator("column", "right_column")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v, "column")

    @field_validator("tolerance", mode="before")
    @classmethod
    def _tolerance(cls, v: Any) -> Any:
        return v if isinstance(v, tuple) else parse_value_tolerance(v)

    @property
    def right(self) -> str:
        return self.right_column or self.column


class ReconcileCheck(CheckBase):
    """Two keyed datasets, on the same or different connections, agree: the ledger in the production
    database against the processor's settlements in the warehouse, or the warehouse's customers against
    the CRM's accounts (an API side: HubSpot, Salesforce or Zendesk, see :class:`ReconcileSide`).

    Both sides are streamed in key order and merged (memory stays flat on millions of keys): keys only on
    one side, and keys whose ``compare`` columns differ beyond their tolerance, are the violations
    (``fail_above``/``warn_above`` count them, or share them out of all keys seen). With ``group_by``,
    counts and the sums of numeric ``compare`` columns are also reconciled per group, within
    ``group_tolerance``.

    :param left: the first side (``ReconcileSide``: conn_id, one of table, sql, hubspot, salesforce and
        zendesk, where, label).
    :param right: the other side.
    :param key: the key columns, named alike on both sides (alias them in ``sql`` otherwise).
    :param compare: columns compared per key: names, or ``{column, right_column, tolerance}``.
    :param group_by: columns (on both sides) to reconcile counts and sums by.
    :param group_tolerance: how far a group's count or sum may differ: ``2`` or ``"0.1%"`` (default 0).
    :param expect: what agreeing means. ``match`` (default): the same keys on both sides, with equal
        ``compare`` values. ``left_in_right``: every left key is on the right with equal values; what only
        the right side has (more keys, a key twice, NULL keys) is fine ("every paying customer exists in
        the CRM with the right tier"). ``disjoint``: no key is on both sides; duplicates and NULL keys are fine
        ("no open ticket of a churned account": churned accounts left, open tickets right, by
        organization). ``group_by`` needs ``match``; ``compare`` has no sense with ``disjoint``.
    :param entity: track each violating key across runs (new, still open, resolved, age, money at stake:
        :class:`~airflow_opsflow.checks.entity_spec.EntitySpec`). An entity is a key: ``entity.key`` is the
        check's ``key`` (the default when left out). Every key that violates ``expect`` is one: only on one side
        where that is not allowed, on both with different ``compare`` values, twice where that is not allowed,
        on both sides for ``disjoint``; NULL keys and ``group_by`` differences are none. ``entity.amount``
        and ``entity.since`` are columns of the **left** side (the key's first row there); a key only on the
        right (``expect: match``) takes them from the right side's column of that name (a ``compare``
        column's ``right_column``), and has none when the right side has no such column.
    """

    kind: Literal["reconcile"]
    left: ReconcileSide
    right: ReconcileSide
    key: list[str] = Field(min_length=1)
    compare: list[CompareColumn] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)
    group_tolerance: tuple[float, float] = (0.0, 0.0)
    expect: Literal["match", "left_in_right", "disjoint"] = "match"

    @model_validator(mode="before")
    @classmethod
    def _entity_key(cls, data: Any) -> Any:
        """An entity is a key: ``entity.key`` defaults to the check's ``key``."""
        if isinstance(data, dict) and isinstance(data.get("entity"), dict) and "key" not in data["entity"] \
                and data.get("key") is not None:
            return {**data, "entity": {**data["entity"], "key": data["key"]}}
        return data

    @field_validator("key", "group_by", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("key", "group_by")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return [check_identifier(c, "column") for c in v]

    @field_validator("group_tolerance", mode="before")
    @classmethod
    def _group_tolerance(cls, v: Any) -> Any:
        return v if isinstance(v, tuple) else parse_value_tolerance(v)

    @model_validator(mode="after")
    def _distinct_columns(self) -> ReconcileCheck:
        names = [*self.key, *[c.column for c in self.compare], *self.group_by]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"column(s) {', '.join(twice)} named twice among key, compare and group_by")
        if self.where:
            raise ValueError("'where' goes on a side (left.where / right.where) of a reconcile check")
        if self.group_by and self.expect != "match":
            raise ValueError(f"group_by reconciles totals of both sides: it needs expect 'match', not {self.expect!r}")
        if self.compare and self.expect == "disjoint":
            raise ValueError("expect 'disjoint' wants no key on both sides: there is nothing to compare")
        self._entity_columns()
        return self

    def _entity_columns(self) -> None:
        rule = self.entity
        if rule is None:
            return
        if sorted(k.lower() for k in rule.key) != sorted(k.lower() for k in self.key):
            raise ValueError(f"entity.key ({', '.join(rule.key)}) must be the check's key ({', '.join(self.key)}): "
                             "the entities of a reconcile check are its keys (leave entity.key out to use it)")
        known = _known_columns(self.left)
        if known is None:
            return  # a table, or a query whose columns only the database knows: checked when the check runs
        lower = {n.lower() for n in known}
        for field, name in (("amount", rule.amount), ("since", rule.since)):
            if name is not None and name.lower() not in lower:
                raise ValueError(f"entity.{field}: column {name!r} is not among the left side's columns "
                                 f"({', '.join(known)}); {field} is read from the left side "
                                 f"({self.left.name('left')})")

    @property
    def tracks_rows(self) -> bool:
        return True  # its violating keys, collected while merging (entity.key is the check's key)

    def default_name(self) -> str:
        return "reconcile"


_SOQL_FIELDS = re.compile(r"^\s*select\s+(.*?)\s+from\s", re.I | re.S)


def _known_columns(side: ReconcileSide) -> list[str] | None:
    """The columns a side has as its spec says (None when only reading it tells): a query's named output
    columns, a HubSpot side's id and properties, a SOQL query's plain fields."""
    if side.hubspot is not None:
        return ["id", *side.hubspot.properties]
    if side.salesforce is not None:
        m = _SOQL_FIELDS.match(side.salesforce.soql)
        if m is None or "(" in m.group(1):
            return None  # aggregates and functions: named as Salesforce answers
        return soql_parts(side.salesforce.soql)[1]
    if side.sql is None or "{" in side.sql or PLACEHOLDER in side.sql:
        return None  # a table, a Zendesk export, or a query still to be rendered
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        q = sqlglot.parse_one(side.sql)
    except SqlglotError:
        return None  # the loader reports it (in the side's own dialect)
    if not isinstance(q, exp.Query):
        return None
    names = []
    for e in q.selects:
        if isinstance(e, exp.Alias):
            names.append(e.alias)
        elif isinstance(e, exp.Column) and not isinstance(e.this, exp.Star):
            names.append(e.name)
        else:
            return None  # *, or an unnamed expression: the database names it
    return names

"""Time buckets in a business time zone: a Berlin "day" is 23, 24 or 25 hours, a month is a month.

Bucket starts are aware datetimes in the business zone; the SQL side only ever sees ``[start, end)``
boundaries as literals (in the column's own zone), so the same range predicate works on every engine
and can use an index on the time column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

BucketSize = Literal["hour", "day", "week", "month"]


def floor(at: datetime, size: BucketSize, zone: str) -> datetime:
    """The start of the bucket holding ``at`` (aware), in ``zone``."""
    local = at.astimezone(ZoneInfo(zone))
    if size == "hour":
        # Floor in UTC then convert: local wall-clock hours repeat on the night clocks go back.
        utc = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return utc.astimezone(ZoneInfo(zone))
    day = local.date()
    if size == "week":
        day -= timedelta(days=day.weekday())  # ISO weeks start on Monday
    elif size == "month":
        day = day.replace(day=1)
    return _midnight(day, zone)


def step(start: datetime, size: BucketSize, zone: str, n: int = 1) -> datetime:
    """The bucket start ``n`` buckets after (``n`` < 0: before) ``start``."""
    if size == "hour":
        return (start.astimezone(UTC) + timedelta(hours=n)).astimezone(ZoneInfo(zone))
    day = start.astimezone(ZoneInfo(zone)).date()
    if size == "day":
        return _midnight(day + timedelta(days=n), zone)
    if size == "week":
        return _midnight(day + timedelta(weeks=n), zone)
    months = day.year * 12 + day.month - 1 + n
    return _midnight(day.replace(year=months // 12, month=months % 12 + 1, day=1), zone)


def latest_complete(now: datetime, size: BucketSize, zone: str) -> datetime:
    """The newest bucket that has ended by ``now``."""
    return step(floor(now, size, zone), size, zone, -1)


def between(first: datetime, last: datetime, size: BucketSize, zone: str) -> list[datetime]:
    """Bucket starts from ``first`` to ``last`` inclusive."""
    out, at = [], first
    while at.timestamp() <= last.timestamp():  # not `<=`: one zone's datetimes compare by wall clock
        out.append(at)
        at = step(at, size, zone)
    return out


def _midnight(day: date, zone: str) -> datetime:
    # fold=0 and zoneinfo resolve a midnight skipped by DST (rare: some zones) to the next valid time.
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))


def sql_literal(at: datetime, column_zone: str, dialect: str) -> str:
    """``at`` as a timestamp literal for a column in ``column_zone``: local wall-clock time there, with
    its UTC offset where the engine reads offsets (PostgreSQL compares a ``timestamptz`` exactly and
    ignores the offset for a plain ``timestamp``, which is then read in the column's zone); MySQL and
    SQLite get the bare wall-clock time, which is how they store it."""
    local = at.astimezone(ZoneInfo(column_zone))
    text = local.replace(tzinfo=None).isoformat(sep=" ")
    if dialect in ("mysql", "sqlite"):
        return text
    offset = local.strftime("%z")
    return f"{text}{offset[:3]}:{offset[3:]}"

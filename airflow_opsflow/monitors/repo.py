"""Metric history in the state store: one row per series, one per (series, bucket), and the marks people
put on flagged points.

Implements :class:`airflow_opsflow.monitors.metric.History`. Saving is an idempotent upsert in one
transaction (a retried run rewrites the same buckets with the same verdicts), so a crash mid-save leaves
the previous history. Marks live in a table of their own (``metric_marks``): a run rewrites its points,
never a person's judgement of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_opsflow.core.cursor import Cursor
from airflow_opsflow.core.results import json_safe
from airflow_opsflow.core.timestamps import from_text, now_text, to_text
from airflow_opsflow.monitors.detect import Point
from airflow_opsflow.state.store import StateStore

if TYPE_CHECKING:
    from airflow_opsflow.monitors.metric import Series

_CHUNK = 500  # series ids per IN (...) list
EXPECTED = "expected"  # the one mark so far: "this flagged point is normal"
# A local midnight is at most 12 h before UTC's (UTC-12) and 14 h after it (UTC+14). Where a date matches
# two stored day buckets (a zone at UTC+12..+14 or UTC-10..-12 reads either as "that day"), the offsets
# people live at decide: UTC-10 (Hawaii) to UTC+13 (New Zealand's summer, Tonga).
_EAST, _WEST = timedelta(hours=14), timedelta(hours=12)
_LIVED = (timedelta(hours=-10), timedelta(hours=13))
_SHOWN = 5  # flagged buckets an error suggests

Bucket = date | datetime | str
Segment = Mapping[str, Any] | Sequence[Any] | None


class MarkError(ValueError):
    """A mark names no stored point (unknown check, segment or bucket), or a bucket that cannot be read."""


class NothingStored(MarkError):
    """The check has no stored history, or no stored bucket starts there."""


class NotFlagged(MarkError):
    """The point exists but was never flagged: there is nothing to mark expected."""


@dataclass(frozen=True)
class Mark:
    """A person's mark on one stored point.

    :param bucket: the bucket's start (aware, UTC).
    :param segment: the series' segment values (empty without ``segment_by``).
    """

    series_id: str
    history_key: str
    segment: tuple[Any, ...]
    bucket: datetime
    mark: str
    marked_by: str
    note: str | None
    marked_at: datetime


@dataclass(frozen=True)
class StoredPoint:
    """A point a mark resolved to: its series and bucket as stored, its value and verdict."""

    series_id: str
    history_key: str
    segment: tuple[Any, ...]
    bucket: str  # the stored UTC text
    value: float
    z: float | None
    anomalous: bool

    @property
    def at(self) -> datetime:
        at = from_text(self.bucket)
        assert at is not None
        return at


@dataclass(frozen=True)
class SeriesPoint:
    """A stored point read back for a chart: its series' segment, the bucket's start (UTC), the value and
    the verdict it got. The detector's prediction (expected value, band) is not stored, only its score ``z``.
    """

    segment: tuple[Any, ...]
    bucket: datetime
    value: float
    z: float | None
    anomalous: bool
    new_level: bool
    recovered: bool
    marked: bool


class MetricRepo:
    """Read and write metric points and their marks.

    :param store: the state store (tables are created on first use).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.series = store.table("metric_series")
        self.points = store.table("metric_points")
        self.marks = store.table("metric_marks")

    def newest(self, key: str) -> datetime | None:
        with self.store.transaction() as cur:
            cur.execute(f"SELECT MAX(newest) FROM {self.series} WHERE history_key = ?", (key,))
            row = cur.fetchone()
        return from_text(row[0]) if row else None

    def load(self, series: list[Series], before: datetime, limit: int, zone: str) -> dict[str, list[Point]]:
        """The last ``limit`` points before ``before`` of each series, oldest first; ``marked`` for those a
        person marked expected."""
        tz = ZoneInfo(zone)
        out: dict[str, list[Point]] = {}
        ids = [s.series_id for s in series]
        with self.store.transaction() as cur:
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                # The window is small (a few hundred buckets per series): read it and cut in Python rather
                # than use a per-series LIMIT, which needs window functions MySQL 5.7 lacks. The marks join
                # on their primary key: one probe per point, none when the table is empty.
                cur.execute(f"SELECT p.series_id, p.bucket, p.value, p.z, p.anomalous, p.new_level, p.recovered, "
                            f"m.mark FROM {self.points} p LEFT JOIN {self.marks} m ON m.series_id = p.series_id "
                            f"AND m.bucket = p.bucket AND m.mark = ? WHERE p.series_id IN ({marks}) AND p.bucket < ? "
                            "ORDER BY p.series_id, p.bucket", (EXPECTED, *chunk, to_text(before)))
                for sid, bucket, value, z, anomalous, new_level, recovered, mark in cur.fetchall():
                    at = from_text(bucket)
                    assert at is not None  # a NOT NULL column
                    out.setdefault(sid, []).append(Point(at.astimezone(tz), float(value),
                                                         None if z is None else float(z), bool(anomalous),
                                                         bool(new_level), bool(recovered), mark is not None))
        return {sid: pts[-limit:] for sid, pts in out.items()}

    def save(self, key: str, points: list[tuple[Series, Point]]) -> None:
        if not points:
            return
        now = now_text()
        newest: dict[Series, str] = {}
        for s, p in points:
            newest[s] = max(newest.get(s, ""), to_text(p.at))
        for _ in self.store.retrying():
            try:
                with self.store.transaction() as cur:
                    for s, at in newest.items():
                        self._upsert_series(cur, key, s, at, now)
                    ids = {(s.series_id, to_text(p.at)) for s, p in points}
                    by_series: dict[str, list[str]] = {}
                    for sid, bucket in ids:
                        by_series.setdefault(sid, []).append(bucket)
                    for sid, bucket_list in by_series.items():
                        for i in range(0, len(bucket_list), _CHUNK):
                            chunk = bucket_list[i:i + _CHUNK]
                            cur.execute(f"DELETE FROM {self.points} WHERE series_id = ? AND bucket IN "
                                        f"({', '.join('?' * len(chunk))})", (sid, *chunk))
                    rows = [(s.series_id, to_text(p.at), p.value, p.z, int(p.anomalous), int(p.new_level),
                             int(p.recovered), now) for s, p in points]
                    for row in rows:
                        cur.execute(f"INSERT INTO {self.points} (series_id, bucket, value, z, anomalous, new_level, "
                                    "recovered, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                return
            except Exception as e:  # two runs saving the same new series at once: the loser retries
                if not _is_duplicate(e):
                    raise

    def _upsert_series(self, cur: Cursor, key: str, s: Series, newest: str, now: str) -> None:
        cur.execute(f"SELECT newest FROM {self.series} WHERE series_id = ?", (s.series_id,))
        row = cur.fetchone()
        if row is None:
            cur.execute(f"INSERT INTO {self.series} (series_id, history_key, segment, newest, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)", (s.series_id, key, json.dumps(json_safe(list(s.segment))),
                                                   newest, now))
        elif newest > row[0]:
            cur.execute(f"UPDATE {self.series} SET newest = ?, updated_at = ? WHERE series_id = ?",
                        (newest, now, s.series_id))

    # -- marks ----------------------------------------------------------------------------------------

    def find(self, key: str, bucket: Bucket, segment: Segment = None, timezone: str | None = None,
             label: str | None = None) -> StoredPoint:
        """The stored point of ``key``'s series ``segment`` at ``bucket``.

        :param bucket: a local date (``2026-06-15``: the day, week or month bucket starting that day), a
            date and time (naive: local, needs ``timezone`` unless the series has one bucket near it; with an
            offset: exact), or their ISO text. Resolved against the stored buckets, so the check's time zone
            is not needed for day buckets.
        :param segment: the segment's values (``{"country": "DE"}`` or ``["DE"]``, in ``segment_by`` order).
        :param timezone: the check's time zone, to read a naive time exactly.
        :param label: names the check in errors (default: the history key).
        """
        what = label or f"history key {key!r}"
        at = _parse_bucket(bucket)
        with self.store.transaction() as cur:
            sid, seg = self._series_of(cur, key, segment, what)
            where = f"{what}{_segment_text(seg)}"
            lo, hi = _window(at, timezone, what)
            cur.execute(f"SELECT bucket, value, z, anomalous FROM {self.points} WHERE series_id = ? "
                        "AND bucket >= ? AND bucket <= ? ORDER BY bucket", (sid, to_text(lo), to_text(hi)))
            found = cur.fetchall()
            if len(found) > 1 and isinstance(at, datetime) and at.tzinfo is None and timezone is None:
                lived = [r for r in found if _LIVED[0] <= at.replace(tzinfo=UTC) - _utc(r[0]) <= _LIVED[1]]
                found = lived or found
            if len(found) == 1:
                b, value, z, anomalous = found[0]
                return StoredPoint(sid, key, seg, b, float(value), None if z is None else float(z), bool(anomalous))
            if found:
                shown = ", ".join(str(r[0]) for r in found[:_SHOWN]) + (", ..." if len(found) > _SHOWN else "")
                raise MarkError(f"{where}: bucket {_bucket_text(bucket)!r} matches {len(found)} stored buckets "
                                f"({shown}): give the bucket's start with its UTC offset (as listed), or the "
                                "check's timezone")
            cur.execute(f"SELECT bucket FROM {self.points} WHERE series_id = ? AND anomalous = 1", (sid,))
            flagged = [r[0] for r in cur.fetchall()]
        target = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        flagged.sort(key=lambda b: abs((_utc(b) - target).total_seconds()))
        hint = (f"; the nearest flagged buckets (starts, UTC): {', '.join(flagged[:_SHOWN])}" if flagged
                else "; it has no flagged buckets")
        raise NothingStored(f"{where}: no stored bucket starts at {_bucket_text(bucket)!r}{hint}")

    def mark(self, point: StoredPoint, by: str, note: str | None = None, mark: str = EXPECTED,
             now: datetime | None = None) -> tuple[Mark, bool]:
        """Mark ``point`` (see :meth:`find`); returns the mark and whether anything changed. Marking again
        is no error: the same person's second mark keeps the first one's time (a new note replaces the
        note), another person's replaces it (the latest judgement counts, with its author)."""
        if not by.strip():
            raise MarkError("field 'by': say who marks the point (a name or e-mail address)")
        at = to_text(now or datetime.now(UTC))
        for _ in self.store.retrying():
            try:
                with self.store.transaction() as cur:
                    cur.execute(f"SELECT mark, marked_by, note, marked_at FROM {self.marks} "
                                "WHERE series_id = ? AND bucket = ?", (point.series_id, point.bucket))
                    row = cur.fetchone()
                    if row is None:
                        if not point.anomalous:
                            raise NotFlagged(f"bucket {point.bucket} of {point.history_key!r}"
                                            f"{_segment_text(point.segment)} was not flagged (value "
                                            f"{point.value:g}): only flagged points can be marked {mark}")
                        cur.execute(f"INSERT INTO {self.marks} (series_id, bucket, history_key, mark, marked_by, "
                                    "note, marked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    (point.series_id, point.bucket, point.history_key, mark, by, note, at))
                        return self._mark(point, mark, by, note, at), True
                    if row[0] == mark and row[1] == by:
                        if note is None or note == row[2]:
                            return self._mark(point, mark, by, row[2], row[3]), False
                        cur.execute(f"UPDATE {self.marks} SET note = ? WHERE series_id = ? AND bucket = ?",
                                    (note, point.series_id, point.bucket))
                        return self._mark(point, mark, by, note, row[3]), True
                    cur.execute(f"UPDATE {self.marks} SET mark = ?, marked_by = ?, note = ?, marked_at = ? "
                                "WHERE series_id = ? AND bucket = ?", (mark, by, note, at, point.series_id,
                                                                       point.bucket))
                    return self._mark(point, mark, by, note, at), True
            except MarkError:
                raise
            except Exception as e:  # two people marking the same point at once: the loser reads the winner's
                if not _is_duplicate(e):
                    raise
        raise AssertionError("unreachable")  # retrying() raises when it gives up

    def unmark(self, point: StoredPoint) -> Mark | None:
        """Remove the mark on ``point``; returns the mark removed (None: there was none)."""
        with self.store.transaction() as cur:
            cur.execute(f"SELECT mark, marked_by, note, marked_at FROM {self.marks} WHERE series_id = ? AND bucket = ?",
                        (point.series_id, point.bucket))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(f"DELETE FROM {self.marks} WHERE series_id = ? AND bucket = ?", (point.series_id, point.bucket))
        return self._mark(point, row[0], row[1], row[2], row[3])

    def marks_of(self, key: str) -> list[Mark]:
        """Every mark on ``key``'s points, by bucket then segment."""
        with self.store.transaction() as cur:
            cur.execute(f"SELECT m.series_id, s.segment, m.bucket, m.mark, m.marked_by, m.note, m.marked_at "
                        f"FROM {self.marks} m LEFT JOIN {self.series} s ON s.series_id = m.series_id "
                        "WHERE m.history_key = ? ORDER BY m.bucket, s.segment", (key,))
            rows = cur.fetchall()
        return [Mark(sid, key, tuple(json.loads(seg or "[]")), _utc(b), mark, by, note, _utc(at))
                for sid, seg, b, mark, by, note, at in rows]

    def unexplained(self, key: str) -> int:
        """How many points of ``key``'s newest bucket are flagged and not marked expected: what an open
        incident of the check is still about (0: people explained all of them)."""
        with self.store.transaction() as cur:
            cur.execute(f"SELECT MAX(newest) FROM {self.series} WHERE history_key = ?", (key,))
            row = cur.fetchone()
            if not row or row[0] is None:
                return 0
            cur.execute(f"SELECT COUNT(*) FROM {self.points} p JOIN {self.series} s ON s.series_id = p.series_id "
                        f"LEFT JOIN {self.marks} m ON m.series_id = p.series_id AND m.bucket = p.bucket "
                        "AND m.mark = ? WHERE s.history_key = ? AND p.bucket = ? AND p.anomalous = 1 "
                        "AND m.series_id IS NULL", (EXPECTED, key, row[0]))
            count = cur.fetchone()
        return int(count[0]) if count else 0

    def points_of(self, key: str, since: datetime | None = None, until: datetime | None = None,
                  limit: int = 5000) -> tuple[list[SeriesPoint], bool] | None:
        """The newest ``limit`` points of every series of ``key`` with a bucket in the window, oldest first
        (then by segment), and whether more matched; None when ``key`` has no stored series."""
        where, params = "", [EXPECTED, key]
        if since is not None:
            where += " AND p.bucket >= ?"
            params.append(to_text(since))
        if until is not None:
            where += " AND p.bucket <= ?"
            params.append(to_text(until))
        with self.store.transaction() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {self.series} WHERE history_key = ?", (key,))
            row = cur.fetchone()
            if not row or not row[0]:
                return None
            cur.execute(f"SELECT s.segment, p.bucket, p.value, p.z, p.anomalous, p.new_level, p.recovered, m.mark "
                        f"FROM {self.points} p JOIN {self.series} s ON s.series_id = p.series_id "
                        f"LEFT JOIN {self.marks} m ON m.series_id = p.series_id AND m.bucket = p.bucket AND m.mark = ? "
                        f"WHERE s.history_key = ?{where} ORDER BY p.bucket DESC, s.segment LIMIT {int(limit) + 1}",
                        params)
            found = cur.fetchall()
        points = [SeriesPoint(tuple(json.loads(seg or "[]")), _utc(b), float(v), None if z is None else float(z),
                              bool(a), bool(n), bool(r), m is not None) for seg, b, v, z, a, n, r, m in found[:limit]]
        points.sort(key=lambda p: (p.bucket, json.dumps(json_safe(list(p.segment)))))
        return points, len(found) > limit

    def _series_of(self, cur: Cursor, key: str, segment: Segment, what: str) -> tuple[str, tuple[Any, ...]]:
        cur.execute(f"SELECT series_id, segment FROM {self.series} WHERE history_key = ? ORDER BY segment", (key,))
        stored = [(sid, tuple(json.loads(seg))) for sid, seg in cur.fetchall()]
        if not stored:
            raise NothingStored(f"{what}: no metric history is stored (has the check run? a check with its own "
                            "history_key needs it given)")
        wanted = _segment_values(segment)
        exact = [s for s in stored if [_text(v) for v in s[1]] == wanted]
        # Names are not stored, only values in segment_by order: values given in another order still match
        # when they match one series only.
        loose = exact or [s for s in stored if sorted(_text(v) for v in s[1]) == sorted(wanted)]
        if len(loose) == 1:
            return loose[0]
        listing = "; ".join(", ".join(_text(v) for v in seg) for _, seg in stored[:10])
        listing += " ..." if len(stored) > 10 else ""
        if not wanted:
            raise MarkError(f"{what}: the check has {len(stored)} series (segment_by): field 'segment' must name "
                            f"one: {listing}")
        why = "matches several series" if loose else "is not a stored series"
        raise MarkError(f"{what}: field 'segment' {', '.join(wanted)!r} {why}; stored: {listing}")

    @staticmethod
    def _mark(point: StoredPoint, mark: str, by: str, note: str | None, at: str) -> Mark:
        return Mark(point.series_id, point.history_key, point.segment, point.at, mark, by, note, _utc(at))


def _segment_list(segment: Segment) -> list[Any]:
    if segment is None:
        return []
    if isinstance(segment, Mapping):
        return list(segment.values())
    if isinstance(segment, str | bytes):
        return [segment]
    return list(segment)


def _segment_values(segment: Segment) -> list[str]:
    return [_text(v) for v in _segment_list(segment)]


def _text(value: Any) -> str:
    """A segment value compared as text: ``3`` from a command line is the stored ``3``."""
    return value if isinstance(value, str) else json.dumps(json_safe(value))


def _segment_text(segment: tuple[Any, ...]) -> str:
    return f", segment {', '.join(_text(v) for v in segment)}" if segment else ""


def _bucket_text(bucket: Bucket) -> str:
    return bucket if isinstance(bucket, str) else bucket.isoformat()


def _parse_bucket(bucket: Bucket) -> datetime:
    """A naive local datetime (a date: its midnight) or an aware one."""
    if isinstance(bucket, datetime):
        return bucket
    if isinstance(bucket, date):
        return datetime.combine(bucket, time(0))
    text = str(bucket).strip()
    try:
        return datetime.combine(date.fromisoformat(text), time(0)) if len(text) == 10 else \
            datetime.fromisoformat(text)
    except ValueError:
        raise MarkError(f"field 'bucket': {text!r} is not a date (2026-06-15) nor a date and time "
                        "(2026-06-15T09:00, 2026-06-14T22:00:00+00:00)") from None


def _window(at: datetime, timezone: str | None, what: str) -> tuple[datetime, datetime]:
    """The UTC span a stored bucket starting at ``at`` can be in."""
    if at.tzinfo is not None:
        return at, at
    if timezone:
        try:
            exact = at.replace(tzinfo=ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise MarkError(f"{what}: field 'timezone': unknown time zone {timezone!r}") from None
        return exact, exact
    utc = at.replace(tzinfo=UTC)
    return utc - _EAST, utc + _WEST


def _utc(text: str) -> datetime:
    at = from_text(text)
    assert at is not None  # NOT NULL columns
    return at


def _is_duplicate(error: Exception) -> bool:
    text = str(error).lower()
    return "duplicate" in text or "unique" in text

"""Metric history in the state store: one row per series, one per (series, bucket).

Implements :class:`airflow_opsflow.monitors.metric.History`. Saving is an idempotent upsert in one
transaction (a retried run rewrites the same buckets with the same verdicts), so a crash mid-save leaves
the previous history.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from airflow_opsflow.core.cursor import Cursor
from airflow_opsflow.core.results import json_safe
from airflow_opsflow.core.timestamps import from_text, now_text, to_text
from airflow_opsflow.monitors.detect import Point
from airflow_opsflow.state.store import StateStore

if TYPE_CHECKING:
    from airflow_opsflow.monitors.metric import Series

_CHUNK = 500  # series ids per IN (...) list


class MetricRepo:
    """Read and write metric points.

    :param store: the state store (tables are created on first use).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.series = store.table("metric_series")
        self.points = store.table("metric_points")

    def newest(self, key: str) -> datetime | None:
        with self.store.transaction() as cur:
            cur.execute(f"SELECT MAX(newest) FROM {self.series} WHERE history_key = ?", (key,))
            row = cur.fetchone()
        return from_text(row[0]) if row else None

    def load(self, series: list[Series], before: datetime, limit: int, zone: str) -> dict[str, list[Point]]:
        """The last ``limit`` points before ``before`` of each series, oldest first."""
        tz = ZoneInfo(zone)
        out: dict[str, list[Point]] = {}
        ids = [s.series_id for s in series]
        with self.store.transaction() as cur:
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                # The window is small (a few hundred buckets per series): read it and cut in Python rather
                # than use a per-series LIMIT, which needs window functions MySQL 5.7 lacks.
                cur.execute(f"SELECT series_id, bucket, value, z, anomalous, new_level FROM {self.points} "
                            f"WHERE series_id IN ({marks}) AND bucket < ? ORDER BY series_id, bucket",
                            (*chunk, to_text(before)))
                for sid, bucket, value, z, anomalous, new_level in cur.fetchall():
                    at = from_text(bucket)
                    assert at is not None  # a NOT NULL column
                    out.setdefault(sid, []).append(Point(at.astimezone(tz), float(value),
                                                         None if z is None else float(z), bool(anomalous),
                                                         bool(new_level)))
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
                    rows = [(s.series_id, to_text(p.at), p.value, p.z, int(p.anomalous), int(p.new_level), now)
                            for s, p in points]
                    for row in rows:
                        cur.execute(f"INSERT INTO {self.points} (series_id, bucket, value, z, anomalous, new_level, "
                                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
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


def _is_duplicate(error: Exception) -> bool:
    text = str(error).lower()
    return "duplicate" in text or "unique" in text

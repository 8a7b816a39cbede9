"""People's feedback on metric checks: a flagged point marked "expected" (and the mark taken back).

A mark is stored with who and when (``metric_marks``); the detector then trains on the point as normal
(and learns its calendar event's effect from it when it falls on one). When the marked point is what the
check's incident is about (the newest bucket it judged) and no other flagged point of that bucket is
left unexplained, the incident resolves at once and its ``resolved`` alert is queued to the routes that
carried its earlier alerts: the task's next run delivers it (into the same Slack thread, ticket...).

Airflow-free: the CLI (``python -m airflow_opsflow.cli mark-expected``) opens the state store from an
Airflow connection and calls :func:`mark_expected` / :func:`unmark`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from airflow_opsflow.incidents.lifecycle import Incident, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo
from airflow_opsflow.monitors.repo import Bucket, Mark, MarkError, MetricRepo, Segment
from airflow_opsflow.state.store import StateStore

__all__ = ["Feedback", "MarkError", "mark_expected", "marks", "parse_segment", "unmark"]


@dataclass(frozen=True)
class Feedback:
    """What a mark (or unmark) did.

    :param mark: the mark stored (for :func:`unmark`: the one removed, None when there was none).
    :param changed: the call changed the mark (False: the same person had already marked it so).
    :param incident: the check's incident after the call (None: the check never had one).
    :param resolved: this call resolved the incident.
    :param routes: the routes now owed its ``resolved`` alert (sent by the task's next run).
    """

    mark: Mark | None
    changed: bool
    incident: Incident | None = None
    resolved: bool = False
    routes: tuple[str, ...] = ()

    def text(self) -> str:
        """One paragraph for people (the CLI prints it)."""
        if self.mark is None:
            return "no mark was stored on that point: nothing removed"
        m = self.mark
        seg = f" (segment {', '.join(str(v) for v in m.segment)})" if m.segment else ""
        what = f"bucket {m.bucket.isoformat()}{seg} of {m.history_key!r}"
        if not self.changed and not self.resolved:
            head = f"{what} was already marked {m.mark} by {m.marked_by} at {m.marked_at.isoformat()}"
        else:
            head = f"{what}: marked {m.mark} by {m.marked_by} at {m.marked_at.isoformat()}"
        if self.resolved and self.incident is not None:
            to = f"; the next run of the task sends the resolution to {', '.join(self.routes)}" if self.routes else ""
            return f"{head}. Incident {self.incident.incident_id} resolved{to}."
        if self.incident is not None and self.incident.status != "resolved":
            return f"{head}. Incident {self.incident.incident_id} stays {self.incident.status}: other flagged " \
                   "points of its bucket are not marked, or it is about a later bucket."
        return f"{head}."


def parse_segment(values: Sequence[str]) -> dict[str, str] | None:
    """``["country=DE", ...]`` (the CLI's ``--segment``, the API's ``?segment=``) as a segment."""
    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise MarkError(f"field 'segment': {item!r} is not NAME=VALUE (e.g. country=DE)")
        out[name.strip()] = value
    return out


def _where(dag_id: str, task_id: str, check: str) -> str:
    return f"dag {dag_id!r}, task {task_id!r}, check {check!r}"


def _key(dag_id: str, task_id: str, check: str, history_key: str | None) -> str:
    """The check's history key, as the operator builds it (``history_key`` when the check sets its own)."""
    for field, value in (("dag", dag_id), ("task", task_id), ("check", check)):
        if not value or not value.strip():
            raise MarkError(f"field {field!r} is empty")
    return history_key or f"{dag_id}/{task_id}/{check}"


def mark_expected(store: StateStore, *, dag_id: str, task_id: str, check: str, bucket: Bucket,
                  segment: Segment = None, by: str, note: str | None = None, history_key: str | None = None,
                  timezone: str | None = None, now: datetime | None = None) -> Feedback:
    """Mark the flagged point of a metric check at ``bucket`` expected, and close the incident it explains.

    :param store: the state store the check runs with.
    :param dag_id, task_id, check: the check (a mapped task instance: ``"task[3]"``).
    :param bucket: the bucket: a local date (``"2026-06-15"``, the day, week or month bucket starting that
        day), a date and time, or the start with its offset (``"2026-06-14T22:00:00+00:00"``).
    :param segment: for a check with ``segment_by``: its values (``{"country": "DE"}``).
    :param by: who marks it (kept with the mark).
    :param note: why (kept with the mark and the incident).
    :param history_key: the check's ``history_key`` when it sets one.
    :param timezone: the check's time zone, to read a naive date and time exactly (hour buckets).
    :param now: when (default the current time).

    Raises :class:`MarkError` naming the check, segment and bucket when no stored point matches (listing
    the nearest flagged buckets) or the point was not flagged.
    """
    where = _where(dag_id, task_id, check)
    key = _key(dag_id, task_id, check, history_key)
    metrics = MetricRepo(store)
    point = metrics.find(key, bucket, segment, timezone, where)
    try:
        mark, changed = metrics.mark(point, by, note, now=now)
    except MarkError as e:
        raise type(e)(f"{where}: {e}") from None  # the same kind (not found, not flagged...)
    incidents = IncidentRepo(store)
    fp = fingerprint(dag_id, task_id, check)
    incident = incidents.get(fp)
    if incident is None or incident.status == "resolved" or metrics.unexplained(key):
        return Feedback(mark, changed, incident)
    done = incidents.dismiss(fp, by, _reason(mark, note), now or datetime.now(UTC))
    if done is None:  # removed meanwhile
        return Feedback(mark, changed)
    return Feedback(mark, changed, done.incident, done.incident.status == "resolved", tuple(done.routes))


def unmark(store: StateStore, *, dag_id: str, task_id: str, check: str, bucket: Bucket,
           segment: Segment = None, history_key: str | None = None, timezone: str | None = None) -> Feedback:
    """Take back the mark on a point (arguments as for :func:`mark_expected`): the detector treats it as
    its verdict says again. A resolved incident stays resolved (no run judged anything anew)."""
    where = _where(dag_id, task_id, check)
    metrics = MetricRepo(store)
    point = metrics.find(_key(dag_id, task_id, check, history_key), bucket, segment, timezone, where)
    removed = metrics.unmark(point)
    return Feedback(removed, removed is not None)


def marks(store: StateStore, *, dag_id: str, task_id: str, check: str, history_key: str | None = None) -> list[Mark]:
    """The marks on a check's points, oldest bucket first."""
    return MetricRepo(store).marks_of(_key(dag_id, task_id, check, history_key))


def _reason(mark: Mark, note: str | None) -> str:
    """Why the incident closed, as its summary and alert keep it."""
    seg = f" (segment {', '.join(str(v) for v in mark.segment)})" if mark.segment else ""
    return f"bucket {mark.bucket.isoformat()}{seg} marked {mark.mark}" + (f": {note}" if note else "")

"""Incidents and their alert outbox in the state store.

``record()`` advances every fingerprint a run observed and writes, in the same transaction, one outbox
row per (transition, route). Delivery happens after the commit; each route marks its row sent. So a
crash or a failed delivery never loses the incident state, and a retried task re-sends only what is
still pending (the lifecycle ignores a run it already counted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_opsflow.core.cursor import Cursor
from airflow_opsflow.core.timestamps import from_text, now_text, to_text
from airflow_opsflow.incidents.lifecycle import (
    SEVERITY_RANK,
    Incident,
    Observation,
    Policy,
    Transition,
    advance,
    dismiss,
)
from airflow_opsflow.state.store import ConflictError, StateStore

RoutesFor = Callable[[Incident, Transition], list[str]]
_TIMES = ("first_seen", "last_seen", "opened_at", "resolved_at", "last_alert_at")
_INTS = ("cycle", "fail_streak", "pass_streak", "occurrences", "failing_runs_since_alert")


@dataclass(frozen=True)
class Subject:
    """What an incident is about (stored for people and for listing; the fingerprint is the key)."""

    fingerprint: str
    dag_id: str
    task_id: str
    check_name: str
    entity_key: str | None = None


@dataclass(frozen=True)
class IncidentQuery:
    """Which incidents to list (every field optional but ``dag_ids``): the filters of the Ops view.

    :param dag_ids: only incidents of these DAGs (those the reader may see); empty: none.
    :param task_id: the task (its mapped instances too: ``task[3]``).
    :param resolved: True: resolved ones only; False: every other status (pending, open); None: any.
    :param status: one exact status.
    :param owner: the check's owner, or the task's (:func:`owner_of`): read from the summary, so filtered here.
    :param table: the checked table (from the summary, likewise).
    :param since: last seen at or after. :param until: last seen at or before.
    """

    dag_ids: Collection[str]
    task_id: str | None = None
    check: str | None = None
    severity: str | None = None
    resolved: bool | None = None
    status: str | None = None
    owner: str | None = None
    table: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class IncidentRecord:
    """An incident with what it is about."""

    subject: Subject
    incident: Incident


def owner_of(summary: dict[str, Any]) -> str | None:
    """Who owns an incident: the check's declared ``owner``, else the task's owner (stored since the Ops
    view, as ``task_owner``); None for incidents stored before either was."""
    owner = summary.get("owner") or summary.get("task_owner")
    return str(owner) if owner else None


@dataclass(frozen=True)
class Delivery:
    """One alert owed to one route for one transition."""

    delivery_id: str
    fingerprint: str
    incident_id: str
    transition: str
    route: str
    status: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    result: dict[str, Any]
    created_at: datetime | None = None


@dataclass(frozen=True)
class Dismissal:
    """What dismissing an incident did: its new state, the transitions (``resolved`` for an open one,
    none for a pending or already resolved one) and the routes now owed its alert."""

    incident: Incident
    transitions: list[Transition]
    routes: list[str]


class IncidentRepo:
    """Read and advance incidents; keep the outbox.

    :param store: the state store (tables are created on first use).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.incidents = store.table("incidents")
        self.deliveries = store.table("deliveries")

    def get(self, fingerprint: str) -> Incident | None:
        with self.store.transaction() as cur:
            found = self._load(cur, fingerprint)
        return found[0] if found else None

    def record(
        self,
        observations: list[tuple[Subject, Observation]],
        policy: Policy,
        routes: list[str] | RoutesFor,
        now: datetime | None = None,
    ) -> list[tuple[Incident, list[Transition]]]:
        """Advance each observed fingerprint and queue its alerts, atomically; retried on conflicts.

        :param routes: route names to alert, or a function of (incident, transition) choosing them
            (e.g. by severity)."""
        now = now or datetime.now(UTC)
        if now.tzinfo is None:  # naive means UTC, as in the store (not the host's zone)
            now = now.replace(tzinfo=UTC)
        for _ in self.store.retrying():
            try:
                with self.store.transaction() as cur:
                    return [self._advance(cur, subject, obs, policy, routes, now) for subject, obs in observations]
            except ConflictError:
                continue
        raise AssertionError("unreachable")  # retrying() raises when it gives up

    def _advance(self, cur: Cursor, subject: Subject, obs: Observation, policy: Policy,
                 routes: list[str] | RoutesFor, now: datetime) -> tuple[Incident, list[Transition]]:
        found = self._load(cur, subject.fingerprint)
        current, version = found if found else (Incident(subject.fingerprint), None)
        new, transitions = advance(current, obs, policy, now)
        if current.refs and not new.refs:
            # A new occurrence starts without refs; keep the last ones, which dispatch hands to each route as
            # "previous" (Jira reopens that ticket rather than create one its lagging search cannot see yet).
            new = replace(new, refs=current.refs)
        if new != current:
            self._save(cur, subject, new, version, now)
        for t in transitions:
            for route in routes(new, t) if callable(routes) else routes:
                self._queue(cur, subject.fingerprint, t, route, now)
        return new, transitions

    def _queue(self, cur: Cursor, fingerprint: str, t: Transition, route: str, now: datetime) -> None:
        cur.execute(
            f"INSERT INTO {self.deliveries} (delivery_id, fingerprint, incident_id, transition, route, "
            "status, attempts, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)",
            (f"{t.incident_id}:{t.kind}:{to_text(t.at)}:{route}", fingerprint, t.incident_id, t.kind, route,
             to_text(now)),
        )

    def dismiss(self, fingerprint: str, by: str, note: str | None = None,
                now: datetime | None = None) -> Dismissal | None:
        """A person dismissed the incident (:func:`~airflow_opsflow.incidents.lifecycle.dismiss`): resolve it
        and queue its ``resolved`` alert to every route that was sent (or still owes) an alert of this
        occurrence, atomically; the task's next run delivers it. None: no incident has this fingerprint."""
        now = now or datetime.now(UTC)
        for _ in self.store.retrying():
            try:
                with self.store.transaction() as cur:
                    found = self._load(cur, fingerprint)
                    if found is None:
                        return None
                    current, version = found
                    new, transitions = dismiss(current, by, now, note)
                    if new == current:
                        return Dismissal(new, [], [])
                    cur.execute(f"SELECT dag_id, task_id, check_name, entity_key FROM {self.incidents} "
                                "WHERE fingerprint = ?", (fingerprint,))
                    row = cur.fetchone()
                    self._save(cur, Subject(fingerprint, *row), new, version, now)
                    routes: list[str] = []
                    if transitions:
                        # The routes that heard of this occurrence (an abandoned alert never reached its route).
                        cur.execute(f"SELECT DISTINCT route FROM {self.deliveries} WHERE incident_id = ? "
                                    "AND status <> 'abandoned' ORDER BY route", (current.incident_id,))
                        routes = [r[0] for r in cur.fetchall()]
                    for t in transitions:
                        for route in routes:
                            self._queue(cur, fingerprint, t, route, now)
                    return Dismissal(new, transitions, routes)
            except ConflictError:
                continue
        raise AssertionError("unreachable")

    def _load(self, cur: Cursor, fingerprint: str) -> tuple[Incident, int] | None:
        names = [f.name for f in fields(Incident)]
        cur.execute(f"SELECT {', '.join(names)}, row_version FROM {self.incidents} WHERE fingerprint = ?",
                    (fingerprint,))
        row = cur.fetchone()
        if row is None:
            return None
        return _incident(names, row[:-1]), int(row[-1])

    def _save(self, cur: Cursor, subject: Subject, inc: Incident, version: int | None, now: datetime) -> None:
        values: dict[str, Any] = {f.name: getattr(inc, f.name) for f in fields(Incident)}
        for k in _TIMES:
            values[k] = to_text(values[k])
        values["summary"] = json.dumps(values["summary"], default=str)
        values["refs"] = json.dumps(values["refs"], default=str)
        values["recent_runs"] = json.dumps(list(values["recent_runs"]))
        values.update(dag_id=subject.dag_id, task_id=subject.task_id, check_name=subject.check_name,
                      entity_key=subject.entity_key, updated_at=to_text(now))
        if version is None:
            values["row_version"] = 1
            cols = list(values)
            try:
                cur.execute(f"INSERT INTO {self.incidents} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [values[c] for c in cols])
            except Exception as e:
                if _is_duplicate_key(e):  # a concurrent writer inserted the same fingerprint first
                    raise ConflictError(str(e)) from e
                raise
            return
        values.pop("fingerprint")
        values["row_version"] = version + 1
        sets = ", ".join(f"{c} = ?" for c in values)
        cur.execute(f"UPDATE {self.incidents} SET {sets} WHERE fingerprint = ? AND row_version = ?",
                    [*values.values(), inc.fingerprint, version])
        if cur.rowcount != 1:
            raise ConflictError(f"incident {inc.fingerprint} changed concurrently")

    def set_refs(self, fingerprint: str, refs: dict[str, Any]) -> Incident:
        """Merge ``refs`` (e.g. the Slack message of the incident) into the incident's references."""
        for _ in self.store.retrying():
            try:
                with self.store.transaction() as cur:
                    found = self._load(cur, fingerprint)
                    if found is None:
                        raise KeyError(fingerprint)
                    inc, version = found
                    new = replace(inc, refs={**inc.refs, **refs})
                    cur.execute(f"UPDATE {self.incidents} SET refs = ?, row_version = ? "
                                "WHERE fingerprint = ? AND row_version = ?",
                                (json.dumps(new.refs, default=str), version + 1, fingerprint, version))
                    if cur.rowcount != 1:
                        raise ConflictError(fingerprint)
                    return new
            except ConflictError:
                continue
        raise AssertionError("unreachable")

    def open_subjects(self, dag_id: str, task_id: str) -> list[Subject]:
        """The incidents of a task that are pending or open (e.g. to resolve entities no longer failing)."""
        with self.store.transaction() as cur:
            cur.execute(f"SELECT fingerprint, check_name, entity_key FROM {self.incidents} "
                        "WHERE dag_id = ? AND task_id = ? AND status IN ('pending', 'open')", (dag_id, task_id))
            rows = cur.fetchall()
        return [Subject(r[0], dag_id, task_id, r[1], r[2]) for r in rows]

    # -- the outbox -----------------------------------------------------------------------------------

    def pending(self, fingerprints: list[str]) -> list[Delivery]:
        """Deliveries not yet confirmed for these fingerprints, oldest first (claim one before sending)."""
        if not fingerprints:
            return []
        marks = ", ".join("?" * len(fingerprints))
        with self.store.transaction() as cur:
            cur.execute(
                "SELECT delivery_id, fingerprint, incident_id, transition, route, status, attempts, last_error, "
                f"result, created_at FROM {self.deliveries} WHERE status IN ('pending', 'sending', 'failed') "
                f"AND fingerprint IN ({marks}) ORDER BY created_at, delivery_id", fingerprints)
            rows = cur.fetchall()
        return [Delivery(delivery_id=r[0], fingerprint=r[1], incident_id=r[2], transition=r[3], route=r[4],
                         status=r[5], attempts=int(r[6]), last_error=r[7], result=json.loads(r[8] or "{}"),
                         created_at=from_text(r[9]))
                for r in rows]

    def claim(self, delivery: Delivery, stale_after: timedelta = timedelta(minutes=10)) -> bool:
        """Take ``delivery`` for sending. False when another sender holds it (a concurrent run of the
        same task) or it was confirmed meanwhile; a claim older than ``stale_after`` (its sender died)
        can be taken over."""
        now = datetime.now(UTC)
        with self.store.transaction() as cur:
            cur.execute(
                f"UPDATE {self.deliveries} SET status = 'sending', attempts = attempts + 1, claimed_at = ? "
                "WHERE delivery_id = ? AND attempts = ? AND (status IN ('pending', 'failed') "
                "OR (status = 'sending' AND claimed_at < ?))",
                (to_text(now), delivery.delivery_id, delivery.attempts, to_text(now - stale_after)))
            return cur.rowcount == 1

    def mark_sent(self, delivery_id: str, result: dict[str, Any] | None = None) -> None:
        with self.store.transaction() as cur:
            cur.execute(f"UPDATE {self.deliveries} SET status = 'sent', result = ?, sent_at = ?, last_error = NULL "
                        "WHERE delivery_id = ? AND status = 'sending'",
                        (json.dumps(result or {}, default=str), now_text(), delivery_id))

    def mark_failed(self, delivery_id: str, error: str, give_up: bool = False) -> None:
        """Record a failed send; ``give_up`` (too many attempts) stops retrying it: status ``abandoned``."""
        with self.store.transaction() as cur:
            cur.execute(f"UPDATE {self.deliveries} SET status = ?, last_error = ? "
                        "WHERE delivery_id = ? AND status = 'sending'",
                        ("abandoned" if give_up else "failed", error[:2000], delivery_id))

    # -- reading for people (the Ops view): SELECTs only -----------------------------------------------

    def dag_ids(self) -> list[str]:
        """Every DAG that has incidents (to ask the auth manager which of them a reader may see)."""
        with self.store.transaction() as cur:
            cur.execute(f"SELECT DISTINCT dag_id FROM {self.incidents}")
            return sorted(r[0] for r in cur.fetchall())

    def find(self, query: IncidentQuery, limit: int | None = None) -> tuple[list[IncidentRecord], bool]:
        """The incidents matching ``query``, most severe first (the lifecycle's order), then the oldest first
        seen; and whether more than ``limit`` matched (the list is cut there)."""
        where, params = self._where(query)
        if where is None:
            return [], False
        names = [f.name for f in fields(Incident)]
        ranks = " ".join(f"WHEN ? THEN {int(rank)}" for rank in SEVERITY_RANK.values())
        in_sql = limit is not None and not (query.owner or query.table)  # those two are read from the summary
        sql = (f"SELECT dag_id, task_id, check_name, entity_key, {', '.join(names)} FROM {self.incidents} "
               f"WHERE {where} ORDER BY CASE severity {ranks} ELSE 0 END DESC, first_seen, fingerprint"
               + (" LIMIT ?" if in_sql else ""))
        args = [*params, *SEVERITY_RANK, *([limit + 1] if in_sql and limit is not None else [])]
        with self.store.transaction() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        found = [IncidentRecord(Subject(r[4], r[0], r[1], r[2], r[3]), _incident(names, r[4:])) for r in rows]
        found = [f for f in found if _matches(f.incident.summary, query)]
        if limit is not None and len(found) > limit:
            return found[:limit], True
        return found, False

    def tally(self, query: IncidentQuery) -> dict[tuple[str, str], int]:
        """How many incidents match ``query``, by (status, severity)."""
        where, params = self._where(query)
        if where is None:
            return {}
        counts: dict[tuple[str, str], int] = {}
        with self.store.transaction() as cur:
            if query.owner or query.table:
                cur.execute(f"SELECT status, severity, summary FROM {self.incidents} WHERE {where}", params)
                for status, severity, summary in cur.fetchall():
                    if _matches(json.loads(summary or "{}"), query):
                        counts[(status, severity)] = counts.get((status, severity), 0) + 1
            else:
                cur.execute(f"SELECT status, severity, COUNT(*) FROM {self.incidents} WHERE {where} "
                            "GROUP BY status, severity", params)
                counts = {(status, severity): int(n) for status, severity, n in cur.fetchall()}
        return counts

    def find_one(self, fingerprint: str) -> IncidentRecord | None:
        """One incident with its subject; None when no incident has this fingerprint."""
        names = [f.name for f in fields(Incident)]
        with self.store.transaction() as cur:
            cur.execute(f"SELECT dag_id, task_id, check_name, entity_key, {', '.join(names)} FROM {self.incidents} "
                        "WHERE fingerprint = ?", (fingerprint,))
            r = cur.fetchone()
        return None if r is None else IncidentRecord(Subject(r[4], r[0], r[1], r[2], r[3]), _incident(names, r[4:]))

    def _where(self, q: IncidentQuery) -> tuple[str | None, list[Any]]:
        """The SQL condition and its parameters for the columns of ``q`` (None: nothing can match)."""
        dags = sorted(set(q.dag_ids))
        if not dags:
            return None, []
        parts = [f"dag_id IN ({', '.join('?' * len(dags))})"]
        params: list[Any] = list(dags)
        if q.task_id is not None:
            mapped = f"{q.task_id}["  # a mapped instance's incidents are keyed task[index]
            parts.append("(task_id = ? OR substr(task_id, 1, ?) = ?)")
            params += [q.task_id, len(mapped), mapped]
        for column, value in (("check_name", q.check), ("severity", q.severity), ("status", q.status)):
            if value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        if q.resolved is not None:
            parts.append("status = 'resolved'" if q.resolved else "status <> 'resolved'")
        if q.since is not None:
            parts.append("last_seen >= ?")
            params.append(to_text(q.since))
        if q.until is not None:
            parts.append("last_seen <= ?")
            params.append(to_text(q.until))
        return " AND ".join(parts), params


def _incident(names: list[str], values: Any) -> Incident:
    """An Incident from its stored columns (``names``, in the order of ``values``)."""
    data = dict(zip(names, values, strict=True))
    for k in _TIMES:
        data[k] = from_text(data[k])
    for k in _INTS:
        data[k] = int(data[k])
    data["summary"] = json.loads(data["summary"] or "{}")
    data["refs"] = json.loads(data["refs"] or "{}")
    data["recent_runs"] = tuple(json.loads(data["recent_runs"] or "[]"))
    return Incident(**data)


def _matches(summary: dict[str, Any], q: IncidentQuery) -> bool:
    """The filters on what only the summary holds: the owner (the check's or the task's) and the table."""
    if q.owner is not None and q.owner not in (summary.get("owner"), summary.get("task_owner")):
        return False
    return q.table is None or summary.get("table") == q.table


def _is_duplicate_key(error: Exception) -> bool:
    """A unique-key violation, whatever the driver (all raise a DB-API IntegrityError subclass)."""
    return any(cls.__name__ == "IntegrityError" for cls in type(error).__mro__)
